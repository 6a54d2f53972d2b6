"""The trainer against what goes wrong in practice: torn stats lines, leftovers of killed writes,
nonsense numbers, hand-edited run files, kill -9 at any moment; and a run that shows itself early."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train import TINY, all_weights, tiny_options

from inpaint.checkpoint import list_snapshots
from inpaint.cli import main
from inpaint.errors import UserError
from inpaint.fileio import atomic_path
from inpaint_training import loop
from inpaint_training.dry_run import write_synthetic_images
from inpaint_training.encoder import EncoderOptions
from inpaint_training.export import export_run
from inpaint_training.framer import FramerOptions
from inpaint_training.loop import step_seed, train
from inpaint_training.options import OPTIONS_FILE, TrainOptions
from inpaint_training.run_dir import STATS_FILE, StatsLog, latest_snapshot, read_stats, remove_leftovers

QUIET = dict(show_progress=False, log=lambda *a: None)


def ignore(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory) -> Path:
    return write_synthetic_images(tmp_path_factory.mktemp("synthetic"), count=32, size=40)


@pytest.fixture(scope="module")
def finished_run(synthetic_folder, tmp_path_factory) -> Path:
    """A 4-step run with snapshots at 2 and 4, copied by the tests that damage it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_options(synthetic_folder, run, steps=4, checkpoint_every=2), **QUIET)
    return run


def copy_run(run: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, to))


# --- 1. stats.jsonl: torn and foreign lines ---------------------------------------------------


def test_reader_skips_torn_and_foreign_lines_with_one_warning(tmp_path):
    path = tmp_path / STATS_FILE
    good = [{"step": 1, "loss_d": 1.0}, {"step": 2, "loss_d": 0.9}]
    foreign = b'[1, 2]\n"text"\n{"step": "3"}\n\xff\xfe\n'  # not objects, a step that is no number, not UTF-8
    torn = b'{"step": 3, "lo'
    path.write_bytes(json.dumps(good[0]).encode() + b"\n" + foreign + json.dumps(good[1]).encode() + b"\n" + torn)
    warnings = []
    assert read_stats(path, warnings.append) == good
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert "5 unreadable line(s) (line 2, 3, 4, 5, 7:" in warnings[0]
    assert read_stats(tmp_path / "missing.jsonl", warnings.append) == [] and len(warnings) == 1


def test_append_repairs_a_torn_last_line(tmp_path):
    stats = StatsLog(tmp_path, warn=(warnings := []).append)
    stats.path.write_text('{"step": 1}\n{"step": 2, "loss_d": 0.')
    stats.append({"step": 2, "loss_d": 0.5})
    assert stats.path.read_text() == '{"step": 1}\n{"step": 2, "loss_d": 0.5}\n'
    assert len(warnings) == 1 and "torn last line" in warnings[0]
    stats.append({"step": 3})  # a whole file: nothing to repair, no warning
    assert len(warnings) == 1 and stats.read() == [{"step": 1}, {"step": 2, "loss_d": 0.5}, {"step": 3}]
    stats.path.write_text('{"step": 1, "torn without any newline')
    stats.append({"step": 1})
    assert stats.path.read_text() == '{"step": 1}\n'


