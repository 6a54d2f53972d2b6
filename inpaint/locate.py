"""Which part of a photo the model sees: the face the hole belongs to, aligned as in the training
data; for a model that is not a face model, the square its training images were framed at (the
photo's short side) over the hole; or the hole with its context; or the whole image.

A face model was trained on faces in one framing (CelebA's are aligned by the eyes). Its
checkpoint records that framing as a `FaceTemplate`: the mean positions, in model pixels, of
dlib's 68 landmarks on its training images, and the mean detector box. A face found in a photo is
mapped onto the template by the similarity (rotation, scale, shift) that best fits its landmarks,
so a tilted or off-centre face reaches the model as the model knows faces.

Finding the face the hole belongs to: the detector runs on windows centred on the hole (see
`inpaint.faces`), keeping faces whose box contains the hole's centre. The hole's own pixels may be
intact (a brush over a photo) or blank or garbage (a damaged photo): the detector runs on the
photo as given and, if that finds nothing, on a copy whose hole is smoothed over by a classical
fill (a blank bar over the eyes defeats the detector; a smooth patch much less so), with a lower
detection threshold and turned copies of the windows. Landmarks inside the hole are guesses
there, so they weigh little in the fit. A `Framer` (a small network trained for the checkpoint,
if it has one) then corrects the framing from what the model square shows, holes included.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inpaint import faces
from inpaint.errors import UserError
from inpaint.framer import Framer
from inpaint.framing import Framing, apply, fit_similarity
from inpaint.masks import hole_box, hole_points

CONTEXT_FACTOR = 2.0  # crop "context": the hole's bounding square, twice as large
SCENE_MARGIN = 1.25  # a model that is not a face model: a hole larger than the photo's short side gets this margin
HOLE_LANDMARK_WEIGHT = 0.25  # a landmark inside the hole counts this much in the fit (its pixels may be gone)
OWNED_FRACTION = 0.5  # a face owns a hole when at least this much of the hole lies in its square
HOLE_SQUARES = (1.3, 2.0, 3.0)  # framer proposals around the hole, in hole extents
FACE_PROBABILITY = 0.5  # the framer must be this sure that its square shows a face
VERIFY_SCORE = 0.0  # dlib's score a completed view must reach when no detector saw the face before
KNOWN_SHARE = 0.4  # … with at least this share of its face box on known pixels
# … and the face's outline must be the photo's: the generator's whole picture behind the fill must
# follow the photo's known pixels around the hole (outline_agreement: the correlation of their
# brightness gradients, both smoothed by OUTLINE_BLUR, over the band of known pixels OUTLINE_BAND
# of the side wide around the hole): at least OUTLINE_FLOOR with KNOWN_SHARE met, at least
# OUTLINE_AGREEMENT with a detector score of at least OUTLINE_SCORE when the hole took the face's
# middle and less of its box is known. Chosen on held-out faces 100–199 of the last 500 CelebA
# files (not the photo benchmark's 0–99) placed into photos, the centre, eyes or mouth blanked,
# against the same holes on photos without a face and beside a face. Measured on the photo
# benchmark (README, "Faces in photos"): centre-blanked faces found 92% (0% without the outline),
# eyes and mouths unchanged; holes no face owns filled as faces 4.2% (1.7% without).
OUTLINE_BAND = 8 / 64
OUTLINE_BLUR = 1 / 64  # the photo's grain is no outline
OUTLINE_FLOOR = 0.5
OUTLINE_AGREEMENT = 0.6
OUTLINE_SCORE = 0.3
# Upright framing from a detector box for a face checkpoint without a measured template: dlib's
# box on 300 CelebA training faces, side = 1.85 box widths, centre 0.23 box widths above the box's.
BOX_SIDE = 1.85
BOX_CENTRE_SHIFT = -0.23


@dataclass(frozen=True)
class FaceTemplate:
    """Where faces sit in the model's square: mean landmarks (68, 2) and mean detector box
    (left, top, right, bottom), in model pixels of a model of `size`."""

    points: np.ndarray
    box: np.ndarray
    size: int
    images: int = 0

    def to_metadata(self) -> dict:
        return {
            "landmarks": "dlib-68",
            "size": self.size,
            "images": self.images,
            "points": np.round(self.points, 3).tolist(),
            "box": np.round(self.box, 3).tolist(),
        }

    @classmethod
    def from_metadata(cls, data: dict | None) -> FaceTemplate | None:
        if not data:
            return None
        try:
            points, box = np.asarray(data["points"], np.float64), np.asarray(data["box"], np.float64)
            size = int(data["size"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"invalid face framing in the checkpoint's metadata: {str(data)[:80]}") from None
        if points.shape != (68, 2) or box.shape != (4,) or not np.isfinite(points).all() or not np.isfinite(box).all():
            raise UserError("invalid face framing in the checkpoint's metadata (needs 68 points and a box)")
        return cls(points, box, size, int(data.get("images", 0)))

    def regions(self, size: int) -> dict[str, tuple[float, float, float, float]]:
        """Boxes (left, top, right, bottom) in pixels of a model of `size` over the eyes, the mouth
        and the face's centre, from the landmarks (dlib's 68: 36–47 eyes, 48–67 mouth, 27–35 nose)."""
        points = self.at_size(size).points

        def box(indices: list[int], grow_x: float, grow_y: float) -> tuple[float, float, float, float]:
            part = points[indices]
            (left, top), (right, bottom) = part.min(0), part.max(0)
            w, h = right - left, max(bottom - top, 0.1 * size)
            return left - grow_x * w, top - grow_y * h, right + grow_x * w, bottom + grow_y * h

        return {
            "eyes": box(list(range(36, 48)), 0.2, 0.8),
            "mouth": box(list(range(48, 68)), 0.2, 0.6),
            "centre": box(list(range(27, 68)), 0.15, 0.15),
        }

    def at_size(self, size: int) -> FaceTemplate:
        """The same framing for a model of another size."""
        k = size / self.size
        return FaceTemplate((self.points + 0.5) * k - 0.5, (self.box + 0.5) * k - 0.5, size, self.images)


def measure_template(images: np.ndarray) -> FaceTemplate:
    """The template of a set of aligned training images (N, S, S, 3) uint8: the detector and the
    landmarks run on each image enlarged to at least 256 pixels (the detector wants faces of 80+)."""
    size = images.shape[1]
    upscale = max(2, -(-256 // size))
    points, boxes = [], []
    for image in images:
        big = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        found = faces.detect(big)
        if not found:
            continue
        face = max(found, key=lambda f: f.width)
        points.append((face.landmarks + 0.5) / upscale - 0.5)
        corners = (face.corners + 0.5) / upscale - 0.5
        boxes.append([corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()])
    if len(points) < max(2, len(images) // 4):
        raise UserError(f"faces were found on only {len(points)} of {len(images)} training images: not a face data set")
    return FaceTemplate(np.mean(points, 0), np.mean(boxes, 0), size, len(points))


def _landmark_weights(points: np.ndarray, hole: np.ndarray | None, margin: float) -> np.ndarray:
    weights = np.ones(len(points))
    if hole is None or not hole.any():
        return weights
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, hole.shape[0] - 1)
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, hole.shape[1] - 1)
    # Grow the hole by the margin only around the landmarks: a full-size dilation of a big photo's
    # mask would cost more than the rest of the face finding.
    reach = int(margin) + 1
    top, left = max(ys.min() - reach, 0), max(xs.min() - reach, 0)
    crop = hole[top : ys.max() + reach + 1, left : xs.max() + reach + 1].astype(np.uint8)
    grown = cv2.dilate(crop, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(margin) + 1,) * 2))
    weights[grown[ys - top, xs - left] > 0] = HOLE_LANDMARK_WEIGHT
    return weights


def face_framing(
    face: faces.Face, template: FaceTemplate | None, size: int, hole: np.ndarray | None = None, how: str = "face"
) -> Framing:
    """The framing of a found face: its landmarks fitted onto the template (landmarks in the hole
    weigh little), or, without a template, the upright square of its detector box."""
    if template is None:
        return upright_from_box(face.corners, size, how)
    template = template.at_size(size)
    weights = _landmark_weights(face.landmarks, hole, margin=0.05 * face.width)
    return Framing(fit_similarity(face.landmarks, template.points, weights), size, how)


def upright_from_box(corners: np.ndarray, size: int, how: str) -> Framing:
    width = float(np.linalg.norm(corners[1] - corners[0]))
    centre = corners.mean(0)
    side = BOX_SIDE * width
    return Framing.square(centre[0] - side / 2, centre[1] + BOX_CENTRE_SHIFT * width - side / 2, side, size, how)


def box_framing(
    rgb: np.ndarray,
    box: tuple[float, float, float, float],
    template: FaceTemplate | None,
    size: int,
    hole: np.ndarray | None = None,
    framer: Framer | None = None,
) -> Framing:
    """The framing of a face the user boxed (x, y, w, h): the template's box laid on it, turned by
    the tilt its landmarks show; with a framer, walked onto the training framing from there, as
    long as that stays on the user's box (its centre within a third of the box, its size within
    a factor 1.5)."""
    x, y, w, h = box
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    start = _box_start(rgb, corners, template, size, hole)
    if framer is None:
        return start
    [(refined, _)] = framer.refine(rgb, hole, [start])
    moved = np.linalg.norm(refined.corners().mean(0) - start.corners().mean(0))
    if moved < max(w, h) / 3 and 1 / 1.5 < refined.side() / start.side() < 1.5:
        return Framing(refined.matrix, size, "face-box")
    return start


def _box_start(
    rgb: np.ndarray, corners: np.ndarray, template: FaceTemplate | None, size: int, hole: np.ndarray | None
) -> Framing:
    x, y = corners[0]
    w, h = corners[2] - corners[0]
    if template is None or not faces.available():
        return upright_from_box(corners, size, "face-box")
    template = template.at_size(size)
    left, top, right, bottom = template.box
    box_points = np.array([[left, top], [right, top], [right, bottom], [left, bottom]])
    upright = Framing(fit_similarity(corners, box_points), size, "face-box")
    points = faces.landmarks_in_box(rgb, (x, y, w, h))
    weights = _landmark_weights(points, hole, margin=0.05 * w)
    fitted = fit_similarity(points, template.points, weights)
    # Keep the user's box (position and size) and take only the tilt from the landmarks.
    angle = np.arctan2(fitted[1, 0], fitted[0, 0])
    turn = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), -np.degrees(angle), 1.0)
    return Framing(np.vstack([turn, [0, 0, 1]])[:2] @ np.vstack([upright.matrix, [0, 0, 1]]), size, "face-box")


def _owns(framing: Framing, points: np.ndarray) -> bool:
    """Whether at least OWNED_FRACTION of the hole (its hole_points) lies inside the framing's square."""
    model = apply(framing.matrix, points)
    inside = (model >= -0.5).all(1) & (model <= framing.size - 0.5).all(1)
    return bool(inside.mean() >= OWNED_FRACTION)


