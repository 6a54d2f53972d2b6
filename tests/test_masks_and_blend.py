"""Mask kinds and files, and blending a fill into an image (holes at the border included)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inpaint.blend import paste, poisson_blend
from inpaint.errors import UserError
from inpaint.masks import MASK_KINDS, fit_mask, load_mask, make_mask


def test_centre_mask_is_a_centred_quarter():
    hole = make_mask("centre", 64, 64)
    assert hole.mean() == 0.25
    ys, xs = np.nonzero(hole)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (16, 47, 16, 47)


def test_random_mask_fraction_and_seed():
    a, b, c = (
        make_mask("random", 64, 64, seed=1),
        make_mask("random", 64, 64, seed=1),
        make_mask("random", 64, 64, seed=2),
    )
    assert abs(a.mean() - 0.8) < 0.02 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_pattern_mask_is_blobs_of_the_asked_area():
    import cv2

    hole = make_mask("pattern", 64, 64, seed=3)
    assert abs(hole.mean() - 0.25) < 0.01
    count, _ = cv2.connectedComponents(hole.astype(np.uint8))
    assert 2 <= count - 1 <= 30  # a few blobs, not scattered pixels
    assert not np.array_equal(hole, make_mask("pattern", 64, 64, seed=4))


@pytest.mark.parametrize(
    "side, region", [("left", np.s_[:, :32]), ("right", np.s_[:, 32:]), ("top", np.s_[:32]), ("bottom", np.s_[32:])]
)
def test_half_masks(side, region):
    hole = make_mask("half", 64, 64, side=side)
    assert hole[region].all() and hole.sum() == 64 * 32


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(UserError, match="unknown mask kind"):
        make_mask("diagonal", 8, 8)
    assert set(MASK_KINDS) == {"centre", "random", "pattern", "half"}


def test_mask_files_white_is_hole_and_other_sizes_are_resized(tmp_path):
    pixels = np.zeros((32, 48), dtype=np.uint8)
    pixels[8:16, 12:24] = 255
    Image.fromarray(pixels).save(tmp_path / "m.png")
    hole = load_mask(tmp_path / "m.png", 64, 96)  # same aspect ratio, twice the size
    assert hole.shape == (64, 96) and hole.sum() == 4 * 8 * 12
    assert hole[16:32, 24:48].all()
    rgb = np.stack([pixels] * 3, -1)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=90)  # JPEG noise must not leak into the hole
    assert (load_mask(tmp_path / "rgb.jpg", 32, 48) == (pixels > 127)).mean() > 0.99


def test_mask_files_of_another_aspect_ratio_or_not_images_are_refused(tmp_path):
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(tmp_path / "square.png")
    with pytest.raises(UserError, match="square.png.*another aspect ratio"):
        load_mask(tmp_path / "square.png", 32, 64)
    (tmp_path / "notes.png").write_text("no")
    with pytest.raises(UserError, match="notes.png"):
        load_mask(tmp_path / "notes.png", 32, 32)
    assert fit_mask(np.ones((4, 4), bool), 4, 4) is not None


def _smooth_image(seed: int, size: int = 64) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((size, size, 3)), (0, 0), 4)


@pytest.mark.parametrize("kind", ["centre", "half", "random", "pattern"])
def test_poisson_blend_keeps_outside_pixels_and_recovers_offset_fills(kind):
    image = _smooth_image(0)
    hole = make_mask(kind, 64, 64)
    # A fill with the image's gradients but another brightness must blend back to the image,
    # including where the hole touches the border (half mask).
    blended = poisson_blend(image, image + 0.3, hole)
    assert np.array_equal(blended[~hole], image[~hole])
    assert np.abs(blended - image).max() < 2e-3


def test_poisson_blend_matches_the_edge_and_keeps_the_fill_gradients():
    image, other = _smooth_image(0), _smooth_image(1)
    hole = make_mask("half", 64, 64, side="right")
    blended = poisson_blend(image, other, hole)
    seam_blend = np.abs(blended[:, 32] - blended[:, 31]).mean()
    seam_paste = np.abs(paste(image, other, hole)[:, 32] - image[:, 31]).mean()
    assert seam_blend < seam_paste / 3
    inner_gradient = np.diff(blended[:, 40:60], axis=1) - np.diff(other[:, 40:60], axis=1)
    assert np.abs(inner_gradient).mean() < 0.01
    big = poisson_blend(
        np.zeros((200, 150, 3)), np.ones((200, 150, 3)), np.pad(np.ones((100, 80), bool), ((50, 50), (0, 70)))
    )
    assert big[~np.pad(np.ones((100, 80), bool), ((50, 50), (0, 70)))].max() == 0


@pytest.mark.parametrize("kind", ["centre", "half", "random"])
def test_the_exact_and_the_iterative_blend_solve_the_same_equations(kind, monkeypatch):
    """Sparse LU (up to DIRECT_LIMIT hole pixels) and conjugate gradients (past it, or without SciPy)
    agree once CG is run to a tight tolerance, borders and scattered holes included."""
    import builtins

    import inpaint.blend as blend

    image, other = _smooth_image(0) * 255, _smooth_image(1) * 255
    hole = make_mask(kind, 64, 64)
    exact = poisson_blend(image, other, hole)
    monkeypatch.setattr(blend, "DIRECT_LIMIT", 0)  # CG from here on
    iterative = poisson_blend(image, other, hole, tolerance=1e-10)
    assert np.abs(exact - iterative).max() < 1e-3
    assert np.array_equal(exact[~hole], image[~hole])
    monkeypatch.setattr(blend, "DIRECT_LIMIT", 10**6)
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    without_scipy = poisson_blend(image, other, hole)  # falls back to CG, default tolerance
    assert np.abs(exact - without_scipy).max() < 1.0  # within a grey level


def test_empty_and_full_holes():
    image, other = _smooth_image(0), _smooth_image(1)
    assert np.array_equal(poisson_blend(image, other, np.zeros((64, 64), bool)), image)
    assert np.array_equal(poisson_blend(image, other, np.ones((64, 64), bool)), other)


def test_psnr_and_ssim():
    from inpaint.metrics import psnr, ssim

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (32, 32, 3))
    assert psnr(image, image) == float("inf") and ssim(image, image) == pytest.approx(1)
    noisy = image + 10.0  # constant error of 10 levels: MSE 100
    assert psnr(image, noisy) == pytest.approx(10 * np.log10(255**2 / 100))
    region = np.zeros((32, 32), bool)
    region[:8] = True
    partly = image.copy()
    partly[region] += 20
    assert psnr(image, partly, region) == pytest.approx(10 * np.log10(255**2 / 400))
    assert ssim(image, partly, ~region) > ssim(image, partly, region)
    assert ssim(image, rng.uniform(0, 255, (32, 32, 3))) < 0.1
    assert ssim(image, image * 0.5 + 64) < 1