def test_torn_stats_line_neither_blocks_resume_nor_export(synthetic_folder, finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    with open(run / STATS_FILE, "a") as handle:
        handle.write('{"step": 5, "loss_d": 0.7, "lo')  # what kill -9 halfway through an append leaves
    facts = export_run(run, tmp_path / "shipped", show_progress=False)
    assert facts["training"]["steps"] == 4
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0
    assert "dropped 1 unreadable line" in capsys.readouterr().out
    records = [json.loads(line) for line in (run / STATS_FILE).read_text().splitlines()]  # every line whole again
    assert [r["step"] for r in records if "loss_d" in r] == [1, 2, 3, 4, 5, 6]


# --- 2. leftovers of killed writes -------------------------------------------------------------


def test_resume_removes_the_leftovers_of_killed_writes(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    names = []
    targets = (run / "checkpoints" / "step-000000006.safetensors", run / "samples" / "latest.png", run / STATS_FILE)
    for target in targets:
        with pytest.raises(RuntimeError), atomic_path(target) as tmp:  # the real temporary names
            names.append(tmp.relative_to(run))
            raise RuntimeError
    for name in names:
        (run / name).write_bytes(b"\0" * 100_000)
    (run / "checkpoints" / "state-000000003.pt").write_bytes(b"a state whose weights never landed")
    keep = [run / "notes.tmp", run / ".hidden-notes.txt", run / "checkpoints" / "best.safetensors.bak"]
    for path in keep:
        path.write_text("the user's")
    assert main(["train", "--resume", str(run), "--steps", "5"]) == 0
    assert "removed 4 file(s) left in" in capsys.readouterr().out
    assert not any((run / name).exists() for name in names)
    assert not (run / "checkpoints" / "state-000000003.pt").exists()
    assert all(path.exists() for path in keep)
    assert sorted(p.name for p in (run / "checkpoints").glob("state-*")) == ["state-000000004.pt", "state-000000005.pt"]


def test_leftovers_are_only_the_atomic_writes_own(tmp_path):
    ours = [".step-000000002.k3j_9x0a.tmp.safetensors", ".stats.abcdefgh.tmp.jsonl", ".encoder-state.a1b2c3d4.tmp.pt"]
    others = [".bashrc", ".tmp", "state-000000001.pt", "x.tmp"]  # orphan states: in checkpoints/ only
    for name in ours + others:
        (tmp_path / name).write_text("x")
    assert remove_leftovers(tmp_path, warn=ignore) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == others


# --- 3. numbers are checked where they are parsed ----------------------------------------------


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--epochs", "nan"),
        ("--minutes", "nan"),
        ("--minutes", "inf"),
        ("--minutes", "0"),
        ("--lr", "nan"),
        ("--lr", "0"),
        ("--lr-d", "-1"),
        ("--beta1", "2"),
        ("--beta1", "nan"),
        ("--beta1", "1"),
        ("--workers", "-1"),
        ("--latent-dim", "1000000000"),
        ("--g-width", "100000"),
        ("--d-width", "0"),
        ("--batch-size", "1e9"),
        ("--steps", "1.5"),
        ("--label-smoothing", "nan"),
        ("--label-smoothing", "0.5"),
        ("--ema-decay", "nan"),
        ("--ema-decay", "1"),
        ("--eval-every", "nan"),
        ("--eval-samples", "1"),
        ("--seed", "-1"),
        ("--keep-snapshots", "0"),
        ("--log-every", "nan"),
        ("--val-count", "-2"),
    ],
)
def test_bad_numbers_are_refused_where_typed(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(rf"argument {flag}: must be .*, got {re.escape(value)}$", err.strip()), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lr", math.nan, "--lr: must be a finite number"),
        ("minutes", math.nan, "--minutes: must be a finite number"),
        ("epochs", math.inf, "--epochs: must be a finite number"),
        ("beta2", 1.0, "--beta2: must be at least 0 and below 1, got 1.0"),
        ("ema_decay", math.nan, "--ema-decay: must be a finite number"),
        ("label_smoothing", -0.1, "--label-smoothing: must be at least 0 and below 0.5"),
        ("batch_size", 2.5, "--batch-size: must be a whole number"),
        ("g_width", 1024, "would have 4.5 billion parameters"),  # at 128×128, G resizing (each width alone is allowed)
    ],
)
def test_options_given_through_the_api_are_checked(field, value, message):
    options = TrainOptions(data="d", out="o", image_size=128, d_width=1024, **{field: value})
    with pytest.raises(UserError, match=re.escape(message)):
        options.validate()


@pytest.mark.parametrize(
    "options_class, field, value",
    [
        (EncoderOptions, "lr", math.nan),
        (EncoderOptions, "hole_weight", -1.0),
        (EncoderOptions, "batch_size", 1),
        (EncoderOptions, "width", 100_000),
        (EncoderOptions, "steps", math.inf),
        (EncoderOptions, "seed", -1),
        (FramerOptions, "lr", math.nan),
        (FramerOptions, "steps", 0),
        (FramerOptions, "width", 100_000),
        (FramerOptions, "template_images", 10**9),
        (FramerOptions, "log_every", 2.5),
    ],
)
def test_encoder_and_framer_options_are_checked(options_class, field, value):
    with pytest.raises(UserError, match=f"^--{field.replace('_', '-')}: must be "):
        options_class(**{field: value}).validate()


def test_limits_accept_what_the_defaults_and_the_shipped_runs_use():
    TrainOptions(data="d", out="o").validate()
    TrainOptions(data="d", out="o", g_width=1024, d_width=1024, latent_dim=4096).validate()  # 64×64: 1.4 billion
    parsed = TrainOptions(data="d", out="o", batch_size="8", lr="1e-3", steps=3.0).validate()  # a hand-edited file
    assert (parsed.batch_size, parsed.lr, parsed.steps) == (8, 1e-3, 3) and type(parsed.steps) is int
    EncoderOptions().validate()
    FramerOptions().validate()


