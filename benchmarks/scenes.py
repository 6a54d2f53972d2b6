"""Synthetic photos for benchmarks: an aligned CelebA face placed into a larger frame.

The face (an 89×109 `img_align_celeba` file, halved) is scaled 2–4×, rotated up to ±15°, and
composited with a feathered oval over a background photo from scikit-image's data (never one
with a face in it), at a random position. Holes over the eyes, the mouth or the face's centre are
drawn in the face's own coordinates and warped with it, so they sit where those features are
whatever the pose. Every scene knows its true transform to the model's framing (the centre
square of the aligned file, as the trainer crops it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inpaint.framing import compose

# Holes in the 89×109 aligned file's coordinates (left, top, right, bottom): the eyes sit near
# y = 56, x = 31…58, the mouth near y = 84 (dlib's landmarks on the held-out faces).
HOLES = {"eyes": (20, 46, 69, 67), "mouth": (27, 75, 62, 94), "centre": (22, 38, 67, 86)}
# Eye centres and mouth centre in the same coordinates: where a correct framing must put them.
KEY_POINTS = np.array([[34.7, 56.5], [54.0, 56.5], [44.5, 84.5]])
BACKGROUNDS = (
    "chelsea",
    "coffee",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "coins",
    "moon",
)


def background_photos() -> list[np.ndarray]:
    """scikit-image's bundled photos without faces, as RGB uint8."""
    import skimage.data

    photos = []
    for name in BACKGROUNDS:
        image = getattr(skimage.data, name)()
        image = np.dstack([image] * 3) if image.ndim == 2 else image[..., :3]
        photos.append(np.ascontiguousarray(image.astype(np.uint8)))
    return photos


def model_framing(face_shape: tuple[int, int], model_size: int) -> np.ndarray:
    """The 2×3 map from the aligned file to the model's square: short side to the model size,
    centre crop (what the trainer does)."""
    height, width = face_shape
    scale = model_size / min(height, width)
    return np.array(
        [[scale, 0, -(width - min(height, width)) / 2 * scale], [0, scale, -(height - min(height, width)) / 2 * scale]]
    )


@dataclass
class Scene:
    photo: np.ndarray  # (H, W, 3) uint8, intact
    holes: dict[str, np.ndarray]  # kind → (H, W) bool
    face_to_photo: np.ndarray  # 2×3: aligned-file coordinates → photo
    angle: float
    scale: float

    def true_framing(self, model_size: int, face_shape: tuple[int, int]) -> np.ndarray:
        """2×3 photo → model square map of the true pose."""
        return compose(model_framing(face_shape, model_size), cv2.invertAffineTransform(self.face_to_photo))

    def key_points(self) -> np.ndarray:
        """Eye centres and mouth centre in the photo."""
        return KEY_POINTS @ self.face_to_photo[:, :2].T + self.face_to_photo[:, 2]


def make_scene(
    face: np.ndarray,
    background: np.ndarray,
    rng: np.random.Generator,
    scale_range=(2.0, 4.0),
    max_angle: float = 15.0,
    with_face: bool = True,
) -> Scene:
    """A photo with `face` placed in it, and its holes. `with_face=False` leaves the face out (the
    same frame, the same holes where its features would be, the same draws from `rng`): holes of
    a face's sizes on a photo without any face."""
    height, width = face.shape[:2]
    scale, angle = float(rng.uniform(*scale_range)), float(rng.uniform(-max_angle, max_angle))
    extent = scale * np.hypot(height, width)  # the rotated face fits in this square
    long_side = int(rng.uniform(1.3, 2.6) * extent)
    aspect = rng.choice([4 / 3, 3 / 4, 1.0, 16 / 9])
    frame_w, frame_h = (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)
    frame_w, frame_h = max(frame_w, int(extent) + 2), max(frame_h, int(extent) + 2)
    # The background covers the frame (scaled up, random crop).
    cover = max(frame_w / background.shape[1], frame_h / background.shape[0]) * rng.uniform(1.0, 1.5)
    big = cv2.resize(background, None, fx=cover, fy=cover, interpolation=cv2.INTER_CUBIC)
    y0 = int(rng.integers(0, big.shape[0] - frame_h + 1))
    x0 = int(rng.integers(0, big.shape[1] - frame_w + 1))
    photo = big[y0 : y0 + frame_h, x0 : x0 + frame_w].astype(np.float32)
    # Face centre anywhere the rotated face stays inside the frame.
    cx = rng.uniform(extent / 2, frame_w - extent / 2)
    cy = rng.uniform(extent / 2, frame_h - extent / 2)
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    rotation[:, 2] += np.array([cx, cy]) - np.array([width / 2, height / 2])
    # A feathered oval: face, hair and a little of the file's own background.
    alpha = np.zeros((height, width), np.float32)
    cv2.ellipse(
        alpha, (int(width / 2), int(height / 2) + 2), (int(width * 0.46), int(height * 0.47)), 0, 0, 360, 1.0, -1
    )
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3)
    size = (frame_w, frame_h)
    warped = cv2.warpAffine(face.astype(np.float32), rotation, size, flags=cv2.INTER_CUBIC)
    weight = cv2.warpAffine(alpha, rotation, size, flags=cv2.INTER_LINEAR)[..., None]
    if not with_face:
        weight = np.zeros_like(weight)
    photo = np.clip(photo * (1 - weight) + warped * weight, 0, 255).round().astype(np.uint8)
    holes = {}
    for kind, (left, top, right, bottom) in HOLES.items():
        corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)
        polygon = corners @ rotation[:, :2].T + rotation[:, 2]
        hole = np.zeros((frame_h, frame_w), np.uint8)
        cv2.fillPoly(hole, [np.round(polygon).astype(np.int32)], 1)
        holes[kind] = hole.astype(bool)
    return Scene(photo, holes, rotation, angle, scale)


