"""Inpainting faces in real photographs: 52 public photos of people (portraits, couples, group
shots; MANIFEST below) and scikit-image's astronaut, not CelebA faces and not composites. Every
face dlib's detector finds (inpaint.faces.detect, at most 4 per photo: a seeded choice, so group
shots do not dominate) gets a hole over its eyes and brows (a rounded bar) or over its mouth (a
box), drawn from the face's own 68 landmarks and padded by a fraction of its eye distance. The
hole's pixels are either blanked to flat grey (a damaged photo) or kept (a brush over an intact
photo: the engine must not copy them). Photos whose largest face is wider than 500 px are first
shrunk so that it is 200–500 px wide (a seeded draw per photo): faces from about 40 to 500 px
wide, filled at the photos' own resolution.

For OpenCV's Telea and Navier–Stokes fills and our engine without and with adapting the generator
to the photo ("ours before": FillRequest(adapt=AdaptSettings(steps=0)), the default; "ours":
FillRequest(adapt=AdaptSettings(SUGGESTED_STEPS)), i.e. --adapt-steps 40), it reports per hole
and pixels, overall and by face width (the detector's box: under 100, 100–200, over 200 px):
  PSNR hole     over the hole's pixels at photo resolution; gain: over the better of Telea and
                Navier–Stokes on the same job
  descriptor    distance of dlib's face-recognition descriptor of the filled face to the
                original's, both on 150×150 chips aligned by the original face's landmarks (so
                only the pixels differ); same person: below 0.6, dlib's threshold
  landmarks     mean distance of the covered part's landmarks (eyes and brows, or mouth) found on
                the filled photo in the original face's box to those found on the original, in
                eye distances (between the eye centres)
  re-detected   the detector finds a face on the filled photo whose box overlaps the original's
                (intersection over union at least 0.5); 100% on the original photos by construction
  face framed   (ours) the engine framed the hole by a face it found
Picture sheets per hole and pixels show the biggest faces: original, input, Telea, ours before,
ours, at the photo's own resolution (crops under 160 px doubled, over 512 px shrunk).

The photos are not part of this repository: they are read from --photos and checked against the
manifest's SHA-256; --fetch first downloads the missing ones from raw.githubusercontent.com at the
pinned commits.

  python benchmarks/real_photos.py --photos out/real-photos/photos --fetch --out out/real-photos
  python benchmarks/real_photos.py --photos ../photos --limit 20 --holes eyes --variants blank
  python benchmarks/real_photos.py --photos ../photos --quick          # 2 faces, a smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_quality import classical  # noqa: E402

from inpaint import faces  # noqa: E402
from inpaint.adapt import SUGGESTED_STEPS, AdaptSettings  # noqa: E402
from inpaint.checkpoint import Checkpoint, checkpoint_or_default, load_checkpoint  # noqa: E402
from inpaint.device import limit_cpu_threads  # noqa: E402
from inpaint.engine import FillItem, FillRequest, fill_images  # noqa: E402
from inpaint.face_metrics import face_descriptors  # noqa: E402
from inpaint.fileio import atomic_path, write_text_atomic  # noqa: E402
from inpaint.images import load_image, save_image  # noqa: E402
from inpaint.metrics import psnr  # noqa: E402
from inpaint.search import resolve_settings  # noqa: E402


@dataclass(frozen=True)
class Source:
    """A photo in a public repository at a pinned commit, saved as `<prefix>_<file name>`."""

    repo: str
    commit: str
    prefix: str
    path: str
    sha256: str

    @property
    def name(self) -> str:
        return f"{self.prefix}_{PurePosixPath(self.path).name}"

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


FACE_RECOGNITION = ("ageitgey/face_recognition", "2e2dccea9dd0ce730c8d464d0f67c6eebb40c9d1", "fr")
DLIB = ("davisking/dlib", "3d40bf5790ca9073c160cebb898800d9f33e12ab", "dlib")
FACENET = ("timesler/facenet-pytorch", "787da06156087cd6b616fe6608213722bddc30cd", "fnp")
DEEPFACE = ("serengil/deepface", "243209fd7b46ecdecf72665cc25219f6e8181f25", "df")


def sources(repo: tuple[str, str, str], folder: str, digests: dict[str, str]) -> tuple[Source, ...]:
    """The files of one repository's `folder` (paths under it: their SHA-256)."""
    return tuple(Source(*repo, f"{folder}/{path}", digest) for path, digest in digests.items())


