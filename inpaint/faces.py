"""Finding faces and their landmarks in a photo: dlib's HOG face detector and its 68-point shape
predictor (the `dlib-bin` and `face_recognition_models` packages, both installed offline from the
package index).

The detector looks for upright-ish frontal faces of at least ~80 pixels, so it is run on
windows scaled to its liking: the whole photo brought to at most `PHOTO_SIDE` pixels (large
faces), and, when a hole is given, windows centred on the hole at growing sizes, each scaled to
`WINDOW_SIDE` (faces from about half the hole's size up; small faces are upscaled). Its cost is
therefore bounded whatever the photo's size. Faces tilted beyond what its rotated filters cover
are found on copies of a window turned by ±`TILT` degrees.

Both networks are loaded once per process, behind a lock (the app calls in from several threads).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inpaint.errors import UserError
from inpaint.framing import compose, resize_map
from inpaint.masks import hole_box

PHOTO_SIDE = 800  # the whole photo is searched at this size at most
WINDOW_SIDE = 320  # each hole-centred window is searched at this size
WINDOW_FACTORS = (2.5, 5.0, 10.0)  # window sides, in hole sizes
TILT = 18.0  # degrees: extra passes on turned copies when nothing is found upright
LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "pip install dlib-bin face_recognition_models"


@dataclass(frozen=True)
class Face:
    """A detected face: its box as a polygon in photo pixels (a box found on a turned copy is
    turned back), the detector's score, and its 68 landmarks in photo pixels."""

    corners: np.ndarray  # (4, 2)
    score: float
    landmarks: np.ndarray  # (68, 2)
    source: str  # "photo" or "repaired": which pixels it was found on

    @property
    def centre(self) -> np.ndarray:
        return self.corners.mean(0)

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.corners[1] - self.corners[0]))


class _Models:
    """dlib's detector and landmark predictor, loaded on first use and shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detector = None
        self._predictor = None

    def available(self) -> bool:
        return (
            importlib.util.find_spec("dlib") is not None
            and importlib.util.find_spec("face_recognition_models") is not None
        )

    def load(self):
        with self._lock:
            if self._detector is None:
                try:
                    import dlib
                except ImportError:
                    raise UserError(f"finding faces needs dlib: {INSTALL_HINT}") from None
                spec = importlib.util.find_spec("face_recognition_models")
                if spec is None or spec.origin is None:
                    raise UserError(f"finding faces needs dlib's landmark model: {INSTALL_HINT}")
                # The models package's own __init__ needs pkg_resources (gone from new setuptools),
                # so its data folder is found without importing it.
                path = Path(spec.origin).parent / "models" / LANDMARKS_FILE
                self._predictor = dlib.shape_predictor(str(path))
                self._detector = dlib.get_frontal_face_detector()
            return self._detector, self._predictor

    def detect(self, rgb: np.ndarray, threshold: float):
        """(rectangles, scores) on an (H, W, 3) uint8 image. dlib's detector keeps internal
        buffers, so calls are serialised."""
        detector, _ = self.load()
        with self._lock:
            rectangles, scores, _ = detector.run(np.ascontiguousarray(rgb), 0, threshold)
        return rectangles, scores

    def landmarks(self, rgb: np.ndarray, rectangle) -> np.ndarray:
        _, predictor = self.load()
        with self._lock:
            shape = predictor(np.ascontiguousarray(rgb), rectangle)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


MODELS = _Models()


def available() -> bool:
    """Whether dlib and its landmark model are installed."""
    return MODELS.available()


def rectangle(left: float, top: float, right: float, bottom: float):
    import dlib

    return dlib.rectangle(int(round(left)), int(round(top)), int(round(right)), int(round(bottom)))


def landmarks_in_box(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The 68 landmarks of the face in `box` = (x, y, w, h) of an (H, W, 3) uint8 photo. The
    predictor runs on a crop scaled so the face is about 200 pixels wide (big photos stay cheap)."""
    x, y, w, h = box
    margin = 0.5 * max(w, h)
    left, top = int(max(0, x - margin)), int(max(0, y - margin))
    right, bottom = int(min(rgb.shape[1], x + w + margin)), int(min(rgb.shape[0], y + h + margin))
    scale = min(1.0, 200.0 / max(w, 1.0))
    crop = rgb[top:bottom, left:right]
    if scale < 1.0:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    inner = rectangle((x - left) * scale, (y - top) * scale, (x - left + w) * scale, (y - top + h) * scale)
    points = MODELS.landmarks(crop, inner)
    return (points + 0.5) / scale - 0.5 + np.array([left, top])


