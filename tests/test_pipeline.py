"""The one command from a folder to a ready model (training.pipeline), the distribution score for
any content (inpaint.swd) and scoring a set that is not faces during training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from inpaint.checkpoint import WEIGHTS_FILE, load_checkpoint, read_metadata
from inpaint.cli import main
from inpaint.swd import blurred, laplacian_pyramid, reference_scale, sliced_wasserstein
from inpaint_training import encoder as encoder_training
from inpaint_training.data import load_image_folder
from inpaint_training.dry_run import write_synthetic_images
from inpaint_training.options import DEFAULT_EVAL_EVERY, OPTIONS_FILE, TrainOptions
from inpaint_training.pipeline import DONE, ENCODER, current_phase, train_run

QUIET = {"show_progress": False, "log": lambda *a, **k: None}


@pytest.fixture(scope="module")
def discs(tmp_path_factory) -> Path:
    """40 pictures that are not faces: soft discs on gradients, 40×40."""
    return write_synthetic_images(tmp_path_factory.mktemp("discs"), count=40, size=40)


def tiny_run(data: Path, out: Path, **extra) -> TrainOptions:
    settings = dict(image_size=32, g_width=8, d_width=8, batch_size=4, steps=3, log_every=1, encoder_steps=4)
    settings.update(extra)
    return TrainOptions(data=str(data), out=str(out), **settings)


def encoder_tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys() if key.startswith("encoder.")}


def test_one_command_yields_a_model_with_its_encoder_that_fill_uses(discs, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        ["train", "--data", str(discs), "--out", str(run), "--image-size", "32", "--g-width", "8", "--d-width", "8"]
        + ["--batch-size", "4", "--steps", "3", "--encoder-steps", "3", "--val-count", "8", "--g-upsample", "resize"]
    )
    assert code == 0
    assert encoder_tensors(run / WEIGHTS_FILE)  # the final model holds the encoder's weights
    assert load_checkpoint(run).config.upsample == "resize"
    # A held-out split is scored over the run without being asked to.
    assert json.loads((run / OPTIONS_FILE).read_text())["eval_every"] == DEFAULT_EVAL_EVERY
    for name in ("samples.png", "losses.png", "nearest.png", "card.json", "README.md", "encoder/encoder-fills.png"):
        assert (run / name).is_file(), name
    card = json.loads((run / "card.json").read_text())
    assert card["training"]["encoder"]["steps"] == 3 and card["content"] is None  # discs are not faces
    card_text = (run / "README.md").read_text()
    assert "inpaint train --data" in card_text and "G doubling by resize and convolution" in card_text
    picture = tmp_path / "disc.png"
    Image.open(sorted(discs.iterdir())[0]).save(picture)
    capsys.readouterr()
    filled = tmp_path / "filled.png"
    assert main(["fill", str(picture), "--mask-kind", "centre", "--checkpoint", str(run), "--out", str(filled)]) == 0
    assert "search from the encoder's start" in capsys.readouterr().out and filled.is_file()
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(picture).save(folder / "disc.png")
    code = main(["batch", str(folder), str(tmp_path / "out"), "--mask-kind", "centre", "--checkpoint", str(run)])
    printed = capsys.readouterr()
    assert code == 0 and "search from the encoder's start" in printed.out + printed.err
    assert current_phase(run, TrainOptions(encoder_steps=3)) == DONE
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0  # finished: nothing is trained again
    assert "is finished" in capsys.readouterr().out


def test_no_encoder_trains_the_gan_alone(discs, tmp_path):
    result = train_run(tiny_run(discs, tmp_path / "run", encoder_steps=0), **QUIET)
    assert result.model is not None and not encoder_tensors(result.model)
    assert load_checkpoint(tmp_path / "run").encoder is None
    assert not (tmp_path / "run" / "encoder").exists()


def test_resume_in_the_encoder_phase_is_exact(discs, tmp_path, monkeypatch):
    whole = train_run(tiny_run(discs, tmp_path / "whole", encoder_steps=6), **QUIET).model

    real_step_losses = encoder_training.step_losses
    calls = {"n": 0}

    def interrupted_at_the_fourth_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_step_losses(*args, **kwargs)

    monkeypatch.setattr(encoder_training, "step_losses", interrupted_at_the_fourth_step)
    split = tmp_path / "split"
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_run(discs, split, encoder_steps=6), **QUIET)
    monkeypatch.setattr(encoder_training, "step_losses", real_step_losses)
    assert current_phase(split, TrainOptions(encoder_steps=6)) == ENCODER
    assert "encoder" not in read_metadata(split / WEIGHTS_FILE)  # the GAN's model, its encoder still to come
    gan_snapshot = sorted((split / "checkpoints").glob("step-*.safetensors"))
    result = train_run(tiny_run(discs, split, encoder_steps=6), resume=True, **QUIET)
    assert not result.gan_trained and result.step == 3  # the GAN did not train again
    assert sorted((split / "checkpoints").glob("step-*.safetensors")) == gan_snapshot
    stats = (split / "encoder" / "stats.jsonl").read_text().splitlines()
    assert json.loads(stats[-1])["step"] == 6
    a, b = encoder_tensors(whole), encoder_tensors(result.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_time_limit_is_shared_between_the_phases(discs, tmp_path):
    options = tiny_run(discs, tmp_path / "run", steps=None, minutes=0.05, encoder_steps=10_000, encoder_share=0.5)
    assert options.gan_minutes() == pytest.approx(0.025) and options.encoder_minutes() == pytest.approx(0.025)
    train_run(options, **QUIET)
    saved = json.loads((tmp_path / "run" / "encoder" / "encoder_options.json").read_text())
    assert 1 <= saved["steps"] < 10_000  # cut to what fits 1.5 s at the measured speed
    assert "encoder" in read_metadata(tmp_path / "run" / WEIGHTS_FILE)


def test_a_set_that_is_not_faces_is_scored_by_the_sliced_wasserstein_distance(discs, tmp_path):
    run = tmp_path / "run"
    train_run(tiny_run(discs, run, steps=4, val_count=8, eval_every=0.25, eval_samples=16, encoder_steps=0), **QUIET)
    scores = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if '"eval"' in line]
    assert scores and all(s["swd"] > 0 and "frechet" not in s for s in scores)
    best = load_checkpoint(run / "checkpoints" / "best.safetensors")
    assert best.training["best_by"] == "swd" and best.training["swd"] == min(s["swd"] for s in scores)
    card = json.loads((run / "card.json").read_text())
    assert [r["swd"] for r in card["training"]["swd_history"]] == [s["swd"] for s in scores]


# --- The distribution score ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disc_images(tmp_path_factory) -> torch.Tensor:
    folder = write_synthetic_images(tmp_path_factory.mktemp("many"), count=96, size=64, seed=3)
    return load_image_folder(folder, 64, 3, show_progress=False).images


def test_two_halves_of_a_set_score_below_the_set_against_its_blurred_copy(disc_images):
    scale = reference_scale(disc_images)
    assert scale["halves"] < scale["blurred"]
    # The fine level is where the blur shows most.
    first, second = disc_images[:48], disc_images[48:]
    halves = sliced_wasserstein(first, second)["swd_levels"]
    smooth = sliced_wasserstein(first, blurred(second))["swd_levels"]
    assert smooth[0] > 2 * halves[0]


def test_the_score_is_zero_for_identical_sets_and_large_for_a_collapsed_one(disc_images):
    assert sliced_wasserstein(disc_images, disc_images)["swd"] == 0
    collapsed = disc_images[:1].expand(len(disc_images), -1, -1, -1)
    assert sliced_wasserstein(disc_images, collapsed)["swd"] > 2 * reference_scale(disc_images)["halves"]
    again = sliced_wasserstein(disc_images[:48], disc_images[48:])
    assert again == sliced_wasserstein(disc_images[:48], disc_images[48:])  # the same seed, the same score


def test_the_laplacian_pyramid_adds_back_up_to_the_image():
    images = torch.rand(2, 3, 64, 64)
    levels = laplacian_pyramid(images)
    assert [level.shape[-1] for level in levels] == [64, 32, 16]
    # Rebuild: each band plus the upsampled coarser image gives the finer image.
    from inpaint.swd import _blur

    current = levels[-1]
    for band in reversed(levels[:-1]):
        up = torch.zeros_like(band)
        up[..., ::2, ::2] = current
        current = band + 4 * _blur(up)
    assert torch.allclose(current, images, atol=1e-5)


def test_eval_scores_a_set_that_is_not_faces(discs, tmp_path, capsys):
    run = tmp_path / "run"
    train_run(tiny_run(discs, run, encoder_steps=0), **QUIET)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--data", str(discs), "--n", "16"]) == 0
    out = capsys.readouterr().out
    assert "sliced Wasserstein distance" in out and "two halves" in out
    assert "no Fréchet face distance" in out or "Fréchet face-descriptor distance" in out
    assert np.isfinite(float(out.split("lower is better): ")[1].split()[0]))
