"""Making a fill drawn at the model's resolution match the photo around it: its colours, and
the photo-scale detail it lacks.

Colours: each channel of the fill is shifted and scaled so that, on the ring of known pixels
around the hole (where the fill exists too, since the model draws its whole square), its mean
and spread match the photo's at the model's scale (the photo blurred as the model sees it). The
Poisson blend that follows removes what is left along the seam; matching first leaves it less to
spread into the hole, so the fill keeps its own contrast.

Edges: interpolation softens the fill's edges as it enlarges it; an unsharp mask at the
enlargement's scale (half its amount) gives back some of their contrast.

Detail:
A 64-pixel fill scaled up into a sharp photo reads as a blurred patch: it lacks everything finer
than one model pixel (skin texture, hair, grain, JPEG noise). That missing band is taken from the
photo itself: the high-pass of its brightness (the photo minus its blur at the model's scale,
computed from known pixels only) is copied in patches from the ring of known pixels around the
hole and laid over the hole by overlap-add with sine windows, whose squares sum to one, so the
detail keeps the ring's strength. Each patch is chosen, among a few random ones, as the one whose
surroundings have the colour the fill has where it goes (skin texture onto skin, not hair onto
skin), and only from the quieter half of the ring (strong edges would come out as stray lines),
then scaled to the ring's median strength.
The detail is brightness only, added alike to every channel, so it brings no colour speckle. The
Poisson blend that follows matches the fill's colours to the photo and keeps these gradients.
"""

from __future__ import annotations

import cv2
import numpy as np

from inpaint.masks import hole_box

MIN_UPSCALE = 1.5  # below this the fill is nearly as sharp as the photo: nothing to add
CHOICES = 12  # random source patches considered for each place
GAIN_RANGE = (0.7, 1.5)  # how far colour matching may stretch or squeeze a channel
SHARPEN = 0.5  # unsharp-mask amount for an enlarged fill


