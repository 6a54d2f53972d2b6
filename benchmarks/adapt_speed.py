"""What adapting the generator to each photo costs: ms per adaptation step by batch size for each
choice of tuned tensors, and the time it adds to filling a real photo (scikit-image's astronaut,
her eyes covered) alone and 16 at once, with the recipe as --adapt-steps 40 turns it on (the
default search); on the CPU or a GPU. On CUDA
the step is replayed as a CUDA graph; the "eager" column launches every kernel itself.

  python benchmarks/adapt_speed.py [--checkpoint C] [--device auto|cpu|cuda] [--batches 1 16 64]
                                   [--steps 10] [--photos 16]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inpaint.adapt import SUGGESTED_STEPS, TUNED, AdaptSettings, adapt
from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
from inpaint.device import device_name, select_device
from inpaint.engine import FillItem, FillRequest, fill_images
from inpaint.masks import make_mask

ASTRONAUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "astronaut.jpg"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_step_ms(checkpoint, batch: int, settings: AdaptSettings, steps: int, graphs: bool = True) -> float:
    os.environ["INPAINT_CUDA_GRAPHS"] = "1" if graphs else "0"
    size, channels = checkpoint.config.image_size, checkpoint.config.channels
    device = next(checkpoint.generator.parameters()).device
    images = torch.rand(batch, channels, size, size) * 2 - 1
    known = torch.from_numpy(~make_mask("centre", size, size)).float()[None, None].repeat(batch, 1, 1, 1)
    z = torch.rand(batch, checkpoint.config.latent_dim) * 2 - 1
    adapt(checkpoint, images, known, z, replace(settings, steps=3))  # warm-up
    synchronize(device)
    started = time.perf_counter()
    adapt(checkpoint, images, known, z, replace(settings, steps=steps))
    synchronize(device)
    os.environ.pop("INPAINT_CUDA_GRAPHS")
    return (time.perf_counter() - started) / steps * 1000


def fill_seconds(checkpoint, items: list[FillItem], adapting: AdaptSettings) -> float:
    device = next(checkpoint.generator.parameters()).device
    synchronize(device)
    started = time.perf_counter()
    fill_images(checkpoint, items, FillRequest(adapt=adapting))
    synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N")
    parser.add_argument("--photos", type=int, default=16, help="photos in the batch fill (0: skip the fill timings)")
    args = parser.parse_args()
    device = select_device(args.device)
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint), device=device)
    defaults = AdaptSettings(SUGGESTED_STEPS)  # the measured recipe, as --adapt-steps 40 turns it on
    print(f"device: {device} ({device_name(device)}); torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"adaptation as turned on: {defaults.steps} steps, tuned {defaults.tuned}, lr {defaults.lr}, "
        f"latent lr {defaults.latent_lr}"
    )
    cuda = device.type == "cuda"
    print("\nms per adaptation step (G with per-photo tensors and D, forward and backward), fp32")
    variants = [(tuned, lr) for tuned in TUNED for lr in (0.01, 0.0)]
    names = [f"{tuned}{'' if lr else ', z fixed'}" for tuned, lr in variants]
    print(f"{'batch':>6} " + " ".join(f"{name:>15}" for name in names) + (f" {'recipe eager':>14}" if cuda else ""))
    for batch in args.batches:
        cells = [
            per_step_ms(checkpoint, batch, replace(defaults, tuned=tuned, latent_lr=lr), args.steps)
            for tuned, lr in variants
        ]
        eager = f" {per_step_ms(checkpoint, batch, defaults, args.steps, graphs=False):>14.2f}" if cuda else ""
        print(f"{batch:>6} " + " ".join(f"{cell:>15.2f}" for cell in cells) + eager, flush=True)
    if args.photos <= 0:
        return

    photo = Image.open(ASTRONAUT).convert("RGB")
    hole = np.zeros((photo.height, photo.width), bool)
    hole[95:131, 165:276] = True  # her eyes and brows
    one, many = [FillItem(photo, hole)], [FillItem(photo, hole) for _ in range(args.photos)]
    fill_seconds(checkpoint, one, AdaptSettings(steps=2))  # warm-up
    off, on = AdaptSettings(steps=0), defaults  # off is the default
    single = fill_seconds(checkpoint, one, off), fill_seconds(checkpoint, one, on)
    batch = fill_seconds(checkpoint, many, off) / args.photos, fill_seconds(checkpoint, many, on) / args.photos
    print(f"\nfilling the astronaut (512×512, eyes covered), default search; adaptation {defaults.steps} steps")
    print(f"{'':>24} {'off s':>8} {'on s':>8} {'added s':>8}")
    print(f"{'one photo':>24} {single[0]:>8.2f} {single[1]:>8.2f} {single[1] - single[0]:>8.2f}")
    label = f"{args.photos} at once, per photo"
    print(f"{label:>24} {batch[0]:>8.2f} {batch[1]:>8.2f} {batch[1] - batch[0]:>8.2f}")


if __name__ == "__main__":
    main()
