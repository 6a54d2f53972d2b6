"""Shared fixtures: image folders of every awkward kind, built on the fly in tmp_path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _photo(rng: np.random.Generator, width: int = 48, height: int = 40) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def build_mixed_image_folder(root: Path) -> tuple[Path, int, list[str]]:
    """~32 files: PNG, JPEG, WEBP, BMP, TIFF in nested folders, plus grayscale, palette, RGBA,
    16-bit, EXIF-rotated, a truncated JPEG, a text file named .png and a notes.txt.
    Returns (folder, number of good images, names of the bad image files)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub" / "deeper").mkdir(parents=True)
    good = 0
    formats = [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP"), ("bmp", "BMP"), ("tiff", "TIFF")]
    for i in range(25):
        ext, fmt = formats[i % len(formats)]
        folder = root if i < 10 else (root / "sub" if i < 20 else root / "sub" / "deeper")
        Image.fromarray(_photo(rng)).save(folder / f"img{i:02d}.{ext}", fmt)
        good += 1
    Image.fromarray(_photo(rng)[..., 0], "L").save(root / "gray.png")
    Image.fromarray(_photo(rng)).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    rgba = np.dstack([_photo(rng), rng.integers(0, 256, (40, 48), dtype=np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "sub" / "rgba.png")
    Image.fromarray((rng.integers(0, 65536, (40, 48))).astype(np.uint16)).save(root / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(_photo(rng, 60, 40)).save(root / "rotated.jpg", exif=exif.tobytes())
    good += 5
    buffer = io.BytesIO()
    Image.fromarray(_photo(rng)).save(buffer, "JPEG")
    (root / "sub" / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (root / "fake.png").write_text("this is not an image")
    (root / "notes.txt").write_text("not an image either, and not named like one")
    return root, good, ["truncated.jpg", "fake.png"]


@pytest.fixture
def mixed_image_folder(tmp_path: Path) -> tuple[Path, int, list[str]]:
    return build_mixed_image_folder(tmp_path / "mixed")


@pytest.fixture(scope="session")
def tiny_checkpoint_path(tmp_path_factory) -> Path:
    """A small 32×32 checkpoint (untrained, with real BatchNorm statistics) saved in the project's format."""
    import torch

    from inpaint.checkpoint import save_checkpoint
    from inpaint.latent import LatentPrior
    from inpaint.models import Discriminator, Generator, ModelConfig

    torch.manual_seed(0)
    config = ModelConfig(image_size=32, g_width=8, d_width=8, latent_dim=12)
    generator, discriminator = Generator(config), Discriminator(config)
    with torch.no_grad():
        generator(torch.rand(64, 12) * 2 - 1)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.safetensors"
    return save_checkpoint(path, generator, discriminator, LatentPrior("uniform"), {"steps": 0})


# --- Small image-making helpers shared by the image, data and training tests -------------------

EXIF_ORIENTATION = 0x0112


def write_exif_jpeg(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    """Save `pixels` (H, W, 3) as a high-quality JPEG whose EXIF says how to display it upright."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def banded_rgb(width: int, height: int, along: str = "x") -> np.ndarray:
    """Red, green and blue thirds, side by side (`along="x"`) or stacked top to bottom ("y")."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    length = width if along == "x" else height
    for channel, (start, stop) in enumerate(
        [(0, length // 3), (length // 3, 2 * length // 3), (2 * length // 3, length)]
    ):
        if along == "x":
            pixels[:, start:stop, channel] = 255
        else:
            pixels[start:stop, :, channel] = 255
    return pixels


@pytest.fixture
def exif_jpeg():
    """Factory: exif_jpeg(path, pixels, orientation) writes an EXIF-oriented JPEG."""
    return write_exif_jpeg


@pytest.fixture
def bands():
    """Factory: bands(width, height, along) gives a red|green|blue banded RGB array."""
    return banded_rgb