# Where a hole may sit off the face, in the aligned file's coordinates: the hair above the forehead
# (an eyes-sized bar over the top of the head, inside the oval), and beside the face (off the oval).
HAIR = (20, 10, 69, 31)
OVAL = ((44.0, 56.0), (40.0, 51.0))  # the composited oval's centre and half-axes (make_scene), before feathering


def off_face_hole(scene: Scene, kind: str, where: str, rng: np.random.Generator, tries: int = 200) -> np.ndarray | None:
    """A hole on a photo with a face that the face does not own: "hair" (HAIR, over the top of the
    head) or "beside" (the shape of HOLES[kind], turned with the face, moved off the face's oval
    onto the background, wholly inside the frame; None when no such place fits)."""
    frame_h, frame_w = scene.photo.shape[:2]
    left, top, right, bottom = HAIR if where == "hair" else HOLES[kind]
    corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)
    if where == "beside":
        (cx, cy), (ax, ay) = OVAL
        box_centre = corners.mean(0)
        for _ in range(tries):
            # A random direction and distance from the oval's centre, far enough for the whole
            # box to clear the oval (checked on its corners and edge midpoints).
            angle = rng.uniform(0, 2 * np.pi)
            reach = rng.uniform(1.0, 2.5)
            target = np.array([cx + reach * 1.4 * ax * np.cos(angle), cy + reach * 1.2 * ay * np.sin(angle)])
            moved = corners - box_centre + target
            edges = np.vstack([moved, (moved + np.roll(moved, 1, axis=0)) / 2])
            if (
                ((edges[:, 0] - cx) / ax) ** 2 + ((edges[:, 1] - cy) / ay) ** 2 < 1.25**2
            ).any():  # clear of the feathering too
                continue
            polygon = moved @ scene.face_to_photo[:, :2].T + scene.face_to_photo[:, 2]
            if polygon.min() < 0 or (polygon[:, 0] > frame_w - 1).any() or (polygon[:, 1] > frame_h - 1).any():
                continue
            corners = moved
            break
        else:
            return None
    polygon = corners @ scene.face_to_photo[:, :2].T + scene.face_to_photo[:, 2]
    hole = np.zeros((frame_h, frame_w), np.uint8)
    cv2.fillPoly(hole, [np.round(polygon).astype(np.int32)], 1)
    return hole.astype(bool)


def framing_error(estimated: np.ndarray, truth: np.ndarray, scene: Scene) -> float:
    """How far an estimated photo → model map puts the eyes and mouth from where the true one
    does: the largest distance in model pixels, as a fraction of the true eye distance."""
    points = scene.key_points()
    true_model = points @ truth[:, :2].T + truth[:, 2]
    est_model = points @ estimated[:, :2].T + estimated[:, 2]
    eye_distance = np.linalg.norm(true_model[0] - true_model[1])
    return float(np.linalg.norm(true_model - est_model, axis=1).max() / eye_distance)