def _search_windows(shape: tuple[int, int], hole: np.ndarray | None) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Windows to run the detector on: (2×3 map photo → window, window size). The whole photo
    brought to PHOTO_SIDE pixels (enlarged at most 4×), then squares centred on the hole, each
    scaled to WINDOW_SIDE, as long as they see the photo more sharply than the whole-photo pass."""
    height, width = shape
    long_side = max(height, width)
    has_hole = hole is not None and bool(hole.any())
    scale = min(PHOTO_SIDE / long_side, 4.0)
    windows = [(resize_map(scale), (max(1, round(width * scale)), max(1, round(height * scale))))]
    if has_hole:
        left, top, right, bottom = hole_box(hole)
        cx, cy = (left + right) / 2, (top + bottom) / 2
        extent = max(right - left + 1, bottom - top + 1, 16)
        for factor in WINDOW_FACTORS:
            side = extent * factor
            s = WINDOW_SIDE / side
            if s <= 1.1 * scale:
                break  # the whole-photo pass already sees faces this large, as sharply
            centre = (WINDOW_SIDE - 1) / 2
            windows.append((np.array([[s, 0, centre - cx * s], [0, s, centre - cy * s]]), (WINDOW_SIDE, WINDOW_SIDE)))
    return windows


def _warp(rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    scale = float(np.hypot(*matrix[:, 0]))
    if scale < 0.75:  # shrinking: average first so the detector sees a clean picture
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / rgb.shape[1], small.shape[0] / rgb.shape[0]
        matrix = compose(matrix, cv2.invertAffineTransform(resize_map(fx, fy)))
        rgb = small
    return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def detect(
    rgb: np.ndarray,
    hole: np.ndarray | None = None,
    threshold: float = 0.0,
    source: str = "photo",
    tilts: tuple[float, ...] = (0.0,),
) -> list[Face]:
    """Faces in an (H, W, 3) uint8 photo, with landmarks, best score first. With a hole, only
    faces whose box contains the hole's centre are kept (and the search is centred on it)."""
    height, width = rgb.shape[:2]
    if hole is not None and hole.any():
        left, top, right, bottom = hole_box(hole)
        centre = np.array([(left + right) / 2, (top + bottom) / 2])
    else:
        centre = None
    faces: list[Face] = []
    for matrix, size in _search_windows((height, width), hole):
        for tilt in tilts:
            turned = matrix
            if tilt:
                turn = cv2.getRotationMatrix2D(((size[0] - 1) / 2, (size[1] - 1) / 2), tilt, 1.0)
                turned = compose(turn, matrix)
            window = _warp(rgb, turned, size)
            back = cv2.invertAffineTransform(turned)
            rectangles, scores = MODELS.detect(window, threshold)
            for rect, score in zip(rectangles, scores):
                corners = np.array(
                    [
                        [rect.left(), rect.top()],
                        [rect.right(), rect.top()],
                        [rect.right(), rect.bottom()],
                        [rect.left(), rect.bottom()],
                    ],
                    np.float64,
                )
                corners = corners @ back[:, :2].T + back[:, 2]
                if centre is not None and not _inside(corners, centre):
                    continue
                same = [i for i, f in enumerate(faces) if _same_face(corners, f.corners)]
                if same and faces[same[0]].score >= score:
                    continue
                points = MODELS.landmarks(window, rect) @ back[:, :2].T + back[:, 2]
                face = Face(corners, float(score), points, source)
                if same:
                    faces[same[0]] = face
                else:
                    faces.append(face)
    return sorted(faces, key=lambda f: -f.score)


def _inside(polygon: np.ndarray, point: np.ndarray) -> bool:
    return cv2.pointPolygonTest(polygon.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two boxes of one face: centres closer than a third of the smaller box, similar sizes."""
    size_a, size_b = np.linalg.norm(a[1] - a[0]), np.linalg.norm(b[1] - b[0])
    close = np.linalg.norm(a.mean(0) - b.mean(0)) < min(size_a, size_b) / 3
    return bool(close and 0.6 < size_a / max(size_b, 1e-9) < 1.66)
