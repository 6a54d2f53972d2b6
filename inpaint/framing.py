"""Where the model's square lies in a photo, and moving pixels between the two.

A `Framing` is a similarity map (rotation, scale, shift) from photo pixels to model pixels: an
upright square (a crop) is the special case without rotation, an aligned face the general one.
Coordinates follow OpenCV: a pixel's centre is at its integer index.

`to_model` warps the photo (and its hole) onto the model's S×S grid without aliasing: the photo
is first shrunk by pixel area to about four photo pixels per model pixel, warped at 4×S, and
averaged down to S. A model pixel counts as a hole if any photo pixel under it is one.
`from_model` warps a model-size fill back onto one rectangle of the photo (the hole's bounding
box), so the cost of finishing a fill never depends on the photo's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SUPERSAMPLE = 4  # photo pixels per model pixel when warping down (each axis)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ∘ b for 2×3 affine maps (apply b first)."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def resize_map(fx: float, fy: float | None = None) -> np.ndarray:
    """The 2×3 map of a pixel grid resized fx (and fy) times: pixel edges, not centres, line up."""
    fy = fx if fy is None else fy
    return np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 2×3 map."""
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def fit_similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, shift) that maps `source` points onto
    `target` points with the least weighted squared error (Umeyama's closed form, no reflection)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    w = np.ones(len(source)) if weights is None else np.asarray(weights, np.float64)
    if w.sum() <= 0 or (w > 0).sum() < 2:
        raise ValueError("a similarity needs at least two weighted points")
    w = w / w.sum()
    mean_s, mean_t = w @ source, w @ target
    s, t = source - mean_s, target - mean_t
    spread = (w * (s**2).sum(1)).sum()
    if spread <= 1e-12:
        raise ValueError("the source points coincide")
    cos = (w * (s[:, 0] * t[:, 0] + s[:, 1] * t[:, 1])).sum() / spread
    sin = (w * (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0])).sum() / spread
    matrix = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
    matrix[:, 2] = mean_t - matrix[:, :2] @ mean_s
    return matrix


@dataclass(frozen=True)
class Framing:
    """The model's S×S square in a photo, as a similarity map photo → model pixels."""

    matrix: np.ndarray  # 2×3
    size: int  # the model's image size S
    how: str  # face, face-box, context, whole, …
    confirmed: bool = True  # False: a face framing no detector saw yet (see inpaint.locate.shows_face)

    @classmethod
    def square(cls, left: float, top: float, side: float, size: int, how: str) -> Framing:
        """An upright square of the photo: [left, left + side) × [top, top + side) → [0, S)²."""
        return cls(compose(resize_map(size / side), np.array([[1.0, 0, -left], [0, 1.0, -top]])), size, how)

    def resized(self, size: int) -> Framing:
        """The same square for a model of another size."""
        return Framing(compose(resize_map(size / self.size), self.matrix), size, self.how, self.confirmed)

    @property
    def scale(self) -> float:
        """Model pixels per photo pixel."""
        return float(np.hypot(*self.matrix[:, 0]))

    @property
    def angle(self) -> float:
        """The photo's rotation in the model's view, degrees (positive: the face leaned clockwise)."""
        return float(np.degrees(np.arctan2(self.matrix[1, 0], self.matrix[0, 0])))

    @property
    def inverse(self) -> np.ndarray:
        """2×3 map model → photo pixels."""
        return cv2.invertAffineTransform(self.matrix)

    def corners(self) -> np.ndarray:
        """The square's four corners in the photo (clockwise from top-left), (4, 2)."""
        s = self.size - 0.5
        return apply(self.inverse, np.array([[-0.5, -0.5], [s, -0.5], [s, s], [-0.5, s]]))

    def photo_bounds(self) -> tuple[int, int, int, int]:
        """Integer bounding box (left, top, right, bottom) of the square in photo pixels."""
        corners = self.corners()
        left, top = np.floor(corners.min(0)).astype(int)
        right, bottom = np.ceil(corners.max(0)).astype(int) + 1
        return int(left), int(top), int(right), int(bottom)

    def side(self) -> float:
        """The square's side in photo pixels."""
        return self.size / self.scale

    def describe(self) -> dict:
        """JSON-friendly facts: how it was chosen, its corners, side and angle in the photo."""
        return {
            "how": self.how,
            "corners": np.round(self.corners(), 1).tolist(),
            "side": round(self.side(), 1),
            "angle": round(self.angle, 1),
        }


