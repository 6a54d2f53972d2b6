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
pipeline should come close to); "all" rows pool the hole kinds of a variant (PSNR over every
photo, Fréchet over all their results). A picture sheet shows 12 photos: input, ours, Telea.

Holes that no face owns, so that taking more faces never goes unnoticed: the same hole shapes at
the same sizes and turns on photos without any face (the scene's background alone, each from its
own random frame: "background"), and on the scenes' photos moved off the face onto the background
beside it ("beside"). For each it reports the share our engine filled as a face (a false
positive: a face painted where there is none) and the PSNR over the hole, ours and Telea's.

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
from scenes import HOLES, background_photos, framing_error, make_scene, off_face_hole  # noqa: E402

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


def off_face_cases(args, checkpoint, settings, scenes, empties, truths, rng) -> dict:
    """For each place in args.no_face, hole kind and variant: holes that no face owns (see the
    module's doc), filled by our engine; the share filled as a face, PSNR over the hole (ours,
    Telea's). Beside a face, "true_face" is the share framed on that face itself (not a false one)."""
    table = {}
    for where in args.no_face:
        for kind in args.holes:
            if where == "background":
                cases = [(e.photo, e.holes[kind], None) for e in empties]
            else:
                cases = [(s.photo, off_face_hole(s, kind, "beside", rng), i) for i, s in enumerate(scenes)]
                cases = [case for case in cases if case[1] is not None]
            for variant in args.variants:
                photos = [
                    np.where(h[..., None], 0, p).astype(np.uint8) if variant == "blank" else p for p, h, _ in cases
                ]
                results = []
                for start in range(0, len(cases), args.batch):
                    chunk = range(start, min(start + args.batch, len(cases)))
                    items = [FillItem(Image.fromarray(photos[i]), cases[i][1]) for i in chunk]
                    results += fill_images(checkpoint, items, FillRequest(settings))
                face = [r.view is not None and r.view.how == "face" for r in results]
                true_face = [
                    f
                    and index is not None
                    and framing_error(r.view.matrix, truths[index], scenes[index]) < ALIGNED_WITHIN
                    for f, r, (_, _, index) in zip(face, results, cases)
                ]
                row = {
                    "photos": len(cases),
                    "face": float(np.mean(face)),
                    "true_face": float(np.mean(true_face)),
                    "psnr_ours": float(
                        np.mean([psnr(p, np.asarray(r.image), h) for (p, h, _), r in zip(cases, results)])
                    ),
                    "psnr_telea": float(
                        np.mean([psnr(p, classical(q, h, cv2.INPAINT_TELEA), h) for (p, h, _), q in zip(cases, photos)])
                    ),
                }
                table[f"{where}/{kind}/{variant}"] = row
                print(f"  no face, {where}/{kind}/{variant}: {row['face']:.1%} filled as a face", flush=True)
    if table:
        rows = list(table.values())
        total = sum(r["photos"] for r in rows)
        table["all"] = {
            "photos": total,
            "face": sum(r["face"] * r["photos"] for r in rows) / total,
            "true_face": sum(r["true_face"] * r["photos"] for r in rows) / total,
            "psnr_ours": sum(r["psnr_ours"] * r["photos"] for r in rows) / total,
            "psnr_telea": sum(r["psnr_telea"] * r["photos"] for r in rows) / total,
        }
    return table


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
    parser.add_argument(
        "--no-face",
        nargs="*",
        choices=("background", "beside"),
        default=["background", "beside"],
        help="holes no face owns to count false faces on (none given: skip)",
    )
    parser.add_argument("--only-no-face", action="store_true", help="run only the holes that no face owns")
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
    empty_rng, beside_rng = np.random.default_rng([args.seed, 1]), np.random.default_rng([args.seed, 2])
    backgrounds = background_photos()
    scenes, portraits, empties = [], [], []
    for path in files:
        portrait = np.asarray(load_image(path))
        portraits.append(portrait)
        scenes.append(make_scene(portrait, backgrounds[rng.integers(len(backgrounds))], rng))
        # The same shapes and sizes on a photo without a face (its own frame and background).
        empty = backgrounds[empty_rng.integers(len(backgrounds))]
        empties.append(make_scene(portrait, empty, empty_rng, with_face=False))
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
    pooled: dict = {}  # variant → method → per-photo PSNRs and result descriptors over every hole kind
    for kind in [] if args.only_no_face else args.holes:
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
                pool = pooled.setdefault(variant, {}).setdefault(name, {"psnr": [], "descriptors": []})
                pool["psnr"] += [psnr(s.photo, c, h) for s, c, h in zip(scenes, completed, holes)]
                if reference is not None:
                    found_descriptors = descriptors(completed, truths)
                    pool["descriptors"].append(found_descriptors)
                    row["frechet"] = frechet_distance(found_descriptors, reference)
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
    for variant, methods_pooled in pooled.items():
        if len(args.holes) < 2:
            break
        table = {}
        for name, pool in methods_pooled.items():
            table[name] = {"psnr_hole": float(np.mean(pool["psnr"]))}
            if reference is not None:
                every = np.concatenate(pool["descriptors"])
                table[name]["frechet"] = frechet_distance(every, np.concatenate([reference] * len(pool["descriptors"])))
            kinds = [results[f"{kind}/{variant}"][name] for kind in args.holes]
            if all("found" in row for row in kinds):
                table[name].update({k: float(np.mean([row[k] for row in kinds])) for k in ("found", "aligned")})
        results[f"all/{variant}"] = table
    no_face = off_face_cases(args, checkpoint, settings, scenes, empties, truths, beside_rng)
    write_text_atomic(
        out / "results.json",
        json.dumps(
            {"photos": len(scenes), "settings": settings.__dict__, "results": results, "no_face": no_face}, indent=2
        ),
    )
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
    if no_face:
        print("\n| no face: where / hole / pixels | photos | filled as a face | PSNR hole, ours | Telea |")
        print("|---|---|---|---|---|")
        for name, row in no_face.items():
            print(
                f"| {name} | {row['photos']} | {row['face']:.1%} | {row['psnr_ours']:.2f} | {row['psnr_telea']:.2f} |"
            )
    print(
        "\nface finding: "
        + ", ".join(
            f"{name} {table['ours']['face_finding_seconds'] * 1000:.0f} ms"
            for name, table in results.items()
            if "face_finding_seconds" in table["ours"]  # the pooled "all" rows have none
        )
    )
    print(f"results.json and picture sheets in {out}")


if __name__ == "__main__":
    main()
