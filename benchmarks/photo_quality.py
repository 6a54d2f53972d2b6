"""Inpainting faces in photos: held-out faces placed into larger photos (scaled 2–4×, turned up to
±15°, anywhere in the frame, over varied backgrounds; see benchmarks/scenes.py), with a hole over
the eyes, the mouth or the face's centre, whose pixels are either blanked (a damaged photo) or
kept (a brush over an intact photo: they may guide where the face is, never what the fill is).

For our engine (default settings), today's classical fills (OpenCV's Telea and Navier–Stokes) and
the earlier Haar-cascade pipeline (an upright CelebA-framed box around the face OpenCV's Haar
cascade finds, the hole's context square when it finds none; run where OpenCV still has it), it
reports:
  found      photos where the method framed a face (ours: aligned; Haar: its box)
  aligned    of all photos, those whose framing puts the eyes and mouth within 0.3 eye distances
             of where the true pose puts them (benchmarks/scenes.py framing_error)
  PSNR hole  at photo resolution, over the hole's pixels
  Fréchet    face-descriptor distance of the results, warped back to the model's framing by the
             true pose, to the same photos before damage
  sharpness  variance of the Laplacian inside the hole / in the ring of known pixels around it
and the same engine on the same faces aligned at 64×64 with the same holes (the figure the photo
pipeline should come close to). A picture sheet shows 12 photos: input, ours, Telea.

  python benchmarks/photo_quality.py --data ../shared/data/celeba --last 500 --limit 100 --out out/photo-quality
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenes import HOLES, background_photos, framing_error, make_scene  # noqa: E402

from inpaint import faces  # noqa: E402
from inpaint.checkpoint import checkpoint_or_default, load_checkpoint  # noqa: E402
from inpaint.engine import FillItem, FillRequest, face_template, fill_images  # noqa: E402
from inpaint.face_metrics import face_descriptors, frechet_distance  # noqa: E402
from inpaint.fileio import write_text_atomic  # noqa: E402
from inpaint.framing import Framing, compose, hole_to_model, to_model  # noqa: E402
from inpaint.images import find_images, load_image  # noqa: E402
from inpaint.locate import context_framing, find_face_framing  # noqa: E402
from inpaint.metrics import psnr  # noqa: E402
from inpaint.search import SearchSettings, resolve_settings  # noqa: E402

ALIGNED_WITHIN = 0.3  # eye distances


def classical(image: np.ndarray, hole: np.ndarray, method: int) -> np.ndarray:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    filled = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, 3, method)
    return cv2.cvtColor(filled, cv2.COLOR_BGR2RGB)


def haar_view(photo: np.ndarray, hole: np.ndarray, size: int) -> Framing:
    """The earlier pipeline's square: the largest Haar face whose CelebA-framed box (1.68 × its
    width, 0.143 widths above its centre) covers the hole; else the hole's context square."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, 1024 / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    found = cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    ys, xs = np.nonzero(hole)
    for x, y, w, h in sorted((tuple(v / scale for v in box) for box in found), key=lambda b: -b[2] * b[3]):
        side = 1.68 * w
        left, top = x + w / 2 - side / 2, y + h / 2 - 0.143 * w - side / 2
        if left <= xs.min() and top <= ys.min() and left + side >= xs.max() + 1 and top + side >= ys.max() + 1:
            return Framing.square(left, top, side, size, "face")
    return context_framing(hole, size)


