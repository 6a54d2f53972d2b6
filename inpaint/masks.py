"""Masks: which pixels are holes to fill. A mask is a boolean (H, W) numpy array, True = hole.

Kinds (Yeh et al.'s four, plus files):
  centre   a centred square covering `fraction` of the area (default 25%)
  random   `fraction` of the pixels missing at random (default 80%)
  pattern  random blob-shaped holes covering about `fraction` of the area (default 25%)
  half     one half of the image missing (`side`: left, right, top, bottom)
  strokes  one to three brush strokes, as a user paints them (training the framer and the encoder)
  file     an image file of the same aspect ratio: white (above mid-grey) = hole, black = keep;
           other sizes are resized with nearest-neighbour. A file with transparency (what image
           editors export: the painted strokes opaque, the rest transparent) is read by its
           alpha instead: opaque (alpha above half) = hole, whatever the strokes' colour
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from inpaint.errors import UserError
from inpaint.images import check_photo_size, normalise_mode, open_image

MASK_KINDS = ("centre", "random", "pattern", "half")
SIDES = ("left", "right", "top", "bottom")
ASPECT_TOLERANCE = 0.02


def centre_mask(height: int, width: int, fraction: float = 0.25) -> np.ndarray:
    side = np.sqrt(fraction)
    mh, mw = max(1, round(height * side)), max(1, round(width * side))
    top, left = (height - mh) // 2, (width - mw) // 2
    hole = np.zeros((height, width), dtype=bool)
    hole[top : top + mh, left : left + mw] = True
    return hole


def random_mask(height: int, width: int, fraction: float = 0.8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width)) < fraction


def pattern_mask(height: int, width: int, fraction: float = 0.25, seed: int = 0) -> np.ndarray:
    """Blob-shaped holes: smoothed noise thresholded at the quantile that leaves `fraction` missing."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width)).astype(np.float32)
    sigma = max(height, width) / 12
    smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    return smooth > np.quantile(smooth, 1 - fraction)


def stroke_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One to three brush strokes of random width (4–15% of the image), each through 2–4 random points."""
    hole = np.zeros((height, width), np.uint8)
    size = max(height, width)
    for _ in range(rng.integers(1, 4)):
        points = (rng.random((int(rng.integers(2, 5)), 2)) * (width, height)).astype(np.int32)
        cv2.polylines(hole, [points], False, 1, max(1, int(rng.uniform(0.04, 0.15) * size)))
    return hole.astype(bool)


def half_mask(height: int, width: int, side: str = "left") -> np.ndarray:
    if side not in SIDES:
        raise UserError(f"half mask side must be one of {', '.join(SIDES)}, not {side!r}")
    hole = np.zeros((height, width), dtype=bool)
    if side == "left":
        hole[:, : width // 2] = True
    elif side == "right":
        hole[:, width // 2 :] = True
    elif side == "top":
        hole[: height // 2] = True
    else:
        hole[height // 2 :] = True
    return hole


def make_mask(
    kind: str, height: int, width: int, fraction: float | None = None, seed: int = 0, side: str = "left"
) -> np.ndarray:
    """A mask of one of MASK_KINDS for an image of the given size."""
    if kind == "centre":
        return centre_mask(height, width, 0.25 if fraction is None else fraction)
    if kind == "random":
        return random_mask(height, width, 0.8 if fraction is None else fraction, seed)
    if kind == "pattern":
        return pattern_mask(height, width, 0.25 if fraction is None else fraction, seed)
    if kind == "half":
        return half_mask(height, width, side)
    raise UserError(f"unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)} or give a mask file")


def fit_mask(hole: np.ndarray, height: int, width: int, source: str = "mask") -> np.ndarray:
    """Resize a mask to (height, width) with nearest-neighbour; refuse another aspect ratio."""
    mh, mw = hole.shape
    if (mh, mw) == (height, width):
        return hole
    if abs(mw / mh - width / height) > ASPECT_TOLERANCE * (width / height):
        raise UserError(f"{source}: mask is {mw}×{mh} but the image is {width}×{height} (another aspect ratio)")
    resized = cv2.resize(hole.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool)


def load_mask(path: str | os.PathLike[str], height: int, width: int) -> np.ndarray:
    """Read a mask file (white = hole; with transparency, opaque = hole) and fit it to an image of
    the given size."""
    image = open_image(path)
    alpha = mask_alpha(image)
    hole = alpha > 127 if alpha is not None else np.asarray(normalise_mode(image, 1)) > 127
    return fit_mask(hole, height, width, str(Path(path)))


def mask_alpha(image: Image.Image) -> np.ndarray | None:
    """The alpha channel (H, W) uint8 of a mask image that has transparency, else None (no alpha,
    or alpha opaque everywhere: then the pixels' brightness says where the hole is)."""
    if image.mode not in ("RGBA", "LA", "PA", "La", "RGBa") and not (
        image.mode == "P" and "transparency" in image.info
    ):
        return None
    alpha = np.asarray(image.convert("RGBA").getchannel("A"))
    return None if alpha.min() == 255 else alpha


@dataclass
class MaskSource:
    """Where holes come from: a mask kind for every image, or mask files (beside the images, or in
    `folder` mirroring their tree)."""

    kind: str | None = None  # a mask kind for every image
    folder: Path | None = None  # a mask folder mirroring the input tree (batches)
    fraction: float | None = None
    side: str = "left"
    seed: int = 0

    def hole(self, height: int, width: int, path: str | os.PathLike[str] | None) -> np.ndarray:
        """The hole for an image of this size: its mask file, or the kind's mask when there is none."""
        if path is not None:
            return load_mask(path, height, width)
        return make_mask(self.kind, height, width, self.fraction, self.seed, self.side)


def open_with_hole(
    image_path: str | os.PathLike[str], masks: MaskSource, mask_path: str | os.PathLike[str] | None
) -> tuple[Image.Image, np.ndarray]:
    """A photo to fill and its hole, each checked (readable, large enough, a mask of its shape)."""
    image = open_image(image_path)
    check_photo_size(image.size, image_path)
    return image, masks.hole(image.size[1], image.size[0], mask_path)


def hole_box(hole: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of a mask's True pixels, inclusive, or None when there are none.
    Row and column reductions, not np.nonzero: on a 12-megapixel mask that is tens of times faster."""
    rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def hole_points(hole: np.ndarray, limit: int = 20000) -> np.ndarray:
    """(N, 2) x, y of a mask's True pixels (a fixed-seed sample of `limit` when there are more),
    found inside its bounding box only."""
    box = hole_box(hole)
    if box is None:
        return np.zeros((0, 2))
    left, top, right, bottom = box
    ys, xs = np.nonzero(hole[top : bottom + 1, left : right + 1])
    points = np.stack([xs + left, ys + top], 1)
    if len(points) > limit:
        points = points[np.random.default_rng(0).choice(len(points), limit, replace=False)]
    return points