MANIFEST = (
    *sources(
        FACE_RECOGNITION,
        "examples",
        {
            "obama.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
            "biden.jpg": "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
            "obama2.jpg": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
            "two_people.jpg": "536b29cd513fb618e4d5aa79d51a279948daa804ce359463449cce5f9dc68aa7",
            "obama-1080p.jpg": "7f4554fa0e4cceea0cb74b72cbf990c25cac681504f6477cbfacb9ad3466bae8",
            "obama-480p.jpg": "55fc3ee1c2affe97b6451af4743c200d96d94d52309ae6413e28da79dcd890c0",
            "alex-lacamoire.png": "affd4bba70510b20286c5b392e6a73ef149f4dff02105a09e19ce80d7d138707",
            "lin-manuel-miranda.png": "1f29c132951d7741431b32aaaf569d79a11bc690b04b843f12b7e306f080599a",
        },
    ),
    *sources(
        FACE_RECOGNITION,
        "examples/knn_examples",
        {
            "test/obama_and_biden.jpg": "b8781c1f734616a942ce67626e104151f7d891bc7064ae8a3db175f064357a1a",
            "test/kit_with_rose.jpg": "b8ecc2e34fe0af3101cf7b7dc0502c51d3b48d972b200462e7f5359a7c609fec",
            "train/rose_leslie/img2.jpg": "274a9c97300ed1657faa1c293979c75013f2998ee0403c79fbbc10be67b442d2",
            "train/kit_harington/john1.jpeg": "74872ce95f0af6366f2b58a7017b72debf6ed91c197fe7bf6a759c32ebe06543",
        },
    ),
    *sources(
        DLIB,
        "examples/faces",
        {
            "2007_007763.jpg": "17d9897dd55d38179f51dc18371b3f4495a606aaa2846e25a3cb6a58b3a97c89",
            "2008_001009.jpg": "2509864113a286bf245161d0317a18c38b6a6641135969847a7e59dff359c52c",
            "2008_001322.jpg": "2ea5a60f5347baab8da6eccce43b0320d63da1368d7710fb15cbff8a790bc626",
            "2008_002079.jpg": "f929bdf416d756b37eb90c119b892eba5d21041b134883e18d827bce641fb48f",
            "2008_002470.jpg": "14b543e3ac55b497aaaba9dc03a39be04c8ae670851b3f78f9f5adb08295d780",
            "2008_002506.jpg": "ede6804edf0ec005144ffe7f0f2b56bd2aa1d21beee79d29f72cb16ead19a447",
            "2008_004176.jpg": "92a075f5e1d279f009ab4809592aaf0109e429adf3266e5aa8ce2755730b41c2",
            "2008_007676.jpg": "09a0e07d6fb3b4276e73b9f6450b5c69d97d3e3b75807948caf6defd40260e6f",
            "2009_004587.jpg": "2dc5d52a5388499cf912d7d99dc9d05e4bec7651153331f40e81ae4813bb317c",
            "bald_guys.jpg": "e0c40697dbd9a07684274f71760bc5161468e926ba75ff90d48b168019402e8b",
            "Tom_Cruise_avp_2014_4.jpg": "d9bea1c716b461c15ac3bc7e256bb5efa3e04379d7131f9347e96e4baa6a37c6",
        },
    ),
    *sources(
        FACENET,
        "data",
        {
            "multiface.jpg": "433a04ac20456b02284f66f8336a4267be86a99ed3635141a477e192312b4f2f",
        },
    ),
    *sources(
        DEEPFACE,
        "tests/unit/dataset",
        {
            "img1.jpg": "897c073e8af7c297cf179fadf4f59538d1efa17722679447475463d61c72bac3",
            "img2.jpg": "b43c2b1c32553f6fd87ecfdb9eceebd07ffb0139dfe9f4a68bd8ff07b066d136",
            "img3.jpg": "99379580084327f343cbeb8f02b003618ee37871c5781ec26044178a374b3138",
            "img4.jpg": "e768a47e85ff53b637f868817e6a489185fe914dad1f780be6e3fe853d0b4e2c",
            "img10.jpg": "be61f855c9498d351c3b3c6c3c05f8671199ce84e8198c834de8eaf8f5ce140d",
            "img11.jpg": "c7973a7bc764f40b27ba929448f21a24caa4706a508c97a9317dee06580056f4",
            "img13.jpg": "008abcc9464f39cdd8d0f097b54e5d6fc064073b07cc2917f80d787351563190",
            "img14.jpg": "3d648be13e536f7f7b8c15bc14124bf580e4ad955aace23cb07350bba31ccb4a",
            "img15.jpg": "c9f50e3505e50cb8446b032c022eef578653fd8ba498b21924f598b306732636",
            "img18.jpg": "a50a7aec94ae4ad9f65c7570580d949d436a96d977abba6190b99f59cd8655a6",
            "img19.jpg": "121c9b2caf53952e90817565d02b474a0e962bfb04f435432349dbc24e9846b6",
            "img20.jpg": "1f9eb108651fc5f2fb2fc40193c3299f798e862fa259b343c53863d063020950",
            "img23.jpg": "cdf08cb1a3cb27c96e662bcc9b5b42e15cc9dc676dd5e76b3438a69ab5631a60",
            "img24.jpg": "80cdb94f1fe473d85b8c22bf7f79c72637d715070549d23028a2a80c0256507c",
            "img27.jpg": "798999e0a0a6cc26656ead780f01afbf9b2a3fd28640c69ad20b11bce4cbbac4",
            "img30.jpg": "88399f082f008097494a02b1a15ea31ededf23348f9978e39d800ca38f97c90a",
            "img31.jpg": "57967cfcd2cf121a5a21b416b46004f3a9fbb063310652bf570b3de3947b37f7",
            "img32.jpg": "f5dda7229cad593825960ff06bb93a82ec277e2eaee85638f87a2835a428c631",
            "img33.jpg": "9b9fc57883738357c1313366f0f5978a58431d57df7eb9d93bdbbd6be6c6cb45",
            "img35.jpg": "34f64c009e6c4b15439c10d28a63f50427f63b6ebdb523c33b55bce6d6b496a8",
            "img39.jpg": "069ad58967857cc2f12d36ae8b40565b46e5f5f3a22d4268ae2ec53a4cff3eed",
            "img40.jpg": "6fed99b8e515a631fb607b615594e1e4d1352cf460c21f974d57870fc4c59acd",
            "img41.jpg": "8cbe17656785b1cf626e53bff11c4b78aaec4137e2cba435583784fb0f63201e",
            "img47.jpg": "9953c4c352ba6027367e3a36f23afc44f30b33d896104c073c4bc99b9f07af3a",
            "img49.jpg": "9fbfd108597f42e7b7f04c4b0e0070b74c0dc1dba06208abed70166a30da7615",
            "img54.jpg": "eba926c903809bcb749c9cfcda9a70db4c31ed8e960f04990c5efec97ead7b54",
            "img58.jpg": "e5ff4ee133b86a3f2816ec5bd7b1ed877c951f797f4c2dfc6fea249b5ab1df93",
            "couple.jpg": "18654b7e11a237846ee6b7d641206503fa90e8b3ad6a949ecb02835ea9a561eb",
        },
    ),
)
ASTRONAUT = "skimage.data.astronaut()"  # NASA, public domain; always included, first

