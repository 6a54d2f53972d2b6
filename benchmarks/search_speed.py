"""Latent-search speed: ms per iteration at several batch sizes and precisions, and the time to fill
one 64×64 face and 64 faces with each start's default settings (random latents; the encoder's
prediction when the checkpoint has an encoder), on the CPU or a GPU. On CUDA the search replays its
step as a CUDA graph; the "fp32 eager" column is the same search launching every kernel itself.

  python benchmarks/search_speed.py [--checkpoint C] [--device auto|cpu|cuda] [--batches 1 16 64 256]
                                    [--iterations 20] [--faces 64]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
from inpaint.device import device_name, search_precision, select_device
from inpaint.engine import FillRequest, fill_images
from inpaint.masks import make_mask
from inpaint.search import SearchSettings, resolve_settings, search

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "faces"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: a GPU runs asynchronously, so a timer read without this
    measures only how fast the host queued the kernels."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def per_iteration_ms(checkpoint, batch: int, precision: str, iterations: int, graphs: bool = True) -> float:
    os.environ["INPAINT_CUDA_GRAPHS"] = "1" if graphs else "0"
    size = checkpoint.config.image_size
    device = next(checkpoint.generator.parameters()).device
    images = torch.rand(batch, checkpoint.config.channels, size, size) * 2 - 1
    known = torch.from_numpy(~make_mask("centre", size, size)).float()[None, None].repeat(batch, 1, 1, 1)
    settings = SearchSettings(iterations=iterations, restarts=1, precision=precision, init="random", patience=0)
    search(checkpoint, images, known, replace(settings, iterations=3))  # warm-up
    synchronize(device)
    started = time.perf_counter()
    search(checkpoint, images, known, settings)
    synchronize(device)
    os.environ.pop("INPAINT_CUDA_GRAPHS")
    return (time.perf_counter() - started) / iterations * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps")
    parser.add_argument("--faces", type=int, default=64, help="faces in the batch fill (0: skip the fill timings)")
    args = parser.parse_args()
    device = select_device(args.device)
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint), device=device)
    print(f"device: {device} ({device_name(device)})")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{checkpoint.config.image_size}×{checkpoint.config.image_size}, checkpoint {checkpoint.path}"
    )
    print("\nms per search iteration (G and D forward and backward to z), channels_last")
    cuda = device.type == "cuda"
    print(f"{'batch':>6} {'fp32':>9} {'bf16':>9}" + (f" {'fp32 eager':>11}" if cuda else ""))
    for batch in args.batches:
        fp32 = per_iteration_ms(checkpoint, batch, "fp32", args.iterations)
        bf16 = per_iteration_ms(checkpoint, batch, "bf16", args.iterations)
        eager = f" {per_iteration_ms(checkpoint, batch, 'fp32', args.iterations, graphs=False):>11.2f}" if cuda else ""
        print(f"{batch:>6} {fp32:>9.2f} {bf16:>9.2f}{eager}", flush=True)
    if args.faces <= 0:
        return

    faces = sorted(EXAMPLES.glob("*.jpg"))
    size = checkpoint.config.image_size
    pictures = [Image.open(faces[i % len(faces)]).convert("RGB").resize((size, size)) for i in range(args.faces)]
    fill_images(checkpoint, [(pictures[0], make_mask("centre", size, size))], FillRequest(SearchSettings(iterations=2)))
    print("\nfilling faces with the engine, start to finish")
    print(
        f"{'hole':>8} {'start':>8} {'iterations × starts':>20} {'one face s':>11} {f'{args.faces} faces s/face':>16}"
        f" {'faces/s':>8}"
    )
    for kind in ("centre", "random"):  # a compact hole, and a scattered one (it searches longer)
        hole = make_mask(kind, size, size)
        starts = (["random"] if kind == "centre" else []) + (["encoder"] if checkpoint.encoder is not None else [])
        for init in starts:
            settings = resolve_settings(checkpoint, SearchSettings(init=init))
            budget = settings.scattered_iterations if kind == "random" else settings.iterations
            synchronize(device)
            started = time.perf_counter()
            fill_images(checkpoint, [(pictures[0], hole)], FillRequest(settings))
            synchronize(device)
            single = time.perf_counter() - started
            started = time.perf_counter()
            fill_images(checkpoint, [(picture, hole) for picture in pictures], FillRequest(settings))
            synchronize(device)
            per_face = (time.perf_counter() - started) / args.faces
            counts = f"{budget} × {settings.restarts}"
            rate = 1 / per_face
            print(f"{kind:>8} {init:>8} {counts:>20} {single:>11.3f} {per_face:>16.4f} {rate:>8.1f}", flush=True)
    precision = search_precision(device, SearchSettings().precision)
    print(
        f"(defaults of each start, early stop after {SearchSettings().patience} iterations without improvement, "
        f"precision {precision})"
    )


if __name__ == "__main__":
    main()
