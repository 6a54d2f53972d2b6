"""`inpaint batch` on several processes (torchrun): the fixed share of each rank, the merged report,
outputs identical to one process's, and a rank killed mid-run.

The subprocess tests start `python -m torch.distributed.run --standalone` (torchrun on a free port)
with the tiny checkpoint; each process runs on the CPU with its share of the cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaint.batch import REPORT_FILE, merge_report_parts, report_part
from inpaint.errors import UserError
from inpaint.ranks import World, share_of, world_from_env

# --- The fixed assignment -----------------------------------------------------------------------


def test_each_file_has_one_rank_and_the_shares_are_balanced():
    keys = [f"folder{i % 3}/photo{i:03d}.png" for i in range(101)]
    for size in (1, 2, 3, 8):
        shares = [share_of(keys, World(rank, size)) for rank in range(size)]
        assert set().union(*shares) == set(keys)
        assert sum(len(share) for share in shares) == len(keys), "a file in two shares"
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_a_file_keeps_its_rank_whatever_order_the_files_are_listed_in():
    keys = [f"a/{i}.jpg" for i in range(30)] + [f"b/c/{i}.png" for i in range(30)]
    shuffled = list(np.random.default_rng(0).permutation(keys))
    for rank in range(3):
        assert share_of(keys, World(rank, 3)) == share_of(shuffled, World(rank, 3))
    # the same file always goes to the same rank for a given world size, and a world of one has it all
    assert share_of(keys, World(0, 1)) == set(keys)
    assert "a/7.jpg" in share_of(keys, World(share_of_rank(keys, "a/7.jpg", 3), 3))


def share_of_rank(keys: list[str], key: str, size: int) -> int:
    (rank,) = [r for r in range(size) if key in share_of(keys, World(r, size))]
    return rank


def test_an_incomplete_launch_environment_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(UserError, match="torchrun"):
        world_from_env()
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(UserError, match="outside the world"):
        world_from_env()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert world_from_env() == World()


# --- The merged report --------------------------------------------------------------------------


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_parts_merge_into_one_report_in_the_plans_order(tmp_path):
    order = [f"in/{name}.png" for name in "abcdef"]
    (tmp_path / REPORT_FILE).write_text(json.dumps({"input": "in/a.png", "status": "failed"}) + "\n")
    report_part(tmp_path, 0).write_text(
        "".join(json.dumps({"input": f"in/{name}.png", "status": "ok"}) + "\n" for name in "eca")
    )
    report_part(tmp_path, 1).write_text(
        "".join(json.dumps({"input": f"in/{name}.png", "status": "ok"}) + "\n" for name in "fb")
        + '{"input": "in/d.png", "sta'  # a line the rank's death tore
    )
    held = merge_report_parts(tmp_path, order)
    assert held == {f"in/{name}.png" for name in "abcef"}
    records = _lines(tmp_path / REPORT_FILE)
    assert [r["input"] for r in records] == [f"in/{name}.png" for name in "abcef"]
    assert records[0]["status"] == "ok", "a part's later record replaces the report's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [REPORT_FILE], "parts left behind"


def test_parts_an_interrupted_run_left_are_folded_in_by_the_next_run(tmp_path):
    report_part(tmp_path, 3).write_text(json.dumps({"input": "x.png", "status": "ok"}) + "\n")
    assert merge_report_parts(tmp_path) == {"x.png"}
    assert _lines(tmp_path / REPORT_FILE) == [{"input": "x.png", "status": "ok"}]
    assert merge_report_parts(tmp_path) == {"x.png"}, "a second merge changes nothing"


# --- Several processes --------------------------------------------------------------------------

IMAGES = 16


def make_tree(root: Path) -> list[str]:
    """IMAGES photos with masks beside them in two folders; their paths relative to root."""
    rng = np.random.default_rng(1)
    names = []
    for i in range(IMAGES):
        width, height = 160 + 8 * i, 120 + 4 * i
        path = root / f"part{i % 2}" / f"photo{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[height // 3 : height // 2, width // 4 : width // 2] = 255
        Image.fromarray(mask).save(path.parent / f"{path.stem}_mask.png")
        names.append(str(path.relative_to(root)))
    return names


def batch_command(checkpoint: Path, inputs: Path, out: Path, processes: int, *extra: str) -> list[str]:
    # On the CPU, where an image's fill is the same bits whatever its batch (on a GPU only up to rounding).
    options = ["--checkpoint", str(checkpoint), "--iterations", "3", "--restarts", "1", "--device", "cpu", *extra]
    if processes == 1:
        return [sys.executable, "-m", "inpaint.cli", "batch", str(inputs), str(out), *options]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return [*launch, "-m", "inpaint", "batch", str(inputs), str(out), *options]


def pixels(out: Path, names: list[str]) -> dict[str, np.ndarray]:
    return {name: np.asarray(Image.open(out / name)) for name in names}


def outputs(out: Path) -> dict[str, int]:
    """The finished outputs and their modification times."""
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in out.rglob("*.png")
        if p.is_file() and not p.name.startswith(".")
    }


def assert_same_pictures(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    different = [name for name in a if a[name].shape != b[name].shape or (a[name] != b[name]).any()]
    assert not different, f"not pixel-identical: {different}"


@pytest.mark.slow
def test_two_processes_fill_each_image_once_and_match_one_process(tmp_path, tiny_checkpoint_path):
    inputs = tmp_path / "in"
    names = make_tree(inputs)
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(batch_command(tiny_checkpoint_path, inputs, one, 1), capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    shared = subprocess.run(batch_command(tiny_checkpoint_path, inputs, two, 2), capture_output=True, text=True)
    assert shared.returncode == 0, shared.stderr[-3000:]

    assert_same_pictures(pixels(one, names), pixels(two, names))
    # every rank's outcomes are counted together: each image once, so each was searched by one rank
    assert f"{IMAGES} ok; report" in shared.stdout, shared.stdout[-2000:]
    assert "2 processes share the images" in shared.stdout + shared.stderr
    # one report, as one process writes it: a line per input, in the same order, no parts left
    records, single_records = _lines(two / REPORT_FILE), _lines(one / REPORT_FILE)
    assert [r["input"] for r in records] == [r["input"] for r in single_records]
    assert len(records) == IMAGES and all(r["status"] == "ok" for r in records)
    assert not list(two.glob("report.rank*")), "report parts left behind"


def _rank_pid(marker: str, rank: int) -> int | None:
    """The pid of the process with INPAINT_TEST_RUN=marker and RANK=rank in its environment."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if f"INPAINT_TEST_RUN={marker}".encode() in environ and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_stops_the_other_and_a_rerun_does_the_rest(tmp_path, tiny_checkpoint_path):
    inputs, out, reference = tmp_path / "in", tmp_path / "out", tmp_path / "reference"
    names = make_tree(inputs)
    env = {**os.environ, "INPAINT_TEST_RUN": str(tmp_path)}
    extra = ("--batch-size", "1", "--rank-timeout", "20")
    launch = subprocess.Popen(
        batch_command(tiny_checkpoint_path, inputs, out, 2, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not outputs(out) and launch.poll() is None:  # until the run has finished something
            assert time.monotonic() < deadline, "the launch wrote nothing in 120 s"
            time.sleep(0.01)
        victim = _rank_pid(str(tmp_path), 1)
        assert victim is not None and launch.poll() is None, "the run ended before a rank could be killed"
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = launch.communicate(timeout=90)
        assert time.monotonic() - killed < 60, "the other rank took more than a minute to stop"
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.communicate()
    assert launch.returncode != 0
    errors = [line for line in stderr.splitlines() if line.startswith("error: rank 0:")]
    assert errors and "rank 1" in errors[0], stderr[-3000:]  # the survivor names the dead rank
    before = outputs(out)
    assert 0 < len(before) < IMAGES, "the kill interrupted nothing: the rerun tests nothing"

    rerun = subprocess.run(batch_command(tiny_checkpoint_path, inputs, out, 1, *extra), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(before)} done, {IMAGES - len(before)} ok" in rerun.stdout, rerun.stdout[-2000:]
    after = outputs(out)
    assert {name: after[name] for name in before} == before, "a finished output was written again"
    records = _lines(out / REPORT_FILE)
    assert sorted(str(Path(r["input"]).relative_to(inputs)) for r in records) == sorted(names)
    assert not list(out.glob("report.rank*")), "report parts left behind"

    single = subprocess.run(batch_command(tiny_checkpoint_path, inputs, reference, 1, *extra), capture_output=True)
    assert single.returncode == 0
    assert_same_pictures(pixels(reference, names), pixels(out, names))