# Regions (left, top, right, bottom, in the stored photo's pixels) where the detector finds what is
# not a face: the mission patches on the astronaut's suit (scores 0.14 and 0.05; the lowest real face
# here scores 0.15, so no score threshold separates them).
NOT_FACES = {"astronaut.png": ((0, 300, 512, 512),)}
MAX_FACE = 500  # px: photos whose largest face is wider are shrunk ...
SHRUNK_FACE = (200.0, 500.0)  # ... so that it is this wide (uniform, seeded per photo)
FACES_PER_PHOTO = 4
HOLE_KINDS = ("eyes", "mouth")
VARIANTS = ("blank", "kept")
BLANK = 128  # the grey a blanked hole's pixels are set to
PARTS = {"eyes": np.r_[17:27, 36:48], "mouth": np.r_[48:68]}  # dlib's 68 points: brows + eyes, mouth
HOLE_PAD = {"eyes": 0.25, "mouth": 0.2}  # eye distances around the part's landmarks
MATCH_IOU = 0.5  # a face found on the filled photo is the original one from this overlap up
SAME_PERSON = 0.6  # dlib's descriptor distance threshold
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # what dlib's face-recognition network expects
WIDTH_BINS = (("<100", 0.0, 100.0), ("100–200", 100.0, 200.0), (">200", 200.0, math.inf))
CLASSICAL = {"telea": cv2.INPAINT_TELEA, "navier_stokes": cv2.INPAINT_NS}
ENGINE = {
    "ours_before": FillRequest(adapt=AdaptSettings(steps=0)),
    "ours": FillRequest(adapt=AdaptSettings(SUGGESTED_STEPS)),
}
METHODS = (*CLASSICAL, *ENGINE)
SHEET_COLUMNS = ("original", "input", "telea", "ours_before", "ours")
SHEET_MARGIN = 1.6  # the crop's side, in face widths
SHEET_MIN, SHEET_MAX = 160, 512  # px: smaller crops are doubled, larger ones shrunk to SHEET_MAX


@dataclass(frozen=True, eq=False)
class Photo:
    name: str
    source: str  # a URL or ASTRONAUT
    pixels: np.ndarray  # (H, W, 3) uint8 at the benchmark's scale
    scale: float  # benchmark pixels per stored pixel
    found: int  # faces the detector finds at the benchmark's scale


@dataclass(frozen=True, eq=False)
class Subject:
    """A face of a photo: the detector's box (x, y, w, h), and measurements on the original photo
    that fills are compared to: landmarks found in the box, the descriptor of its aligned chip."""

    photo: Photo
    index: int  # among the photo's faces, best detector score first
    score: float
    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (68, 2)
    descriptor: np.ndarray  # (128,)

    @property
    def width(self) -> float:
        return self.box[2]

    @property
    def label(self) -> str:
        return f"{self.photo.name}#{self.index}"


@dataclass(frozen=True, eq=False)
class Job:
    subject: Subject
    kind: str  # a HOLE_KINDS entry
    variant: str  # a VARIANTS entry

    @property
    def group(self) -> str:
        return f"{self.kind}/{self.variant}"


@dataclass(frozen=True, eq=False)
class Filled:
    pixels: np.ndarray
    seconds: float
    framing: str | None = None  # the engine's: how it chose the square the model saw