def sharpness_ratio(image: np.ndarray, hole: np.ndarray) -> float:
    """Variance of the Laplacian inside the hole over that in the ring of known pixels around it."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    laplacian = cv2.Laplacian(gray, cv2.CV_64F, ksize=3)
    ys, xs = np.nonzero(hole)
    width = max(4, int(0.15 * max(np.ptp(ys), np.ptp(xs))))
    inner = cv2.erode(hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(
        bool
    )  # the Laplacian at the seam is neither
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((2 * width + 1,) * 2, np.uint8)).astype(bool)
    ring &= ~cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return float(laplacian[inner].var() / max(laplacian[ring].var(), 1e-9))


def face_crop(image: np.ndarray, truth: np.ndarray, size: int, cell: int = 192, zoom_out: float = 1.4) -> np.ndarray:
    """The true model square with some surroundings (`zoom_out` times as wide), `cell` pixels."""
    centre = (cell - 1) / 2
    wider = cv2.getRotationMatrix2D((centre, centre), 0, 1 / zoom_out)
    view = Framing(compose(wider, Framing(truth, size, "truth").resized(cell).matrix), cell, "sheet")
    return np.clip(to_model(image, view), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--data", required=True, help="folder of aligned CelebA faces (89×109 img_align_celeba halves)")
    parser.add_argument(
        "--last", type=int, default=500, help="the held-out faces: the last N files by name (default 500)"
    )
    parser.add_argument("--limit", type=int, default=100, help="photos to build (default 100)")
    parser.add_argument("--holes", nargs="+", choices=list(HOLES), default=list(HOLES))
    parser.add_argument("--variants", nargs="+", choices=("blank", "kept"), default=["blank", "kept"])
    parser.add_argument("--batch", type=int, default=16, help="photos per search batch")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--restarts", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-haar", action="store_true", help="skip the earlier Haar pipeline")
    parser.add_argument("--out", default="out/photo-quality")
    args = parser.parse_args()

    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint))
    size = checkpoint.config.image_size
    settings = SearchSettings(
        **{k: v for k, v in (("iterations", args.iterations), ("restarts", args.restarts)) if v is not None}
    )
    files, _ = find_images(args.data)
    files = files[-args.last :][: args.limit]
    rng = np.random.default_rng(args.seed)
    backgrounds = background_photos()
    scenes, portraits = [], []
    for path in files:
        portrait = np.asarray(load_image(path))
        portraits.append(portrait)
        scenes.append(make_scene(portrait, backgrounds[rng.integers(len(backgrounds))], rng))
    truths = [scene.true_framing(size, portrait.shape[:2]) for scene, portrait in zip(scenes, portraits)]
    haar = not args.no_haar and hasattr(cv2, "CascadeClassifier")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = resolve_settings(checkpoint, settings)
    print(
        f"{len(scenes)} photos from the last {args.last} files of {args.data}; "
        f"{settings.init} start, {settings.iterations} iterations × "
        f"{settings.restarts} starts; checkpoint {checkpoint.path}; {torch.get_num_threads()} threads",
        flush=True,
    )
    scoring = faces.available()  # the Fréchet column needs dlib's face descriptor

    def descriptors(images: list[np.ndarray], views: list[np.ndarray]) -> np.ndarray:
        warped = np.stack(
            [
                np.clip(to_model(image, Framing(view, size, "truth")), 0, 255).astype(np.uint8)
                for image, view in zip(images, views)
            ]
        )
        return face_descriptors(torch.from_numpy(warped).permute(0, 3, 1, 2))

    reference = descriptors([s.photo for s in scenes], truths) if scoring else None
    results: dict = {}
    for kind in args.holes:
        # The same faces aligned at the model's size with the same hole: the engine's own ceiling.
        aligned_faces = [
            np.clip(to_model(s.photo, Framing(t, size, "truth")), 0, 255).astype(np.uint8)
            for s, t in zip(scenes, truths)
        ]
        aligned_holes = [hole_to_model(s.holes[kind], Framing(t, size, "truth")) for s, t in zip(scenes, truths)]
        aligned = []
        for start in range(0, len(scenes), args.batch):
            chunk = range(start, min(start + args.batch, len(scenes)))
            aligned += [
                np.asarray(r.image)
                for r in fill_images(
                    checkpoint,
                    [(Image.fromarray(aligned_faces[i]), aligned_holes[i]) for i in chunk],
                    FillRequest(settings, crop="whole"),
                )
            ]
        row_aligned = {
            "psnr_hole": float(np.mean([psnr(f, a, h) for f, a, h in zip(aligned_faces, aligned, aligned_holes)]))
        }
        if scoring:
            row_aligned["frechet"] = frechet_distance(
                face_descriptors(torch.from_numpy(np.stack(aligned)).permute(0, 3, 1, 2)),
                face_descriptors(torch.from_numpy(np.stack(aligned_faces)).permute(0, 3, 1, 2)),
            )
        for variant in args.variants:
            holes = [s.holes[kind] for s in scenes]
            photos = [
                np.where(h[..., None], 0, s.photo).astype(np.uint8) if variant == "blank" else s.photo
                for s, h in zip(scenes, holes)
            ]
            methods: dict[str, list[np.ndarray]] = {
                "telea": [classical(p, h, cv2.INPAINT_TELEA) for p, h in zip(photos, holes)],
                "navier_stokes": [classical(p, h, cv2.INPAINT_NS) for p, h in zip(photos, holes)],
            }
            framings: dict[str, list[np.ndarray | None]] = {}
            started = time.perf_counter()
            finding = []
            for photo, hole in zip(photos, holes):
                t0 = time.perf_counter()
                find_face_framing(
                    photo, hole, face_template(checkpoint), size, checkpoint.framer
                )  # timed alone: what face finding costs per photo
                finding.append(time.perf_counter() - t0)
            ours, views = [], []
            for start in range(0, len(scenes), args.batch):
                chunk = range(start, min(start + args.batch, len(scenes)))
                for r in fill_images(
                    checkpoint, [FillItem(Image.fromarray(photos[i]), holes[i]) for i in chunk], FillRequest(settings)
                ):
                    ours.append(np.asarray(r.image))
                    views.append(r.view.matrix if r.view is not None and r.view.how == "face" else None)
                print(
                    f"  {kind}/{variant}: {len(ours)}/{len(scenes)} photos, {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
            methods["ours"], framings["ours"] = ours, views
            if haar:
                haar_results, haar_views = [], []
                haar_items = []
                for photo, hole in zip(photos, holes):
                    view = haar_view(photo, hole, size)
                    haar_views.append(view.matrix if view.how == "face" else None)
                    haar_items.append(FillItem(Image.fromarray(photo), hole, view=view))
                for start in range(0, len(scenes), args.batch):
                    haar_results += [
                        np.asarray(r.image)
                        for r in fill_images(checkpoint, haar_items[start : start + args.batch], FillRequest(settings))
                    ]
                methods["haar"], framings["haar"] = haar_results, haar_views
            table = {}
            for name, completed in methods.items():
                row = {
                    "psnr_hole": float(np.mean([psnr(s.photo, c, h) for s, c, h in zip(scenes, completed, holes)])),
                    "sharpness": float(np.median([sharpness_ratio(c, h) for c, h in zip(completed, holes)])),
                }
                if name in framings:
                    found = [v is not None for v in framings[name]]
                    right = [
                        v is not None and framing_error(v, t, s) < ALIGNED_WITHIN
                        for v, t, s in zip(framings[name], truths, scenes)
                    ]
                    row.update(found=float(np.mean(found)), aligned=float(np.mean(right)))
                if reference is not None:
                    row["frechet"] = frechet_distance(descriptors(completed, truths), reference)
                table[name] = row
            table["ours"]["face_finding_seconds"] = float(np.mean(finding))
            table["aligned_64"] = row_aligned
            results[f"{kind}/{variant}"] = table
            write_text_atomic(
                out / "results.json",
                json.dumps({"photos": len(scenes), "settings": settings.__dict__, "results": results}, indent=2),
            )
            if kind == args.holes[0] and variant == args.variants[0]:
                shown = range(min(12, len(scenes)))
                cells = [
                    np.hstack(
                        [
                            face_crop(photos[i], truths[i], size),
                            face_crop(ours[i], truths[i], size),
                            face_crop(methods["telea"][i], truths[i], size),
                        ]
                    )
                    for i in shown
                ]
                rows = [np.hstack(cells[j : j + 2]) for j in range(0, len(cells) - 1, 2)]
                Image.fromarray(np.vstack(rows)).save(out / f"sheet-{kind}-{variant}.png")
    print("\n| hole / pixels | method | found | aligned | PSNR hole | Fréchet | sharpness |")
    print("|---|---|---|---|---|---|---|")
    for name, table in results.items():
        for method, row in table.items():
            cells = [f"{row[k]:.0%}" if k in row else "" for k in ("found", "aligned")]
            cells += [
                f"{row['psnr_hole']:.2f}",
                f"{row['frechet']:.4f}" if "frechet" in row else "",
                f"{row['sharpness']:.2f}" if "sharpness" in row else "",
            ]
            print(f"| {name} | {method} | " + " | ".join(cells) + " |")
    print(
        "\nface finding: "
        + ", ".join(f"{name} {table['ours']['face_finding_seconds'] * 1000:.0f} ms" for name, table in results.items())
    )
    print(f"results.json and picture sheets in {out}")


if __name__ == "__main__":
    main()
