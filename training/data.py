"""Training data: every image under a folder, decoded once into one in-memory uint8 tensor.

At DCGAN sizes a whole data set is small (13,683 faces at 64×64 RGB are 168 MB), so decoding it
once and then slicing batches out of memory keeps the GPU/CPU busy with training, not JPEG
decoding. Unreadable files are skipped with a warning each and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from inpaint.errors import UserError
from inpaint.images import find_images, load_image
from inpaint.tv_compat import import_torchvision

import_torchvision()
from torchvision.transforms import v2  # noqa: E402


@dataclass
class ImageSet:
    """Decoded training images (N, C, S, S) uint8, and what was left out."""

    root: Path
    images: torch.Tensor
    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    holdout_files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]


class _DecodeFiles(Dataset):
    def __init__(self, files: list[Path], image_size: int, channels: int, context: float = 1.0) -> None:
        self.files = files
        self.channels = channels
        self.image_size = image_size
        # Resize the short side, then centre-crop: the standard DCGAN framing.
        self.resize = v2.Compose([v2.PILToTensor(), v2.Resize(image_size, antialias=True)])
        self.context = context_side(image_size, context) if context != 1.0 else None
        self.crop = v2.CenterCrop(self.context or image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            image = load_image(self.files[index], self.channels, draft_size=self.image_size)
        except UserError as error:
            return index, None, str(error)
        resized = self.resize(image)
        if self.context is None:
            return index, self.crop(resized).contiguous(), ""
        # A wider square around the same centre; where it reaches past the image, the extra
        # channel says so (255 = image, 0 = padding).
        valid = torch.full((1, *resized.shape[1:]), 255, dtype=torch.uint8)
        return index, self.crop(torch.cat([resized, valid])).contiguous(), ""


def context_side(image_size: int, context: float) -> int:
    """The side of a square `context` times as wide as the model's, with the model's square
    exactly in its middle (an even margin)."""
    return image_size + 2 * max(0, round((context - 1) * image_size / 2))


def _keep_as_list(batch: list) -> list:
    return batch


def decode_images(
    files: list[Path],
    image_size: int,
    channels: int,
    workers: int | None = None,
    show_progress: bool = True,
    warn=print,
    context: float = 1.0,
) -> tuple[torch.Tensor, list[Path], list[tuple[Path, str]]]:
    """Decode files to (N, C, S, S) uint8: (images, files kept, (file, problem) skipped). With
    `context` > 1, each keeps its surroundings in a square `context` times as wide, with an extra
    validity channel: (N, C + 1, K, K), the model's square in the middle."""
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(files) > 256 else 0
    loader = DataLoader(
        _DecodeFiles(files, image_size, channels, context),
        batch_size=64,
        num_workers=workers,
        collate_fn=_keep_as_list,
    )
    side = context_side(image_size, context)
    images = torch.empty(len(files), channels + (context != 1.0), side, side, dtype=torch.uint8)
    kept = torch.zeros(len(files), dtype=torch.bool)
    skipped: list[tuple[Path, str]] = []
    progress = tqdm(total=len(files), desc="decoding images", unit="img", disable=not show_progress, leave=False)
    for batch in loader:
        for index, tensor, problem in batch:
            if tensor is None:
                skipped.append((files[index], problem))
                warn(f"warning: skipped {problem}")
            else:
                images[index] = tensor
                kept[index] = True
        progress.update(len(batch))
    progress.close()
    return images[kept], [f for f, k in zip(files, kept.tolist()) if k], skipped


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int,
    channels: int,
    workers: int | None = None,
    show_progress: bool = True,
    warn=print,
    holdout: int = 0,
) -> ImageSet:
    """Decode every image under `root` (recursively) to a (N, C, S, S) uint8 tensor.

    `holdout` sets aside the last files in sorted order (the highest file names) as a validation
    split: they are not decoded here, only listed in `holdout_files`."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: data folder does not exist")
    if not root.is_dir():
        raise UserError(f"{root}: is not a folder")
    files, ignored = find_images(root)
    if not files:
        raise UserError(f"{root}: contains no image files (looked for jpg, png, webp, bmp, tiff, gif)")
    if holdout:
        if holdout >= len(files):
            raise UserError(f"{root}: cannot hold out {holdout} of its {len(files)} image files")
        files, holdout_files = files[:-holdout], files[-holdout:]
    else:
        holdout_files = []
    images, kept, skipped = decode_images(files, image_size, channels, workers, show_progress, warn)
    if not kept:
        raise UserError(f"{root}: none of its {len(files)} image files could be read")
    return ImageSet(root=root, images=images, files=kept, skipped=skipped, ignored=ignored, holdout_files=holdout_files)
