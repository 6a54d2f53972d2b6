"""How the model's 64×64 fill is enlarged back to the photo, and whether another enlargement does
better, measured on real faces.

Each face found in the photos (dlib's detector, `inpaint.faces.detect`) is framed as the engine
frames it (`inpaint.locate.face_framing` with the checkpoint's template) and seen through that
framing at the model's size (`inpaint.framing.to_model`): the face exactly as the model sees it,
i.e. the best fill the model could draw. That 64×64 view is enlarged back onto the face's
detector box with each method, and compared with the photo over that box:

  PSNR       against the photo (RGB, 0…255)
  sharpness  variance of the Laplacian of the brightness, enlarged ÷ photo (1: as sharp)

each without and with the grain the engine adds (`inpaint.texture.photo_detail`, the face's box
taken as the hole and the photo around it as known), by face width (detector box: under 100,
100–200, over 200 pixels), and the time per face of each method (the enlargement alone; the
learned filters include their training).

Methods: the engine's own (`from_model`'s bicubic warp + `restore_edges`), plain bilinear,
bicubic and Lanczos warps, bicubic + unsharp masks of other amounts, two edge-aware enlargements
(a self-guided filter's detail boosted; OpenCV's domain-transform detailEnhance), and two
per-photo upscalers trained on the photo's own pixels around the face (ZSSR's idea, kept linear so
that training takes milliseconds): the photo around the face is seen at the model's scale
through a framing three times as wide, enlarged bicubically, and a 7×7 filter from that
enlargement to the photo is fitted by least squares (one filter; or one per gradient angle and
strength, as RAISR does), then applied to the face's bicubic enlargement.

  python benchmarks/enlargement.py --photos out/real-photos/photos   # real_photos.py --fetch puts them there
  python benchmarks/enlargement.py --limit 10 --json out/enlargement.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The learned filters' small least squares: one BLAS thread (many threads only fight on a busy
# machine, and make the times meaningless).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from inpaint import faces  # noqa: E402
from inpaint.checkpoint import checkpoint_or_default, read_metadata  # noqa: E402
from inpaint.framing import Framing, compose, from_model, to_model  # noqa: E402
from inpaint.images import find_images, load_image  # noqa: E402
from inpaint.locate import FaceTemplate, face_framing  # noqa: E402
from inpaint.metrics import psnr  # noqa: E402
from inpaint.texture import photo_detail, restore_edges  # noqa: E402

SIZE = 64
BUCKETS = ((0, 100, "<100"), (100, 200, "100-200"), (200, 10**9, ">200"))
TAPS = 7  # learned filters' side
ANGLES, STRENGTHS = 8, 3  # RAISR-style buckets of the learned filters


@dataclass
class Face:
    """One face of one photo: the photo, its framing, the model's view, the box compared."""

    name: str
    rgb: np.ndarray
    framing: Framing
    view: np.ndarray  # (64, 64, 3) float32
    rows: slice
    cols: slice
    width: float

    @property
    def upscale(self) -> float:
        return 1 / self.framing.scale


def warp(view: np.ndarray, framing: Framing, rows: slice, cols: slice, flags: int) -> np.ndarray:
    """`from_model` with another interpolation."""
    matrix = compose(framing.matrix, np.array([[1.0, 0, cols.start], [0, 1.0, rows.start]]))
    size = (cols.stop - cols.start, rows.stop - rows.start)
    return cv2.warpAffine(view, matrix, size, flags=flags | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def unsharp(image: np.ndarray, upscale: float, amount: float, scale: float = 0.5) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), scale * upscale)
    return image + amount * (image - blurred)


def guided_detail(image: np.ndarray, upscale: float, amount: float) -> np.ndarray:
    """Self-guided filter (He et al.) per channel, radius one model pixel, ε = 10² grey levels²;
    what it smooths away (texture, not strong edges) boosted by `amount`: edge-aware sharpening."""
    radius = max(1, round(upscale))

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x, (2 * radius + 1, 2 * radius + 1))

    mean = box(image)
    var = box(image * image) - mean**2
    a = var / (var + 100.0)
    b = mean - a * mean
    base = box(a) * image + box(b)
    return image + amount * (image - base)


def detail_enhance(image: np.ndarray, upscale: float) -> np.ndarray:
    """OpenCV's edge-preserving detail enhancement (domain transform), at the enlargement's scale."""
    out = cv2.detailEnhance(np.clip(image, 0, 255).astype(np.uint8), sigma_s=2 * upscale, sigma_r=0.15)
    return out.astype(np.float32)


