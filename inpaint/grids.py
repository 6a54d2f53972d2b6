"""Saving batches of images as single files or as one grid picture (torchvision's make_grid)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from inpaint.fileio import atomic_path
from inpaint.tv_compat import import_torchvision

import_torchvision()
from torchvision.utils import make_grid, save_image  # noqa: E402


def grid_columns(n: int) -> int:
    """Columns for a near-square grid of n tiles."""
    return max(1, math.ceil(math.sqrt(n)))


def save_grid(images: torch.Tensor, path: str | Path, columns: int | None = None, padding: int = 2) -> Path:
    """Save (N, C, H, W) images in [0, 1] as one grid picture, atomically."""
    grid = make_grid(images.detach().float().cpu(), nrow=columns or grid_columns(len(images)), padding=padding)
    with atomic_path(path) as tmp:
        save_image(grid, tmp)
    return Path(path)


def save_each(images: torch.Tensor, folder: str | Path, names: list[str]) -> list[Path]:
    """Save (N, C, H, W) images in [0, 1] one file each, atomically."""
    folder = Path(folder)
    paths = []
    for image, name in zip(images.detach().float().cpu(), names):
        with atomic_path(folder / name) as tmp:
            save_image(image, tmp)
        paths.append(folder / name)
    return paths


def to_pil(images: torch.Tensor) -> list:
    """(N, C, H, W) images in [0, 1] as Pillow images (RGB, or L for one channel)."""
    from PIL import Image

    arrays = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a[..., 0] if a.shape[2] == 1 else a) for a in arrays]


def grid_image(images: torch.Tensor, columns: int | None = None, padding: int = 2):
    """(N, C, H, W) images in [0, 1] as one Pillow picture."""
    grid = make_grid(images.detach().float().cpu(), nrow=columns or grid_columns(len(images)), padding=padding)
    return to_pil(grid[None])[0]
