"""Per-photo generator adaptation (inpaint.adapt) and its use by fills, projections and edits."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from test_search import _faces, _HostReads

from inpaint.adapt import AdaptSettings, _Adaptation, adapt
from inpaint.checkpoint import Checkpoint, checkpoint_or_default, load_checkpoint
from inpaint.editor import (
    PROJECTION_ADAPT,
    interpolate,
    interpolate_deltas,
    latents_for_seeds,
    project,
    render,
    resolve_projection_adapt,
)
from inpaint.engine import FillItem, FillRequest, fill_images
from inpaint.metrics import psnr
from inpaint.search import SearchSettings

FAST = SearchSettings(iterations=4, restarts=1)
ASTRONAUT = "tests/data/astronaut.jpg"


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint_path) -> Checkpoint:
    return load_checkpoint(tiny_checkpoint_path)


@pytest.fixture(scope="module")
def default() -> Checkpoint:
    return load_checkpoint(checkpoint_or_default(None))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two [0, 1] pictures."""
    return psnr(a.numpy() * 255, b.numpy() * 255)


def _digest(generator: torch.nn.Module) -> str:
    state = generator.state_dict()
    return hashlib.sha256(b"".join(state[name].numpy().tobytes() for name in sorted(state))).hexdigest()


def _astronaut_with_eyes_covered() -> tuple[Image.Image, np.ndarray]:
    image = Image.open(ASTRONAUT).convert("RGB")
    hole = np.zeros((image.height, image.width), bool)
    hole[95:131, 165:276] = True  # a bar from her brows to the bridge of her nose
    return image, hole


def test_projections_adapt_face_models_by_default_and_fills_only_when_asked(tiny, default):
    assert resolve_projection_adapt(default).steps > 0
    assert resolve_projection_adapt(tiny).steps == 0  # no "faces" content: off
    assert resolve_projection_adapt(tiny, AdaptSettings(steps=7)).steps == 7
    image, hole = _astronaut_with_eyes_covered()
    [plain] = fill_images(default, [FillItem(image, hole)], FillRequest(FAST))
    assert not plain.adapted and plain.framing == "face"  # a fill's adaptation is off unless asked for


def test_adaptation_fits_the_known_pixels_and_leaves_the_shipped_generator_alone(tiny):
    images, known = _faces(3)
    z = torch.rand(3, 12) * 2 - 1
    before = _digest(tiny.generator)
    start = adapt(tiny, images, known, z, AdaptSettings(steps=0))
    tuned = adapt(tiny, images, known, z, AdaptSettings(steps=40, lr=5e-3, tuned="all"))
    assert (tuned.loss < 0.7 * start.loss).all(), (tuned.loss, start.loss)
    assert _digest(tiny.generator) == before  # bit-identical: only the copies changed
    assert all(value.shape[0] == 3 for value in tuned.weights.values())
    assert not any(p.requires_grad for p in tiny.generator.parameters())


def test_a_photo_adapts_the_same_alone_or_in_a_batch(tiny):
    images, known = _faces(3)
    z = torch.rand(3, 12) * 2 - 1
    settings = AdaptSettings(steps=10, lr=5e-3, tuned="all")
    together = adapt(tiny, images, known, z, settings)
    alone = adapt(tiny, images[1:2], known[1:2], z[1:2], settings)
    assert torch.allclose(together.images[1], alone.images[0], atol=1e-4)
    assert torch.allclose(together.z[1], alone.z[0], atol=1e-5)


def test_an_adaptation_step_reads_nothing_back_to_the_host(tiny):
    """What a CUDA graph needs of the step (checked here on the CPU): no host reads inside it."""
    images, known = _faces(2)
    run = _Adaptation(tiny, images, known, torch.rand(2, 12), AdaptSettings(steps=5, anchor=1.0), 0.003, graphable=True)
    run.step()  # Adam's state exists after the first step
    with _HostReads() as reads:
        for _ in range(3):
            run.step()
    assert reads.seen == []
    with _HostReads() as reads:  # the recorder does see a host read where there is one (a report's loss)
        float(run.progress(4, 5).loss.sum())
    assert reads.seen


def test_the_anchor_keeps_the_copy_near_the_shipped_weights(tiny):
    images, known = _faces(2)
    z = torch.rand(2, 12) * 2 - 1

    def moved(anchor: float) -> float:
        adapted = adapt(tiny, images, known, z, AdaptSettings(steps=30, lr=5e-3, anchor=anchor, tuned="all"))
        return float(sum(delta.square().sum() for delta in adapted.deltas(tiny).values()))

    assert moved(1e4) < 0.5 * moved(0.0)


def test_fills_with_adaptation_change_only_the_hole_repeat_and_spare_the_generator(default):
    image, hole = _astronaut_with_eyes_covered()
    before = _digest(default.generator)
    request = FillRequest(FAST, adapt=AdaptSettings(steps=8))
    [first] = fill_images(default, [FillItem(image, hole)], request)
    [again] = fill_images(default, [FillItem(image, hole)], request)
    assert first.adapted and first.framing == "face"
    assert not any("not adapted" in note for note in first.notes)
    original, filled = np.asarray(image), np.asarray(first.image)
    assert np.array_equal(original[~hole], filled[~hole])
    assert not np.array_equal(original[hole], filled[hole])
    assert np.array_equal(filled, np.asarray(again.image))  # the same seed, the same fill
    assert _digest(default.generator) == before


