"""Stabilisers (EMA, DiffAugment, label smoothing, D learning rate), scoring during training,
the face-descriptor Fréchet distance, and exporting a run as a shipped checkpoint folder."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaint.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, read_metadata, training_command
from inpaint.cli import build_parser, main
from inpaint.face_metrics import frechet_distance
from inpaint.models import ModelConfig
from inpaint_training.augment import diff_augment
from inpaint_training.cli import _given, new_run_defaults
from inpaint_training.data import load_image_folder
from inpaint_training.dry_run import write_synthetic_images
from inpaint_training.export import export_run, nearest_training_images, options_as_command
from inpaint_training.loop import train
from inpaint_training.options import DEFAULT_EVAL_EVERY, OPTIONS_FILE, TrainOptions, load_options, save_options

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "faces"
QUIET = {"show_progress": False, "log": lambda *a: None}


def tiny(data, out, **extra) -> TrainOptions:
    return TrainOptions(
        data=str(data), out=str(out), image_size=32, g_width=8, d_width=8, batch_size=4, log_every=1, **extra
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_synthetic_images(tmp_path_factory.mktemp("synthetic"), count=32, size=40)


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4000, 6)), rng.normal(size=(4000, 6))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(a, b) < 0.02
    shifted = frechet_distance(a, b + 0.5)
    assert shifted == pytest.approx(6 * 0.25, rel=0.05)
    assert frechet_distance(b + 0.5, a) == pytest.approx(shifted, rel=1e-6)
    scaled = frechet_distance(a, b * 2)  # tr(Σa + Σb − 2(ΣaΣb)^½) = 6 (1 + 4 − 4) = 6
    assert scaled == pytest.approx(6, rel=0.05)


def test_face_descriptors_tell_faces_from_noise():
    pytest.importorskip("dlib")
    from inpaint.face_metrics import face_descriptors

    faces = load_image_folder(EXAMPLES, 64, 3, show_progress=False).images
    features = face_descriptors(faces)
    assert features.shape == (16, 128)
    noise = face_descriptors(torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    # Same set sizes on both sides, so the small-sample bias of the covariances is the same.
    assert frechet_distance(features[:8], features[8:]) < frechet_distance(features[:8], noise[:8])
    centroid = np.linalg.norm(features[:8].mean(0) - features[8:].mean(0))
    assert centroid < np.linalg.norm(features.mean(0) - noise.mean(0)) / 2


def test_eval_warns_about_few_images_and_references_that_are_not_faces():
    pytest.importorskip("dlib")
    from inpaint.face_metrics import RELIABLE_COUNT, evaluation_warnings

    faces = load_image_folder(EXAMPLES, 64, 3, show_progress=False).images
    [few] = evaluation_warnings(faces, 1000)  # faces, but only 16 of them
    assert "only 16 images" in few
    assert evaluation_warnings(faces.repeat(RELIABLE_COUNT // 16 + 1, 1, 1, 1), 1000) == []
    noise = (torch.rand(RELIABLE_COUNT, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    [not_faces] = evaluation_warnings(noise, 1000)
    assert "finds a face in only 0 of 48" in not_faces


def test_diff_augment_is_seeded_differentiable_and_cuts_out():
    x = torch.full((8, 3, 32, 32), 0.5, requires_grad=True)
    a = diff_augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(3))
    b = diff_augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    a.sum().backward()
    assert x.grad.abs().sum() > 0
    cut = diff_augment(torch.ones(64, 1, 32, 32), ("cutout",), torch.Generator().manual_seed(0))
    assert 0.15 < (cut == 0).float().mean() < 0.3  # a half-size square: ≤ 25% of the area
    moved = diff_augment(torch.ones(64, 1, 32, 32), ("translation",), torch.Generator().manual_seed(0))
    assert (moved == 0).any() and (moved == 1).float().mean() > 0.7  # shifted in, zero padding


def test_stabilised_run_resumes_exactly(synthetic, tmp_path):
    extra = dict(ema_decay=0.9, diffaug="color,translation,cutout", label_smoothing=0.1, lr_d=1e-4)
    train(tiny(synthetic, tmp_path / "whole", steps=8, **extra), **QUIET)
    train(tiny(synthetic, tmp_path / "split", steps=3, **extra), **QUIET)
    train(tiny(synthetic, tmp_path / "split", steps=8, **extra), resume=True, **QUIET)
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    for x, y in zip(a.generator.state_dict().values(), b.generator.state_dict().values()):
        assert torch.equal(x, y)
    # The checkpoint holds the averaged G, which differs from the raw G kept for resuming.
    from inpaint_training.run_dir import latest_snapshot, load_state

    raw = load_state(latest_snapshot(tmp_path / "whole")[2])["generator_raw"]
    assert any(not torch.equal(raw[k], v) for k, v in a.generator.state_dict().items() if v.is_floating_point())


def test_scoring_during_training_keeps_the_best_and_never_trains_on_the_holdout(tmp_path):
    pytest.importorskip("dlib")
    run = tmp_path / "run"
    result = train(tiny(EXAMPLES, run, steps=4, val_count=6, eval_every=1, eval_samples=12, ema_decay=0.9), **QUIET)
    assert result.step == 4
    options = json.loads((run / "training_options.json").read_text())
    assert options["resolved"]["images"] == 10  # 16 example faces minus the 6 held out
    scores = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [s["step"] for s in scores] == [2, 4]  # 10 images / batch 4 → 2 steps per epoch
    assert all(s["frechet"] > 0 and s["frechet_raw"] > 0 for s in scores)
    best = load_checkpoint(run / "checkpoints" / "best.safetensors")
    assert best.training["frechet"] == min(s["frechet"] for s in scores)
    assert best.training["validation_images"] == 6


def test_the_last_step_is_scored_so_the_end_of_a_run_can_be_its_best(synthetic, tmp_path):
    run = tmp_path / "run"
    # 24 training images / batch 4 = 6 steps an epoch: the schedule scores step 6, the end is step 8.
    train(tiny(synthetic, run, steps=8, val_count=8, eval_every=1, eval_samples=12), **QUIET)
    scores = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [s["step"] for s in scores] == [6, 8]
    best = load_checkpoint(run / "checkpoints" / "best.safetensors")
    assert best.training["steps"] == min(scores, key=lambda s: s["swd"])["step"]


def test_eval_without_a_split_is_refused(tmp_path, capsys):
    assert main(["train", "--data", str(EXAMPLES), "--out", str(tmp_path / "r"), "--eval-every", "1"]) == 2
    assert "--val-count" in capsys.readouterr().err


def test_training_command_round_trips_through_the_parser():
    for scoring in (3.0, 0.0):  # 0: a split held out, never scored
        options = TrainOptions(
            data="faces", out="runs/x", image_size=32, ema_decay=0.999, channels_last=True, val_count=500, minutes=80.0
        )
        options.eval_every = scoring
        command = options_as_command(options)
        args = build_parser().parse_args(shlex.split(command)[1:])
        parsed = TrainOptions(**{**new_run_defaults(_given(args)), "out": args.out})
        assert parsed == options


def test_a_held_out_split_is_scored_unless_told_not_to():
    assert new_run_defaults({"val_count": 500}) == {"val_count": 500, "eval_every": DEFAULT_EVAL_EVERY}
    assert new_run_defaults({"val_count": 500, "eval_every": 0}) == {"val_count": 500, "eval_every": 0}
    assert "eval_every" not in new_run_defaults({"val_count": 1})  # one image cannot be scored: no error either
    TrainOptions(data="d", out="o", **new_run_defaults({"val_count": 1})).validate()
    TrainOptions(data="d", out="o", val_count=0, eval_every=0).validate()  # 0 = never needs no split
    # A command recorded before the default, with a split and no scoring, keeps scoring off (and
    # the fp32 it trained in while that was the default).
    old = {"model": {"upsample": "resize"}, "training": {"training_command": "inpaint train --val-count 500"}}
    assert training_command(old) == "inpaint train --val-count 500 --eval-every 0 --precision fp32"


def test_the_shipped_command_stops_at_the_snapshot_step():
    options = TrainOptions(data="faces", out="runs/x", minutes=45.0, epochs=3.0)
    words = shlex.split(options_as_command(options, steps=7380))
    assert "--minutes" not in words and "--epochs" not in words
    assert words[words.index("--steps") + 1] == "7380"


def test_nearest_training_images_finds_exact_copies():
    training = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    samples = training[[7, 31]].float() / 255
    assert torch.equal(nearest_training_images(samples, training), samples)


def test_export_writes_a_shippable_folder(synthetic, tmp_path):
    train(tiny(synthetic, tmp_path / "run", steps=2), **QUIET)
    facts = export_run(tmp_path / "run", tmp_path / "shipped", storage="fp16", show_progress=False)
    for name in ("model.safetensors", "samples.png", "losses.png", "nearest.png", "card.json"):
        assert (tmp_path / "shipped" / name).is_file(), name
    shipped = load_checkpoint(tmp_path / "shipped")
    assert shipped.training["training_command"].startswith("inpaint train --data")
    assert facts["file_bytes"] < 0.6 * (tmp_path / "run" / "checkpoints" / "step-000000002.safetensors").stat().st_size
    assert facts["precision_effect"]["max_pixel_difference_levels"] < 2
    assert (
        main(["sample", "--checkpoint", str(tmp_path / "shipped"), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    )


def test_the_shipped_models_command_still_builds_its_transposed_generator():
    """The default model was trained while transposed convolutions were G's default; the command
    it recorded must still rebuild that generator now that new runs resize."""
    metadata = read_metadata(DEFAULT_CHECKPOINT)
    assert metadata["model"].get("upsample", "transpose") == "transpose"
    args = build_parser().parse_args(shlex.split(training_command(metadata))[1:])
    rebuilt = TrainOptions(**{**_given(args), "out": args.out})
    assert rebuilt.model_config() == ModelConfig.from_dict(metadata["model"])
    assert TrainOptions().g_upsample == "resize"  # what a run given no flag builds
    # It trained in fp32, then the default; now the machine chooses unless told.
    assert metadata["training"]["precision"] == "fp32" and rebuilt.precision == "fp32"
    assert TrainOptions().precision == "auto"
    assert "--precision auto" in options_as_command(TrainOptions(data="d", out="o"))


def test_a_run_saved_before_g_could_resize_resumes_with_transposed_convolutions(tmp_path):
    save_options(tmp_path, TrainOptions(data="faces", out=str(tmp_path)), {})
    saved = json.loads((tmp_path / OPTIONS_FILE).read_text())
    assert saved.pop("g_upsample") == "resize"
    (tmp_path / OPTIONS_FILE).write_text(json.dumps(saved))
    assert load_options(tmp_path).model_config().upsample == "transpose"
