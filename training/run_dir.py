"""What a training run folder holds, and how it is written and read back.

RUN_DIR/
  training_options.json          resolved options (see training.options)
  stats.jsonl                    one JSON object per logging interval (and a session's first step);
                                 "event" lines: each grid's diversity, scores, a session's end
  samples/step-XXXXXXXXX.png     grids from the run's fixed latents every --sample-every steps
  samples/latest.png             the newest grid, also at a session's first step and every minute
  losses.png                     D and G losses and outputs, diversity, scores over training (at each grid)
  checkpoints/step-XXXXXXXXX.safetensors   weights + metadata (the project's checkpoint format)
  checkpoints/state-XXXXXXXXX.pt           optimiser state, counters, fixed latents (tensors only)

A snapshot is complete when both files of a step exist; the state file is written first, so the
weights file marks completion. Both writes are atomic, so a crash leaves the previous snapshot.
What a kill can leave (hidden temporary files, a state file without its weights, a torn last line
of stats.jsonl) is cleared when the run starts or resumes, and never blocks it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from inpaint.checkpoint import (
    BEST_FILE,
    SNAPSHOT_DIR,
    list_snapshots,
    save_checkpoint,
    snapshot_name,
)
from inpaint.errors import UserError
from inpaint.fileio import atomic_path, remove_stale_temporaries
from inpaint.jsonlog import (
    Warn,
    append_record,
    describe_bad_lines,
    parse_records,
    read_records,
    warn_on_stderr,
)
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator

STATS_FILE = "stats.jsonl"
SAMPLES_DIR = "samples"
LOSS_PLOT = "losses.png"


def state_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"state-{step:09d}.pt"


def save_snapshot(
    run_dir: Path,
    step: int,
    generator: Generator,
    discriminator: Discriminator,
    prior: LatentPrior,
    summary: dict[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write the training state, then the weights, then drop snapshots beyond the newest `keep`."""
    with atomic_path(state_path(run_dir, step)) as tmp:
        torch.save(state, tmp)
    weights = save_checkpoint(
        Path(run_dir) / SNAPSHOT_DIR / snapshot_name(step), generator, discriminator, prior, summary
    )
    for old_step, old_weights in list_snapshots(run_dir)[:-keep]:
        old_weights.unlink(missing_ok=True)
        state_path(run_dir, old_step).unlink(missing_ok=True)
    return weights


def latest_snapshot(run_dir: Path) -> tuple[int, Path, Path] | None:
    """(step, weights, state) of the newest complete snapshot, or None."""
    for step, weights in reversed(list_snapshots(run_dir)):
        state = state_path(run_dir, step)
        if state.is_file():
            return step, weights, state
    return None


def final_snapshot(run_dir: Path) -> Path:
    """The weights a finished run stands for: its best-scored snapshot, else its newest."""
    best = Path(run_dir) / SNAPSHOT_DIR / BEST_FILE
    if best.is_file():
        return best
    snapshot = latest_snapshot(run_dir)
    if snapshot is None:
        raise UserError(f"{run_dir}: has no complete snapshot")
    return snapshot[1]


def load_state(path: Path) -> dict[str, Any]:
    """Read a training-state file without unpickling code (weights_only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise UserError(f"{path}: unreadable training state ({type(error).__name__}: {error})") from None


class StatsLog:
    """Append-only JSON lines; a resumed run first drops lines written after its snapshot.

    The file is appended to, so a kill or a full disk can leave a torn last line: every reader
    skips lines that are not stats records (with one warning), and the next append or truncation
    drops them from the file."""

    def __init__(self, run_dir: Path, warn: Warn = warn_on_stderr) -> None:
        self.path = Path(run_dir) / STATS_FILE
        self.warn = warn

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        records, bad = parse_records(self.path, _is_stats_record)
        kept = [record for record in records if record["step"] <= step]
        if bad:
            self.warn(f"warning: {self.path}: dropped {describe_bad_lines(bad)}")
        if bad or len(kept) < len(records):
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(json.dumps(record) + "\n" for record in kept), encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        append_record(self.path, record, self.warn)

    def read(self) -> list[dict[str, Any]]:
        return read_stats(self.path, self.warn)


def _is_stats_record(record: dict[str, Any]) -> bool:
    return type(record.get("step")) is int


def read_stats(path: Path, warn: Warn = warn_on_stderr) -> list[dict[str, Any]]:
    """The records of a stats file ([] if there is none), skipping torn or foreign lines with one warning."""
    return read_records(path, _is_stats_record, warn)


_STATE = re.compile(r"^state-(\d+)\.pt$")


def remove_leftovers(run_dir: Path, warn: Warn = warn_on_stderr) -> int:
    """Delete what killed writes leave in a run folder: the hidden temporary files of atomic writes
    (in it, its checkpoints/ and samples/) and state files of snapshots whose weights never landed or
    were being deleted. Call it before a run starts writing; returns the number of files removed."""
    run_dir = Path(run_dir)
    removed = sum(
        len(remove_stale_temporaries(folder, recursive=False))
        for folder in (run_dir, run_dir / SNAPSHOT_DIR, run_dir / SAMPLES_DIR)
    )
    if (run_dir / SNAPSHOT_DIR).is_dir():
        complete = {step for step, _ in list_snapshots(run_dir)}
        for path in (run_dir / SNAPSHOT_DIR).iterdir():
            match = _STATE.match(path.name)
            if match and int(match.group(1)) not in complete:
                path.unlink(missing_ok=True)
                removed += 1
    if removed:
        warn(f"removed {removed} file(s) left in {run_dir} by interrupted writes")
    return removed


def split_files(data: str | Path, val_count: int) -> tuple[list[Path], list[Path]]:
    """A data folder's image files as (training, held out): the last `val_count` by name are
    held out, as `inpaint train --val-count` does."""
    from inpaint.images import find_images

    data = Path(data)
    if not data.is_dir():
        raise UserError(f"{data}: data folder does not exist")
    files, _ = find_images(data)
    held_out: list[Path] = []
    if val_count:
        if val_count >= len(files):
            raise UserError(f"{data}: cannot hold out {val_count} of its {len(files)} image files")
        files, held_out = files[:-val_count], files[-val_count:]
    if len(files) < 2:
        raise UserError(f"{data}: needs at least 2 training images")
    return files, held_out


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one short line (load_state_dict's messages span many)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class NetworkState:
    """The resumable state of a network trained with a fixed step budget (the framer, the
    encoder): its weights, optimiser, schedule and step in one tensors-only file, written atomically."""

    def __init__(self, path: Path, steps: int, **parts: Any) -> None:
        self.path, self.steps, self.parts = Path(path), steps, parts

    def save(self, step: int) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(
                {**{name: part.state_dict() for name, part in self.parts.items()}, "step": step, "steps": self.steps},
                tmp,
            )

    def resume(self, stats: StatsLog, resume: bool) -> int:
        """The step to start from: the saved one when resuming (its stats after it dropped), else 0
        (with the stats of an earlier run removed)."""
        if not resume or not self.path.is_file():
            if not resume:
                stats.path.unlink(missing_ok=True)
            return 0
        state = load_state(self.path)
        try:
            if int(state.get("steps", self.steps)) != self.steps:
                raise UserError(
                    f"{self.path}: that run was for --steps {int(state['steps'])}; resume it with the same number"
                )
            for name, part in self.parts.items():
                part.load_state_dict(state[name])
            step = int(state["step"])
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:  # not this network's state
            raise UserError(f"{self.path}: does not match this run ({one_line(error)})") from None
        stats.truncate_after(step)
        return step
