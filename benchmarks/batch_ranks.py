"""`inpaint batch` on one process and under torchrun on several: images per second and whether the
outputs are the same.

A tree of COUNT photos (copied from DATA into two folders) is filled with generated holes by one
process, then by `torchrun --standalone --nproc_per_node N` (each process takes an equal share of
the cores: on a 2-core machine one thread each against one process's two). Each run is a fresh
command timed from start to exit; a rerun over the finished tree (every output skipped) gives the
fixed cost of a run (starting Python and torch, loading the model, listing the tree), which the
"search rate" leaves out. Then every output of the several-process run is compared with the one
process's, pixel by pixel, and the report's lines are counted.

  python benchmarks/batch_ranks.py [--data ../shared/data/celeba] [--count 200] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "celeba"


def build_tree(data: Path, count: int, root: Path) -> list[Path]:
    """The first `count` images of `data` (sorted), copied into root/a and root/b alternately."""
    sources = sorted(p for p in data.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    if len(sources) < count:
        sys.exit(f"error: {data}: {len(sources)} images, {count} asked for")
    copies = []
    for index, source in enumerate(sources):
        target = root / "ab"[index % 2] / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        copies.append(target.relative_to(root))
    return copies


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def differing(names: list[Path], first: Path, second: Path) -> list[str]:
    """The outputs that are not pixel-identical in the two trees."""
    found = []
    for name in names:
        a, b = np.asarray(Image.open(first / name)), np.asarray(Image.open(second / name))
        if a.shape != b.shape or (a != b).any():
            found.append(str(name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="a folder of photos (default: the CelebA faces)")
    parser.add_argument("--count", type=int, default=200, help="photos in the tree (default 200)")
    parser.add_argument("--processes", type=int, default=2, help="processes under torchrun (default 2)")
    parser.add_argument("--mask-kind", default="centre", help="the generated hole (default centre)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args, extra = parser.parse_known_args()  # anything else goes to `inpaint batch` (e.g. --precision fp32)

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        names = build_tree(args.data, args.count, work / "in")
        options = ["--mask-kind", args.mask_kind, *extra]

        def batch(out: str) -> list[str]:
            return ["-m", "inpaint", "batch", str(work / "in"), str(work / out), *options]

        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}"]
        runs = {"1 process": [sys.executable, *batch("one")], f"{args.processes} processes": [*launch, *batch("many")]}
        figures = {}
        for label, command in runs.items():
            seconds = timed(command)
            fixed = timed(command)  # the same again: every output is skipped
            figures[label] = {
                "seconds": round(seconds, 2),
                "fixed_seconds": round(fixed, 2),
                "images_per_second": round(args.count / seconds, 2),
                "search_images_per_second": round(args.count / max(seconds - fixed, 1e-9), 2),
            }
            print(
                f"{label:>12}: {seconds:6.1f} s, {args.count / seconds:5.2f} images/s "
                f"({args.count / max(seconds - fixed, 1e-9):5.2f} images/s past the {fixed:.1f} s a run costs anyway)"
            )
        single, several = figures["1 process"], figures[f"{args.processes} processes"]
        ratio = several["images_per_second"] / single["images_per_second"]
        search_ratio = several["search_images_per_second"] / single["search_images_per_second"]
        different = differing(names, work / "one", work / "many")
        lines = (work / "many" / "report.jsonl").read_text(encoding="utf-8").splitlines()
        print(f"ratio {args.processes} processes / 1: {ratio:.2f} (search rate {search_ratio:.2f})")
        print(f"outputs pixel-identical: {len(names) - len(different)} of {len(names)}; report lines: {len(lines)}")
        if args.json:
            summary = {
                "count": args.count,
                "options": options,
                "runs": figures,
                "ratio": round(ratio, 3),
                "search_ratio": round(search_ratio, 3),
                "identical": len(names) - len(different),
                "report_lines": len(lines),
            }
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
        if different:
            sys.exit(f"error: {len(different)} outputs differ, e.g. {different[:3]}")


if __name__ == "__main__":
    main()
