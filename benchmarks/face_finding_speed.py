"""What finding and aligning the face costs on big photos, and what the whole fill costs.

Held-out faces are placed into 12-megapixel photos (4000×3000) as in photo_quality.py, but
enlarged 8–16× (faces 350–700 pixels wide), with a hole over the eyes, the mouth or the centre,
blank or kept. For each it times `choose_view` (detector windows, landmarks, framer) alone, and
then one whole `fill_images` call (framing, search, warping back, detail, blend).

  python benchmarks/face_finding_speed.py --data ../shared/data/celeba --photos 6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenes import HOLES, background_photos, make_scene  # noqa: E402

from inpaint.checkpoint import checkpoint_or_default, load_checkpoint  # noqa: E402
from inpaint.engine import FillRequest, choose_view, fill_images, model_pixels  # noqa: E402
from inpaint.images import find_images, load_image  # noqa: E402


def twelve_megapixels(face: np.ndarray, backgrounds: list[np.ndarray], rng: np.random.Generator):
    """A scene enlarged to 4000×3000 (the face stays whole inside)."""
    while True:
        scene = make_scene(face, backgrounds[rng.integers(len(backgrounds))], rng, scale_range=(8.0, 16.0))
        if scene.photo.shape[0] <= 3000 and scene.photo.shape[1] <= 4000:
            break
    canvas = np.zeros((3000, 4000, 3), np.uint8)
    canvas[:] = scene.photo.mean((0, 1)).astype(np.uint8)
    h, w = scene.photo.shape[:2]
    canvas[:h, :w] = scene.photo
    holes = {}
    for kind, hole in scene.holes.items():
        holes[kind] = np.zeros((3000, 4000), bool)
        holes[kind][:h, :w] = hole
    return canvas, holes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--data", required=True, help="folder of aligned CelebA faces")
    parser.add_argument("--last", type=int, default=500, help="the held-out faces: the last N files (default 500)")
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint))
    files, _ = find_images(args.data)
    files = files[-args.last :][: args.photos]
    rng = np.random.default_rng(args.seed)
    backgrounds = background_photos()
    print(f"{len(files)} photos of 4000×3000 (12 megapixels); {torch.get_num_threads()} threads")
    choose_view(
        checkpoint, *[np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), bool)], crop="context"
    )  # load what loads once
    timings: dict[str, list[float]] = {}
    found = 0
    photos = []
    for path in files:
        photo, holes = twelve_megapixels(np.asarray(load_image(path)), backgrounds, rng)
        photos.append((photo, holes))
        pixels = model_pixels(checkpoint, Image.fromarray(photo))
        for kind in HOLES:
            for variant in ("blank", "kept"):
                shown = pixels.copy() if variant == "blank" else pixels
                if variant == "blank":
                    shown[holes[kind]] = 0
                started = time.perf_counter()
                view = choose_view(checkpoint, shown, holes[kind])
                timings.setdefault(f"{kind}/{variant}", []).append(time.perf_counter() - started)
                found += view is not None
    print("\nfinding and aligning the face (choose_view), ms: median / max")
    for name, values in timings.items():
        print(f"  {name:14s} {1000 * np.median(values):6.0f} / {1000 * np.max(values):6.0f}")
    print(f"  a face framing on {found} of {sum(len(v) for v in timings.values())}")
    photo, holes = photos[0]
    image = Image.fromarray(photo)
    started = time.perf_counter()
    [result] = fill_images(checkpoint, [(image, holes["eyes"])], FillRequest())
    print(
        f"\nwhole fill of one 12-megapixel photo, eyes hole ({holes['eyes'].sum():,} pixels), default settings: "
        f"{time.perf_counter() - started:.1f} s (framing: {result.framing}, square {result.view.side():.0f} px)"
    )


if __name__ == "__main__":
    main()
