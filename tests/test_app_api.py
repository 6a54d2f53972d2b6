"""The app's API stays callable as it was: each named endpoint called through gradio_client with only the
arguments it took when it was introduced, every parameter added since then left out, so taking its default."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytest.importorskip("gradio", reason="the app needs gradio (not installed on this machine)")

from gradio_client import Client, handle_file  # noqa: E402

from inpaint.search import SearchSettings, resolve_settings  # noqa: E402
from inpaint_ui.app import API_DEFAULTS, Models, find_checkpoints, serve  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "faces" / "142124.jpg"  # 89 × 109: fills fast
MODEL = "run: tiny"

# Each named endpoint's parameters as it was introduced (`git log -S api_name -- ui/app.py`), in order: what
# its callers pass. All five came with the app's first version (f8ddf85). Since then /inpaint gained crop_mode
# and box_text between preset_name and iterations_n (735f101) and init_mode at its end (cbcfaf0); the others
# are unchanged. A parameter added to an endpoint must have a default, and a new endpoint is listed here.
ORIGINALS = {
    "/inpaint": [
        "model_name",
        "value",
        "preset_name",
        "iterations_n",
        "restarts_n",
        "lam_value",
        "seed_value",
        "blend_on",
    ],
    "/samples": ["model_name", "first_seed", "n"],
    "/arithmetic": [
        "model_name",
        "a_seeds",
        "b_seeds",
        "c_seeds",
        "a_photo",
        "b_photo",
        "c_photo",
        "n_variations",
        "noise_level",
    ],
    "/interpolate": ["model_name", "start_text", "end_text", "n_frames", "path_kind"],
    "/describe_model": ["model_name"],
}


@pytest.fixture(scope="module")
def served(tiny_checkpoint_path, tmp_path_factory):
    """The app with the shipped model(s) and a tiny run, its Models, and a client."""
    folder = tmp_path_factory.mktemp("models") / "tiny"
    folder.mkdir()
    shutil.copy(tiny_checkpoint_path, folder / "model.safetensors")
    models = Models(find_checkpoints([folder]))
    app, url = serve(models, block=False)
    try:
        yield models, Client(url, verbose=False)
    finally:
        app.close()
        app.scratch.remove()


@pytest.fixture(scope="module")
def painted(tmp_path_factory):
    """The photo editor's value: a face with a stroke painted over its eyes; the face and the hole."""
    folder = tmp_path_factory.mktemp("upload")
    face = Image.open(EXAMPLE).convert("RGB")
    face.save(folder / "background.png")
    layer = np.zeros((face.height, face.width, 4), np.uint8)
    layer[40:55, 15:75] = 255
    Image.fromarray(layer).save(folder / "layer.png")
    value = {
        "background": handle_file(str(folder / "background.png")),
        "layers": [handle_file(str(folder / "layer.png"))],
        "composite": handle_file(str(folder / "background.png")),
    }
    return value, np.asarray(face), layer[..., 3] > 0


def _page_values(client: Client) -> dict[str, list]:
    """Each named endpoint's fields' initial values on the page, in its parameters' order."""
    config = client.config
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    return {
        f"/{d['api_name']}": [values[i] for i in d["inputs"]]
        for d in config["dependencies"]
        if d.get("api_name") and f"/{d['api_name']}" in ORIGINALS
    }


def test_parameters_added_since_an_endpoint_came_have_the_pages_defaults(served):
    _, client = served
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == sorted(ORIGINALS)  # no page-only event in the API; a new endpoint is listed above
    page = _page_values(client)
    for name, originals in ORIGINALS.items():
        parameters = endpoints[name]["parameters"]
        names = [p["parameter_name"] for p in parameters]
        assert [n for n in names if n in originals] == originals, name  # none gone, none renamed, order kept
        for parameter, initial in zip(parameters, page[name]):
            key = parameter["parameter_name"]
            if key not in originals:
                assert parameter["parameter_has_default"], f"{name}: {key} was added without a default"
            if parameter["parameter_has_default"]:  # the page's initial value, or the model's own (API_DEFAULTS)
                expected = API_DEFAULTS.get(name[1:], {}).get(key, initial)
                assert parameter["parameter_default"] == expected, f"{name}: {key}"
    added = {p["parameter_name"]: p["parameter_default"] for p in endpoints["/inpaint"]["parameters"]}
    assert {k: added[k] for k in ("crop_mode", "box_text", "init_mode")} == {
        "crop_mode": "auto",
        "box_text": "",
        "init_mode": "auto",
    }
    assert added["iterations_n"] is None and added["restarts_n"] is None  # the chosen model's own counts


