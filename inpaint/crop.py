"""Which square of a photo the model sees: a face in CelebA framing, or the hole plus context.

The face model was trained on aligned CelebA crops. OpenCV's bundled Haar cascade finds faces in
any photo; the square that reproduces the training framing was measured on 385 CelebA training
faces (aligned image, centre square = the model's view; Haar box found on it):
side = 1.68 × box width, centred on the box horizontally and 0.143 box widths above its centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CELEBA_SIDE_PER_FACE_WIDTH = 1.68
CELEBA_CENTRE_Y_SHIFT_PER_FACE_WIDTH = -0.143
CONTEXT_FACTOR = 2.0  # without a face: the hole's bounding square, twice as large
MIN_FACE_PIXELS = 24


@dataclass(frozen=True)
class Box:
    """A square region: top-left corner and side, in image pixels (may extend past the image)."""

    left: int
    top: int
    side: int

    @property
    def right(self) -> int:
        return self.left + self.side

    @property
    def bottom(self) -> int:
        return self.top + self.side

    def contains(self, left: int, top: int, right: int, bottom: int) -> bool:
        return self.left <= left and self.top <= top and self.right >= right and self.bottom >= bottom


_cascade = None


def detect_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Frontal faces (x, y, w, h) in an (H, W, 3) uint8 image, largest first."""
    global _cascade
    if _cascade is None:
        _cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    scale = 1.0
    if max(gray.shape) > 1024:  # detection on a downscaled copy: same boxes, much faster
        scale = 1024 / max(gray.shape)
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    elif max(gray.shape) < 256:  # small crops (e.g. 64×64 faces) are too small for the detector
        scale = 256 / max(gray.shape)
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    found = _cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE_PIXELS, MIN_FACE_PIXELS))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def _hole_bounds(hole: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(hole)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def face_box(face: tuple[int, int, int, int]) -> Box:
    x, y, w, h = face
    side = round(CELEBA_SIDE_PER_FACE_WIDTH * w)
    cx, cy = x + w / 2, y + h / 2 + CELEBA_CENTRE_Y_SHIFT_PER_FACE_WIDTH * w
    return Box(round(cx - side / 2), round(cy - side / 2), side)


def choose_box(rgb: np.ndarray, hole: np.ndarray, use_faces: bool, model_size: int) -> tuple[Box, str]:
    """The square to inpaint in, and how it was chosen ("whole", "face" or "context").

    A small square image (at most twice the model size) is taken as already framed and used
    whole; otherwise, for a face model, the largest face whose framing square covers the hole's
    bounding box; otherwise the hole's bounding square with as much context again around it.
    """
    height, width = hole.shape
    left, top, right, bottom = _hole_bounds(hole)
    if height == width and width <= 2 * model_size:
        return Box(0, 0, width), "whole"
    if use_faces:
        for face in detect_faces(rgb):
            box = face_box(face)
            if box.contains(left, top, right, bottom):
                return box, "face"
    side = max(round(max(right - left, bottom - top) * CONTEXT_FACTOR), 16)
    side = min(side, max(height, width))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    box_left = int(np.clip(round(cx - side / 2), min(0, width - side), max(0, width - side)))
    box_top = int(np.clip(round(cy - side / 2), min(0, height - side), max(0, height - side)))
    return Box(box_left, box_top, side), "context"


def extract(array: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels; parts outside the image are filled by reflection."""
    height, width = array.shape[:2]
    pad_top, pad_left = max(0, -box.top), max(0, -box.left)
    pad_bottom, pad_right = max(0, box.bottom - height), max(0, box.right - width)
    if pad_top or pad_left or pad_bottom or pad_right:
        pads = ((pad_top, pad_bottom), (pad_left, pad_right)) + ((0, 0),) * (array.ndim - 2)
        mode = "reflect" if min(height, width) > max(pads[0] + pads[1]) else "edge"
        array = np.pad(array, pads, mode=mode)
        return array[box.top + pad_top: box.bottom + pad_top, box.left + pad_left: box.right + pad_left]
    return array[box.top: box.bottom, box.left: box.right]


def frame_photo(rgb: np.ndarray, use_faces: bool) -> tuple[Box, str]:
    """The square showing a whole photo's subject: the largest face in its training framing for a
    face model, else the centred square."""
    height, width = rgb.shape[:2]
    if use_faces and height != width:
        faces = detect_faces(rgb)
        if faces:
            return face_box(faces[0]), "face"
    side = min(height, width)
    return Box((width - side) // 2, (height - side) // 2, side), "centre"