Record = dict[str, Any]  # one job: its face, its hole, every method's numbers (job_record)
Summary = dict[str, dict[str, dict[str, dict[str, float]]]]  # hole/pixels → width bin → method → numbers
Sheets = dict[str, list[tuple[float, str, np.ndarray]]]  # hole/pixels → (face width, caption, crops)


# Photos -------------------------------------------------------------------------------------------


def fetch(source: Source, path: Path) -> None:
    try:
        with urllib.request.urlopen(source.url, timeout=60) as response:
            data = response.read()
    except OSError as error:
        raise SystemExit(f"{source.url}: {error}") from None
    if hashlib.sha256(data).hexdigest() != source.sha256:
        raise SystemExit(f"{source.url}: not the manifest's file (SHA-256 differs)")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def check_photos(folder: Path, download: bool) -> None:
    """Every manifest photo is in `folder` with its SHA-256 (downloading missing ones if asked)."""
    missing = [s for s in MANIFEST if not (folder / s.name).is_file()]
    if missing and not download:
        raise SystemExit(f"{len(missing)} photos missing from {folder} (first {missing[0].name}): add --fetch")
    for source in tqdm(missing, desc="downloading", unit="photo", disable=not missing):
        fetch(source, folder / source.name)
    for source in MANIFEST:
        if hashlib.sha256((folder / source.name).read_bytes()).hexdigest() != source.sha256:
            raise SystemExit(f"{folder / source.name}: not the manifest's file (SHA-256 differs from {source.url})")


def stored_photos(folder: Path) -> Iterator[tuple[str, str, np.ndarray]]:
    """(name, source, RGB pixels) of the astronaut, then the manifest's photos in its order."""
    import skimage.data

    yield "astronaut.png", ASTRONAUT, np.ascontiguousarray(skimage.data.astronaut()[..., :3])
    for source in MANIFEST:
        yield source.name, source.url, np.asarray(load_image(folder / source.name))


def photo_rng(seed: int, name: str, purpose: int) -> np.random.Generator:
    """A generator for one photo and purpose, whatever the other photos and options are."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), purpose])


def at_benchmark_scale(name: str, source: str, pixels: np.ndarray, seed: int) -> tuple[Photo, list[faces.Face]]:
    """The photo, shrunk if its largest face is wider than MAX_FACE, and the faces found on it."""
    found = faces.detect(pixels)
    scale = 1.0
    if found and max(f.width for f in found) > MAX_FACE:
        scale = photo_rng(seed, name, 0).uniform(*SHRUNK_FACE) / max(f.width for f in found)
        size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        found = faces.detect(pixels)
    return Photo(name, source, pixels, scale, len(found)), found


# Faces and holes ----------------------------------------------------------------------------------


def upright_box(corners: np.ndarray) -> tuple[float, float, float, float]:
    (left, top), (right, bottom) = corners.min(0), corners.max(0)
    return float(left), float(top), float(right - left), float(bottom - top)


def eye_distance(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0)))


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The point between the eye centres, and a 2×2 matrix whose columns are the face's x axis
    (towards the face's left eye, on the photo's right) and y axis (down the face)."""
    left, right = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    x = (right - left) / np.linalg.norm(right - left)
    return (left + right) / 2, np.array([[x[0], -x[1]], [x[1], x[0]]])


def dlib_shape(landmarks: np.ndarray, box: tuple[float, float, float, float]):
    import dlib

    x, y, w, h = box
    points = dlib.points([dlib.point(int(round(px)), int(round(py))) for px, py in landmarks])
    return dlib.full_object_detection(faces.rectangle(x, y, x + w, y + h), points)


def face_chip(pixels: np.ndarray, landmarks: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The face aligned the way dlib's face-recognition network expects it, by `landmarks`."""
    import dlib

    shape = dlib_shape(landmarks, box)
    return dlib.get_face_chip(np.ascontiguousarray(pixels), shape, size=CHIP_SIZE, padding=CHIP_PADDING)


def descriptors(chips: list[np.ndarray]) -> np.ndarray:
    return face_descriptors(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2))


def is_face(photo: Photo, face: faces.Face) -> bool:
    x, y = face.centre / photo.scale
    regions = NOT_FACES.get(photo.name, ())
    return not any(left <= x < right and top <= y < bottom for left, top, right, bottom in regions)


def subjects_of(photo: Photo, found: list[faces.Face], seed: int) -> list[Subject]:
    """Up to FACES_PER_PHOTO of the faces found (a seeded choice), measured on the original photo."""
    chosen = [i for i, face in enumerate(found) if is_face(photo, face)]
    if len(chosen) > FACES_PER_PHOTO:
        chosen = sorted(photo_rng(seed, photo.name, 1).choice(chosen, FACES_PER_PHOTO, replace=False))
    if not chosen:
        return []
    boxes = [upright_box(found[i].corners) for i in chosen]
    marks = [faces.landmarks_in_box(photo.pixels, box) for box in boxes]
    codes = descriptors([face_chip(photo.pixels, m, box) for m, box in zip(marks, boxes)])
    return [Subject(photo, int(i), found[i].score, b, m, d) for i, b, m, d in zip(chosen, boxes, marks, codes)]


