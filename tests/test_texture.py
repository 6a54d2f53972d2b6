"""The grain given to an enlarged fill (inpaint.texture): measured on the smooth known pixels
around the hole, synthesised afresh, never copied from the photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inpaint.texture import measure_grain, photo_detail, restore_edges, sharpen_amount

SIZE = 240
UPSCALE = 4.0  # the grain is what is finer than half a model pixel: a blur of 2 photo pixels


def centre_hole(size: int = SIZE) -> np.ndarray:
    hole = np.zeros((size, size), bool)
    hole[80:160, 70:170] = True
    return hole


def band(image: np.ndarray, cutoff: float = 0.5 * UPSCALE) -> np.ndarray:
    """What the grain stands for: the image minus its blur at the cutoff."""
    image = image.astype(np.float32)
    return image - cv2.GaussianBlur(image, (0, 0), cutoff).reshape(image.shape)


def lag_one(values: np.ndarray) -> float:
    """Correlation of horizontally neighbouring pixels of a 2-D array."""
    return float(np.corrcoef(values[:, :-1].ravel(), values[:, 1:].ravel())[0, 1])


@pytest.mark.parametrize("sigma", [2.0, 6.0])
def test_the_grain_has_the_rings_noise_strength(sigma):
    rng = np.random.default_rng(0)
    photo = 120 + rng.normal(0, sigma, (SIZE, SIZE, 3))
    hole = centre_hole()
    guide = np.full((SIZE, SIZE, 3), 120.0)
    detail = photo_detail(photo, ~hole, hole, UPSCALE, guide, seed=0)
    assert detail.shape == (SIZE, SIZE, 3) and detail.dtype == np.float32
    ring = band(photo)[~hole][:, 0].std()  # the photo's own noise in the same band
    assert detail[hole].std(0) == pytest.approx([ring] * 3, rel=0.25)
    assert detail[hole].std(0) == pytest.approx([sigma] * 3, rel=0.25)  # σ 6: grain σ 6 ± 25%


def test_the_grain_keeps_the_channels_correlation_and_the_noises_spatial_character():
    rng = np.random.default_rng(1)
    hole = centre_hole()
    guide = np.full((SIZE, SIZE, 3), 120.0)
    brightness_only = 120 + rng.normal(0, 5, (SIZE, SIZE, 1)).repeat(3, 2)
    grain = photo_detail(brightness_only, ~hole, hole, UPSCALE, guide, seed=1)[hole]
    assert np.corrcoef(grain[:, 0], grain[:, 2])[0, 1] > 0.95  # brightness noise: no colour speckle
    colour = 120 + rng.normal(0, 5, (SIZE, SIZE, 3))
    grain = photo_detail(colour, ~hole, hole, UPSCALE, guide, seed=1)[hole]
    assert abs(np.corrcoef(grain[:, 0], grain[:, 2])[0, 1]) < 0.1  # independent channels stay independent
    # Noise blurred before (a demosaiced, JPEG-compressed or scanned photo) is blotchier than
    # pixel noise: the grain's neighbours are as correlated as the photo's.
    for blur in (0.0, 1.2):
        noise = rng.normal(0, 5, (SIZE, SIZE, 3)).astype(np.float32)
        if blur:
            noise = cv2.GaussianBlur(noise, (0, 0), blur)
        photo = 120 + noise * 5 / noise.std()
        detail = photo_detail(photo, ~hole, hole, UPSCALE, guide, seed=2)
        inside = detail[90:150, 80:160, 0]
        ring = band(photo)[10:60, 10:230, 0]
        assert lag_one(inside) == pytest.approx(lag_one(ring), abs=0.1)


@pytest.mark.parametrize("with_guide", [True, False])
def test_no_structure_is_copied_from_a_striped_surrounding(with_guide):
    """Hair beside skin, in its simplest form: strong stripes over most of the ring, plain grain
    on the rest. The grain is the plain part's, with nothing of the stripes in it (without the
    fill's colours too: the stripes are kept out as structure, not only as another surface)."""
    rng = np.random.default_rng(3)
    period = 8
    x = np.arange(SIZE)
    stripes = 40 * np.sin(2 * np.pi * x / period)
    photo = 120 + rng.normal(0, 3, (SIZE, SIZE, 3))
    striped = np.zeros((SIZE, SIZE), bool)
    striped[:, :150] = True  # left of x = 150: the ring's left side and most of its top and bottom
    photo[striped] += stripes[np.nonzero(striped)[1], None]
    hole = centre_hole()
    guide = np.full((SIZE, SIZE, 3), 120.0) if with_guide else None
    detail = photo_detail(photo, ~hole, hole, UPSCALE, guide, seed=0)
    inside = detail[80:160, 70:170].mean(-1)
    # No correlation with the stripes continued into the hole (the amplitude of their frequency,
    # at whatever phase, against the grain's spread) …
    phase = np.exp(2j * np.pi * x[70:170] / period)
    assert 2 * np.abs((inside * phase).mean()) < 0.1 * inside.std()
    # … nor with stripes copied anywhere at any phase: no peak at their frequency in the grain's
    # spectrum (rows' power spectra, averaged).
    spectrum = (np.abs(np.fft.rfft(inside - inside.mean(1, keepdims=True), axis=1)) ** 2).mean(0)
    frequencies = np.fft.rfftfreq(inside.shape[1])
    peak = spectrum[np.argmin(np.abs(frequencies - 1 / period))]
    assert peak < 2 * np.median(spectrum[(frequencies > 0.05) & (frequencies < 0.25)])
    # The grain's strength is the plain part's, not inflated by the stripes.
    assert inside.std() == pytest.approx(band(photo)[10:60, 170:230].mean(-1).std(), rel=0.25)


