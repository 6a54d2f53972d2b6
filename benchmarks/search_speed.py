"""Latent-search speed: ms per iteration at several batch sizes and precisions, and the time to fill
one 64×64 face and 64 faces with each start's default settings (random latents; the encoder's
prediction when the checkpoint has an encoder).

  python benchmarks/search_speed.py [--checkpoint C] [--batches 1 16 64 256] [--iterations 20]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
from inpaint.device import search_precision
from inpaint.engine import fill_images
from inpaint.masks import make_mask
from inpaint.search import SearchSettings, resolve_settings, search

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "faces"


def per_iteration_ms(checkpoint, batch: int, precision: str, iterations: int) -> float:
    size = checkpoint.config.image_size
    images = torch.rand(batch, checkpoint.config.channels, size, size) * 2 - 1
    known = torch.from_numpy(~make_mask("centre", size, size)).float()[None, None].repeat(batch, 1, 1, 1)
    settings = SearchSettings(iterations=iterations, restarts=1, precision=precision, init="random", patience=0)
    search(checkpoint, images, known, replace(settings, iterations=3))  # warm-up
    started = time.perf_counter()
    search(checkpoint, images, known, settings)
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

    faces = sorted(EXAMPLES.glob("*.jpg"))
    size = checkpoint.config.image_size
    hole = make_mask("centre", size, size)
    one = [(Image.open(faces[0]).convert("RGB").resize((size, size)), hole)]
    many = [(Image.open(faces[i % len(faces)]).convert("RGB").resize((size, size)), hole) for i in range(64)]
    fill_images(checkpoint, one, SearchSettings(iterations=2))  # warm-up
    print("\nfilling faces (centre hole) with the engine, start to finish")
    print(f"{'start':>8} {'iterations × starts':>20} {'one face s':>11} {'64 faces s/face':>16}")
    starts = ["random"] + (["encoder"] if checkpoint.encoder is not None else [])
    for init in starts:
        settings = resolve_settings(checkpoint, SearchSettings(init=init))
        started = time.perf_counter()
        fill_images(checkpoint, one, settings)
        single = time.perf_counter() - started
        started = time.perf_counter()
        fill_images(checkpoint, many, settings)
        batch64 = (time.perf_counter() - started) / 64
        print(f"{init:>8} {f'{settings.iterations} × {settings.restarts}':>20} {single:>11.2f} {batch64:>16.3f}", flush=True)
    precision = search_precision(torch.device("cpu"), SearchSettings().precision)
    print(f"(defaults of each start, early stop after {SearchSettings().patience} iterations without improvement, precision {precision})")


if __name__ == "__main__":
    main()
