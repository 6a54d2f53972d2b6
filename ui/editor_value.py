"""Reading what gr.ImageEditor returns: the photo and the painted mask.

The value is {"background": H×W×4, "layers": [H×W×4, …], "composite": H×W×4} (numpy). The painted
mask is the union of the layers' alpha. Known quirks handled here: layers can come back empty
(then the mask is where the composite differs from the background), and the editor may return
arrays of another size than the upload (the mask is resized with nearest-neighbour to the photo).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PIL import Image

from inpaint.errors import UserError


def _as_array(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGBA"))
    array = np.asarray(value)
    if array.ndim == 2:
        array = np.stack([array] * 3 + [np.full_like(array, 255)], -1)
    elif array.shape[2] == 3:
        array = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, array.dtype)], -1)
    return array


def painted_mask(value: dict[str, Any] | None, size: tuple[int, int] | None = None) -> np.ndarray:
    """The painted hole (H, W) bool, at `size` (width, height) if given, else the background's size."""
    if not value or _as_array(value.get("background")) is None:
        raise UserError("upload a photo first")
    background = _as_array(value["background"])
    hole = np.zeros(background.shape[:2], dtype=bool)
    for layer in value.get("layers") or []:
        layer = _as_array(layer)
        if layer is None:
            continue
        if layer.shape[:2] != hole.shape:
            layer = cv2.resize(layer, (hole.shape[1], hole.shape[0]), interpolation=cv2.INTER_NEAREST)
        hole |= layer[..., 3] > 0
    if not hole.any():
        composite = _as_array(value.get("composite"))
        if composite is not None:
            if composite.shape[:2] != hole.shape:
                composite = cv2.resize(composite, (hole.shape[1], hole.shape[0]), interpolation=cv2.INTER_NEAREST)
            # int16: the difference of two uint8 values fits, at a quarter of int64's memory (a 50 MP photo's
            # differences take 300 MB, not 1.2 GB)
            hole = np.abs(composite[..., :3].astype(np.int16) - background[..., :3].astype(np.int16)).max(axis=2) > 8
    if size is not None and (hole.shape[1], hole.shape[0]) != tuple(size):
        hole = cv2.resize(hole.astype(np.uint8), tuple(size), interpolation=cv2.INTER_NEAREST).astype(bool)
    return hole


def background_image(value: dict[str, Any] | None) -> Image.Image:
    """The uploaded photo, without paint."""
    if not value or value.get("background") is None:
        raise UserError("upload a photo first")
    background = value["background"]
    if isinstance(background, Image.Image):
        return background
    array = np.asarray(background)
    if array.ndim == 3 and array.shape[2] == 4 and (array[..., 3] == 255).all():
        array = array[..., :3]
    return Image.fromarray(array)
