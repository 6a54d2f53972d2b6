"""The README's astronaut with her eyes painted over, filled four ways and shown at the photo's own
size: scikit-image's astronaut (tests/data/astronaut.jpg, NASA, public domain) with a rounded bar
from her brows to the bridge of her nose (photo pixels x 165–275, y 95–130), its pixels blanked;
OpenCV's Telea fill, ours with the generator left as shipped (--adapt-steps 0), and ours with the
generator adapted to the photo (--adapt-steps 40, inpaint.adapt.SUGGESTED_STEPS). Prints each
fill's hole PSNR against the intact photo and the engine's context loss; writes the crops around
her face side by side, 1:1 pixels.

  python benchmarks/astronaut.py --out docs/real-photos/astronaut-eyes.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from inpaint.adapt import SUGGESTED_STEPS, AdaptSettings
from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
from inpaint.engine import FillItem, FillRequest, fill_images
from inpaint.fileio import atomic_path
from inpaint.metrics import psnr

ASTRONAUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "astronaut.jpg"
BAR = (165, 95, 275, 130)  # left, top, right, bottom: brows to the bridge of her nose
CROP = (120, 20, 320, 220)  # her face, shown at 1:1


def rounded_bar(size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: the painted bar, its ends rounded as a brush stroke's."""
    mask = Image.new("L", size, 0)
    left, top, right, bottom = BAR
    ImageDraw.Draw(mask).rounded_rectangle(BAR, radius=(bottom - top) // 2, fill=255)
    return np.asarray(mask) > 127


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--out", default="out/astronaut-eyes.png")
    args = parser.parse_args()
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint))
    photo = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    hole = rounded_bar((photo.shape[1], photo.shape[0]))
    damaged = np.where(hole[..., None], 128, photo).astype(np.uint8)
    telea = cv2.cvtColor(
        cv2.inpaint(cv2.cvtColor(damaged, cv2.COLOR_RGB2BGR), hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA),
        cv2.COLOR_BGR2RGB,
    )
    panels = {"input": damaged, "Telea": telea}
    print(f"hole: {hole.sum()} pixels; hole PSNR against the intact photo")
    print(f"  {'Telea':<28} {psnr(photo, telea, hole):6.2f} dB")
    for name, adapting in (
        ("ours, G as shipped", AdaptSettings(steps=0)),
        ("ours, G adapted", AdaptSettings(SUGGESTED_STEPS)),
    ):
        [result] = fill_images(checkpoint, [FillItem(Image.fromarray(damaged), hole)], FillRequest(adapt=adapting))
        filled = np.asarray(result.image)
        panels[name] = filled
        print(
            f"  {name:<28} {psnr(photo, filled, hole):6.2f} dB  (context loss {result.context_loss:.1f}, "
            f"framing {result.framing}, adapted {result.adapted})"
        )
    panels["original"] = photo
    left, top, right, bottom = CROP
    strip = np.hstack([panel[top:bottom, left:right] for panel in panels.values()])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Image.fromarray(strip).save(tmp, format="PNG")
    print(f"wrote {out}: {', '.join(panels)} (left to right), photo pixels {CROP}")


if __name__ == "__main__":
    main()
