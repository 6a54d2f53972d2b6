"""Making a fill drawn at the model's resolution fit the photo around it: how it is enlarged,
its colours, and the grain it lacks.

Enlargement: the 64×64 fill is warped back onto the hole's bounding box through the inverse of the
framing's similarity map with OpenCV's bicubic interpolation (`inpaint.framing.from_model`,
INTER_CUBIC, Keys a = -0.75), then given an unsharp mask at half a model pixel (a Gaussian of
σ = 0.5 × upscale, upscale = photo pixels per model pixel) of amount max(0.5, 1.5 / upscale), none
for a fill that is shrunk (`restore_edges`, `sharpen_amount`). Measured by

    python benchmarks/enlargement.py --photos out/real-photos/photos

on 97 faces of 53 real photos (the 52 of benchmarks/real_photos.py, fetched from public repositories, and scikit-image's
astronaut): each face seen by the model exactly as the engine frames it (the best fill the model
could draw), enlarged back, compared with the photo over the face's detector box. PSNR in dB by
face width (under 100 / 100–200 / over 200 pixels):

    bicubic (no sharpening)                         31.92  27.37  25.47
    bilinear                                        30.32  26.34  24.66
    Lanczos                                         32.23  27.52  25.60
    before: bicubic + unsharp 0.5, none under 1.5×  32.24  27.77  25.75
    bicubic + unsharp 0.5 / 0.75 / 1.0 everywhere   32.85 / 33.11 / 33.19   27.77 / 27.77 / 27.63
                                                    25.75 / 25.73 / 25.61
    edge-aware: self-guided filter, detail boosted  32.42  27.46  25.51
    edge-aware: cv2.detailEnhance                   24.92  21.25  20.14
    per-photo 7×7 filter fitted on the photo        33.42  27.83  25.96
      around the face (ZSSR-lite; RAISR-lite alike)
    now: bicubic + unsharp max(0.5, 1.5 / upscale)  33.34  27.77  25.75

By enlargement, the best unsharp amount falls from 1–1.5 at 1–1.5× (+2.2 dB over plain bicubic:
the round trip through the model's grid blurs even a fill that is not enlarged) to 0.75–1 at
1.5–2.5× and 0.5 from 2.5× on (+0.4 to +0.2 dB); max(0.5, 1.5 / upscale) follows it (+2.35 dB on
faces enlarged under 1.5×, +0.2 dB at 1.5–2.5×, the same as before above). Lanczos and the
edge-aware enlargements do worse than bicubic + unsharp. A per-photo upscaler trained on the
photo's own known pixels (the photo around the face seen through a framing three times as wide,
enlarged, and a least-squares filter back to the photo: ZSSR's idea, kept linear so it trains in
milliseconds) wins 0.05–0.2 dB more, at 60× the time (1.06 s per face against 0.018 s, on a busy
machine) and needing the photo around the face at the model's scale: not worth it. The wide blurs
are done on a shrunk copy (`_blur`), which keeps restore_edges cheap for big faces.
Enlarged, the fill has a small part of the photo's fine detail (variance of the Laplacian 0.35,
0.07, 0.01 of the photo's by face width; 0.38, 0.15, 0.08 with the grain): the grain gives back
the photo's noise, not its structure.

Colours: each channel of the fill is shifted and scaled so that, on the ring of known pixels
around the hole (where the fill exists too, since the model draws its whole square), its mean
and spread match the photo's at the model's scale (the photo blurred as the model sees it). The
Poisson blend that follows removes what is left along the seam; matching first leaves it less to
spread into the hole, so the fill keeps its own contrast.

Grain: what the enlarged fill lacks is everything finer than a model pixel, the photo minus its
blur at half a model pixel (the cutoff). Copying that band from around the hole would copy
structure (hair onto skin), so it is synthesised instead: seeded Gaussian noise with the
statistics of the photo's grain, measured on the smooth known pixels around the hole
(`measure_grain`), nothing of their pixels copied:

- where: the ring of known pixels from just beyond the cutoff's reach into the hole to four
  cutoffs further; of those, the pixels whose colour at the model's scale is common in the fill
  (skin beside a face's fill, not a flat wall behind it, whose JPEG-flattened pixels would be the
  smoothest of all); of those, the smooth ones: the 30 % whose brightness grain has the least
  local energy, widened to every pixel within twice their mean energy (a few rounds: the quietest
  alone underestimate pure noise, which made them quiet; pure noise converges on nearly all
  pixels, hair, edges and other structure stay out). Clipped pixels do not count.
- strength and colour: the C×C covariance of the grain there: each channel's strength and the
  correlation between channels (brightness noise, the same in every channel, or colour noise).
- spatial character: the grain's energy in up to three octave bands below the cutoff, separately
  for its brightness and its colour, matched (least squares of the bands' shares, logarithmic) by
  white noise blurred by a correlation length: 0 for pixel noise, about a pixel for demosaiced or
  JPEG-compressed photos, more for film grain and skin.

Synthesis (`synthesise_grain`): white noise from the seed, one channel for brightness and C − 1
for colour, each blurred by its correlation length, band-limited like the grain (minus its blur
at the cutoff), mixed into the channels and given the measured covariance exactly. On noise of
known statistics the strength comes back within 7 % (mostly 1–3 %), the channels' correlation
and the neighbours' correlation within a few hundredths (tests/test_texture.py). Its cost for a 100,000-pixel hole,
enlarged 10–20× (the eyes of a face in a 12-megapixel photo): 40–80 ms of CPU on a busy 2-core
machine (the patch copying it replaces: 75–300 ms); the same seed gives the same grain. The
Poisson blend that follows keeps its gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from inpaint.masks import hole_box

MIN_UPSCALE = 1.5  # below this the fill is nearly as sharp as the photo: nothing to add
NOISE_QUANTILE = 0.3  # the grain is measured on this share of the ring: its smoothest pixels
CLIP = 2.0  # … then every pixel whose grain energy is within this factor of theirs (a few rounds)
CLIP_ROUNDS = 4
FINEST_SIGMA = 0.35  # the finest band's upper edge is at least this blur
MAX_BANDS = 3  # octave bands the grain's spatial character is measured in, at most
CORRELATION_RANGE = (0.25, 2.0)  # the grain's correlation lengths tried: 0, and this far (× the cutoff)
PYRAMID_SIGMA = 4.0  # Gaussian blurs this wide or wider are done on a shrunk copy
RING_WIDTH = 4  # the ring the grain is measured on reaches this many cutoffs beyond the blur's reach …
MIN_RING_WIDTH = 16  # … and at least this many pixels
MAX_GRAIN_SAMPLES = 20000  # ring pixels the grain's statistics are taken on, at most
COLOUR_BIN = 16  # grey levels a side of the colour bins that say which surfaces the fill shows
SURFACE_SHARE = 0.01  # a bin holding this share of the fill's colours is a surface it shows
MIN_GRAIN_PIXELS = 64  # fewer usable ring pixels than this: no grain
GAIN_RANGE = (0.7, 1.5)  # how far colour matching may stretch or squeeze a channel
SHARPEN = 0.5  # unsharp-mask amount for a fill enlarged 3× or more …
SHARPEN_SMALL = 1.5  # … and amount × enlargement below that (1.5 at 1×, 0.75 at 2×)


def _masked_blur(image: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over known pixels only (normalised convolution); image (h, w[, C])."""
    weight = known.astype(np.float32)
    blurred_weight = np.maximum(_blur(weight, sigma), 1e-6)
    if image.ndim == 3:
        weight, blurred_weight = weight[..., None], blurred_weight[..., None]
    return _blur(image.astype(np.float32, copy=False) * weight, sigma) / blurred_weight


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (h, w[, C]) float32; from PYRAMID_SIGMA on, done at 1/f of the size (f a power
    of two, at most sigma / 2: area-shrunk, blurred, enlarged bilinearly, whose own blur is
    allowed for): within a few hundredths of a grey level of the exact blur on photos, and many
    times cheaper for wide blurs."""
    if sigma < PYRAMID_SIGMA:
        return cv2.GaussianBlur(image, (0, 0), sigma).reshape(image.shape)
    factor = 2 ** int(np.log2(sigma / 2))
    height, width = image.shape[:2]
    pad = (-height % factor, -width % factor)
    padded = cv2.copyMakeBorder(image, 0, pad[0], 0, pad[1], cv2.BORDER_REFLECT_101) if any(pad) else image
    small = cv2.resize(padded, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), np.sqrt(sigma**2 - factor**2 / 4) / factor)
    big = cv2.resize(small, (padded.shape[1], padded.shape[0]), interpolation=cv2.INTER_LINEAR)
    return big[:height, :width].reshape(image.shape)


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    """The symmetric square root (or inverse square root) of a covariance matrix."""
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 1e-6 * max(values.max(), 1e-6))
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def band_edges(upscale: float) -> list[float]:
    """Gaussian scales (photo pixels) bounding the grain's frequency bands: 0 (the pixels
    themselves), then octaves up to the fill's own blur, half a model pixel (…, cutoff / 4,
    cutoff / 2, cutoff; at most MAX_BANDS bands, none under FINEST_SIGMA, below which a blur
    hardly changes a pixel). Band k is the photo blurred at edges[k] minus the photo blurred at
    edges[k + 1]; all of them together, the photo minus its blur at the cutoff, are the grain."""
    cutoff = 0.5 * upscale
    edges = [cutoff]
    while edges[0] / 2 >= FINEST_SIGMA and len(edges) < MAX_BANDS:
        edges.insert(0, edges[0] / 2)
    return [0.0] + edges


def _response(sigma: float, f: np.ndarray) -> np.ndarray:
    """The frequency response, at frequencies f (cycles per pixel), of `_blur` along one axis:
    OpenCV's sampled Gaussian taps (4 σ each side) below PYRAMID_SIGMA, the Gaussian above."""
    if sigma <= 0:
        return np.ones_like(f)
    if sigma >= PYRAMID_SIGMA:
        return np.exp(-2 * np.pi**2 * sigma**2 * f**2)
    taps = cv2.getGaussianKernel(int(round(sigma * 8 + 1)) | 1, sigma, cv2.CV_64F)[:, 0]
    x = np.arange(len(taps)) - len(taps) // 2
    return np.cos(2 * np.pi * f[:, None] * x) @ taps


