"""Training throughput: `inpaint train` against a bare loop of the same models, in one run.

For each setting (fp32; bf16 + channels_last; on a GPU also bf16 alone) it measures images/s of
  trainer: the real trainer (in-memory data, flips, logging, progress bar) on a folder of JPEGs,
           timed from its own stats lines after a warm-up;
  bare:    the same G/D/Adam/loss steps on a fixed random batch, with no data, logging or files.
and prints the ratio. On CUDA both run with the trainer's deterministic kernels
(training.loop.cuda_determinism; INPAINT_CUDA_DETERMINISTIC=0 turns them off for both). Usage:
  python benchmarks/train_speed.py [--data DIR] [--device auto|cpu|cuda] [--batch-size 64 [256 …]]
                                   [--image-size 64] [--steps 40] [--images 2048] [--compile MODE]
--compile runs both under torch.compile in that mode (reduce-overhead: CUDA graphs on a GPU); the
warm-up steps then include compiling, so give enough of them (--warmup).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_speed import synchronize  # noqa: E402

from inpaint.device import (  # noqa: E402
    autocast,
    device_name,  # noqa: E402
    select_device,
)
from inpaint.models import UPSAMPLE_KINDS, Discriminator, Generator, ModelConfig  # noqa: E402
from inpaint_training.loop import compiled, cuda_determinism, train  # noqa: E402
from inpaint_training.options import COMPILE_MODES, TrainOptions  # noqa: E402
from inpaint_training.state import adam_for  # noqa: E402


def make_jpeg_folder(folder: Path, count: int) -> Path:
    """Face-sized (89×109) noisy JPEGs, so decoding and resizing are exercised as with real data."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def trainer_rate(
    data: Path, run_dir: Path, args, batch: int, device: torch.device, precision: str, channels_last: bool
) -> float:
    options = TrainOptions(
        data=str(data),
        out=str(run_dir),
        image_size=args.image_size,
        g_upsample=args.upsample,
        batch_size=batch,
        steps=args.warmup + args.steps,
        precision=precision,
        channels_last=channels_last,
        compile=args.compile,
        log_every=args.warmup,
        sample_every=10**9,
        checkpoint_every=10**9,
        device=str(device),
    )
    train(options, log=lambda *a: None)
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    timed = {r["step"]: r["seconds"] for r in records if "loss_d" in r}
    start, end = args.warmup, args.warmup + args.steps
    return (end - start) * batch / (timed[end] - timed[start])


def bare_rate(args, batch: int, device: torch.device, precision: str, channels_last: bool) -> float:
    torch.manual_seed(0)
    config = ModelConfig(image_size=args.image_size, upsample=args.upsample)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G = Generator(config).to(device, memory_format=fmt)
    D = Discriminator(config).to(device, memory_format=fmt)
    opt_g = adam_for(G.parameters(), 2e-4, (0.5, 0.999), device)
    opt_d = adam_for(D.parameters(), 2e-4, (0.5, 0.999), device)
    g_step, d_step = compiled(G, args.compile), compiled(D, args.compile)
    real = (torch.rand(batch, 3, args.image_size, args.image_size, device=device) * 2 - 1).contiguous(memory_format=fmt)

    def step() -> None:
        z = torch.rand(batch, config.latent_dim, device=device) * 2 - 1
        with autocast(device, precision):
            fake = g_step(z)
            loss_d = F.softplus(-d_step(real).float()).mean() + F.softplus(d_step(fake.detach()).float()).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        with autocast(device, precision):
            loss_g = F.softplus(-d_step(fake).float()).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)

    with cuda_determinism(device):  # the trainer's kernels, so trainer/bare measures only its overhead
        for _ in range(args.warmup):
            step()
        synchronize(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize(device)
    return args.steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="image folder (default: --images generated JPEGs)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64], help="one or more batch sizes")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--upsample",
        choices=UPSAMPLE_KINDS,
        default=TrainOptions().g_upsample,
        help="how G doubles its maps (default: the trainer's; the figures in the README are for transpose)",
    )
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--images", type=int, default=2048, help="generated JPEGs when --data is not given")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="off", help="torch.compile G and D (default off)")
    args = parser.parse_args()
    device = select_device(args.device)

    settings = [("fp32", "fp32", False), ("bf16 + channels_last", "bf16", True)]
    if device.type == "cuda":
        settings.append(("bf16", "bf16", False))
    print(f"device: {device} ({device_name(device)})")
    where = "CPU" if device.type == "cpu" else str(device)
    batches = ", ".join(str(batch) for batch in args.batch_size)
    size = f"{args.image_size}×{args.image_size}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}, batch {batches}, {size}")
    if device.type == "cuda":
        exact = os.environ.get("INPAINT_CUDA_DETERMINISTIC", "1") != "0"
        print(f"deterministic CUDA kernels: {'on' if exact else 'off (INPAINT_CUDA_DETERMINISTIC=0)'}")
    print(f"torch.compile: {args.compile}")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_jpeg_folder(Path(tmp) / "data", args.images)
        rows = []
        for batch in args.batch_size:
            for name, precision, channels_last in settings:
                bare = bare_rate(args, batch, device, precision, channels_last)
                run_dir = Path(tmp) / f"run-{precision}-{channels_last}-{batch}"
                trainer = trainer_rate(data, run_dir, args, batch, device, precision, channels_last)
                rows.append((name if len(args.batch_size) == 1 else f"{name}, batch {batch}", trainer, bare))
    width = max(22, *(len(name) for name, _, _ in rows))
    print(f"\n{'setting':<{width}} {'trainer img/s':>14} {'bare loop img/s':>16} {'trainer/bare':>13}")
    for name, trainer, bare in rows:
        print(f"{name:<{width}} {trainer:>14.1f} {bare:>16.1f} {trainer / bare:>12.1%}")


if __name__ == "__main__":
    main()