def part_hole(shape: tuple[int, ...], landmarks: np.ndarray, kind: str) -> np.ndarray:
    """(H, W) bool: the part's landmarks' extent along the face's axes, padded by HOLE_PAD eye
    distances; a bar with round ends for the eyes, a box for the mouth."""
    origin, axes = face_axes(landmarks)
    pad = HOLE_PAD[kind] * eye_distance(landmarks)
    local = (landmarks[PARTS[kind]] - origin) @ axes
    low, high = local.min(0) - pad, local.max(0) + pad
    corners = np.array([low, [high[0], low[1]], high, [low[0], high[1]]]) @ axes.T + origin
    left, top = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    right = min(int(np.ceil(corners[:, 0].max())) + 1, shape[1])
    bottom = min(int(np.ceil(corners[:, 1].max())) + 1, shape[0])
    ys, xs = np.mgrid[top:bottom, left:right]
    uv = (np.stack([xs, ys], -1) - origin) @ axes
    if kind == "eyes":
        radius = (high[1] - low[1]) / 2
        start = low[0] + radius  # the centres of the round ends
        end = max(start, high[0] - radius)
        along = uv[..., 0] - np.clip(uv[..., 0], start, end)
        inside = np.hypot(along, uv[..., 1] - (low[1] + high[1]) / 2) <= radius
    else:
        inside = ((uv >= low) & (uv <= high)).all(-1)
    hole = np.zeros(shape[:2], bool)
    hole[top:bottom, left:right] = inside
    return hole


def job_input(job: Job, hole: np.ndarray) -> np.ndarray:
    pixels = job.subject.photo.pixels
    if job.variant == "kept":
        return pixels
    blanked = pixels.copy()
    blanked[hole] = BLANK
    return blanked


# Filling ------------------------------------------------------------------------------------------


def classical_fill(pixels: np.ndarray, hole: np.ndarray, method: int) -> Filled:
    started = time.perf_counter()
    filled = classical(pixels, hole, method)
    return Filled(filled, time.perf_counter() - started)


def engine_fills(
    checkpoint: Checkpoint, inputs: list[np.ndarray], holes: list[np.ndarray], request: FillRequest
) -> list[Filled]:
    """One search batch; each photo is charged an equal share of its time."""
    started = time.perf_counter()
    items = [FillItem(Image.fromarray(pixels), hole) for pixels, hole in zip(inputs, holes)]
    results = fill_images(checkpoint, items, request)
    share = (time.perf_counter() - started) / len(items)
    return [Filled(np.asarray(r.image), share, r.framing) for r in results]


def warm_up(checkpoint: Checkpoint, job: Job) -> None:
    """One untimed fill: the first search pays one-off costs (allocations, thread pools)."""
    hole = part_hole(job.subject.photo.pixels.shape, job.subject.landmarks, job.kind)
    engine_fills(checkpoint, [job_input(job, hole)], [hole], FillRequest())


def fill_chunk(checkpoint: Checkpoint, inputs: list[np.ndarray], holes: list[np.ndarray]) -> dict[str, list[Filled]]:
    fills = {
        name: [classical_fill(pixels, hole, flag) for pixels, hole in zip(inputs, holes)]
        for name, flag in CLASSICAL.items()
    }
    for name, request in ENGINE.items():
        fills[name] = engine_fills(checkpoint, inputs, holes, request)
    return fills


# Scoring ------------------------------------------------------------------------------------------


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    overlap = max(width, 0.0) * max(height, 0.0)
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)


def redetected(pixels: np.ndarray, subject: Subject) -> bool:
    return any(box_iou(upright_box(f.corners), subject.box) >= MATCH_IOU for f in faces.detect(pixels))


def landmark_error(pixels: np.ndarray, subject: Subject, kind: str) -> float:
    found = faces.landmarks_in_box(pixels, subject.box)
    parts = PARTS[kind]
    distances = np.linalg.norm(found[parts] - subject.landmarks[parts], axis=1)
    return float(distances.mean() / eye_distance(subject.landmarks))


def score_fill(job: Job, hole: np.ndarray, filled: Filled, descriptor: np.ndarray) -> dict[str, Any]:
    subject = job.subject
    row = {
        "psnr_hole": psnr(subject.photo.pixels, filled.pixels, hole),
        "descriptor_distance": float(np.linalg.norm(descriptor - subject.descriptor)),
        "landmark_error": landmark_error(filled.pixels, subject, job.kind),
        "redetected": redetected(filled.pixels, subject),
        "seconds": filled.seconds,
    }
    if filled.framing is not None:
        row["framing"] = filled.framing
    return row


