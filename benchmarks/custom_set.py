"""A user's own image set: train on a folder with the one command, then fill its held-out images.

Trains (or reuses) `inpaint train --data DIR --val-count N --out RUN --minutes M` (GAN and encoder),
then fills the N held-out images with centre, half, pattern and random holes: ours (the engine with
the run's model and defaults) against OpenCV's Telea and Navier–Stokes fills. Per hole kind it
prints hole PSNR and whole-image SSIM with the noise of the means (standard errors), and the set's
own distribution score: the sliced Wasserstein distance (inpaint.swd) of the completed images to the
originals, with its scale on this set (two halves of the originals; the originals against a blurred
copy). A picture sheet per hole kind (rows: original, input, Telea, with --nearest the exemplar,
ours) and the numbers as JSON go to --out. With --nearest it also scores an exemplar fill (Hays and
Efros, SIGGRAPH 2007, without their scene descriptors): the training image closest to each held-out
image on its known pixels, Poisson-blended into the hole as ours is, a real flower that agrees with
the context; it shows what a fill that is a plausible sample, not an average, scores on these metrics.

  python benchmarks/custom_set.py --data ../shared/data/flowers --val-count 500 --run runs/flowers \\
      --minutes 30 --out out/custom-set
  python benchmarks/custom_set.py --data ../shared/data/flowers --val-count 500 --run runs/flowers --limit 100
                                                         # an existing run, fewer images: quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inpaint_quality import MASKS, classical, fill_ours  # noqa: E402

from inpaint.blend import poisson_blend  # noqa: E402
from inpaint.checkpoint import WEIGHTS_FILE, load_checkpoint, read_metadata  # noqa: E402
from inpaint.fileio import write_text_atomic  # noqa: E402
from inpaint.grids import save_grid  # noqa: E402
from inpaint.masks import make_mask  # noqa: E402
from inpaint.metrics import psnr, ssim  # noqa: E402
from inpaint.search import SearchSettings, resolve_settings  # noqa: E402
from inpaint.swd import reference_scale, sliced_wasserstein  # noqa: E402
from inpaint_training.data import decode_images  # noqa: E402
from inpaint_training.run_dir import split_files  # noqa: E402


def train_if_needed(args: argparse.Namespace) -> None:
    """Run the one command unless the run already holds its final model with an encoder."""
    model = Path(args.run) / WEIGHTS_FILE
    if model.is_file() and "encoder" in read_metadata(model):
        print(f"using the finished run {args.run}")
        return
    if args.minutes is None:
        raise SystemExit(f"{args.run} has no finished model; give --minutes to train it")
    command = [sys.executable, "-m", "inpaint", "train", "--data", args.data, "--val-count", str(args.val_count)]
    command += ["--resume", args.run] if (Path(args.run) / "training_options.json").is_file() else ["--out", args.run]
    command += ["--minutes", str(args.minutes), *args.train_options]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"trained in {(time.perf_counter() - started) / 60:.1f} min (wall clock, everything included)")


def mean_and_error(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    error = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return round(float(values.mean()), 3), round(float(error), 3)


def score_kind(originals: np.ndarray, fills: dict[str, list[np.ndarray]], holes: list[np.ndarray]) -> dict:
    """Per method: hole PSNR and whole-image SSIM (means and standard errors) and the SWD of the
    completed images to the originals."""
    truth = torch.from_numpy(originals).permute(0, 3, 1, 2)
    rows = {}
    for method, images in fills.items():
        hole_psnr = [psnr(o, f, h) for o, f, h in zip(originals, images, holes)]
        whole_ssim = [ssim(o, f) for o, f in zip(originals, images)]
        completed = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        rows[method] = {
            "psnr_hole": mean_and_error(hole_psnr),
            "ssim": mean_and_error(whole_ssim),
            "swd": sliced_wasserstein(completed, truth)["swd"],
        }
    return rows


def nearest_fills(originals: np.ndarray, holes: list[np.ndarray], training: np.ndarray) -> list[np.ndarray]:
    """Each image's hole filled from the training image (N, S, S, C uint8) nearest in L2 on the
    image's known pixels, Poisson-blended. ‖m(t − x)‖² = m·t² − 2 m·(t x) + m·x², as matrix products."""
    flat = training.reshape(len(training), -1).astype(np.float32) / 255
    squares = flat**2
    fills = []
    for start in range(0, len(originals), 64):
        x = originals[start : start + 64].reshape(-1, flat.shape[1]).astype(np.float32) / 255
        known = np.stack([np.repeat(~h[..., None], originals.shape[-1], -1).ravel() for h in holes[start : start + 64]])
        known = known.astype(np.float32)
        distance = squares @ known.T - 2 * flat @ (known * x).T  # the m·x² term is the same for every t
        for offset, pick in enumerate(distance.argmin(0)):
            i = start + offset
            blended = poisson_blend(originals[i].astype(np.float64), training[pick].astype(np.float64), holes[i])
            fills.append(np.clip(np.round(blended), 0, 255).astype(np.uint8))
    return fills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the image folder the run trains on")
    parser.add_argument("--val-count", type=int, default=500, help="held-out images (the highest names)")
    parser.add_argument("--run", required=True, help="the run folder (trained here unless it is finished)")
    parser.add_argument("--minutes", type=float, help="train for this long when the run is not finished")
    parser.add_argument("--train-options", nargs=argparse.REMAINDER, default=[], help="more `inpaint train` flags")
    parser.add_argument("--holes", nargs="+", default=list(MASKS), choices=list(MASKS))
    parser.add_argument("--limit", type=int, help="at most this many held-out images")
    parser.add_argument("--batch", type=int, default=64, help="images per search batch")
    parser.add_argument(
        "--iterations",
        type=int,
        help="search iterations for every hole (default: the engine's; 0: the encoder's start alone)",
    )
    parser.add_argument(
        "--nearest", action="store_true", help="also score the exemplar fill: the nearest training image, blended"
    )
    parser.add_argument("--out", default="out/custom-set")
    args = parser.parse_args()

    train_if_needed(args)
    checkpoint = load_checkpoint(args.run)
    size, channels = checkpoint.config.image_size, checkpoint.config.channels
    _, held_out = split_files(args.data, args.val_count)
    held_out = held_out[: args.limit] if args.limit else held_out
    tensors, kept, _ = decode_images(held_out, size, channels, show_progress=False)
    originals = tensors.permute(0, 2, 3, 1).numpy()
    settings = resolve_settings(checkpoint, SearchSettings(iterations=args.iterations))
    scale = reference_scale(tensors)
    training = None
    if args.nearest:
        training_files, _ = split_files(args.data, args.val_count)
        training = decode_images(training_files, size, channels, show_progress=False)[0].permute(0, 2, 3, 1).numpy()
    print(
        f"{len(kept)} held-out images of {args.data}; model {checkpoint.path} "
        f"(encoder: {checkpoint.encoder is not None}); "
        f"search: start {settings.init}, {settings.iterations} iterations × {settings.restarts}; "
        f"SWD scale on these images: two halves {scale['halves']}, against a blurred copy {scale['blurred']} "
        f"(half the images a side)"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    search = {k: getattr(settings, k) for k in ("init", "iterations", "scattered_iterations", "restarts")}
    results = {"images": len(kept), "run": str(args.run), "search": search, "swd_scale": scale, "holes": {}}
    for kind in args.holes:
        holes = [make_mask(kind, size, size, seed=i, **MASKS[kind]) for i in range(len(originals))]
        started = time.perf_counter()
        _, ours = fill_ours(checkpoint, originals, holes, settings, args.batch)
        seconds = (time.perf_counter() - started) / len(originals)
        fills = {
            "telea": [classical(o, h, 1) for o, h in zip(originals, holes)],  # cv2.INPAINT_TELEA
            "ns": [classical(o, h, 0) for o, h in zip(originals, holes)],  # cv2.INPAINT_NS
            "ours": ours,
        }
        if training is not None:
            fills["nearest"] = nearest_fills(originals, holes, training)
        rows = score_kind(originals, fills, holes)
        results["holes"][kind] = {**rows, "ours_seconds_per_image": round(seconds, 3)}
        best = max(("telea", "ns"), key=lambda m: rows[m]["psnr_hole"][0])
        gain = rows["ours"]["psnr_hole"][0] - rows[best]["psnr_hole"][0]
        print(f"\n{kind} holes ({seconds:.3f} s an image for ours, batches of {args.batch})")
        print("| method | hole PSNR (dB) | SSIM | SWD (×10³) |")
        print("|---|---|---|---|")
        for method in fills:
            row = rows[method]
            print(
                f"| {method} | {row['psnr_hole'][0]:.2f} ± {row['psnr_hole'][1]:.2f} | "
                f"{row['ssim'][0]:.3f} ± {row['ssim'][1]:.3f} | {row['swd']:.1f} |"
            )
        print(
            f"ours − {best}: {gain:+.2f} dB hole PSNR; SWD ours / best classical: "
            f"{rows['ours']['swd'] / min(rows['telea']['swd'], rows['ns']['swd']):.2f}"
        )
        shown = slice(0, min(8, len(originals)))
        sheet = [
            originals[shown],
            np.where(np.stack(holes)[shown, ..., None], 255, originals[shown]).astype(np.uint8),
            np.stack(fills["telea"])[shown],
            *([np.stack(fills["nearest"])[shown]] if "nearest" in fills else []),
            np.stack(ours)[shown],
        ]
        pictures = torch.from_numpy(np.concatenate(sheet)).permute(0, 3, 1, 2).float() / 255
        save_grid(pictures, out / f"sheet-{kind}.png", columns=len(originals[shown]))
        write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    shown_rows = "original, input, Telea, " + ("nearest training image, " if training is not None else "") + "ours"
    print(f"\nwrote {out}/results.json and sheet-<hole>.png (rows: {shown_rows})")


if __name__ == "__main__":
    main()
