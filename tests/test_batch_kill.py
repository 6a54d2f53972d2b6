"""kill -9 of `inpaint batch` at random moments, then a rerun to completion.

A batch writes each output atomically and skips the outputs that exist on a rerun, so however
often it is killed, the finished tree must be what one uninterrupted run gives: one whole image
per input at the input's size, one report line per input, no temporary files, inputs untouched,
and no output written twice (an output that existed when a run was killed keeps its bytes and its
modification time through every later run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IMAGES = 12
KILLS = 3
START_TIMEOUT = 60  # seconds for a run to write its next output (the torch import alone takes a few)


def make_inputs(root: Path) -> dict[str, tuple[int, int]]:
    """IMAGES photos with masks beside them, in three folders; returns {relative path: size}.
    A few hundred pixels a side, so each image takes a noticeable fraction of a second."""
    rng = np.random.default_rng(0)
    sizes = {}
    for i in range(IMAGES):
        width, height = 300 + 16 * i, 220 + 8 * i
        path = root / f"part{i % 3}" / f"photo{i:02d}.{'jpg' if i % 4 == 3 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[height // 4 : height // 2, width // 3 : 2 * width // 3] = 255
        Image.fromarray(mask).save(path.parent / f"{path.stem}_mask.png")
        sizes[str(path.relative_to(root))] = (width, height)
    return sizes


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def outputs(out: Path) -> dict[str, tuple[int, str]]:
    """Finished outputs (not the report, not temporaries): {relative path: (mtime_ns, sha256)}."""
    found = {}
    if out.is_dir():
        for path in sorted(out.rglob("*")):
            if path.is_file() and not path.name.startswith(".") and path.name != "report.jsonl":
                found[str(path.relative_to(out))] = (
                    path.stat().st_mtime_ns,
                    hashlib.sha256(path.read_bytes()).hexdigest(),
                )
    return found


def assert_whole_images(out: Path, sizes: dict[str, tuple[int, int]], names) -> None:
    for name in names:
        assert name in sizes, f"{name}: an output that matches no input"
        with Image.open(out / name) as image:
            image.load()  # a torn file fails here
            assert image.size == sizes[name], f"{name}: {image.size}, not the input's {sizes[name]}"


@pytest.mark.slow
def test_batch_killed_three_times_then_rerun_gives_one_whole_output_per_input(tmp_path, tiny_checkpoint_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    sizes = make_inputs(inputs)
    before = digest(inputs)
    command = [
        sys.executable,
        "-m",
        "inpaint.cli",
        "batch",
        str(inputs),
        str(out),
        "--checkpoint",
        str(tiny_checkpoint_path),
        "--iterations",
        "3",
        "--restarts",
        "1",
        "--batch-size",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    chance = random.Random()
    seed = chance.randrange(2**32)
    chance.seed(seed)
    logs = contextlib.ExitStack()

    def start(number: int) -> subprocess.Popen:
        log = logs.enter_context(open(tmp_path / f"run{number}.log", "wb"))  # noqa: SIM115 (closed by `logs`)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        logs.callback(stop, process)  # a failed assertion must not leave a run going
        return process

    def stop(process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.kill()
            process.wait()

    def log_text() -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-2000:] for p in sorted(tmp_path.glob("run*.log"))
        )

    kept: dict[str, tuple[int, str]] = {}  # outputs that existed when a run was killed
    killed = 0
    with logs:
        for number in range(KILLS):
            had = len(outputs(out))
            process = start(number)
            deadline = time.monotonic() + START_TIMEOUT
            while process.poll() is None and len(outputs(out)) <= had:  # until it writes an output of its own
                assert time.monotonic() < deadline, f"run {number} wrote nothing in {START_TIMEOUT} s\n{log_text()}"
                time.sleep(0.01)
            time.sleep(chance.uniform(0, 0.25))  # then a random moment: mid-search, mid-write or between images
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait(timeout=30)
            now = outputs(out)
            assert_whole_images(out, sizes, now)  # whatever a kill interrupts, a visible output is whole
            for name, stamp in kept.items():
                assert now.get(name) == stamp, f"{name} was rewritten or removed by run {number} (seed {seed})"
            kept = now
        assert killed == KILLS, f"only {killed} of {KILLS} runs were still running when killed (seed {seed})"
        assert len(kept) < IMAGES, "the killed runs finished every image: the rerun tests nothing"

        final = start(KILLS)
        assert final.wait(timeout=120) == 0, log_text()

    finished = outputs(out)
    assert sorted(finished) == sorted(sizes), "not exactly one output per input"
    assert_whole_images(out, sizes, finished)
    for name, stamp in kept.items():
        assert finished[name] == stamp, f"{name}, written before a kill, was rewritten by the rerun"
    leftovers = [str(p.relative_to(out)) for p in out.rglob("*") if p.name.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted([*sizes, "report.jsonl"])

    lines = (out / "report.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line whole JSON
    reported = sorted(str(Path(r["input"]).relative_to(inputs)) for r in records)
    assert reported == sorted(sizes), f"not one report line per input (seed {seed}): {reported}"
    assert all(r["status"] == "ok" and Path(r["output"]).is_file() for r in records), records
    assert digest(inputs) == before, "an input was modified"