def _check_fill(answer: tuple, face: np.ndarray, hole: np.ndarray, starts: int) -> None:
    result, raw, candidates, _, download, status, _ = answer
    for path in (result, download):
        image = np.asarray(Image.open(path).convert("RGB"))
        assert image.shape == face.shape
        assert np.array_equal(image[~hole], face[~hole])
    assert Image.open(raw).size == (face.shape[1], face.shape[0])
    assert "Done in" in status
    assert len(candidates) == starts


def test_inpaint_with_its_original_arguments_only(served, painted):
    """Its originals by name (their places changed in 735f101): crop_mode, box_text and init_mode left out."""
    _, client = served
    value, face, hole = painted
    originals = dict(
        model_name=MODEL,
        value=value,
        preset_name="painted",
        iterations_n=10,
        restarts_n=2,
        lam_value=0.003,
        seed_value=0,
        blend_on=True,
    )
    assert list(originals) == ORIGINALS["/inpaint"]
    _check_fill(client.predict(**originals, api_name="/inpaint"), face, hole, starts=2)


def test_inpaint_with_only_the_photo_takes_the_models_own_search(served, painted):
    """The photo alone: the page's default model and its search. With a model named, the search's counts are
    that model's (the tiny run has no encoder: random starts), not the page's initial ones."""
    models, client = served
    value, face, hole = painted
    for chosen, extra in ((models.default, {}), (MODEL, {"model_name": MODEL})):
        starts = resolve_settings(models.get(chosen), SearchSettings()).restarts
        _check_fill(client.predict(value=value, **extra, api_name="/inpaint"), face, hole, starts)
    assert resolve_settings(models.get(MODEL), SearchSettings()).restarts > 1  # not the default model's one start


def test_edit_and_model_endpoints_with_their_original_arguments_only(served, tmp_path):
    """Their callers pass their originals in order, as the app's first tests did."""
    _, client = served
    gallery = client.predict(MODEL, 5, 4, api_name="/samples")
    assert [item["caption"] for item in gallery] == ["seed 5", "seed 6", "seed 7", "seed 8"]
    assert Image.open(gallery[0]["image"]).size == (32, 32)
    equation, results = client.predict(MODEL, "1, 2", "3", "4", None, None, None, 3, 0.2, api_name="/arithmetic")
    assert Image.open(equation).size == (4 * 34 + 2, 36) and len(results) == 4
    strip, gif, *_, frame = client.predict(MODEL, "0", "1", 5, "slerp", api_name="/interpolate")
    assert Image.open(strip).size == (5 * 34 + 2, 36) and Image.open(frame).size == (32, 32)
    assert Image.open(gif).n_frames == 8  # 5 frames there and back
    facts, grid = client.predict(MODEL, api_name="/describe_model")
    assert "DCGAN 32×32" in facts and Image.open(grid).size[0] > 32


def test_a_concept_needs_no_photo_and_empty_fields_are_refused_as_on_the_page(served):
    _, client = served
    equation, results = client.predict(
        model_name=MODEL, a_seeds="1, 2", b_seeds="3", c_seeds="4", n_variations=0, api_name="/arithmetic"
    )
    assert Image.open(equation).size == (4 * 34 + 2, 36) and len(results) == 1
    with pytest.raises(Exception, match="Concept A: needs seeds"):
        client.predict(model_name=MODEL, api_name="/arithmetic")
    gallery = client.predict(api_name="/samples")  # the page's default model, seeds 0 to 15
    assert [item["caption"] for item in gallery][::15] == ["seed 0", "seed 15"]