def job_record(job: Job, hole: np.ndarray, methods: dict[str, dict[str, Any]]) -> Record:
    """Where the job's face is, its hole, and every method's numbers with its gain over the
    better classical fill."""
    classical_best = max(methods[m]["psnr_hole"] for m in CLASSICAL)
    for row in methods.values():
        row["psnr_gain"] = row["psnr_hole"] - classical_best
    return {
        "photo": job.subject.photo.name,
        "face": job.subject.index,
        "width": job.subject.width,
        "hole": job.kind,
        "variant": job.variant,
        "hole_pixels": int(hole.sum()),
        "methods": methods,
    }


def score_chunk(jobs: list[Job], holes: list[np.ndarray], fills: dict[str, list[Filled]]) -> list[Record]:
    subjects = [job.subject for job in jobs]
    chips = [face_chip(f.pixels, s.landmarks, s.box) for m in METHODS for f, s in zip(fills[m], subjects)]
    codes = descriptors(chips).reshape(len(METHODS), len(jobs), -1)
    return [
        job_record(job, hole, {m: score_fill(job, hole, fills[m][i], codes[k, i]) for k, m in enumerate(METHODS)})
        for i, (job, hole) in enumerate(zip(jobs, holes))
    ]


def method_summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    summary = {
        "jobs": len(rows),
        "psnr_hole": float(np.mean([r["psnr_hole"] for r in rows])),
        "psnr_gain": float(np.mean([r["psnr_gain"] for r in rows])),
        "descriptor_distance": float(np.mean([r["descriptor_distance"] for r in rows])),
        "same_person": float(np.mean([r["descriptor_distance"] < SAME_PERSON for r in rows])),
        "landmark_error": float(np.mean([r["landmark_error"] for r in rows])),
        "landmark_error_median": float(np.median([r["landmark_error"] for r in rows])),
        "redetected": float(np.mean([r["redetected"] for r in rows])),
        "seconds": float(np.mean([r["seconds"] for r in rows])),
    }
    if "framing" in rows[0]:
        summary["face_framed"] = float(np.mean([r["framing"] == "face" for r in rows]))
    return summary


def summarise(records: list[Record]) -> Summary:
    """{"eyes/blank": {"all" or a WIDTH_BINS name: {method: numbers}}}."""
    summary: Summary = {}
    for group in dict.fromkeys(f"{r['hole']}/{r['variant']}" for r in records):
        in_group = [r for r in records if f"{r['hole']}/{r['variant']}" == group]
        bins = {"all": in_group}
        bins.update({name: [r for r in in_group if low <= r["width"] < high] for name, low, high in WIDTH_BINS})
        summary[group] = {
            name: {m: method_summary([r["methods"][m] for r in rows]) for m in METHODS}
            for name, rows in bins.items()
            if rows
        }
    return summary


# Picture sheets -----------------------------------------------------------------------------------


def face_crop(pixels: np.ndarray, subject: Subject) -> np.ndarray:
    """A square around the face (SHEET_MARGIN face widths, inside the photo) at the photo's
    resolution: doubled (each pixel 2×2) under SHEET_MIN pixels, shrunk to SHEET_MAX over it."""
    height, width = pixels.shape[:2]
    x, y, w, h = subject.box
    side = int(min(round(SHEET_MARGIN * w), height, width))
    left = int(np.clip(round(x + w / 2 - side / 2), 0, width - side))
    top = int(np.clip(round(y + h / 2 - side / 2), 0, height - side))
    crop = pixels[top : top + side, left : left + side]
    if side > SHEET_MAX:
        return cv2.resize(crop, (SHEET_MAX, SHEET_MAX), interpolation=cv2.INTER_AREA)
    return crop.repeat(2, 0).repeat(2, 1) if side < SHEET_MIN else crop