def _luma(image: np.ndarray) -> np.ndarray:
    return image.mean(-1, dtype=np.float32)


def _patches(luma: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(n, TAPS² + 1): the TAPS×TAPS neighbourhoods of the flat indices `where`, and a 1."""
    half = TAPS // 2
    padded = cv2.copyMakeBorder(luma, half, half, half, half, cv2.BORDER_REFLECT_101)
    ys, xs = np.unravel_index(where, luma.shape)
    offsets = np.arange(TAPS)
    rows = ys[:, None, None] + offsets[None, :, None]
    cols = xs[:, None, None] + offsets[None, None, :]
    return np.concatenate([padded[rows, cols].reshape(len(where), -1), np.ones((len(where), 1), np.float32)], 1)


def _buckets(luma: np.ndarray, strength_edges: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RAISR-style bucket of each pixel: gradient angle (ANGLES) × strength (STRENGTHS, by the
    training pixels' quantiles)."""
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1)
    xx, yy, xy = (cv2.GaussianBlur(v, (0, 0), 1.5) for v in (gx * gx, gy * gy, gx * gy))
    angle = (0.5 * np.arctan2(2 * xy, xx - yy)) % np.pi
    strength = np.sqrt(xx + yy)
    if strength_edges is None:
        strength_edges = np.quantile(strength, np.linspace(0, 1, STRENGTHS + 1)[1:-1])
    bucket = np.minimum((angle / np.pi * ANGLES).astype(int), ANGLES - 1) * STRENGTHS + np.searchsorted(
        strength_edges, strength
    )
    return bucket, strength_edges


