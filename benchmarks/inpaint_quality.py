"""Inpainting quality on held-out faces: our engine (raw and blended) against OpenCV's Telea and
Navier–Stokes fills, for the paper's four masks.

For every mask kind it prints PSNR and SSIM over the whole image and over the hole, and a
perceptual score: the Fréchet face-descriptor distance of the completed faces to the originals
(dlib's face descriptors). It writes a picture grid per mask (rows: original, masked, Telea, ours raw,
ours blended) and all numbers as JSON.

  python benchmarks/inpaint_quality.py --data ../shared/data/celeba --last 500 --out out/quality
  python benchmarks/inpaint_quality.py --limit 64 --iterations 300 --restarts 4    # quicker
  python benchmarks/inpaint_quality.py --sweep --last 500 --limit 200 --data ../shared/data/celeba
                                                                     # iterations × starts
  python benchmarks/inpaint_quality.py --init random ...                           # random starts
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
from inpaint.engine import FillRequest, fill_images
from inpaint.fileio import write_text_atomic
from inpaint.grids import save_grid
from inpaint.images import find_images
from inpaint.masks import make_mask
from inpaint.metrics import psnr, ssim
from inpaint.search import (
    INITS,
    SearchSettings,
    parse_neighbourhood,
    resolve_settings,
    search,
)
from inpaint_training.data import decode_images

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "faces"
MASKS = {"centre": {}, "pattern": {}, "random": {}, "half": {"side": "left"}}


def classical(image: np.ndarray, hole: np.ndarray, method: int) -> np.ndarray:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    filled = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, 3, method)
    return cv2.cvtColor(filled, cv2.COLOR_BGR2RGB)


def fill_ours(
    checkpoint, faces: np.ndarray, holes: list[np.ndarray], settings: SearchSettings, batch: int
) -> tuple[list, list]:
    from PIL import Image

    raw, blended = [], []
    for start in range(0, len(faces), batch):
        items = [(Image.fromarray(faces[i]), holes[i]) for i in range(start, min(start + batch, len(faces)))]
        for result in fill_images(checkpoint, items, FillRequest(settings, crop="whole")):
            raw.append(np.asarray(result.raw))
            blended.append(np.asarray(result.image))
    return raw, blended


_DESCRIPTORS: dict[str, np.ndarray] = {}  # the originals' face descriptors, computed once per set of faces


def scores(
    originals: np.ndarray, completions: list[np.ndarray], holes: list[np.ndarray], descriptors_of
) -> dict[str, float]:
    rows = np.array(
        [(psnr(o, c), psnr(o, c, h), ssim(o, c), ssim(o, c, h)) for o, c, h in zip(originals, completions, holes)]
    )
    table = dict(zip(("psnr", "psnr_hole", "ssim", "ssim_hole"), rows.mean(0).round(4).tolist()))
    # The noise of a mean over these faces: its standard error (a difference between two methods
    # on the same faces is noise when it is within about twice this).
    table["psnr_se"] = round(float(rows[:, 0].std(ddof=1) / np.sqrt(len(rows))), 4) if len(rows) > 1 else 0.0
    if descriptors_of is not None:
        from inpaint.face_metrics import frechet_distance

        key = hashlib.sha1(np.ascontiguousarray(originals).tobytes()).hexdigest()
        if key not in _DESCRIPTORS:
            _DESCRIPTORS[key] = descriptors_of(originals)
        mine, theirs = descriptors_of(np.stack(completions)), _DESCRIPTORS[key]
        table["frechet"] = round(frechet_distance(mine, theirs), 5)
        # Its spread over faces: 20 bootstrap resamples of the faces (completions with their originals).
        rng = np.random.default_rng(0)
        picks = [rng.integers(0, len(mine), len(mine)) for _ in range(20)]
        table["frechet_sd"] = round(float(np.std([frechet_distance(mine[p], theirs[p]) for p in picks])), 5)
    return table


SWEEP_ITERATIONS = (0, 25, 50, 100, 200)
SWEEP_RESTARTS = (1, 2, 3, 4)


def seconds_per_face(
    checkpoint, faces: np.ndarray, hole: np.ndarray, settings: SearchSettings, repeats: int = 3
) -> float:
    """Median wall time of a search of one face (starting points included), over `repeats` faces."""
    known = torch.from_numpy(~hole).float()[None, None]
    times = []
    for face in faces[:repeats]:
        image = checkpoint.from_pixels(torch.from_numpy(face).permute(2, 0, 1).float()[None] / 255)
        started = time.perf_counter()
        search(checkpoint, image, known, settings)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def sweep(
    checkpoint,
    faces: np.ndarray,
    base: SearchSettings,
    batch: int,
    out: Path,
    kinds=("centre",),
    iteration_counts=SWEEP_ITERATIONS,
    restart_counts=SWEEP_RESTARTS,
    descriptors_of=None,
) -> None:
    """Quality of the raw fill pasted into the face (PSNR, SSIM, whole and hole; Fréchet) for every
    iterations × starts pair, per mask kind, from one search per batch with the most starts and
    iterations and no early stop: starts are independent, Adam has no schedule and each start keeps
    its best latent, so the first k starts at iteration t are a k-start search stopped at t (0: the
    starting points as they are). Beside each pair, the time one face takes with it on this machine
    (a search of that length on its own, early stop as in `base`)."""
    size = faces.shape[1]
    # report only as often as needed: copying every start's G(z) out each time costs a forward pass
    every = math.gcd(*iteration_counts)
    settings = replace(
        base, iterations=max(iteration_counts), restarts=max(restart_counts), report_every=every or 1, patience=0
    )
    timing_hole = make_mask("centre", size, size)
    seconds = {
        (t, k): seconds_per_face(checkpoint, faces, timing_hole, replace(base, iterations=t, restarts=k))
        for t in iteration_counts
        for k in restart_counts
    }
    summary = {}
    for kind in kinds:
        holes = np.stack([make_mask(kind, size, size, seed=i, **MASKS[kind]) for i in range(len(faces))])
        completions: dict[tuple[int, int], list[np.ndarray]] = {}
        started = time.perf_counter()
        for start in range(0, len(faces), batch):
            chunk, chunk_holes = faces[start : start + batch], holes[start : start + batch]
            images = torch.from_numpy(chunk).permute(0, 3, 1, 2).float() / 255
            known = torch.from_numpy(~chunk_holes).float()[:, None]

            def record(progress) -> None:
                if progress.iteration not in iteration_counts:
                    return
                for k in restart_counts:
                    best = progress.restart_context_loss[:, :k].argmin(1)
                    fills = checkpoint.to_pixels(progress.restart_images[torch.arange(len(chunk)), best])
                    fills = (fills.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
                    completions.setdefault((progress.iteration, k), []).extend(
                        np.where(hole[..., None], fill, original)
                        for original, fill, hole in zip(chunk, fills, chunk_holes)
                    )

            search(checkpoint, checkpoint.from_pixels(images), known, settings, record)
            print(
                f"  {kind}: searched {min(start + batch, len(faces))}/{len(faces)} faces, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
        table = {cell: scores(faces, completed, list(holes), descriptors_of) for cell, completed in completions.items()}
        print(f"\n{kind} mask, raw fill pasted, {len(faces)} faces; start: {base.init}")
        print("| iterations | starts | s per face | PSNR | PSNR hole | SSIM | SSIM hole | Fréchet |")
        print("|---|---|---|---|---|---|---|---|")
        for t in iteration_counts:
            for k in restart_counts:
                r = table[(t, k)]
                print(
                    f"| {t} | {k} | {seconds[(t, k)]:.2f} | {r['psnr']:.2f} | {r['psnr_hole']:.2f} "
                    f"| {r['ssim']:.3f} | {r['ssim_hole']:.3f} "
                    f"| {r.get('frechet', float('nan')):.4f} |"
                )
        summary[kind] = {
            f"{t}x{k}": {**r, "seconds_per_face": round(seconds[(t, k)], 3)} for (t, k), r in table.items()
        }
        write_text_atomic(
            out / "sweep.json",
            json.dumps(
                {
                    "faces": len(faces),
                    "init": base.init,
                    "lam": base.lam,
                    "precision": base.precision,
                    "neighbourhood": base.neighbourhood,
                    "threads": torch.get_num_threads(),
                    "raw_pasted": summary,
                },
                indent=2,
            ),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument(
        "--data", default=str(EXAMPLES), help="folder of aligned faces (default: the 16 bundled examples)"
    )
    parser.add_argument(
        "--last", type=int, help="use the last N files by name (500: the default checkpoint's validation split)"
    )
    parser.add_argument("--limit", type=int, help="at most this many faces")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--restarts", type=int)
    parser.add_argument("--lam", type=float)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--batch", type=int, default=64, help="faces per search batch")
    parser.add_argument(
        "--masks", nargs="+", choices=list(MASKS), help="mask kinds (default: all four; centre for --sweep)"
    )
    parser.add_argument(
        "--neighbourhood",
        default="auto",
        help="window of the context weighting: auto (scaled to the hole) or an odd size such as 7",
    )
    parser.add_argument(
        "--init",
        choices=INITS,
        default="auto",
        help="where the search starts (default auto: the encoder when there is one)",
    )
    parser.add_argument(
        "--patience", type=int, help="early stop after this many iterations without improvement (0: never)"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="quality and time per face for iterations × starts (for --masks, default all)",
    )
    parser.add_argument("--sweep-iterations", type=int, nargs="+", default=list(SWEEP_ITERATIONS))
    parser.add_argument("--sweep-restarts", type=int, nargs="+", default=list(SWEEP_RESTARTS))
    parser.add_argument("--out", default="out/quality")
    args = parser.parse_args()

    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint))
    size = checkpoint.config.image_size
    files, _ = find_images(args.data)
    files = files[-args.last :] if args.last else files
    files = files[: args.limit] if args.limit else files
    tensors, kept, _ = decode_images(files, size, checkpoint.config.channels, show_progress=False)
    faces = tensors.permute(0, 2, 3, 1).numpy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = SearchSettings()
    settings = resolve_settings(
        checkpoint,
        SearchSettings(
            iterations=args.iterations,
            restarts=args.restarts,
            lam=base.lam if args.lam is None else args.lam,
            precision=args.precision,
            neighbourhood=parse_neighbourhood(args.neighbourhood),
            init=args.init,
            patience=base.patience if args.patience is None else args.patience,
        ),
    )
    print(
        f"{len(kept)} faces from {args.data}; checkpoint {checkpoint.path}; start {settings.init}; λ {settings.lam}; "
        f"precision {settings.precision}; neighbourhood {settings.neighbourhood}; patience {settings.patience}; "
        f"{torch.get_num_threads()} threads"
    )
    from inpaint.errors import UserError
    from inpaint.face_metrics import face_descriptors

    def descriptors_of(images: np.ndarray) -> np.ndarray:
        return face_descriptors(torch.from_numpy(images).permute(0, 3, 1, 2))

    try:  # loads dlib's network now, or says it is missing: then the table has no Fréchet column
        descriptors_of(np.zeros((1, 8, 8, 3), np.uint8))
    except UserError as error:
        print(f"no Fréchet column: {error}")
        descriptors_of = None
    if args.sweep:
        sweep(
            checkpoint,
            faces,
            settings,
            args.batch,
            out,
            args.masks or list(MASKS),
            args.sweep_iterations,
            args.sweep_restarts,
            descriptors_of,
        )
        return

    print(f"{settings.iterations} iterations × {settings.restarts} starts")
    # results are saved after every mask kind; a rerun with the same settings and faces skips finished kinds
    results_file = out / "results.json"
    header = json.loads(json.dumps({"settings": settings.__dict__, "faces": len(faces)}))  # as it reads back
    earlier = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results = earlier.get("results", {}) if {k: earlier.get(k) for k in header} == header else {}
    for kind in args.masks or list(MASKS):
        if kind in results:
            print(f"{kind}: already in {results_file}, skipped")
            continue
        holes = [make_mask(kind, size, size, seed=i, **MASKS[kind]) for i in range(len(faces))]
        started = time.perf_counter()
        raw, blended = fill_ours(checkpoint, faces, holes, settings, args.batch)
        ours_seconds = (time.perf_counter() - started) / len(faces)
        telea = [classical(f, h, cv2.INPAINT_TELEA) for f, h in zip(faces, holes)]
        navier = [classical(f, h, cv2.INPAINT_NS) for f, h in zip(faces, holes)]
        results[kind] = {
            "telea": scores(faces, telea, holes, descriptors_of),
            "navier_stokes": scores(faces, navier, holes, descriptors_of),
            "ours_raw": scores(faces, raw, holes, descriptors_of),
            "ours_blended": scores(faces, blended, holes, descriptors_of),
            "ours_seconds_per_face": round(ours_seconds, 3),
        }
        shown = min(8, len(faces))
        masked = [np.where(h[..., None], 255, f) for f, h in zip(faces[:shown], holes)]
        rows = [faces[:shown], masked, telea[:shown], raw[:shown], blended[:shown]]
        grid = torch.from_numpy(np.stack([image for row in rows for image in row])).permute(0, 3, 1, 2).float() / 255
        save_grid(grid, out / f"grid-{kind}.png", columns=shown)
        write_text_atomic(results_file, json.dumps({**header, "results": results}, indent=2))
        print(f"{kind}: {len(faces)} faces, {ours_seconds:.2f} s per face", flush=True)

    print("\n| mask | method | PSNR | PSNR hole | SSIM | SSIM hole | Fréchet |")
    print("|---|---|---|---|---|---|---|")
    for kind, methods in results.items():
        for method in ("telea", "navier_stokes", "ours_raw", "ours_blended"):
            r = methods[method]
            print(
                f"| {kind} | {method} | {r['psnr']:.2f} | {r['psnr_hole']:.2f} "
                f"| {r['ssim']:.3f} | {r['ssim_hole']:.3f} | {r.get('frechet', float('nan')):.4f} |"
            )
    print(f"\ngrids and results.json in {out}")


if __name__ == "__main__":
    main()
