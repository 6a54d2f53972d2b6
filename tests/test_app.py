"""The Gradio app, called through gradio_client against a launched server."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytest.importorskip("gradio", reason="the app needs gradio (not installed on this machine)")

from gradio_client import Client, handle_file  # noqa: E402

from inpaint_ui.app import MAX_UPLOAD, Models, find_checkpoints, serve  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "faces" / "142124.jpg"
MODEL = "run: tiny"


@pytest.fixture(scope="module")
def client(tiny_checkpoint_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    folder.mkdir()
    shutil.copy(tiny_checkpoint_path, folder / "model.safetensors")
    app, url = serve(Models(find_checkpoints([folder])), block=False)
    yield Client(url, verbose=False)
    app.close()


@pytest.fixture(scope="module")
def painted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upload")
    face = Image.open(EXAMPLE).convert("RGB")
    face.save(folder / "background.png")
    layer = np.zeros((face.height, face.width, 4), np.uint8)
    layer[40:55, 15:75] = 255  # a stroke over the eyes
    Image.fromarray(layer).save(folder / "layer.png")
    value = {
        "background": handle_file(str(folder / "background.png")),
        "layers": [handle_file(str(folder / "layer.png"))],
        "composite": handle_file(str(folder / "background.png")),
    }
    return value, np.asarray(face), layer[..., 3] > 0


def test_the_status_says_when_an_adaptation_asked_for_was_not_made(client, painted):
    """The tiny run is not a face model: with the adaptation slider up, its fill says it was not adapted
    instead of ignoring the slider; with the slider at 0 it says nothing of it."""
    value = painted[0]
    common = (MODEL, value, "painted", "auto", "", 4, 1, 0.003, 0, True, "auto")
    status = client.predict(*common, 3, api_name="/inpaint")[5]
    assert "Done in" in status and "Note: the generator was not adapted to this photo" in status
    assert "not adapted" not in client.predict(*common, 0, api_name="/inpaint")[5]


def test_inpaint_endpoint_keeps_pixels_outside_the_painted_hole(client, painted):
    value, face, hole = painted
    result, raw, candidates, _, download, status, view = client.predict(
        MODEL, value, "painted", "auto", "", 20, 2, 0.003, 0, True, "auto", api_name="/inpaint"
    )
    for path in (result, raw, download):
        image = np.asarray(Image.open(path).convert("RGB"))
        assert image.shape == face.shape
        assert np.array_equal(image[~hole], face[~hole])
    assert len(candidates) == 2 and "Done in" in status
    assert np.asarray(Image.open(view)).shape[:2] == face.shape[:2]  # the photo with the model's square drawn on it
    assert not np.array_equal(np.asarray(Image.open(raw).convert("RGB"))[hole], face[hole])


def test_mask_presets_and_an_empty_mask(client, painted):
    value, face, _ = painted
    result = client.predict(MODEL, value, "centre", "auto", "", 10, 1, 0.003, 0, False, "auto", api_name="/inpaint")[0]
    assert Image.open(result).size == (face.shape[1], face.shape[0])
    empty = dict(value, layers=[])
    with pytest.raises(Exception, match="Nothing to fill"):
        client.predict(MODEL, empty, "painted", "auto", "", 10, 1, 0.003, 0, True, "auto", api_name="/inpaint")


def test_edit_endpoints(client):
    gallery = client.predict(MODEL, 5, 4, api_name="/samples")
    assert [item["caption"] for item in gallery] == ["seed 5", "seed 6", "seed 7", "seed 8"]
    assert Image.open(gallery[0]["image"]).size == (32, 32)
    equation, results = client.predict(MODEL, "1, 2", "3", "4", None, None, None, 3, 0.2, api_name="/arithmetic")
    assert Image.open(equation).size == (4 * 34 + 2, 36) and len(results) == 4
    strip, gif, *_ = client.predict(MODEL, "0", "1", 5, "slerp", api_name="/interpolate")
    assert Image.open(strip).size == (5 * 34 + 2, 36)
    assert Image.open(gif).n_frames == 8
    projected = client.predict(
        MODEL, "", "3", "4", handle_file(str(EXAMPLE)), None, None, 0, 0.2, api_name="/arithmetic"
    )
    assert len(projected[1]) == 1
    with pytest.raises(Exception, match="Concept A: seeds: each seed: must be a whole number"):
        client.predict(MODEL, "x", "3", "4", None, None, None, 0, 0.2, api_name="/arithmetic")


def test_model_endpoint_describes_the_checkpoint(client):
    facts, grid = client.predict(MODEL, api_name="/describe_model")
    assert "DCGAN 32×32" in facts and "inpaint train" in facts
    assert Image.open(grid).size[0] > 32


def test_eight_concurrent_inpaint_requests_all_complete(client, painted):
    value, face, hole = painted
    jobs = [
        client.submit(MODEL, value, "painted", "auto", "", 10, 1, 0.003, seed, True, "auto", api_name="/inpaint")
        for seed in range(8)
    ]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda job: job.result(timeout=300), jobs))
    assert len(results) == 8
    for result in results:
        image = np.asarray(Image.open(result[0]).convert("RGB"))
        assert np.array_equal(image[~hole], face[~hole])


def test_no_endpoint_reads_a_server_path(client, painted):
    value, _, _ = painted
    with pytest.raises(Exception, match="Model: must be one of"):
        client.predict("/etc/passwd", value, "painted", "auto", "", 10, 1, 0.003, 0, True, "auto", api_name="/inpaint")
    with pytest.raises(Exception):
        client.predict("../checkpoints", api_name="/describe_model")


def test_uploads_over_the_limit_and_non_images_are_refused(client, tmp_path):
    import httpx

    from inpaint_ui.checks import MAX_TRANSFER_BYTES

    assert MAX_UPLOAD == "20mb"
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(21 * 1024 * 1024))
    with pytest.raises(Exception, match=r"big.png: too large \(21.0 MB, limit 20 MB\)"):  # a photo picked: 20 MB
        client.predict(MODEL, "", "3", "4", handle_file(str(big)), None, None, 0, 0.2, api_name="/arithmetic")
    with open(big, "wb") as handle:  # the server's route takes what the photo editor sends, and no more
        handle.truncate(MAX_TRANSFER_BYTES + 1)
    with open(big, "rb") as handle:
        response = httpx.post(client.src.rstrip("/") + "/gradio_api/upload", files={"files": handle}, timeout=120)
    assert response.status_code == 413, response.text[:200]
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(Exception, match="notes.png: not an image"):
        client.predict(MODEL, "", "3", "4", handle_file(str(text)), None, None, 0, 0.2, api_name="/arithmetic")
