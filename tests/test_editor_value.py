"""Mask extraction from gr.ImageEditor values, quirks included."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint.errors import UserError
from inpaint_ui.editor_value import background_image, painted_mask


def rgba(h: int, w: int, value: int = 0, alpha: int = 255) -> np.ndarray:
    array = np.full((h, w, 4), value, dtype=np.uint8)
    array[..., 3] = alpha
    return array


def test_union_of_layer_alphas():
    background = rgba(20, 30, 100)
    first, second = rgba(20, 30, alpha=0), rgba(20, 30, alpha=0)
    first[2:5, 3:6, 3] = 255
    second[10:12, 20:25, 3] = 128
    hole = painted_mask({"background": background, "layers": [first, second], "composite": background})
    assert hole.sum() == 9 + 10 and hole[3, 4] and hole[11, 22] and not hole[0, 0]


def test_empty_layers_fall_back_to_the_composite_difference():
    background = rgba(20, 30, 100)
    composite = background.copy()
    composite[5:9, 5:9, :3] = 255  # painted in white, but no layer came back
    for layers in ([], [rgba(20, 30, alpha=0)], None):
        hole = painted_mask({"background": background, "layers": layers, "composite": composite})
        assert hole.sum() == 16 and hole[6, 6]


def test_size_mismatch_is_resized_with_nearest_neighbour():
    background = rgba(40, 60)
    layer = rgba(20, 30, alpha=0)  # the editor returned a half-size layer
    layer[5:10, 0:15, 3] = 255
    hole = painted_mask({"background": background, "layers": [layer], "composite": background})
    assert hole.shape == (40, 60) and hole.sum() == 10 * 30
    big = painted_mask({"background": background, "layers": [layer], "composite": background}, size=(120, 80))
    assert big.shape == (80, 120) and big.sum() == 20 * 60 and set(np.unique(big)) <= {False, True}


def test_nothing_uploaded_is_a_clear_error():
    for value in (None, {}, {"background": None, "layers": [], "composite": None}):
        with pytest.raises(UserError, match="upload a photo"):
            painted_mask(value)


def test_background_drops_an_opaque_alpha_channel():
    assert background_image({"background": rgba(4, 5, 9)}).mode == "RGB"
    translucent = rgba(4, 5, 9, alpha=100)
    assert background_image({"background": translucent}).mode == "RGBA"
