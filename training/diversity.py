"""Sample diversity: how varied the trainer's sample grid is compared with real images, and the
warning when it drops. A GAN can collapse, every sample becoming the same face, while its losses
look normal; this measure shows it in stats.jsonl and the loss plot, and warns on the console.

The measure (cheap and dependency-free): every image is averaged down to 16×16 pixels (values in
[0, 1]) and flattened; the spread of a set of images is the mean L2 distance over all pairs of
distinct images. The diversity of a grid is the spread of its samples (the run's fixed latents)
divided by the spread of a fixed set of real training images (the first 64 of the data set). A
healthy generator scores about 0.6-1.2, a collapsed one (near-identical samples) near 0. It sees
colour and layout, not identity: it tells a grid of one face from a grid of many, not how good
or how face-like the faces are (the scores of --eval-every do that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURE_SIZE = 16  # images are compared at 16×16 pixels: coarse enough to ignore noise
REFERENCE_COUNT = 64  # real images in the reference set: as many as the sample grid has samples
COLLAPSE_FLOOR = 0.1  # below this the samples are near-identical, whatever the run's best was
VARIETY_SHOWN = 0.25  # a run warns only once its grid has reached this: an untrained G starts near 0


def features(images: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) images, uint8 or floats in [0, 1], as (N, C·16·16) float64 rows on the CPU."""
    pixels = images.detach().cpu()
    pixels = pixels.double() / 255 if pixels.dtype == torch.uint8 else pixels.double()
    return F.adaptive_avg_pool2d(pixels, FEATURE_SIZE).flatten(1)


def spread(images: torch.Tensor) -> float:
    """The mean L2 distance between the features of distinct images (NaN for fewer than two)."""
    rows = features(images)
    n = rows.shape[0]
    if n < 2:
        return float("nan")
    # Exact distances (the matrix-product shortcut leaves rounding noise where images are equal).
    distances = torch.cdist(rows, rows, compute_mode="donot_use_mm_for_euclid_dist")
    return float(distances.sum() / (n * (n - 1)))


def reference_spread(real: torch.Tensor) -> float | None:
    """The spread of the first REFERENCE_COUNT real images, or None where it cannot serve as a
    scale (fewer than two images, or all of them the same)."""
    value = spread(real[:REFERENCE_COUNT])
    return value if value > 0 else None  # NaN > 0 is False too


def diversity(samples: torch.Tensor, reference: float) -> float:
    """The spread of `samples` over `reference` (see the module's docstring)."""
    return spread(samples) / reference


class CollapseGuard:
    """When a diversity value deserves a warning: below `threshold` × the run's best so far, or below
    COLLAPSE_FLOOR, once the run's best has reached VARIETY_SHOWN (an untrained generator draws
    near-identical grey images, and the first few hundred steps one blur: that is no collapse).
    One warning per drop: it re-arms when diversity recovers above the limit. A threshold of 0
    turns the warning off."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.armed = True

    def limit(self, best: float) -> float:
        """The value below which diversity is too low, given the best seen before it."""
        if not self.threshold or best < VARIETY_SHOWN:
            return 0.0
        return max(self.threshold * best, COLLAPSE_FLOOR)

    def should_warn(self, value: float, best: float) -> bool:
        """Whether `value` starts a drop below the limit; `best` is the best before it."""
        low = value < self.limit(best)
        warn = low and self.armed
        self.armed = not low
        return warn