def _masked_blur(image: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over known pixels only (normalised convolution); image (h, w[, C])."""
    weight = cv2.GaussianBlur(known.astype(np.float32), (0, 0), sigma)
    weight = np.maximum(weight, 1e-6)
    blurred = cv2.GaussianBlur(image * (known if image.ndim == 2 else known[..., None]), (0, 0), sigma)
    return blurred / (weight if image.ndim == 2 else weight[..., None])


def _sine_window(size: int) -> np.ndarray:
    """With a hop of size / 2, the squares of overlapping windows sum to one."""
    window = np.sin(np.pi * (np.arange(size) + 0.5) / size)
    return (window[:, None] * window[None, :]).astype(np.float32)


def photo_detail(
    photo: np.ndarray,
    known: np.ndarray,
    hole: np.ndarray,
    upscale: float,
    guide: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Brightness detail to add to a fill inside `hole`.

    photo (h, w, C) 0…255, the region around the hole; known (h, w) bool, pixels that are real;
    hole (h, w) bool; upscale: photo pixels per model pixel; guide (h, w, C): the fill itself,
    whose colours steer the choice of patches. Returns (h, w) float32, zero outside the hole and
    everywhere when the fill is barely enlarged or there is no ring to learn from."""
    detail = np.zeros(hole.shape, np.float32)
    if upscale < MIN_UPSCALE or not hole.any() or not known.any():
        return detail
    photo = photo.astype(np.float32)
    brightness = photo.mean(-1)
    sigma = 0.5 * upscale
    high = brightness - _masked_blur(brightness, known, sigma)
    low = _masked_blur(photo, known, 2 * sigma)
    hy, hx = np.nonzero(hole)
    patch = int(np.clip(round(2 * upscale), 6, 48)) // 2 * 2
    half = patch // 2
    # Sources: pixels whose whole patch is known and far enough from the hole that the blur did
    # not reach across it, within reach of the hole (most likely the same surface).
    to_hole = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
    usable = known & (to_hole > 2 * sigma)
    usable = cv2.erode(usable.astype(np.uint8), np.ones((patch + 1, patch + 1), np.uint8)).astype(bool)
    usable[: half + 1], usable[-half - 1 :], usable[:, : half + 1], usable[:, -half - 1 :] = False, False, False, False
    reach = 3 * patch  # the nearest surroundings: most likely the same surface (skin around the eyes, not hair)
    ys, xs = np.nonzero(usable & (to_hole < reach + 2 * sigma + patch))
    if len(ys) == 0:
        return detail
    energy = cv2.GaussianBlur(high**2, (0, 0), half)[ys, xs]
    quiet = energy <= np.median(energy)
    # Patches come from the quieter half, but the detail gets the ring's typical (median) strength.
    gain = float(np.sqrt(np.median(energy) / max(energy[quiet].mean(), 1e-6)))
    ys, xs = ys[quiet], xs[quiet]
    # One place per half-patch step over the hole's box; each gets the best of CHOICES sources.
    rng = np.random.default_rng(seed)
    top, left = hy.min() - half, hx.min() - half
    rows = np.arange(top, hy.max() + 1, half)
    cols = np.arange(left, hx.max() + 1, half)
    places_y, places_x = np.meshgrid(rows + half, cols + half, indexing="ij")
    choices = rng.integers(0, len(ys), (places_y.size, CHOICES))
    if guide is not None:
        wanted = guide[np.clip(places_y.ravel(), 0, hole.shape[0] - 1), np.clip(places_x.ravel(), 0, hole.shape[1] - 1)]
        offered = low[ys[choices], xs[choices]]  # (places, CHOICES, C)
        best = np.abs(offered - wanted[:, None]).sum(-1).argmin(1)
        picked = choices[np.arange(len(choices)), best]
    else:
        picked = choices[:, 0]
    offsets = np.arange(patch) - half
    patches = high[(ys[picked][:, None] + offsets)[:, :, None], (xs[picked][:, None] + offsets)[:, None, :]]
    patches = patches.reshape(len(rows), len(cols), patch, patch) * _sine_window(patch)
    # Overlap-add: places of equal row and column parity do not overlap and tile a block.
    canvas = np.zeros((hole.shape[0] + 3 * patch, hole.shape[1] + 3 * patch), np.float32)
    for a in (0, 1):
        for b in (0, 1):
            block = patches[a::2, b::2]
            if block.size == 0:
                continue
            n_r, n_c = block.shape[:2]
            y0, x0 = top + a * half + patch, left + b * half + patch
            canvas[y0 : y0 + n_r * patch, x0 : x0 + n_c * patch] += block.transpose(0, 2, 1, 3).reshape(
                n_r * patch, n_c * patch
            )
    detail = canvas[patch : patch + hole.shape[0], patch : patch + hole.shape[1]] * gain
    detail[~hole] = 0
    return detail


def match_colours(
    fill: np.ndarray, photo: np.ndarray, known: np.ndarray, hole: np.ndarray, upscale: float
) -> np.ndarray:
    """The fill (h, w, C) float with each channel's mean and spread on the ring of known pixels
    around the hole matched to the photo's (h, w, C), seen at the model's scale."""
    box = hole_box(hole)
    extent = max(box[2] - box[0], box[3] - box[1], 1) if box is not None else 1
    width = int(max(4, 0.15 * extent, 2 * upscale))
    ring = (
        cv2.dilate(hole.astype(np.uint8), np.ones((2 * width + 1, 2 * width + 1), np.uint8)).astype(bool)
        & known
        & ~hole
    )
    if ring.sum() < 16:
        return fill
    seen = (
        _masked_blur(photo.astype(np.float32), known, max(0.5 * upscale, 0.5))
        if upscale > 1
        else photo.astype(np.float32)
    )
    target, current = seen[ring], fill[ring]
    gain = np.clip(target.std(0) / np.maximum(current.std(0), 1.0), *GAIN_RANGE)
    return (fill - current.mean(0)) * gain + target.mean(0)


def restore_edges(fill: np.ndarray, upscale: float) -> np.ndarray:
    """An enlarged fill (h, w, C) float with an unsharp mask at the enlargement's scale."""
    if upscale < MIN_UPSCALE:
        return fill
    blurred = cv2.GaussianBlur(fill, (0, 0), 0.5 * upscale).reshape(fill.shape)
    return fill + SHARPEN * (fill - blurred)
