"""Threads on an idle and on a busy machine: `inpaint fill` on the astronaut portrait (eyes painted
over) as a new user runs it, with the thread settings as they come and with the usual
work-arounds, while the machine is idle and while other processes keep every core busy.

Each run is a fresh process (`python -m inpaint fill ...`), timed from start to exit; the busy
load is one spinning process per core, started before and stopped after each run.

  python benchmarks/threads.py [--repeats 2] [--iterations N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT = ROOT / "tests" / "data" / "astronaut.jpg"  # scikit-image's astronaut (NASA, public domain), 512×512
EYES = (slice(92, 124), slice(172, 278))  # a bar over both eyes
SETTINGS = {
    "as installed": {},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "OMP_NUM_THREADS=2": {"OMP_NUM_THREADS": "2"},
}


def _spin() -> None:
    while True:
        pass


def run_fill(env_changes: dict[str, str], folder: Path, extra: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "INPAINT_THREADS")}
    env.update(env_changes)
    command = [
        sys.executable,
        "-m",
        "inpaint",
        "fill",
        str(ASTRONAUT),
        "--mask",
        str(folder / "eyes.png"),
        "--out",
        str(folder / "out.png"),
        *extra,
    ]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell; the table shows the fastest")
    parser.add_argument("--iterations", type=int, help="passed to inpaint fill (default: its own)")
    parser.add_argument("--init", help="passed to inpaint fill (default: its own)")
    args = parser.parse_args()
    extra = (["--iterations", str(args.iterations)] if args.iterations else []) + (
        ["--init", args.init] if args.init else []
    )
    cores = len(os.sched_getaffinity(0))
    print(
        f"{cores} cores; inpaint fill on {ASTRONAUT.name} with the eyes painted over {' '.join(extra)}; "
        f"fastest of {args.repeats} runs, seconds from start to exit"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hole = np.zeros((512, 512), np.uint8)
        hole[EYES] = 255
        Image.fromarray(hole).save(folder / "eyes.png")
        print(f"{'setting':<22} {'idle':>8} {'busy':>8}")
        for name, env_changes in SETTINGS.items():
            cells = []
            for busy in (False, True):
                spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cores if busy else 0)]
                for spinner in spinners:
                    spinner.start()
                try:
                    cells.append(min(run_fill(env_changes, folder, extra) for _ in range(args.repeats)))
                finally:
                    for spinner in spinners:
                        spinner.terminate()
                        spinner.join()
            print(f"{name:<22} {cells[0]:>8.1f} {cells[1]:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