def test_a_fill_that_asks_for_adaptation_and_cannot_have_it_says_so(tiny):
    """A model that is not a face model is never adapted to a photo: asked for, the fill says so
    instead of ignoring the request; not asked for, it says nothing."""
    size, channels = tiny.config.image_size, tiny.config.channels
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, channels), np.uint8)
    image = Image.fromarray(pixels if channels == 3 else pixels[..., 0])
    hole = np.zeros((size, size), bool)
    hole[size // 4 : size // 2, size // 4 : size // 2] = True
    [asked] = fill_images(tiny, [FillItem(image, hole)], FillRequest(FAST, crop="whole", adapt=AdaptSettings(steps=3)))
    [plain] = fill_images(tiny, [FillItem(image, hole)], FillRequest(FAST, crop="whole"))
    assert not asked.adapted and asked.framing == "whole"
    assert [note for note in asked.notes if "not adapted" in note] == [
        "the generator was not adapted to this photo: adaptation applies to faces framed in a photo, "
        "and this fill's square is framed as 'whole'"
    ]
    assert not any("not adapted" in note for note in plain.notes)


def test_adaptation_off_gives_the_search_only_fill_exactly(default, monkeypatch):
    """Steps 0 never enter the adaptation, and the fill is the search's own best, finished as
    before; with steps the fill differs."""
    image, hole = _astronaut_with_eyes_covered()
    [adapted] = fill_images(default, [FillItem(image, hole)], FillRequest(FAST, adapt=AdaptSettings(steps=8)))

    def refuse(*args, **kwargs):
        raise AssertionError("adaptation ran with steps 0")

    monkeypatch.setattr("inpaint.engine.adapt", refuse)
    [off] = fill_images(default, [FillItem(image, hole)], FillRequest(FAST, adapt=AdaptSettings(steps=0)))
    assert not off.adapted
    from inpaint.engine import _finish, _prepare
    from inpaint.engine import search as engine_search

    prepared = _prepare(default, FillItem(image, hole), "auto")
    result = engine_search(default, prepared.model_image[None], prepared.model_known[None], FAST)
    fill = default.to_pixels(result.candidates[0][0]).permute(1, 2, 0).numpy() * 255
    [(_, blended)] = _finish(prepared, [fill], True, FAST.seed)
    rows, cols = np.nonzero(hole)
    region = np.asarray(off.image)[rows.min() - 1 : rows.max() + 2, cols.min() - 1 : cols.max() + 2]
    assert np.array_equal(region, np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    assert not np.array_equal(np.asarray(off.image), np.asarray(adapted.image))


def test_a_projection_after_adaptation_reproduces_the_photo_and_stays_editable(default):
    photo = Image.open(ASTRONAUT).convert("RGB")
    settings = SearchSettings(iterations=10, restarts=1, lam=0.0)
    shipped = _digest(default.generator)
    plain = project(default, photo, settings, AdaptSettings(steps=0))
    adapted = project(default, photo, settings, replace(PROJECTION_ADAPT, steps=60))
    assert _digest(default.generator) == shipped  # the projection tuned its own copy
    before, after = _psnr(plain.image, adapted.target), _psnr(adapted.image, adapted.target)
    assert after > 24 and after > before + 3, (before, after)
    assert adapted.deltas and not plain.deltas
    # Editable: from the photo to a seed's face, each frame a small step from the last.
    other = latents_for_seeds(default, [17])[0]
    frames = 8
    deltas = interpolate_deltas(adapted.deltas, None, frames)
    pictures = render(default, interpolate(default, adapted.z, other, frames), deltas)
    assert _psnr(pictures[0], adapted.image) > 40  # the walk starts at the photo
    steps = (pictures[1:] - pictures[:-1]).abs().flatten(1).mean(1)
    jump = (pictures[-1] - pictures[0]).abs().mean()
    assert steps.max() < 0.45 * jump, (steps, jump)  # no frame jumps: the face changes gradually


def test_the_fill_and_batch_commands_adapt_when_asked_and_say_so(tmp_path, capsys):
    import json

    from inpaint.cli import main

    image, hole = _astronaut_with_eyes_covered()
    folder = tmp_path / "in"
    folder.mkdir()
    image.save(folder / "astronaut.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(folder / "astronaut_mask.png")
    fast = ["--iterations", "2", "--restarts", "1"]
    args = ["fill", str(folder / "astronaut.png"), "--mask", str(folder / "astronaut_mask.png"), *fast]
    assert main([*args, "--out", str(tmp_path / "plain.png")]) == 0
    assert "generator adapted" not in capsys.readouterr().out  # off by default
    assert main([*args, "--out", str(tmp_path / "adapted.png"), "--adapt-steps", "3"]) == 0
    captured = capsys.readouterr()
    assert "generator adapted to the photo" in captured.out and "adapting G" in captured.err  # its own bar
    assert main(["batch", str(folder), str(tmp_path / "out"), *fast, "--adapt-steps", "3"]) == 0
    [record] = [json.loads(line) for line in (tmp_path / "out" / "report.jsonl").read_text().splitlines()]
    assert record["adapted"] is True and record["framing"] == "face"
    with pytest.raises(SystemExit) as refused:  # argparse's refusal, in one line
        main([*args, "--out", str(tmp_path / "x.png"), "--adapt-steps", "-1"])
    assert refused.value.code == 2 and "--adapt-steps" in capsys.readouterr().err