def _band_energies(edges: list[float], correlation: np.ndarray) -> np.ndarray:
    """(len(correlation), bands + 1): the energy of each band, and of all bands together, in white
    noise blurred by each of the `correlation` scales (the grain's model), summed over a grid of
    the pixel grid's frequencies (a quarter of the plane: the filters are symmetric)."""
    f = np.linspace(0, 0.5, max(64, int(np.ceil(8 * edges[-1]))))
    axis = [_response(sigma, f) for sigma in edges]
    plane = [np.outer(r, r) for r in axis]
    filters = [fine - coarse for fine, coarse in zip(plane[:-1], plane[1:])] + [plane[0] - plane[-1]]
    squared = np.stack(filters) ** 2
    power = np.stack([_response(sigma, f) ** 2 for sigma in correlation])
    return np.einsum("ci,cj,kij->ck", power, power, squared)


@lru_cache(maxsize=32)
def _band_shares(edges: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The correlation lengths tried (0, and quarter-octave steps from CORRELATION_RANGE[0] to
    CORRELATION_RANGE[1] × the cutoff) and each one's bands' shares of the energy of all bands
    (log). The same for every fill of one enlargement: kept."""
    low, high = CORRELATION_RANGE[0], CORRELATION_RANGE[1] * edges[-1]
    candidates = np.r_[0.0, low * 2 ** (np.arange(int(np.log2(high / low) * 4) + 1) / 4)]
    model = _band_energies(list(edges), candidates)
    return candidates, np.log(np.maximum(model[:, :-1] / model[:, -1:], 1e-9))


def _correlation_length(edges: list[float], energies: np.ndarray) -> float:
    """The blur of white noise whose bands share its energy as `energies` (bands + 1, the last
    all bands together) do, best in the least squares of their logarithms."""
    candidates, model = _band_shares(tuple(edges))
    shares = np.log(np.maximum(energies[:-1] / max(energies[-1], 1e-12), 1e-9))
    errors = ((model - shares) ** 2).sum(1)
    return float(candidates[errors.argmin()])


@dataclass(frozen=True)
class Grain:
    """The photo's grain near a hole: Gaussian noise of this colour covariance, spatially white
    noise blurred by `luma_sigma` (its brightness) and `chroma_sigma` (its colour), band-limited
    to what is finer than the fill's blur at `cutoff` (half a model pixel)."""

    cutoff: float
    covariance: np.ndarray  # C×C: strength per channel, correlation between channels
    luma_sigma: float
    chroma_sigma: float
    energies: np.ndarray  # (2, bands + 1): measured brightness and colour energy per band, and in all
    pixels: int  # smooth known pixels it was measured on


def _like_the_fill(colours: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """(n,) bool: which colours (n, C) fall in a colour bin (COLOUR_BIN grey levels a side) that
    holds at least SURFACE_SHARE of the fill's colours (m, C): the surfaces the hole shows."""
    bins = -(-256 // COLOUR_BIN)
    strides = bins ** np.arange(fill.shape[1])

    def index(values: np.ndarray) -> np.ndarray:
        return np.clip(values // COLOUR_BIN, 0, bins - 1).astype(np.int64) @ strides

    counts = np.bincount(index(fill), minlength=bins ** fill.shape[1])
    return (counts >= SURFACE_SHARE * len(fill))[index(colours)]


def measure_grain(
    photo: np.ndarray, known: np.ndarray, hole: np.ndarray, upscale: float, guide: np.ndarray | None = None
) -> Grain | None:
    """The grain of the known pixels around `hole` (photo (h, w, C) 0…255, known and hole (h, w)
    bool), measured on smooth pixels of the surfaces the fill `guide` (h, w, C) shows.

    Grain: the photo minus its blur at half a model pixel (over known pixels only), split into
    octave bands (`band_edges`). Surfaces: ring pixels whose colour at the model's scale is common
    in the fill (skin beside a face's fill, not a flat wall behind it). Smooth: the NOISE_QUANTILE
    of those whose brightness grain has the least local energy (over a Gaussian window as wide as the
    cutoff), widened to every pixel within CLIP times their mean energy, a few times (the quietest
    alone would underestimate the noise, which made them quiet; noise alone converges on nearly
    all pixels, hair, edges and other structure stay out). None when too few pixels are usable."""
    edges = band_edges(upscale)
    cutoff = edges[-1]
    window = max(2.0, cutoff)
    # The ring: known pixels from where the blur no longer reaches into the hole to RING_WIDTH
    # cutoffs (at least MIN_RING_WIDTH pixels) further; only its surroundings are worked on.
    to_hole = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
    inner = 2 * cutoff + 1
    ring = known & (to_hole > inner) & (to_hole <= inner + max(MIN_RING_WIDTH, RING_WIDTH * cutoff))
    box = hole_box(ring)
    if box is None:
        return None
    reach = int(np.ceil(3 * window))  # what the widest blur (the energy's window) needs around the ring
    rows = slice(max(box[1] - reach, 0), min(box[3] + 1 + reach, hole.shape[0]))
    cols = slice(max(box[0] - reach, 0), min(box[2] + 1 + reach, hole.shape[1]))
    photo, known, hole, ring = photo[rows, cols], known[rows, cols], hole[rows, cols], ring[rows, cols]
    channels = photo.shape[2]
    # Clipped pixels (blown highlights, crushed shadows) have no grain: they do not count.
    usable = known & (cv2.inRange(photo, (0.5,) * channels, (254.5,) * channels) > 0)
    ring &= usable
    if ring.sum() < MIN_GRAIN_PIXELS:
        return None
    photo = np.ascontiguousarray(photo, np.float32)
    # The photo blurred at the cutoff over known pixels only (normalised convolution: the ring
    # starts where the hole still weighs a little). The finer levels are plain blurs, needed
    # only where the grain is measured: at four of their σ or more from the hole, it weighs nothing.
    coarsest = _masked_blur(photo, known, cutoff)
    brightness = cv2.transform(photo - coarsest, np.full((1, channels), 1 / channels, np.float32))
    energy = _masked_blur(brightness**2, usable, window)
    where = np.flatnonzero(ring)
    where = where[:: max(1, len(where) // MAX_GRAIN_SAMPLES)]  # a big ring: every k-th pixel is plenty
    if guide is not None:
        ys, xs = np.nonzero(hole)
        step = max(1, len(ys) // MAX_GRAIN_SAMPLES)
        fill = guide[ys[::step], xs[::step]]
        alike = _like_the_fill(coarsest.reshape(-1, channels)[where], fill)
        if alike.sum() >= MIN_GRAIN_PIXELS:
            where = where[alike]
    energy = energy.reshape(-1)[where]
    rank = int(NOISE_QUANTILE * (len(energy) - 1))
    smooth = energy <= np.partition(energy, rank)[rank]
    for _ in range(CLIP_ROUNDS):
        smooth = energy <= CLIP * energy[smooth].mean()
    where = where[smooth]
    levels = [photo.reshape(-1, channels)[where]]
    levels += [_blur(photo, sigma).reshape(-1, channels)[where] for sigma in edges[1:-1]]
    levels.append(coarsest.reshape(-1, channels)[where])
    bands = [fine - coarse for fine, coarse in zip(levels[:-1], levels[1:])] + [levels[0] - levels[-1]]
    # Brightness: the channels' mean; colour: what is left of each channel.
    luma = np.array([(band.mean(1, dtype=np.float64) ** 2).mean() for band in bands])
    chroma = np.array([(band.astype(np.float64) ** 2).sum(1).mean() for band in bands]) - channels * luma
    total = bands[-1].astype(np.float64)
    return Grain(
        cutoff,
        total.T @ total / len(total),
        _correlation_length(edges, luma),
        _correlation_length(edges, chroma) if channels > 1 else 0.0,
        np.stack([luma, chroma]),
        len(where),
    )


def synthesise_grain(grain: Grain, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """Seeded Gaussian noise (h, w, C) float32 with the grain's statistics inside `hole`, zero
    outside: white noise blurred by the grain's correlation lengths (one noise for brightness,
    one for colour), band-limited like the grain (minus its blur at the cutoff), then given the
    measured colour covariance exactly (over the hole's box)."""
    channels = grain.covariance.shape[0]
    out = np.zeros(hole.shape + (channels,), np.float32)
    box = hole_box(hole)
    if box is None:
        return out
    pad = int(np.ceil(3 * (grain.cutoff + max(grain.luma_sigma, grain.chroma_sigma)))) + 1
    left, top, right, bottom = box
    rows = slice(max(top - pad, 0), min(bottom + 1 + pad, hole.shape[0]))
    cols = slice(max(left - pad, 0), min(right + 1 + pad, hole.shape[1]))
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    rng = np.random.default_rng(seed)
    # White noise: the brightness's in the first channel, the colour's in the others; each blurred
    # by its correlation length, then band-limited like the grain.
    luma = rng.standard_normal(shape + (1,), np.float32)
    if grain.luma_sigma > 0:
        luma = _blur(luma, grain.luma_sigma)
    white = luma
    if channels > 1:
        colour = rng.standard_normal(shape + (channels - 1,), np.float32)
        if grain.chroma_sigma > 0:
            colour = _blur(colour, grain.chroma_sigma)
        white = np.concatenate([luma, colour], 2)
    noise = white - _blur(white, grain.cutoff)
    # Into the photo's channels: brightness alike in all, colour along directions that leave the
    # brightness alone; then the measured covariance (that of the noise made, over a grid of the
    # hole's box, whitened, then coloured).
    basis = np.linalg.qr(np.c_[np.ones(channels), np.eye(channels)[:, : channels - 1]])[0][:, 1:]
    to_channels = np.vstack([np.ones((1, channels)), basis.T])
    inner = noise[top - rows.start : bottom + 1 - rows.start, left - cols.start : right + 1 - cols.start]
    step = max(1, int(np.sqrt(inner.shape[0] * inner.shape[1] / MAX_GRAIN_SAMPLES)))
    samples = inner[::step, ::step].reshape(-1, channels).astype(np.float64)
    made = to_channels.T @ (samples.T @ samples / len(samples)) @ to_channels
    mix = to_channels @ _sqrtm(made, inverse=True) @ _sqrtm(grain.covariance)
    box_rows, box_cols = slice(top, bottom + 1), slice(left, right + 1)
    out[box_rows, box_cols] = (
        cv2.transform(inner, mix.T.astype(np.float32)).reshape(inner.shape) * hole[box_rows, box_cols, None]
    )
    return out


def photo_detail(
    photo: np.ndarray,
    known: np.ndarray,
    hole: np.ndarray,
    upscale: float,
    guide: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Grain to add to an enlarged fill inside `hole`: the photo's noise measured on the smooth
    known pixels around the hole (`measure_grain`), synthesised afresh (`synthesise_grain`).

    photo (h, w, C) 0…255, the region around the hole; known (h, w) bool, pixels that are real;
    hole (h, w) bool; upscale: photo pixels per model pixel; guide (h, w, C): the fill, whose
    colours say which surfaces the grain is measured on. Returns (h, w, C) float32, zero outside
    the hole and everywhere when the fill is barely enlarged or there is no ring to measure. No
    pixel of the photo is copied; the same seed gives the same grain."""
    if upscale < MIN_UPSCALE or not hole.any() or not known.any():
        return np.zeros(hole.shape + (photo.shape[2],), np.float32)
    grain = measure_grain(photo, known, hole, upscale, guide)
    if grain is None:
        return np.zeros(hole.shape + (photo.shape[2],), np.float32)
    return synthesise_grain(grain, hole, seed)


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


def sharpen_amount(upscale: float) -> float:
    """The unsharp-mask amount for a fill enlarged `upscale` times: SHARPEN from 3× on, more
    (SHARPEN_SMALL / upscale) below, where the round trip through the model's grid blurs the most
    for what the enlargement itself softens; none for a fill that is shrunk."""
    return 0.0 if upscale < 1 else max(SHARPEN, SHARPEN_SMALL / upscale)


def restore_edges(fill: np.ndarray, upscale: float) -> np.ndarray:
    """An enlarged fill (h, w, C) float with an unsharp mask at the enlargement's scale (a blur
    of half a model pixel), of `sharpen_amount`."""
    amount = sharpen_amount(upscale)
    if amount == 0:
        return fill
    return fill + amount * (fill - _blur(fill, 0.5 * upscale))