class LearnedFilter:
    """A per-photo upscaler: TAPS×TAPS filters from a bicubic enlargement's brightness to the
    photo's (the residual), fitted on the photo's own pixels around the face (ridge least
    squares); `hashed`: one filter per RAISR bucket."""

    def __init__(self, face: Face, hashed: bool):
        self.hashed = hashed
        wide = Framing(
            compose(np.array([[1.0, 0, SIZE], [0, 1.0, SIZE]]), face.framing.matrix), 3 * SIZE, face.framing.how
        )
        left, top, right, bottom = wide.photo_bounds()
        height, width = face.rgb.shape[:2]
        rows, cols = slice(max(top, 0), min(bottom, height)), slice(max(left, 0), min(right, width))
        low = to_model(face.rgb, wide)
        up = _luma(warp(low, wide, rows, cols, cv2.INTER_CUBIC))
        target = _luma(face.rgb[rows, cols].astype(np.float32))
        # Training pixels: inside the wide square, away from the face's box (the "hole").
        ys, xs = np.mgrid[rows, cols]
        inside_face = (
            (ys >= face.rows.start - TAPS)
            & (ys < face.rows.stop + TAPS)
            & (xs >= face.cols.start - TAPS)
            & (xs < face.cols.stop + TAPS)
        )
        model = (
            np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float64) @ wide.matrix[:, :2].T + wide.matrix[:, 2]
        ).reshape(ys.shape + (2,))
        in_square = (model > 2).all(-1) & (model < 3 * SIZE - 3).all(-1)
        train = np.flatnonzero(in_square & ~inside_face)
        train = train[:: max(1, len(train) // 60000)]
        x = _patches(up, train)
        y = (target.reshape(-1) - up.reshape(-1))[train]
        self.edges = None
        if hashed:
            bucket, self.edges = _buckets(up)
            bucket = bucket.reshape(-1)[train]
            self.filters = np.stack([self._fit(x[bucket == b], y[bucket == b]) for b in range(ANGLES * STRENGTHS)])
        else:
            self.filters = self._fit(x, y)[None]

    @staticmethod
    def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if len(x) < 4 * x.shape[1]:
            return np.zeros(x.shape[1], np.float32)
        x, y = x.astype(np.float64), y.astype(np.float64)
        gram = x.T @ x + 1e2 * len(x) ** 0.5 * np.eye(x.shape[1])  # a little ridge: few samples per bucket
        return np.linalg.solve(gram, x.T @ y).astype(np.float32)

    def __call__(self, enlarged: np.ndarray) -> np.ndarray:
        luma = _luma(enlarged)
        residual = np.zeros_like(luma)
        responses = [
            cv2.filter2D(luma, -1, f[:-1].reshape(TAPS, TAPS), borderType=cv2.BORDER_REFLECT_101) + f[-1]
            for f in self.filters
        ]
        if self.hashed:
            bucket, _ = _buckets(luma, self.edges)
            for b, response in enumerate(responses):
                residual[bucket == b] = response[bucket == b]
        else:
            residual = responses[0]
        return enlarged + residual[..., None]


Method = Callable[[Face], np.ndarray]


def methods() -> dict[str, Method]:
    def cubic(face: Face) -> np.ndarray:
        return warp(face.view, face.framing, face.rows, face.cols, cv2.INTER_CUBIC)

    def engine(face: Face) -> np.ndarray:
        return restore_edges(from_model(face.view, face.framing, face.rows, face.cols), face.upscale)

    def before(face: Face) -> np.ndarray:  # restore_edges before the amounts were measured here
        return unsharp(cubic(face), face.upscale, 0.5 if face.upscale >= 1.5 else 0.0)

    found: dict[str, Method] = {
        "engine (from_model + restore_edges)": engine,
        "before: bicubic + unsharp 0.5 from 1.5×": before,
        "bilinear": lambda f: warp(f.view, f.framing, f.rows, f.cols, cv2.INTER_LINEAR),
        "bicubic": cubic,
        "lanczos": lambda f: warp(f.view, f.framing, f.rows, f.cols, cv2.INTER_LANCZOS4),
    }
    for amount in (0.25, 0.5, 0.75, 1.0, 1.5):
        found[f"bicubic + unsharp {amount}"] = lambda f, a=amount: unsharp(cubic(f), f.upscale, a)
    found["bicubic + unsharp 0.5 at σ = u"] = lambda f: unsharp(cubic(f), f.upscale, 0.5, 1.0)
    found["edge-aware: guided detail ×1"] = lambda f: guided_detail(cubic(f), f.upscale, 1.0)
    found["edge-aware: cv2.detailEnhance"] = lambda f: detail_enhance(cubic(f), f.upscale)
    found["per-photo linear filter (ZSSR-lite)"] = lambda f: LearnedFilter(f, hashed=False)(cubic(f))
    found["per-photo hashed filters (RAISR-lite)"] = lambda f: LearnedFilter(f, hashed=True)(cubic(f))
    return found


def find_faces(name: str, rgb: np.ndarray, template: FaceTemplate, min_score: float) -> list[Face]:
    found = []
    height, width = rgb.shape[:2]
    for face in faces.detect(rgb):
        if face.score < min_score:  # the detector's weak guesses are often not faces
            continue
        left, top = np.floor(face.corners.min(0)).astype(int)
        right, bottom = np.ceil(face.corners.max(0)).astype(int)
        rows, cols = slice(max(top, 0), min(bottom, height)), slice(max(left, 0), min(right, width))
        if rows.stop - rows.start < 16 or cols.stop - cols.start < 16:
            continue
        framing = face_framing(face, template, SIZE)
        found.append(Face(name, rgb, framing, to_model(rgb, framing), rows, cols, face.width))
    return found


def grain_for(face: Face, enlarged: np.ndarray) -> np.ndarray:
    """The engine's grain over the face's box (the hole), measured on the photo around it."""
    margin = int(max(8 * face.upscale, 8))
    height, width = face.rgb.shape[:2]
    rows = slice(max(face.rows.start - margin, 0), min(face.rows.stop + margin, height))
    cols = slice(max(face.cols.start - margin, 0), min(face.cols.stop + margin, width))
    hole = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
    inner = (slice(face.rows.start - rows.start, face.rows.stop - rows.start),
             slice(face.cols.start - cols.start, face.cols.stop - cols.start))  # fmt: skip
    hole[inner] = True
    guide = np.zeros(hole.shape + (3,), np.float32)
    guide[inner] = enlarged
    return photo_detail(face.rgb[rows, cols], ~hole, hole, face.upscale, guide, seed=0)[inner]


UPSCALES = ((0, 1.5), (1.5, 2.5), (2.5, 4), (4, 8), (8, 16), (16, 100))


def _by_upscale(rows: list[dict]) -> list[tuple[tuple[float, float], int]]:
    return [((low, high), sum(low <= r["upscale"] < high for r in rows)) for low, high in UPSCALES]


def sharpness(image: np.ndarray) -> float:
    lap = cv2.Laplacian(_luma(image.astype(np.float32)), cv2.CV_32F)
    return float(lap[2:-2, 2:-2].var())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", help="folder of photos with faces (never committed)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos from the folder")
    parser.add_argument("--no-astronaut", action="store_true", help="leave out skimage's astronaut")
    parser.add_argument("--checkpoint", help="checkpoint whose face template frames the faces")
    parser.add_argument("--min-score", type=float, default=0.5, help="dlib detector score a face needs")
    parser.add_argument("--json", help="write every face's numbers here")
    args = parser.parse_args()

    metadata = read_metadata(checkpoint_or_default(args.checkpoint))
    template = FaceTemplate.from_metadata(metadata.get("framing"))
    sources: list[tuple[str, Callable[[], np.ndarray]]] = []
    if not args.no_astronaut:
        from skimage import data

        sources.append(("astronaut", data.astronaut))
    if args.photos:
        paths, _ = find_images(args.photos)
        paths = sorted(paths)[: args.limit or None]
        sources += [(Path(p).name, lambda p=p: np.asarray(load_image(p, 3))) for p in paths]

    candidates = methods()
    rows = []
    for name, load in sources:
        rgb = load()
        for face in find_faces(name, rgb, template, args.min_score):
            truth = rgb[face.rows, face.cols].astype(np.float32)
            base_sharpness = max(sharpness(truth), 1e-6)
            record = {"photo": name, "width": round(face.width, 1), "upscale": round(face.upscale, 2)}
            # One grain per face (measured around the face's box, steered by the bicubic
            # enlargement's colours), added to every method's enlargement.
            start = time.perf_counter()
            grain = grain_for(face, warp(face.view, face.framing, face.rows, face.cols, cv2.INTER_CUBIC))
            record["grain_seconds"] = time.perf_counter() - start
            record["grain_sd"] = float(grain.std())
            for label, method in candidates.items():
                start = time.perf_counter()
                enlarged = method(face).astype(np.float32)
                seconds = time.perf_counter() - start
                grained = enlarged + grain
                record[label] = {
                    "psnr": psnr(np.clip(enlarged, 0, 255), truth),
                    "sharpness": sharpness(enlarged) / base_sharpness,
                    "psnr_grain": psnr(np.clip(grained, 0, 255), truth),
                    "sharpness_grain": sharpness(grained) / base_sharpness,
                    "seconds": seconds,
                }
            rows.append(record)
            print(f"{name}: face {face.width:.0f} px wide, enlarged {face.upscale:.1f}×", flush=True)
    if not rows:
        raise SystemExit("no faces found")

    print(f"\n{len(rows)} faces (times may be slowed by other work on the machine)\n")
    counts = [sum(low <= r["width"] < high for r in rows) for low, high, _ in BUCKETS]
    titles = [f"{name} px (n={n})" for (_, _, name), n in zip(BUCKETS, counts)]
    print(f"{'method':46s}" + "".join(f"{t:>32s}" for t in titles) + f"{'ms/face':>9s}")
    print(f"{'':46s}" + f"{'PSNR sharp | +grain: PSNR sharp':>32s}" * len(BUCKETS))
    for label in candidates:
        line = f"{label:46s}"
        for low, high, _ in BUCKETS:
            chosen = [r[label] for r in rows if low <= r["width"] < high]
            if not chosen:
                line += f"{'-':>32s}"
                continue
            mean = {k: float(np.mean([c[k] for c in chosen])) for k in chosen[0]}
            line += (
                f"{mean['psnr']:>10.2f}{mean['sharpness']:>6.2f} |"
                f"{mean['psnr_grain']:>9.2f}{mean['sharpness_grain']:>6.2f}"
            )
        line += f"{1000 * np.mean([r[label]['seconds'] for r in rows]):>9.1f}"
        print(line)
    print("\nPSNR gain over plain bicubic (dB), by enlargement (photo pixels per model pixel):\n")
    print(f"{'method':46s}" + "".join(f"{f'{low}-{high}× (n={n})':>16s}" for (low, high), n in _by_upscale(rows)))
    for label in candidates:
        gains = []
        for (low, high), _ in _by_upscale(rows):
            chosen = [r[label]["psnr"] - r["bicubic"]["psnr"] for r in rows if low <= r["upscale"] < high]
            gains.append(f"{np.mean(chosen):>16.2f}" if chosen else f"{'-':>16s}")
        print(f"{label:46s}" + "".join(gains))
    grain_ms = 1000 * np.mean([r["grain_seconds"] for r in rows])
    print(f"\ngrain (measure + synthesise over the whole face's box): {grain_ms:.1f} ms/face")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
