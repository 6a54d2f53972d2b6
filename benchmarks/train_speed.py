"""Training throughput: `inpaint train` against a bare loop of the same models, in one run.

For each setting (fp32; bf16 + channels_last) it measures images/s of
  trainer: the real trainer (in-memory data, flips, logging, progress bar) on a folder of JPEGs,
           timed from its own stats lines after a warm-up;
  bare:    the same G/D/Adam/loss steps on a fixed random batch, with no data, logging or files.
and prints the ratio. Usage:
  python benchmarks/train_speed.py [--data DIR] [--batch-size 64] [--image-size 64] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from inpaint.device import autocast
from inpaint.models import Discriminator, Generator, ModelConfig
from training.loop import train
from training.options import TrainOptions


def make_jpeg_folder(folder: Path, count: int) -> Path:
    """Face-sized (89×109) noisy JPEGs, so decoding and resizing are exercised as with real data."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def trainer_rate(data: Path, run_dir: Path, args, precision: str, channels_last: bool) -> float:
    options = TrainOptions(
        data=str(data), out=str(run_dir), image_size=args.image_size, batch_size=args.batch_size,
        steps=args.warmup + args.steps, precision=precision, channels_last=channels_last,
        log_every=args.warmup, sample_every=10**9, checkpoint_every=10**9,
    )
    train(options, log=lambda *a: None)
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    timed = {r["step"]: r["seconds"] for r in records if "loss_d" in r}
    start, end = args.warmup, args.warmup + args.steps
    return (end - start) * args.batch_size / (timed[end] - timed[start])


def bare_rate(args, precision: str, channels_last: bool) -> float:
    torch.manual_seed(0)
    config = ModelConfig(image_size=args.image_size)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    device = torch.device("cpu")
    G, D = Generator(config).to(memory_format=fmt), Discriminator(config).to(memory_format=fmt)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = (torch.rand(args.batch_size, 3, args.image_size, args.image_size) * 2 - 1).contiguous(memory_format=fmt)

    def step() -> None:
        z = torch.rand(args.batch_size, config.latent_dim) * 2 - 1
        with autocast(device, precision):
            fake = G(z)
            loss_d = F.softplus(-D(real).float()).mean() + F.softplus(D(fake.detach()).float()).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        with autocast(device, precision):
            loss_g = F.softplus(-D(fake).float()).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * args.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="image folder (default: 2,048 generated JPEGs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, batch {args.batch_size}, {args.image_size}×{args.image_size}")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_jpeg_folder(Path(tmp) / "data", 2048)
        rows = []
        for name, precision, channels_last in [("fp32", "fp32", False), ("bf16 + channels_last", "bf16", True)]:
            bare = bare_rate(args, precision, channels_last)
            trainer = trainer_rate(data, Path(tmp) / f"run-{precision}", args, precision, channels_last)
            rows.append((name, trainer, bare))
    print(f"\n{'setting':<22} {'trainer img/s':>14} {'bare loop img/s':>16} {'trainer/bare':>13}")
    for name, trainer, bare in rows:
        print(f"{name:<22} {trainer:>14.1f} {bare:>16.1f} {trainer / bare:>12.1%}")


if __name__ == "__main__":
    main()
