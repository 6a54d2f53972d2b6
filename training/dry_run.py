"""A smoke run that needs no data and no weights: a few steps on generated pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from inpaint_training.options import TrainOptions


def write_synthetic_images(folder: Path, count: int = 32, size: int = 48, seed: int = 0) -> Path:
    """Soft coloured discs on gradients: enough structure for a GAN to have something to learn."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
        background = np.stack([xx, yy, 1 - xx], -1) * rng.uniform(0.3, 1.0, 3)
        image = np.where(disc, rng.uniform(0, 1, 3), background)
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"synthetic-{i:03d}.png")
    return folder


def dry_run_options(work_dir: Path, out: str | None) -> TrainOptions:
    data = write_synthetic_images(work_dir / "data")
    return TrainOptions(
        data=str(data),
        out=out or str(work_dir / "run"),
        image_size=32,
        g_width=16,
        d_width=16,
        batch_size=8,
        steps=3,
        log_every=1,
        sample_every=3,
        checkpoint_every=3,
        encoder_steps=2,
    )