def with_outline(pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(hole.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.drawContours(pixels.copy(), contours, -1, (255, 0, 0), max(1, round(max(pixels.shape) / 600)))


def sheet_row(job: Job, hole: np.ndarray, shown: np.ndarray, fills: dict[str, Filled]) -> np.ndarray:
    """original, input (the hole outlined), Telea, ours before, ours: side by side."""
    images = {
        "original": job.subject.photo.pixels,
        "input": with_outline(shown, hole),
        **{m: fills[m].pixels for m in SHEET_COLUMNS[2:]},
    }
    return np.hstack([face_crop(images[c], job.subject) for c in SHEET_COLUMNS])


def caption(text: str, width: int, height: int = 16) -> np.ndarray:
    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (2, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def save_sheet(rows: list[tuple[str, np.ndarray]], path: Path) -> None:
    """Rows of crops, each under a caption; the columns named at the top."""
    width = max(row.shape[1] for _, row in rows)
    parts = [caption("   ".join(SHEET_COLUMNS) + "   (left to right)", width)]
    for label, row in rows:
        parts += [caption(label, width), np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=255)]
    save_image(Image.fromarray(np.vstack(parts)), path)


# Reporting ----------------------------------------------------------------------------------------


BY_WIDTH_COLUMNS = (
    ("jobs", "d"),
    ("psnr_hole", ".2f"),
    ("psnr_gain", "+.2f"),
    ("descriptor_distance", ".3f"),
    ("landmark_error", ".3f"),
    ("redetected", ".0%"),
)


def by_width(rows: list[dict[str, float] | None], key: str, spec: str) -> str:
    """One number per width bin, "–" where the bin is empty."""
    return " / ".join("–" if row is None else format(row[key], spec) for row in rows)


def print_tables(summary: Summary) -> None:
    print("\n| hole / pixels | method | jobs | PSNR hole | gain | descriptor | same person | landmarks | re-detected |")
    print("|---|---|---|---|---|---|---|---|---|")
    for group, bins in summary.items():
        for method, row in bins["all"].items():
            print(
                f"| {group} | {method} | {row['jobs']} | {row['psnr_hole']:.2f} | {row['psnr_gain']:+.2f} | "
                f"{row['descriptor_distance']:.3f} | {row['same_person']:.0%} | {row['landmark_error']:.3f} | "
                f"{row['redetected']:.0%} |"
            )
    framed = ", ".join(
        f"{group} {'/'.join(format(bins['all'][m]['face_framed'], '.0%') for m in ENGINE)}"
        for group, bins in summary.items()
    )
    print(f"holes the engine framed by a face it found ({' / '.join(ENGINE)}): {framed}")
    names = [name for name, _, _ in WIDTH_BINS]
    print(f"\nby face width ({' / '.join(names)} px)\n")
    print("| hole / pixels | method | jobs | PSNR hole | gain | descriptor | landmarks | re-detected |")
    print("|---|---|---|---|---|---|---|---|")
    for group, bins in summary.items():
        for method in METHODS:
            rows = [bins[name][method] if name in bins else None for name in names]
            cells = [by_width(rows, key, spec) for key, spec in BY_WIDTH_COLUMNS]
            print(f"| {group} | {method} | " + " | ".join(cells) + " |")


def print_timing(records: list[Record], jobs_per_face: int, faces_done: int, wall: float) -> None:
    per_job = {m: np.mean([r["methods"][m]["seconds"] for r in records]) for m in METHODS}
    print(
        f"\nseconds per face ({jobs_per_face} job{'s' if jobs_per_face != 1 else ''}): "
        + ", ".join(f"{m} {per_job[m] * jobs_per_face:.2f}" for m in METHODS)
        + f"; with scoring, {wall / max(faces_done, 1):.1f} s per face in all"
    )


def photo_entry(photo: Photo, not_faces: int, used: list[Subject]) -> dict[str, Any]:
    return {
        "name": photo.name,
        "source": photo.source,
        "size": [photo.pixels.shape[1], photo.pixels.shape[0]],
        "scale": photo.scale,
        "faces_found": photo.found,
        "not_faces": not_faces,
        "faces_used": [{"face": s.index, "score": s.score, "box": list(s.box)} for s in used],
    }


# Running ------------------------------------------------------------------------------------------


def find_subjects(folder: Path, seed: int, limit: int | None) -> tuple[list[Subject], list[dict[str, Any]]]:
    """The faces to fill (with `limit`, that many spread evenly over the range of face widths) and
    what was found in each photo read."""
    subjects: list[Subject] = []
    entries = []
    photos = tqdm(stored_photos(folder), total=len(MANIFEST) + 1, desc="finding faces", unit="photo")
    for name, source, pixels in photos:
        photo, found = at_benchmark_scale(name, source, pixels, seed)
        used = subjects_of(photo, found, seed)
        subjects += used
        entries.append(photo_entry(photo, sum(not is_face(photo, face) for face in found), used))
    if limit is not None and limit < len(subjects):
        by_width = sorted(subjects, key=lambda subject: subject.width)
        chosen = {id(by_width[round(i)]) for i in np.linspace(0, len(by_width) - 1, limit)}
        subjects = [subject for subject in subjects if id(subject) in chosen]
    return subjects, entries


def run_chunk(checkpoint: Checkpoint, jobs: list[Job], sheets: Sheets, shown: set[Subject]) -> list[Record]:
    """Fill and score one chunk of jobs; the faces in `shown` add a row to their picture sheet."""
    holes = [part_hole(job.subject.photo.pixels.shape, job.subject.landmarks, job.kind) for job in jobs]
    inputs = [job_input(job, hole) for job, hole in zip(jobs, holes)]
    fills = fill_chunk(checkpoint, inputs, holes)
    for i, (job, hole, given) in enumerate(zip(jobs, holes, inputs)):
        if job.subject in shown:
            row = sheet_row(job, hole, given, {m: fills[m][i] for m in METHODS})
            label = f"{job.subject.label}, {job.subject.width:.0f} px"
            sheets.setdefault(job.group, []).append((job.subject.width, label, row))
    return score_chunk(jobs, holes, fills)


def run_jobs(
    checkpoint: Checkpoint, jobs: list[Job], batch: int, sheet_faces: int, out: Path, header: dict[str, Any]
) -> list[Record]:
    """Every job, `batch` at a time; results.json rewritten after each batch, the sheets at the end."""
    shown = set(sorted({job.subject for job in jobs}, key=lambda s: -s.width)[:sheet_faces])
    sheets: Sheets = {}
    records: list[Record] = []
    with tqdm(total=len(jobs), desc="filling", unit="job") as bar:
        for start in range(0, len(jobs), batch):
            chunk = jobs[start : start + batch]
            records += run_chunk(checkpoint, chunk, sheets, shown)
            bar.update(len(chunk))
            results = {**header, "jobs": len(records), "summary": summarise(records), "records": records}
            write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    for group, rows in sheets.items():
        rows.sort(key=lambda row: -row[0])
        save_sheet([(label, row) for _, label, row in rows], out / f"sheet-{group.replace('/', '-')}.png")
    return records


def parse_list(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        values = list(dict.fromkeys(v for v in text.split(",") if v))
        unknown = [v for v in values if v not in choices]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}, comma-separated")
        return values

    return parse


def adapt_settings(text: str) -> AdaptSettings:
    """AdaptSettings from "field=value,…" (each value as the field's default's type)."""
    defaults, given = AdaptSettings(SUGGESTED_STEPS), {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in AdaptSettings.__dataclass_fields__:
            raise argparse.ArgumentTypeError(f"no adaptation setting {name!r}")
        kind = {"steps": int, "lam": float}.get(name, type(getattr(defaults, name)))
        given[name] = kind(value)
    return replace(defaults, **given)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="out/real-photos/photos", help="folder of the manifest's photos")
    parser.add_argument("--fetch", action="store_true", help="download missing photos first")
    parser.add_argument("--checkpoint")
    parser.add_argument("--limit", type=int, help="at most this many faces (default: all)")
    parser.add_argument("--holes", type=parse_list(HOLE_KINDS), default=list(HOLE_KINDS), help="eyes,mouth")
    parser.add_argument("--variants", type=parse_list(VARIANTS), default=list(VARIANTS), help="blank,kept")
    parser.add_argument("--batch", type=int, default=16, help="jobs per search batch")
    parser.add_argument("--sheet-faces", type=int, default=8, help="faces per picture sheet, biggest first")
    parser.add_argument("--seed", type=int, default=0, help="which faces of group photos, how much to shrink")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 faces, 2 on each sheet")
    parser.add_argument("--out", help="default out/real-photos (out/real-photos-quick with --quick)")
    parser.add_argument(
        "--adapt",
        type=adapt_settings,
        default=AdaptSettings(),
        help="the adaptation of 'ours' as AdaptSettings fields, e.g. steps=50,lr=1e-3 (default: the recipe, steps=40)",
    )
    args = parser.parse_args()
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.quick:
        args.limit = min(args.limit or 2, 2)
        args.sheet_faces = min(args.sheet_faces, 2)
    args.out = Path(args.out or ("out/real-photos-quick" if args.quick else "out/real-photos"))
    return args


def main() -> None:
    args = parse_args()
    ENGINE["ours"] = replace(ENGINE["ours"], adapt=args.adapt)
    if not faces.available():
        raise SystemExit(f"this benchmark needs dlib and its models: {faces.INSTALL_HINT}")
    check_photos(Path(args.photos), args.fetch)
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint))
    limit_cpu_threads()  # as `inpaint fill` does: threads that lose their core stall the others
    started = time.perf_counter()
    subjects, photos = find_subjects(Path(args.photos), args.seed, args.limit)
    if not subjects:
        raise SystemExit("the detector found no face in the photos")
    widths = [s.width for s in subjects]
    print(
        f"{len(subjects)} faces ({min(widths):.0f}–{max(widths):.0f} px wide) in {len(photos)} photos; "
        + ", ".join(f"{n} {sum(lo <= w < hi for w in widths)}" for n, lo, hi in WIDTH_BINS)
        + f"; checkpoint {checkpoint.path}; {torch.get_num_threads()} threads",
        flush=True,
    )
    settings = resolve_settings(checkpoint, FillRequest().search)
    adapt = {name: asdict(request.adapt) for name, request in ENGINE.items()}
    print(
        f"engine: {settings.init} start, {settings.iterations} iterations × {settings.restarts} starts; "
        + ", ".join(f"{name} adapt {value}" for name, value in adapt.items()),
        flush=True,
    )
    jobs = [Job(s, kind, variant) for s in subjects for kind in args.holes for variant in args.variants]
    header = {
        "faces": len(subjects),
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "search": settings.__dict__,
        "adapt": adapt,
        "holes": {"pad_eye_distances": HOLE_PAD, "blank_value": BLANK},
        "photos": photos,
    }
    warm_up(checkpoint, jobs[0])
    filling = time.perf_counter()
    records = run_jobs(checkpoint, jobs, args.batch, args.sheet_faces, args.out, header)
    print_tables(summarise(records))
    print_timing(records, len(args.holes) * len(args.variants), len(subjects), time.perf_counter() - filling)
    print(f"{time.perf_counter() - started:.0f} s in all; results.json and picture sheets in {args.out}")


if __name__ == "__main__":
    main()
