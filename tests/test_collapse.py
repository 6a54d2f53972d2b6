"""The collapse guard: the sample-diversity measure, its stats lines and plot, the one-line warning
when a run's samples lose their variety, and the best diversity kept across a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_train import tiny_options

from inpaint.cli import main
from inpaint.errors import UserError
from inpaint_training import loop
from inpaint_training.data import load_image_folder
from inpaint_training.diversity import COLLAPSE_FLOOR, CollapseGuard, diversity, reference_spread, spread
from inpaint_training.dry_run import write_synthetic_images
from inpaint_training.options import TrainOptions
from inpaint_training.plots import plot_losses
from inpaint_training.run_dir import load_state, read_stats


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory) -> Path:
    return write_synthetic_images(tmp_path_factory.mktemp("synthetic"), count=32, size=40)


@pytest.fixture(scope="module")
def real(synthetic_folder) -> torch.Tensor:
    """The training images of the synthetic folder as the trainer decodes them: (32, 3, 32, 32) uint8."""
    return load_image_folder(str(synthetic_folder), 32, 3, 0, False, warn=lambda m: None).images


def as_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255


# --- The measure ------------------------------------------------------------------------------------


def test_a_set_against_itself_scores_exactly_one_and_another_real_set_about_one(real):
    reference = reference_spread(real)
    assert reference is not None and reference > 0
    assert diversity(real, reference) == 1.0
    assert diversity(as_unit(real), reference) == pytest.approx(1.0, abs=1e-6)  # pixels in [0, 1] as G draws them
    assert 0.6 < diversity(real[16:], spread(real[:16])) < 1.4  # two halves of one data set


def test_copies_of_one_image_score_near_zero(real):
    reference = reference_spread(real)
    generator = torch.Generator().manual_seed(0)
    copies = as_unit(real[5:6]).repeat(64, 1, 1, 1)
    assert diversity(copies, reference) == 0.0
    noisy = (copies + 0.01 * torch.randn(copies.shape, generator=generator)).clamp(0, 1)
    assert 0 < diversity(noisy, reference) < 0.05


def test_diversity_grows_with_the_spread_of_the_samples(real):
    reference = reference_spread(real)
    images = as_unit(real)
    mean = images.mean(0, keepdim=True)
    scores = [diversity(mean + t * (images - mean), reference) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert scores == sorted(scores) and len(set(scores)) == 5
    assert scores == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-6)  # distances scale with t


def test_no_reference_where_real_images_cannot_give_a_scale(real):
    assert reference_spread(real[:1]) is None
    assert reference_spread(real[:1].repeat(8, 1, 1, 1)) is None


def test_the_guard_warns_once_per_drop():
    guard = CollapseGuard(0.5)
    assert not guard.should_warn(0.01, best=0.2)  # never had variety: an early blur, no collapse
    warned = [guard.should_warn(value, best=0.8) for value in (0.7, 0.3, 0.2, 0.35, 0.6, 0.1, 0.9)]
    assert warned == [False, True, False, False, False, True, False]
    assert guard.limit(0.15) == 0.0 and guard.limit(0.6) == 0.3
    assert CollapseGuard(0.2).limit(0.3) == COLLAPSE_FLOOR  # near-identical samples warn whatever the fraction
    off = CollapseGuard(0.0)
    assert not any(off.should_warn(value, best=1.0) for value in (0.5, 0.0, 0.0))


# --- In a run ----------------------------------------------------------------------------------------


def diversity_lines(run: Path) -> list[dict]:
    return [r for r in read_stats(run / "stats.jsonl") if r.get("event") == "diversity"]


def test_a_run_logs_the_diversity_of_its_grids(synthetic_folder, tmp_path):
    run = tmp_path / "run"
    loop.train(tiny_options(synthetic_folder, run, steps=4, sample_every=2), show_progress=False, log=lambda *a: None)
    lines = diversity_lines(run)
    assert [r["step"] for r in lines] == [1, 2, 4]  # the first step's grid, then every --sample-every
    assert all(0 <= r["diversity"] < 5 and r["epoch"] == r["step"] / 8 for r in lines)
    state = load_state(run / "checkpoints" / "state-000000004.pt")
    assert state["best"]["diversity"] == pytest.approx(max(r["diversity"] for r in lines), abs=1e-4)
    assert (run / "losses.png").is_file()
    # The loss plot and other readers take the new lines in their stride.
    assert [r["step"] for r in read_stats(run / "stats.jsonl") if "loss_d" in r] == [1, 2, 3, 4]


@pytest.fixture
def collapse_after(monkeypatch, real):
    """Make the sample grids real images (diversity 1) up to the grid number given, then one image
    64 times over (diversity 0): the picture of a generator that collapses."""
    grids = {"count": 0, "varied": 0}

    def fake_render(generator, z, *args, **kwargs):
        grids["count"] += 1
        if grids["count"] <= grids["varied"]:
            return as_unit(real)
        return as_unit(real[3:4]).repeat(len(z), 1, 1, 1)

    monkeypatch.setattr(loop, "render", fake_render)

    def set_varied(count: int) -> dict:
        grids["varied"], grids["count"] = count, 0
        return grids

    return set_varied


def test_a_collapsing_run_warns_once_and_its_stats_show_the_drop(synthetic_folder, tmp_path, collapse_after):
    collapse_after(3)
    said = []
    run = tmp_path / "run"
    loop.train(tiny_options(synthetic_folder, run, steps=6, sample_every=1), show_progress=False, log=said.append)
    assert [(r["step"], r["diversity"]) for r in diversity_lines(run)] == [
        (1, 1.0),
        (2, 1.0),
        (3, 1.0),
        (4, 0.0),
        (5, 0.0),
        (6, 0.0),
    ]
    warnings = [line for line in said if "losing variety" in line]
    assert len(warnings) == 1, said
    [warning] = warnings
    assert "\n" not in warning and "step 4" in warning and "diversity 0.000" in warning
    assert "best 1.000 at step 1" in warning
    assert str(run / "checkpoints") in warning and "--eval-every" in warning
    assert load_state(run / "checkpoints" / "state-000000006.pt")["best"]["diversity"] == pytest.approx(1.0)


def test_threshold_zero_turns_the_warning_off(synthetic_folder, tmp_path, collapse_after):
    collapse_after(2)
    said = []
    options = tiny_options(synthetic_folder, tmp_path / "run", steps=4, sample_every=1, collapse_threshold=0)
    loop.train(options, show_progress=False, log=said.append)
    assert not [line for line in said if "losing variety" in line]
    assert [r["diversity"] for r in diversity_lines(tmp_path / "run")] == [1.0, 1.0, 0.0, 0.0]


def test_a_resumed_run_compares_with_the_best_of_the_whole_run(synthetic_folder, tmp_path, collapse_after):
    run = tmp_path / "run"
    quiet = dict(show_progress=False, log=lambda *a: None)
    collapse_after(3)
    loop.train(tiny_options(synthetic_folder, run, steps=3, sample_every=1), **quiet)
    best = load_state(run / "checkpoints" / "state-000000003.pt")["best"]
    assert best["diversity"] == pytest.approx(1.0) and best["diversity_step"] == 1
    collapse_after(0)  # the resumed session draws only collapsed grids
    said = []
    options = tiny_options(synthetic_folder, run, steps=5, sample_every=1)
    loop.train(options, resume=True, show_progress=False, log=said.append)
    warnings = [line for line in said if "losing variety" in line]
    assert len(warnings) == 1 and "step 4" in warnings[0] and "best 1.000 at step 1" in warnings[0]
    assert load_state(run / "checkpoints" / "state-000000005.pt")["best"]["diversity"] == pytest.approx(1.0)


def test_a_state_file_without_a_best_diversity_still_resumes(synthetic_folder, tmp_path, collapse_after):
    run = tmp_path / "run"
    quiet = dict(show_progress=False, log=lambda *a: None)
    collapse_after(10)
    loop.train(tiny_options(synthetic_folder, run, steps=2, sample_every=1), **quiet)
    state_file = run / "checkpoints" / "state-000000002.pt"
    state = torch.load(state_file, weights_only=True)
    state["best"] = {"frechet": float("inf"), "step": -1}  # as files written before the diversity was kept
    torch.save(state, state_file)
    result = loop.train(tiny_options(synthetic_folder, run, steps=3, sample_every=1), resume=True, **quiet)
    assert result.step == 3
    best = load_state(run / "checkpoints" / "state-000000003.pt")["best"]
    assert best["diversity"] == pytest.approx(1.0) and best["diversity_step"] == 3 and best["frechet"] == float("inf")


def test_the_loss_plot_draws_diversity_and_scores(tmp_path):
    records = [
        {"step": 1, "loss_d": 1.0, "loss_g": 0.7, "d_real": 0.5, "d_fake": 0.5},
        {"event": "diversity", "step": 1, "diversity": 0.2},
        {"step": 2, "loss_d": 0.9, "loss_g": 0.8, "d_real": 0.6, "d_fake": 0.4},
        {"event": "diversity", "step": 2, "diversity": 0.6},
        {"event": "eval", "step": 2, "frechet": 0.3},
    ]
    assert plot_losses(records, tmp_path / "losses.png") == tmp_path / "losses.png"
    from PIL import Image

    assert Image.open(tmp_path / "losses.png").size == (800, 1200)  # four panels of 3 inches at 100 dpi


def test_collapse_threshold_is_a_fraction(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--collapse-threshold", "2"])
    assert exit.value.code == 2
    assert "--collapse-threshold" in capsys.readouterr().err
    with pytest.raises(UserError, match="--collapse-threshold"):
        tiny_options(tmp_path, tmp_path / "run", collapse_threshold=-0.1).validate()
    assert TrainOptions.from_dict({"data": "d", "out": "o"}).collapse_threshold == 0.5  # older runs' options
