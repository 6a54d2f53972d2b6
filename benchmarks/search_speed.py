"""Latent-search speed: ms per iteration at several batch sizes and precisions, and the time to fill
one 64×64 face and 64 faces with the default settings.

  python benchmarks/search_speed.py [--checkpoint C] [--batches 1 16 64 256] [--iterations 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
from inpaint.device import search_precision
from inpaint.engine import fill_images
from inpaint.masks import make_mask
from inpaint.search import SearchSettings, search

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "faces"


def per_iteration_ms(checkpoint, batch: int, precision: str, iterations: int) -> float:
    size = checkpoint.config.image_size
    images = torch.rand(batch, checkpoint.config.channels, size, size) * 2 - 1
    known = torch.from_numpy(~make_mask("centre", size, size)).float()[None, None].repeat(batch, 1, 1, 1)
    settings = SearchSettings(iterations=3, restarts=1, precision=precision)
    search(checkpoint, images, known, settings)  # warm-up
    started = time.perf_counter()
    search(checkpoint, images, known, SearchSettings(iterations=iterations, restarts=1, precision=precision))
    return (time.perf_counter() - started) / iterations * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {checkpoint.config.image_size}×{checkpoint.config.image_size}, checkpoint {checkpoint.path}")
    print("\nms per search iteration (G and D forward and backward to z), channels_last")
    print(f"{'batch':>6} {'fp32':>9} {'bf16':>9}")
    for batch in args.batches:
        fp32 = per_iteration_ms(checkpoint, batch, "fp32", args.iterations)
        bf16 = per_iteration_ms(checkpoint, batch, "bf16", args.iterations)
        print(f"{batch:>6} {fp32:>9.1f} {bf16:>9.1f}", flush=True)

    defaults = SearchSettings()
    faces = sorted(EXAMPLES.glob("*.jpg"))
    size = checkpoint.config.image_size
    one = Image.open(faces[0]).convert("RGB").resize((size, size))
    hole = make_mask("centre", size, size)
    started = time.perf_counter()
    fill_images(checkpoint, [(one, hole)], defaults)
    single = time.perf_counter() - started
    many = [(Image.open(faces[i % len(faces)]).convert("RGB").resize((size, size)), hole) for i in range(64)]
    started = time.perf_counter()
    fill_images(checkpoint, many, defaults)
    batch64 = time.perf_counter() - started
    precision = search_precision(torch.device("cpu"), defaults.precision)
    print(f"\ndefaults: {defaults.iterations} iterations × {defaults.restarts} restarts, precision {defaults.precision} = {precision}")
    print(f"fill one {size}×{size} face: {single:.1f} s")
    print(f"fill 64 faces in one batch: {batch64:.1f} s ({batch64 / 64:.2f} s per face)")


if __name__ == "__main__":
    main()
