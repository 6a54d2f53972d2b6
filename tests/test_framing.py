"""The model's square in a photo: similarity fits, warping to the model and back, drawing it,
and the photo-scale detail given to an enlarged fill."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inpaint.framing import Framing, apply, compose, draw, fit_similarity, from_model, hole_to_model, to_model
from inpaint.texture import match_colours, photo_detail


def smooth_image(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((8, 8, 3)).astype(np.float32) * 255
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def turned_framing(angle: float, scale: float, centre: tuple[float, float], size: int = 64) -> Framing:
    """Photo → model: the model's centre at `centre` in the photo, the photo turned by `angle`
    and shrunk `scale` times."""
    matrix = cv2.getRotationMatrix2D(centre, angle, 1 / scale)
    matrix[:, 2] += np.array([(size - 1) / 2, (size - 1) / 2]) - np.array(centre)
    return Framing(matrix, size, "face")


def test_fit_similarity_recovers_a_known_map_and_ignores_unweighted_points():
    truth = turned_framing(17, 3.3, (200, 150)).matrix
    points = np.random.default_rng(0).random((20, 2)) * 300
    target = apply(truth, points)
    assert np.allclose(fit_similarity(points, target), truth, atol=1e-9)
    spoiled = target.copy()
    spoiled[:5] += 40  # landmarks inside a hole: wrong, but weighted zero
    weights = np.r_[np.zeros(5), np.ones(15)]
    assert np.allclose(fit_similarity(points, spoiled, weights), truth, atol=1e-9)
    with pytest.raises(ValueError):
        fit_similarity(points[:1], target[:1])


def test_a_turned_and_scaled_face_lands_on_its_own_pixels_and_back():
    model = smooth_image(64)
    view = turned_framing(-15, 3.0, (210.0, 160.0))
    photo = cv2.warpAffine(model, view.inverse, (420, 330), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    assert np.abs(to_model(photo, view) - model).mean() < 1.5  # the photo seen through the framing is the model image
    rows, cols = slice(120, 200), slice(170, 250)  # a region inside the square
    back = from_model(model, view, rows, cols)
    assert np.abs(back - photo[rows, cols]).mean() < 1.0  # and the model image warps back onto the photo
    assert view.angle == pytest.approx(15, abs=1e-6) and view.side() == pytest.approx(192, rel=1e-6)
    corners = view.corners()
    assert np.allclose(apply(view.matrix, corners), [[-0.5, -0.5], [63.5, -0.5], [63.5, 63.5], [-0.5, 63.5]])


def test_an_upright_square_is_the_same_as_an_area_resize_of_the_crop():
    photo = smooth_image(300)[:, :, 0]
    view = Framing.square(40, 60, 128, 64, "context")
    expected = cv2.resize(photo[60:188, 40:168], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(to_model(photo, view) - expected).mean() < 0.5


def test_a_hole_covers_every_model_pixel_it_touches_and_the_outside_is_not_a_hole():
    hole = np.zeros((300, 300), bool)
    hole[100, 100] = True  # a single photo pixel
    view = Framing.square(-50, -50, 256, 64, "context")  # a quarter of the square lies outside the photo
    covered = hole_to_model(hole, view)
    assert covered.sum() >= 1 and covered[int((100 + 50) / 4), int((100 + 50) / 4)]
    assert not hole_to_model(np.zeros((300, 300), bool), view).any()


def test_the_drawing_marks_the_square_and_keeps_the_photo_size_bounded():
    photo = np.zeros((3000, 2000, 3), np.uint8)
    hole = np.zeros((3000, 2000), bool)
    hole[1000:1100, 900:1000] = True
    picture, scale = draw(photo, Framing.square(500, 500, 1000, 64, "face"), hole)
    assert max(picture.shape[:2]) == 1024 and scale == pytest.approx(1024 / 3000)
    assert picture[..., 1].max() == 255  # the green outline


def test_detail_has_the_rings_strength_only_in_the_hole_and_only_when_enlarged():
    rng = np.random.default_rng(1)
    photo = 120 + rng.normal(0, 6, (200, 200, 1)).repeat(3, 2)  # a grainy flat surface
    hole = np.zeros((200, 200), bool)
    hole[70:130, 60:140] = True
    guide = np.full((200, 200, 3), 120.0)
    detail = photo_detail(photo, ~hole, hole, upscale=4.0, guide=guide)
    assert not detail[~hole].any()
    ring = photo[..., 0] - cv2.GaussianBlur(photo[..., 0], (0, 0), 2.0)
    assert 0.6 < detail[hole].std() / ring[~hole].std() < 1.4
    assert not photo_detail(photo, ~hole, hole, upscale=1.2, guide=guide).any()


def test_compose_applies_the_right_map_first():
    shift = np.array([[1.0, 0, 5], [0, 1.0, 0]])
    double = np.array([[2.0, 0, 0], [0, 2.0, 0]])
    assert np.allclose(apply(compose(double, shift), [[1, 1]]), [[12, 2]])


def test_colour_matching_makes_the_fill_agree_with_the_ring():
    rng = np.random.default_rng(2)
    photo = smooth_image(160, seed=3)
    hole = np.zeros((160, 160), bool)
    hole[60:100, 50:110] = True
    fill = (photo - photo.mean((0, 1))) * 0.8 + photo.mean((0, 1)) + [30.0, -20.0, 10.0]  # a colour cast, less contrast
    fill += rng.normal(0, 0.1, fill.shape)
    matched = match_colours(fill, photo, ~hole, hole, upscale=1.0)
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((19, 19), np.uint8)).astype(bool) & ~hole
    assert np.abs(matched[ring].mean(0) - photo[ring].mean(0)).max() < 0.5
    assert np.allclose(matched[ring].std(0), photo[ring].std(0), rtol=0.05)
    assert np.abs(matched - photo).mean() < 0.1 * np.abs(fill - photo).mean()


def test_a_photo_at_the_model_size_is_seen_exactly_and_its_holes_are_not_widened():
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hole = rng.random((64, 64)) < 0.8  # 80% of the pixels missing at random
    whole = Framing.square(0, 0, 64, 64, "whole")
    assert np.array_equal(to_model(photo, whole), photo.astype(np.float32))
    assert np.array_equal(hole_to_model(hole, whole), hole)
    shifted = Framing.square(-5, 7, 64, 64, "context")  # a whole-pixel shift: the same pixels, moved
    assert np.array_equal(to_model(photo, shifted)[:57, 5:], photo[7:, :59].astype(np.float32))
    # a square at another scale is resampled, and a hole then widens to every pixel it touches
    half = Framing.square(0, 0, 64, 32, "whole")
    assert hole_to_model(hole, half).mean() > hole.mean()