def test_the_grain_is_measured_on_the_surfaces_the_fill_shows():
    """A smooth grey wall beside grainy skin: the skin-coloured fill gets the skin's grain, not
    the wall's (the smoothest pixels, but not the surface the hole is on)."""
    rng = np.random.default_rng(4)
    skin, wall = np.array([200.0, 150, 130]), np.array([128.0, 128, 128])
    photo = np.empty((SIZE, SIZE, 3))
    photo[:] = skin
    photo[:, :110] = wall
    noise = rng.normal(0, 1, (SIZE, SIZE, 1))
    photo += np.where(np.arange(SIZE)[None, :, None] < 110, 0.5, 6.0) * noise
    hole = centre_hole()
    guide = np.empty((SIZE, SIZE, 3))
    guide[:] = skin
    detail = photo_detail(photo, ~hole, hole, UPSCALE, guide, seed=0)
    skin_grain = band(photo)[:, 180:][:, :, 0].std()
    assert detail[hole].std(0) == pytest.approx([skin_grain] * 3, rel=0.25)


def test_the_same_seed_gives_the_same_grain_and_only_the_hole_gets_any():
    rng = np.random.default_rng(5)
    photo = (120 + rng.normal(0, 4, (SIZE, SIZE, 3))).clip(0, 255).astype(np.uint8)
    before = photo.copy()
    hole = np.zeros((SIZE, SIZE), bool)
    cv2.circle(hole.view(np.uint8), (120, 120), 45, 1, -1)
    guide = np.full((SIZE, SIZE, 3), 120.0)
    a = photo_detail(photo, ~hole, hole, UPSCALE, guide, seed=7)
    b = photo_detail(photo, ~hole, hole, UPSCALE, guide, seed=7)
    c = photo_detail(photo, ~hole, hole, UPSCALE, guide, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not a[~hole].any() and (a[hole] != 0).mean() > 0.99
    assert np.array_equal(photo, before)  # the photo is read, never written


def test_no_grain_without_enlargement_or_without_a_ring():
    rng = np.random.default_rng(6)
    photo = 120 + rng.normal(0, 6, (SIZE, SIZE, 3))
    hole = centre_hole()
    assert not photo_detail(photo, ~hole, hole, 1.2).any()  # barely enlarged: the fill is sharp enough
    everything = np.ones((SIZE, SIZE), bool)
    assert not photo_detail(photo, ~everything, everything, UPSCALE).any()
    assert measure_grain(photo, ~everything, everything, UPSCALE) is None


def test_grayscale_photos_get_grayscale_grain():
    rng = np.random.default_rng(7)
    photo = 120 + rng.normal(0, 6, (SIZE, SIZE, 1))
    hole = centre_hole()
    detail = photo_detail(photo, ~hole, hole, UPSCALE, np.full((SIZE, SIZE, 1), 120.0), seed=0)
    assert detail.shape == (SIZE, SIZE, 1)
    assert detail[hole].std() == pytest.approx(band(photo)[~hole].std(), rel=0.25)


def test_the_enlarged_fill_is_sharpened_by_the_measured_amounts():
    """benchmarks/enlargement.py: 1.5 at 1×, 0.75 at 2×, 0.5 from 3× on; a shrunk fill is left alone."""
    assert [sharpen_amount(u) for u in (0.8, 1.0, 2.0, 3.0, 10.0)] == pytest.approx([0, 1.5, 0.75, 0.5, 0.5])
    edge = np.zeros((40, 40, 3), np.float32)
    edge[:, 20:] = 100
    edge = cv2.GaussianBlur(edge, (0, 0), 2.0)
    for upscale in (1.0, 2.0, 6.0):
        sharpened = restore_edges(edge, upscale)
        blurred = cv2.GaussianBlur(edge, (0, 0), 0.5 * upscale)
        assert np.allclose(sharpened, edge + sharpen_amount(upscale) * (edge - blurred), atol=1e-3)
        assert sharpened[:, 21].mean() > edge[:, 21].mean()  # more contrast across the edge
    assert np.array_equal(restore_edges(edge, 0.8), edge)