def _region(array: np.ndarray, bounds: tuple[int, int, int, int], border: int) -> np.ndarray:
    """array[top:bottom, left:right], with the part outside the image filled by `border`."""
    left, top, right, bottom = bounds
    height, width = array.shape[:2]
    inside = array[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    pads = (max(-top, 0), max(bottom - height, 0), max(-left, 0), max(right - width, 0))
    if not any(pads):
        return inside
    if inside.size == 0:
        return np.zeros((bottom - top, right - left) + array.shape[2:], array.dtype)
    if border == cv2.BORDER_REFLECT_101 and min(inside.shape[:2]) < 2:
        border = cv2.BORDER_REPLICATE
    # Reflection of a strip narrower than the pad is done repeatedly by OpenCV's border modes.
    return cv2.copyMakeBorder(inside, *pads, borderType=border, value=0)


def _shrunk_region(
    array: np.ndarray, bounds: tuple[int, int, int, int], border: int, shrink: float
) -> tuple[np.ndarray, np.ndarray]:
    """The photo's rectangle `bounds` shrunk by area to `shrink` of its size (so a warp from it
    never skips photo pixels), its part outside the photo filled by `border`; and the 2×3 map from
    photo to that array. The photo's part is shrunk before the padding is added: a square much
    larger than a thin photo costs the photo's pixels, not the square's."""
    left, top, right, bottom = bounds
    height, width = array.shape[:2]
    inner = (max(left, 0), max(top, 0), min(right, width), min(bottom, height))
    if shrink >= 1.0 or inner[2] <= inner[0] or inner[3] <= inner[1]:
        return _region(array, bounds, border), np.array([[1.0, 0, -left], [0, 1.0, -top]])
    inside = array[inner[1] : inner[3], inner[0] : inner[2]]
    new_size = (max(1, round(inside.shape[1] * shrink)), max(1, round(inside.shape[0] * shrink)))
    fx, fy = new_size[0] / inside.shape[1], new_size[1] / inside.shape[0]
    small = cv2.resize(inside, new_size, interpolation=cv2.INTER_AREA)  # in the photo's dtype: no big float copy
    small = small.reshape(small.shape[:2] + array.shape[2:])
    pads = [round((inner[0] - left) * fx), round((inner[1] - top) * fy)]
    padded = _region(
        small, (-pads[0], -pads[1], round((right - inner[0]) * fx), round((bottom - inner[1]) * fy)), border
    )
    return padded, np.array([[fx, 0, pads[0] - inner[0] * fx], [0, fy, pads[1] - inner[1] * fy]])


def to_model(array: np.ndarray, framing: Framing, border: int = cv2.BORDER_REFLECT_101) -> np.ndarray:
    """The photo's pixels (H, W[, C], any dtype) seen through the framing: float32 (S, S[, C]).

    Parts of the square outside the photo are filled by `border` (reflection by default). A
    framing that is a whole-pixel shift at the photo's own scale (a photo already at the model's
    size) gives the photo's pixels exactly: resampling would blur them, and smear each hole pixel
    into its neighbours (80% random missing pixels would leave no known pixel at all)."""
    size = framing.size
    m = framing.matrix
    if np.allclose(m[:, :2], np.eye(2), atol=1e-9) and np.allclose(m[:, 2], np.round(m[:, 2]), atol=1e-6):
        left, top = (-np.round(m[:, 2])).astype(int)
        region = _region(array, (int(left), int(top), int(left) + size, int(top) + size), border)
        return region.astype(np.float32).reshape((size, size) + array.shape[2:])
    region, matrix = _shrunk_region(array, framing.photo_bounds(), border, min(1.0, SUPERSAMPLE * framing.scale))
    # region → model ×SUPERSAMPLE: model = framing ∘ region⁻¹, then scaled up by the supersampling.
    to_fine = compose(resize_map(SUPERSAMPLE), compose(framing.matrix, cv2.invertAffineTransform(matrix)))
    fine = cv2.warpAffine(
        region.astype(np.float32),
        to_fine,
        (size * SUPERSAMPLE, size * SUPERSAMPLE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    out = cv2.resize(fine, (size, size), interpolation=cv2.INTER_AREA)
    return out.reshape((size, size) + array.shape[2:])


def hole_to_model(hole: np.ndarray, framing: Framing) -> np.ndarray:
    """(S, S) bool: model pixels that any hole pixel reaches. Outside the photo is not a hole."""
    # Only the square's part of the mask is converted to float: a big photo's whole mask would
    # cost more than the warp.
    left, top, right, bottom = framing.photo_bounds()
    left, top = max(left, 0), max(top, 0)
    crop = hole[top : max(bottom, top), left : max(right, left)].astype(np.float32)  # the photo's part; to_model pads
    if crop.size == 0:
        return np.zeros((framing.size, framing.size), bool)
    shifted = Framing(compose(framing.matrix, np.array([[1.0, 0, left], [0, 1.0, top]])), framing.size, framing.how)
    coverage = to_model(crop, shifted, border=cv2.BORDER_CONSTANT)
    return coverage > 1e-3


def from_model(fill: np.ndarray, framing: Framing, rows: slice, cols: slice) -> np.ndarray:
    """A model-size fill (S, S[, C] float) warped back onto the photo rectangle rows × cols:
    float32 (h, w[, C]), bicubic."""
    matrix = compose(framing.matrix, np.array([[1.0, 0, cols.start], [0, 1.0, rows.start]]))  # region → model
    size = (cols.stop - cols.start, rows.stop - rows.start)
    out = cv2.warpAffine(
        fill.astype(np.float32),
        matrix,
        size,
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape((size[1], size[0]) + fill.shape[2:])


def draw(
    rgb: np.ndarray, framing: Framing | None, hole: np.ndarray | None = None, longest: int = 1024
) -> tuple[np.ndarray, float]:
    """A picture of what the model sees: the photo (at most `longest` pixels long), the hole
    tinted, the model's square outlined with its top edge marked. Returns (picture, scale of the
    picture relative to the photo)."""
    scale = min(1.0, longest / max(rgb.shape[:2]))
    picture = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb.copy()
    if hole is not None and hole.any():
        small = cv2.resize(hole.astype(np.uint8), picture.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        picture[small] = (0.5 * picture[small] + [128, 0, 128]).astype(np.uint8)
    if framing is not None:
        corners = (framing.corners() + 0.5) * scale - 0.5
        thickness = max(2, round(max(picture.shape[:2]) / 300))
        cv2.polylines(
            picture, [np.round(corners * 16).astype(np.int32)], True, (0, 255, 0), thickness, cv2.LINE_AA, shift=4
        )
        cv2.line(
            picture,
            *[tuple(np.round(c * 16).astype(int)) for c in corners[:2]],
            (255, 255, 0),
            thickness,
            cv2.LINE_AA,
            shift=4,
        )
    return picture, scale