def repaired(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The photo with its hole smoothed over by Telea's fill, computed on the hole's region only."""
    from inpaint.blend import classical_fill

    return classical_fill(rgb, hole)


def hole_proposals(hole: np.ndarray, size: int) -> list[Framing]:
    """Upright squares around the hole for the framer to start from, when no detector saw the
    face: 1.3, 2 and 3 times the hole's extent, centred on it, a fifth higher and a fifth lower."""
    left, top, right, bottom = hole_box(hole)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    extent = max(right - left, bottom - top, 8)
    squares = [
        Framing.square(cx - k * extent / 2, cy - k * extent / 2 - shift * k * extent, k * extent, size, "face")
        for k in HOLE_SQUARES
        for shift in (0.0, 0.2, -0.2)
    ]
    return [Framing(square.matrix, size, "face", confirmed=False) for square in squares]


def _detected(
    rgb: np.ndarray, hole: np.ndarray, template: FaceTemplate | None, size: int, thorough: bool
) -> list[Framing]:
    """Framings of the detected faces whose square owns the hole: on the photo as given first;
    when that finds none (and `thorough`), on the repaired photo with a lower threshold, then on
    turned copies of the windows."""
    attempts = [(rgb, 0.0, (0.0,), "photo")]
    if thorough:
        fixed = repaired(rgb, hole)
        attempts += [(fixed, -0.6, (0.0,), "repaired"), (fixed, -0.6, (-faces.TILT, faces.TILT), "repaired")]
    points = hole_points(hole)
    for pixels, threshold, tilts, source in attempts:
        found = [
            face_framing(face, template, size, hole) for face in faces.detect(pixels, hole, threshold, source, tilts)
        ]
        found = [f for f in found if _owns(f, points)]
        if found:
            return found
    return []


def find_face_framing(
    rgb: np.ndarray, hole: np.ndarray, template: FaceTemplate | None, size: int, framer: Framer | None = None
) -> Framing | None:
    """The aligned framing of the face the hole belongs to, or None when no face owns the hole.

    With a framer: the detector's faces (on the photo as given) and squares around the hole are
    all walked onto the training framing, and the one the framer is surest shows a face wins (if
    it is sure enough). A square that came from around the hole rather than from a detected face
    is not `confirmed`: the framer alone cannot tell a face from a cat, so such a framing must
    pass `shows_face` once the hole is filled. Without a framer: the first face the detector finds
    that owns the hole, trying harder (a repaired photo, turned windows) when the photo as given
    shows none."""
    if framer is None:
        found = _detected(rgb, hole, template, size, thorough=True)
        return found[0] if found else None
    detected = _detected(rgb, hole, template, size, thorough=False) if faces.available() else []
    proposals = detected + hole_proposals(hole, size)
    points = hole_points(hole)
    refined = [(framing, p) for framing, p in framer.refine(rgb, hole, proposals) if _owns(framing, points)]
    if not refined:
        return None
    framing, probability = max(refined, key=lambda pair: pair[1])
    seen = any(_same_place(framing, face) for face in detected)
    if probability < FACE_PROBABILITY and not seen:
        return None
    return Framing(framing.matrix, size, "face", confirmed=seen)


def _same_place(a: Framing, b: Framing) -> bool:
    """Two framings of one face: centres within a fifth of a side, sides within a third."""
    close = np.linalg.norm(a.corners().mean(0) - b.corners().mean(0)) < 0.2 * b.side()
    return bool(close and 0.75 < a.side() / b.side() < 1.33)


def shows_face(
    views: np.ndarray, known: np.ndarray, template: FaceTemplate | None, drawn: np.ndarray | None = None
) -> bool:
    """Whether any of the completed model views (N, S, S, 3) uint8 (the hole filled) shows a face
    where the framing puts one, and one the photo itself supports: dlib's detector, on each view
    enlarged to 256 pixels, must find a face box near the template's, at a score of at least
    VERIFY_SCORE, with at least KNOWN_SHARE of that box on known pixels (known: (S, S) bool); and
    with `drawn` (N, S, S, 3) uint8, the generator's whole picture behind each view, the face's
    outline must be the photo's (outline_agreement at least OUTLINE_FLOOR), or, less of the box
    being known, clearly so (at least OUTLINE_AGREEMENT, the detector's score at least
    OUTLINE_SCORE): a face whose whole middle is gone is seen from its outline. A fill that paints
    a whole face into a hole in a lawn draws a face the detector sees, but the lawn does not
    support it: most of the face's box is in the hole, and the lawn around it is no face's outline."""
    if not faces.available():
        return True  # nothing to check with
    size = views.shape[1]
    k = 256 / size
    known_big = cv2.resize(known.astype(np.float32), (256, 256), interpolation=cv2.INTER_NEAREST)
    if template is not None:
        left, top, right, bottom = (template.at_size(size).box + 0.5) * k - 0.5
    else:
        left, top, right, bottom = 0.25 * 256, 0.25 * 256, 0.75 * 256, 0.75 * 256
    width, centre = right - left, np.array([(left + right) / 2, (top + bottom) / 2])
    for index, view in enumerate(views):
        big = cv2.resize(np.ascontiguousarray(view), (256, 256), interpolation=cv2.INTER_CUBIC)
        rectangles, scores = faces.MODELS.detect(big, VERIFY_SCORE)
        outline = None  # computed once per view, when a face box needs it
        for rect, score in zip(rectangles, scores):
            middle = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
            if not (np.linalg.norm(middle - centre) < 0.35 * width and 0.6 < rect.width() / width < 1.6):
                continue
            inside = known_big[max(rect.top(), 0) : max(rect.bottom(), 0), max(rect.left(), 0) : max(rect.right(), 0)]
            supported = bool(inside.size) and inside.mean() >= KNOWN_SHARE
            if drawn is None:
                if supported:
                    return True
                continue
            if outline is None:
                outline = outline_agreement(view, drawn[index], known)
            if (supported and outline >= OUTLINE_FLOOR) or (outline >= OUTLINE_AGREEMENT and score >= OUTLINE_SCORE):
                return True
    return False


def outline_agreement(photo: np.ndarray, drawn: np.ndarray, known: np.ndarray) -> float:
    """How well a drawn picture (S, S, C) follows the photo's view (S, S, C) on the known pixels
    around the hole (known: (S, S) bool): the correlation of their brightness gradients (both
    smoothed by OUTLINE_BLUR) over the band of known pixels within OUTLINE_BAND of the side of the
    hole (the pixels touching the hole, and the band's outer edge, left out: their gradients see
    the seam). 1: the same edges; about 0 for a face drawn against a lawn or a wall."""
    size = known.shape[0]
    reach = max(1, round(OUTLINE_BAND * size))
    hole = (~known).astype(np.uint8)
    band = cv2.dilate(hole, np.ones((2 * reach + 1,) * 2, np.uint8)).astype(bool) & known
    band = cv2.erode(band.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not band.any():
        return 0.0
    sigma, weight = OUTLINE_BLUR * size, known.astype(np.float64)
    gradients = []
    for picture, seen in ((photo, weight), (drawn, np.ones_like(weight))):
        grey = np.asarray(picture, np.float64).reshape(size, size, -1).mean(2)
        # The photo smoothed from its known pixels alone: whatever fills its hole takes no part.
        grey = cv2.GaussianBlur(grey * seen, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(seen, (0, 0), sigma), 1e-6)
        gradients.append(np.stack([cv2.Sobel(grey, cv2.CV_64F, 1, 0)[band], cv2.Sobel(grey, cv2.CV_64F, 0, 1)[band]]))
    a, b = gradients
    if min((a**2).mean(), (b**2).mean()) < 1e-6:  # no edges at all (a flat wall): nothing to agree on
        return 0.0
    return float((a * b).sum() / np.sqrt((a**2).sum() * (b**2).sum()))


def photo_framing(
    rgb: np.ndarray, template: FaceTemplate | None, size: int, use_faces: bool, framer: Framer | None = None
) -> Framing:
    """The square showing a whole photo's subject (for projection): the most face-like face,
    aligned, for a face model; else the centred square. A small square image (at most twice the model
    size) is taken as already framed, as the engine does."""
    height, width = rgb.shape[:2]
    if height == width and width <= 2 * size:
        return Framing.square(0, 0, width, size, "whole")
    if use_faces and faces.available():
        found = faces.detect(rgb)
        if found:
            framing = face_framing(found[0], template, size)  # best score first
            if framer is not None:
                [(framing, _)] = framer.refine(rgb, None, [framing])
            return framing
    side = min(height, width)
    return Framing.square((width - side) / 2, (height - side) / 2, side, size, "centre")


def context_framing(hole: np.ndarray, size: int) -> Framing:
    """The hole's bounding square with as much context again around it, kept inside the photo."""
    return _square_over_hole(hole, size, CONTEXT_FACTOR, 16, "context")


def scene_framing(hole: np.ndarray, size: int) -> Framing:
    """A model that is not a face model, in a photo larger than it: the square at the scale its
    training images were framed at. Training images are resized by their short side and
    centre-cropped, so a training image's square is its short side: the photo's short side here,
    slid over the hole (kept inside the photo), or larger where the hole with a margin is larger.
    A flower model sees a flower photo as it saw flowers, not one petal magnified around a small
    hole, as the hole's own bounding square ("context") would show it."""
    return _square_over_hole(hole, size, SCENE_MARGIN, min(hole.shape), "scene")


def _square_over_hole(hole: np.ndarray, size: int, factor: float, least: int, how: str) -> Framing:
    """The square of side max(`factor` × the hole's extent, `least`), at most the photo's longer
    side, centred on the hole and slid to stay inside the photo where it fits."""
    height, width = hole.shape
    left, top, right, bottom = hole_box(hole)
    right, bottom = right + 1, bottom + 1
    side = max(round(max(right - left, bottom - top) * factor), least)
    side = min(side, max(height, width))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    box_left = float(np.clip(round(cx - side / 2), min(0, width - side), max(0, width - side)))
    box_top = float(np.clip(round(cy - side / 2), min(0, height - side), max(0, height - side)))
    return Framing.square(box_left, box_top, side, size, how)


def whole_framing(shape: tuple[int, int], size: int) -> Framing:
    """The whole image: its longer side fits the square, centred."""
    height, width = shape
    side = max(height, width)
    return Framing.square((width - side) / 2, (height - side) / 2, side, size, "whole")


def parse_face_box(text: str, source: str = "face box") -> tuple[float, float, float, float]:
    """X,Y,W,H in photo pixels (commas or spaces between), as a user writes a face's box."""
    parts = text.replace(",", " ").split()
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)) or values[2] <= 0 or values[3] <= 0:
        raise UserError(
            f"{source}: a face box is X,Y,W,H in pixels with a positive width and height, not {text.strip()[:60]!r}"
        )
    return values  # type: ignore[return-value]
