"""Reading awkward image files: modes, bit depths, orientation, and failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint.errors import UserError
from inpaint.images import find_images, load_image
from training.data import load_image_folder


def test_sixteen_bit_grayscale_is_rescaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = np.asarray(load_image(tmp_path / "deep.png", channels=1))
    assert loaded.tolist() == [[0, 128, 255]]


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:2, ..., 3] = 255  # top half opaque, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    loaded = np.asarray(load_image(tmp_path / "rgba.png"))
    assert loaded[0, 0].tolist() == [255, 0, 0] and loaded[3, 3].tolist() == [255, 255, 255]
    Image.fromarray(rgba, "RGBA").convert("P").save(tmp_path / "palette.png", transparency=0)
    assert load_image(tmp_path / "palette.png").mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: the band ends up at the top
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    loaded = np.asarray(load_image(tmp_path / "rotated.jpg"))
    assert loaded.shape == (40, 20, 3)
    assert loaded[:8].mean() > 200 and loaded[-20:].mean() < 50


def test_grayscale_and_cmyk_become_the_asked_channels(tmp_path):
    Image.new("L", (5, 5), 100).save(tmp_path / "gray.png")
    Image.new("CMYK", (5, 5), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert load_image(tmp_path / "gray.png").mode == "RGB"
    assert np.asarray(load_image(tmp_path / "gray.png"))[0, 0].tolist() == [100, 100, 100]
    red = np.asarray(load_image(tmp_path / "cmyk.jpg"))[2, 2]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert load_image(tmp_path / "cmyk.jpg", channels=1).mode == "L"


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_unreadable_files_are_user_errors_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(UserError, match="broken.png"):
        load_image(path)
    with pytest.raises(UserError, match="no such file"):
        load_image(tmp_path / "absent.png")


def test_find_images_is_recursive_and_separates_other_files(mixed_image_folder):
    folder, good, bad = mixed_image_folder
    images, others = find_images(folder)
    assert len(images) == good + len(bad)
    assert [p.name for p in others] == ["notes.txt"]
    assert any(p.parent.name == "deeper" for p in images)


def test_folder_loading_skips_bad_files_with_one_warning_each(mixed_image_folder):
    folder, good, bad = mixed_image_folder
    warnings = []
    data = load_image_folder(folder, image_size=32, channels=3, show_progress=False, warn=warnings.append)
    assert data.images.shape == (good, 3, 32, 32) and data.images.dtype == torch.uint8
    assert sorted(p.name for p, _ in data.skipped) == sorted(bad)
    assert len(warnings) == len(bad) and all(any(name in w for w in warnings) for name in bad)
    assert [p.name for p in data.ignored] == ["notes.txt"]


def test_short_side_resize_then_centre_crop(tmp_path):
    wide = np.zeros((30, 90, 3), dtype=np.uint8)
    wide[:, :30, 0] = wide[:, 30:60, 1] = wide[:, 60:, 2] = 255  # red | green | blue thirds
    Image.fromarray(wide).save(tmp_path / "wide.png")
    data = load_image_folder(tmp_path, image_size=32, channels=3, show_progress=False)
    mean = data.images[0].float().mean(dim=(1, 2))
    assert mean[1] > 240 and mean[0] < 15 and mean[2] < 15


def test_folder_of_only_bad_files_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_text("nope")
    with pytest.raises(UserError, match="none of its 1 image files could be read"):
        load_image_folder(tmp_path, 32, 3, show_progress=False, warn=lambda m: None)
