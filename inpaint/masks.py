"""Masks: which pixels are holes to fill. A mask is a boolean (H, W) numpy array, True = hole.

Kinds (Yeh et al.'s four, plus files):
  centre   a centred square covering `fraction` of the area (default 25%)
  random   `fraction` of the pixels missing at random (default 80%)
  pattern  random blob-shaped holes covering about `fraction` of the area (default 25%)
  half     one half of the image missing (`side`: left, right, top, bottom)
  file     an image file of the same aspect ratio: white (above mid-grey) = hole, black = keep;
           other sizes are resized with nearest-neighbour
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from inpaint.errors import UserError
from inpaint.images import load_image

MASK_KINDS = ("centre", "random", "pattern", "half")
SIDES = ("left", "right", "top", "bottom")
ASPECT_TOLERANCE = 0.02


def centre_mask(height: int, width: int, fraction: float = 0.25) -> np.ndarray:
    side = np.sqrt(fraction)
    mh, mw = max(1, round(height * side)), max(1, round(width * side))
    top, left = (height - mh) // 2, (width - mw) // 2
    hole = np.zeros((height, width), dtype=bool)
    hole[top:top + mh, left:left + mw] = True
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


def half_mask(height: int, width: int, side: str = "left") -> np.ndarray:
    if side not in SIDES:
        raise UserError(f"half mask side must be one of {', '.join(SIDES)}, not {side!r}")
    hole = np.zeros((height, width), dtype=bool)
    if side == "left":
        hole[:, : width // 2] = True
    elif side == "right":
        hole[:, width // 2:] = True
    elif side == "top":
        hole[: height // 2] = True
    else:
        hole[height // 2:] = True
    return hole


def make_mask(kind: str, height: int, width: int, fraction: float | None = None, seed: int = 0, side: str = "left") -> np.ndarray:
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
    """Read a mask file (white = hole) and fit it to an image of the given size."""
    gray = np.asarray(load_image(path, channels=1))
    return fit_mask(gray > 127, height, width, str(Path(path)))


def hole_fraction(hole: np.ndarray) -> float:
    return float(hole.mean())