# --- 4. malformed run files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda options: [options], "not a training-options file (a JSON object is expected, it holds a list)"),
        (lambda options: {**options, "batch_size": "abc"}, "batch_size: must be a whole number, got 'abc'"),
        (lambda options: {**options, "lr": None}, "lr: must be a number, got None"),
        (lambda options: {**options, "minutes": "nan"}, "minutes: must be a finite number"),
        (lambda options: {**options, "prior": 3}, "prior: must be text, got 3"),
        (lambda options: {**options, "image_size": 48}, "image size 48 is not supported"),
    ],
)
def test_malformed_options_file_is_a_one_line_error(finished_run, tmp_path, capsys, damage, message):
    run = copy_run(finished_run, tmp_path / "run")
    path = run / OPTIONS_FILE
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    assert main(["train", "--resume", str(run), "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ") and message in err and "\n" not in err, err
    with pytest.raises(UserError, match=re.escape(message)):
        export_run(run, tmp_path / "shipped", show_progress=False)


def test_mismatched_state_file_is_a_one_line_error(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    torch.save({"step": 4, "opt_g": {}}, run / "checkpoints" / "state-000000004.pt")
    assert main(["train", "--resume", str(run), "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "state-000000004.pt: does not match this run's options" in err and "\n" not in err, err


# --- 5. a run shows itself early ------------------------------------------------------------------


def _grids_written(monkeypatch) -> list[str]:
    written: list[str] = []
    save_grid = loop.save_grid

    def recorded(pictures, path, **kwargs):
        written.append(Path(path).name)
        return save_grid(pictures, path, **kwargs)

    monkeypatch.setattr(loop, "save_grid", recorded)
    return written


def test_first_step_is_logged_and_drawn_at_once(synthetic_folder, tmp_path, monkeypatch):
    written = _grids_written(monkeypatch)
    run = tmp_path / "run"
    rare = dict(log_every=100, sample_every=100, checkpoint_every=100)
    train(tiny_options(synthetic_folder, run, steps=3, **rare), **QUIET)
    assert written == ["latest.png", "step-000000003.png", "latest.png"]  # step 1 (latest only), then the end
    assert [r["step"] for r in read_stats(run / STATS_FILE) if "loss_d" in r] == [1, 3]
    written.clear()
    train(tiny_options(synthetic_folder, run, steps=5, **rare), resume=True, **QUIET)
    assert written == ["latest.png", "step-000000005.png", "latest.png"]  # a resumed session shows itself too
    assert [r["step"] for r in read_stats(run / STATS_FILE) if "loss_d" in r] == [1, 3, 4, 5]


def test_stats_and_grids_also_come_on_a_time_interval(synthetic_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "REPORT_SECONDS", 0.0)  # every step is "a minute later"
    written = _grids_written(monkeypatch)
    run = tmp_path / "run"
    train(tiny_options(synthetic_folder, run, steps=4, log_every=100, sample_every=100, checkpoint_every=100), **QUIET)
    assert [r["step"] for r in read_stats(run / STATS_FILE) if "loss_d" in r] == [1, 2, 3, 4]
    assert written == ["latest.png"] * 4 + ["step-000000004.png", "latest.png"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["latest.png", "step-000000004.png"]


def test_progress_bar_has_a_total_from_the_start(synthetic_folder, tmp_path, capsys):
    train(tiny_options(synthetic_folder, tmp_path / "steps", steps=3), log=lambda *a: None)
    first = capsys.readouterr().err.replace("\r", "\n").split("\n")
    assert any(re.search(r"\b0/3 \[", line) for line in first)  # before the first step
    train(tiny_options(synthetic_folder, tmp_path / "minutes", minutes=0.02, log_every=1000), log=lambda *a: None)
    bars = capsys.readouterr().err.replace("\r", "\n").split("\n")
    # A time limit alone: the bar shows the steps it will reach (estimated from the speed) and an ETA.
    assert any(re.search(r"\b\d+/\d+ \[\d\d:\d\d<\d\d:\d\d", line) for line in bars), bars[-5:]


# --- 7. exact resume under any interpreter ----------------------------------------------------------


def test_step_seeds_are_arithmetic_and_fixed():
    # Golden values: the noise, flips and augmentations of every step are the same under any Python
    # (hash() of a tuple is not promised to stay), so a run resumed elsewhere continues exactly.
    assert step_seed(0, 0, 0, 0) == 2391539541053276776
    assert step_seed(0, 0, 1, 0) == 6480389525940173890
    assert step_seed(2**63 - 1, 3, 10**9, 2) == 1892622568368394345
    seeds = {
        step_seed(seed, rank, step, stream)
        for seed in range(3)
        for rank in range(3)
        for step in range(50)
        for stream in range(3)
    }
    assert len(seeds) == 3 * 3 * 50 * 3 and all(0 <= s < 2**63 for s in seeds)


# --- 6. kill -9 at any moment -----------------------------------------------------------------------

# Runs `inpaint train ARGS…` and SIGKILLs itself at a chosen moment: halfway through the stats line, the
# training state, the weights of a snapshot, or a sample grid of step AT (what a kill -9 there leaves).
FAULTY_TRAIN = """
import io, json, os, signal, sys
from pathlib import Path

fault, at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if fault == "stats":
    from inpaint_training import run_dir

    append = run_dir.StatsLog.append

    def torn(self, record):
        if record.get("step") == at:
            line = json.dumps(record) + "\\n"
            with open(self.path, "a") as handle:
                handle.write(line[: len(line) // 2])
            die()
        append(self, record)

    run_dir.StatsLog.append = torn
elif fault == "state":
    import torch

    save = torch.save

    def half_saved(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == at and "opt_g" in obj:
            buffer = io.BytesIO()
            save(obj, buffer)
            Path(f).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            die()
        save(obj, f, *args, **kwargs)

    torch.save = half_saved
elif fault == "weights":
    from inpaint.fileio import atomic_path
    from inpaint_training import run_dir

    save_checkpoint = run_dir.save_checkpoint

    def half_written(path, *args, **kwargs):
        if Path(path).name == f"step-{at:09d}.safetensors":
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"half")
                die()
        return save_checkpoint(path, *args, **kwargs)

    run_dir.save_checkpoint = half_written
elif fault == "samples":
    from inpaint.fileio import atomic_path
    from inpaint_training import loop

    save_grid = loop.save_grid

    def half_drawn(pictures, path, **kwargs):
        if Path(path).name == f"step-{at:09d}.png":
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"half")
                die()
        return save_grid(pictures, path, **kwargs)

    loop.save_grid = half_drawn

from inpaint.cli import main

sys.exit(main(argv))
"""


def _leftovers(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob(".*.tmp*")) + [
        p.name
        for p in (run / "checkpoints").glob("state-*.pt")
        if not (run / "checkpoints" / p.name.replace("state-", "step-").replace(".pt", ".safetensors")).exists()
    ]


@pytest.mark.slow
def test_kill_9_at_any_moment_never_blocks_a_resume_and_changes_nothing(synthetic_folder, tmp_path):
    total, every = 40, 2
    base = [*TINY, "--steps", str(total), "--checkpoint-every", str(every), "--sample-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # one thread: bit-identical in every process
    driver = tmp_path / "faulty_train.py"
    driver.write_text(FAULTY_TRAIN)

    logs = iter(range(100))

    def start(run: Path, fault: str = "none", at: int = 0, fresh: bool = False) -> tuple[subprocess.Popen, Path]:
        """The session's process and the file of its output (a file: a pipe left unread could fill and block it)."""
        where = ["--data", str(synthetic_folder), "--out", str(run)] if fresh else ["--resume", str(run)]
        log = tmp_path / f"session-{next(logs)}.log"
        with open(log, "w") as output:
            command = [sys.executable, str(driver), fault, str(at), "train", *where, *base]
            return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT), log

    whole, log = start(tmp_path / "reference", fresh=True)
    assert whole.wait(timeout=120) == 0, log.read_text()

    run = tmp_path / "run"
    stats = run / STATS_FILE
    rng = random.Random(0)
    # Killed halfway through: a stats line, a snapshot's state file, a snapshot's weights, a grid; then twice at random.
    sessions = [("stats", 3), ("state", 6), ("weights", 10), ("samples", 15), ("random", 0), ("random", 0)]
    for number, (fault, at) in enumerate(sessions):
        before = max((r["step"] for r in read_stats(stats, ignore)), default=0)
        process, log = start(run, fault, at, fresh=number == 0)
        if fault == "random":  # once the session trains past every step logged before, a moment within a few steps
            deadline = time.time() + 60
            while process.poll() is None and max(r["step"] for r in read_stats(stats, ignore)) <= before:
                assert time.time() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.4))
            process.kill()
        process.wait(timeout=120)
        output = log.read_text()
        if fault != "random" or process.returncode != 0:  # a random kill may come after the end
            assert process.returncode == -signal.SIGKILL, output
        assert "Traceback" not in output and (number == 0 or "resuming" in output), output
        # At most one snapshot interval is lost: the newest snapshot is within `every` of the last step logged.
        logged = max(r["step"] for r in read_stats(stats, ignore) if "loss_d" in r)
        snapshot = latest_snapshot(run)
        assert snapshot is not None and snapshot[0] >= logged - every, (fault, logged, snapshot)
        if fault in ("state", "weights", "samples"):
            assert _leftovers(run), f"a kill while writing {fault} leaves its temporary file"

    final, log = start(run)
    assert final.wait(timeout=120) == 0 and f"stopped by steps at step {total}" in log.read_text(), log.read_text()
    assert _leftovers(run) == []
    records = [json.loads(line) for line in stats.read_text().splitlines()]  # every line whole
    assert [r["step"] for r in records if "loss_d" in r] == list(range(1, total + 1))
    assert [step for step, _ in list_snapshots(run)] == [total - every, total]
    for a, b in zip(all_weights(tmp_path / "reference"), all_weights(run), strict=True):
        assert torch.equal(a, b)
