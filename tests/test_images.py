"""inpaint.images: every kind of file comes back as well-defined 8-bit RGB or L, or a UserError."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from inpaint.errors import UserError
from inpaint.images import IMAGE_EXTENSIONS, find_images, load_image


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


# --- modes -----------------------------------------------------------------------------------


def test_grayscale_becomes_equal_rgb_channels_or_stays_l(tmp_path):
    gray = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    rgb = load_image(tmp_path / "gray.png")
    assert rgb.mode == "RGB" and rgb.size == (6, 4)
    for channel in range(3):
        assert pixels(rgb)[..., channel].tolist() == gray.tolist()
    single = load_image(tmp_path / "gray.png", channels=1)
    assert single.mode == "L" and pixels(single).tolist() == gray.tolist()


def palette_image() -> Image.Image:
    """A 2×2 palette image using entries 0 (red), 1 (green), 2 (blue), 3 (black)."""
    image = Image.new("P", (2, 2))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0] + [0] * (256 * 3 - 12))
    image.putdata([0, 1, 2, 3])
    return image


def test_palette_without_transparency_gives_its_colours(tmp_path):
    palette_image().save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    loaded = load_image(tmp_path / "palette.png")
    assert loaded.mode == "RGB"
    assert pixels(loaded).reshape(4, 3).tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]]


def test_palette_transparent_index_becomes_white(tmp_path):
    palette_image().save(tmp_path / "palette.png", transparency=3)  # black entry fully transparent
    loaded = pixels(load_image(tmp_path / "palette.png")).reshape(4, 3)
    assert loaded.tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]


def test_palette_partial_alpha_is_composited_over_white(tmp_path):
    # Per-entry alpha: red opaque, green transparent, blue half, black half.
    palette_image().save(tmp_path / "palette.png", transparency=bytes([255, 0, 128, 128]))
    loaded = pixels(load_image(tmp_path / "palette.png")).reshape(4, 3)
    assert loaded[0].tolist() == [255, 0, 0]
    assert loaded[1].tolist() == [255, 255, 255]
    assert np.abs(loaded[2] - [127, 127, 255]).max() <= 2
    assert np.abs(loaded[3] - [127, 127, 127]).max() <= 2


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0]], [[0, 0, 255, 128], [0, 0, 0, 64]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.mode == "RGB"
    got = pixels(loaded)
    assert got[0, 0].tolist() == [255, 0, 0]  # opaque: unchanged
    assert got[0, 1].tolist() == [255, 255, 255]  # transparent: the white background, not red
    assert np.abs(got[1, 0] - [127, 127, 255]).max() <= 2  # half blue over white
    assert np.abs(got[1, 1] - [191, 191, 191]).max() <= 2  # quarter black over white


def test_la_is_composited_over_white(tmp_path):
    la = np.array([[[0, 255], [0, 0], [0, 128], [200, 255]]], dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    single = pixels(load_image(tmp_path / "la.png", channels=1))[0]
    assert single[0] == 0 and single[1] == 255 and abs(single[2] - 127) <= 2 and single[3] == 200
    rgb = pixels(load_image(tmp_path / "la.png", channels=3))[0]
    assert (rgb == rgb[:, :1]).all() and rgb[:, 0].tolist() == single.tolist()


def test_rgb_as_one_channel_is_luminance(tmp_path):
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    Image.fromarray(colours).save(tmp_path / "colours.png")
    loaded = load_image(tmp_path / "colours.png", channels=1)
    assert loaded.mode == "L"
    red, green, blue, white = pixels(loaded)[0]
    assert abs(red - 76) <= 1 and abs(green - 150) <= 1 and abs(blue - 29) <= 1 and white == 255


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new("CMYK", (16, 8), (255, 0, 0, 0))  # cyan
    cmyk.paste((0, 0, 255, 0), (8, 0, 16, 8))  # yellow right half
    cmyk.save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    loaded = load_image(tmp_path / "cmyk.jpg")
    assert loaded.mode == "RGB" and loaded.size == (16, 8)
    cyan, yellow = pixels(loaded)[4, 2], pixels(loaded)[4, 13]
    assert cyan[0] < 40 and cyan[1] > 200 and cyan[2] > 200
    assert yellow[0] > 200 and yellow[1] > 200 and yellow[2] < 40
    assert load_image(tmp_path / "cmyk.jpg", channels=1).mode == "L"


# --- 16-bit ----------------------------------------------------------------------------------


def save_16bit(path, values) -> None:
    Image.fromarray(np.array(values, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")  # really stored with more than 8 bits


def test_sixteen_bit_png_is_rescaled_not_clipped(tmp_path):
    save_16bit(tmp_path / "deep.png", [[0, 257, 32768, 65535]])
    loaded = load_image(tmp_path / "deep.png", channels=1)
    assert loaded.mode == "L"
    black, one, half, white = pixels(loaded)[0]
    assert black == 0 and one == 1 and abs(half - 128) <= 1 and white == 255
    rgb = pixels(load_image(tmp_path / "deep.png"))[0]
    assert rgb[:, 0].tolist() == rgb[:, 1].tolist() == rgb[:, 2].tolist() == [black, one, half, white]


def test_dark_sixteen_bit_png_stays_dark(tmp_path):
    # A 16-bit file whose brightest pixel is 255 of 65535 is almost black, not white: the scale
    # comes from the bit depth, not from the brightest pixel in the picture.
    save_16bit(tmp_path / "dark.png", [[0, 128, 255]])
    save_16bit(tmp_path / "darkish.png", [[0, 128, 300]])
    dark = pixels(load_image(tmp_path / "dark.png", channels=1))[0]
    darkish = pixels(load_image(tmp_path / "darkish.png", channels=1))[0]
    assert dark.max() <= 1 and darkish.max() <= 2
    assert dark[2] <= darkish[2]  # brighter pixels never come out darker


def test_sixteen_bit_tiff_is_rescaled(tmp_path):
    Image.fromarray(np.array([[0, 65535, 16384]], dtype=np.uint16)).save(tmp_path / "deep.tif")
    assert pixels(load_image(tmp_path / "deep.tif", channels=1))[0].tolist() == [0, 255, 64]


# --- EXIF orientation ------------------------------------------------------------------------


def marked_landscape() -> np.ndarray:
    """40 wide × 20 tall, black with a white 10×8 marker in the top-left corner (as stored)."""
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:8, :10] = 255
    return stored


def marker_corner(image: Image.Image) -> str:
    gray = pixels(image.convert("L"))
    h, w = gray.shape
    corners = {
        "top-left": gray[: h // 4, : w // 4],
        "top-right": gray[: h // 4, -(w // 4) :],
        "bottom-left": gray[-(h // 4) :, : w // 4],
        "bottom-right": gray[-(h // 4) :, -(w // 4) :],
    }
    bright = [name for name, block in corners.items() if block.mean() > 200]
    assert len(bright) == 1, f"expected one bright corner, got {bright}"
    assert gray[h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2].mean() < 30  # centre stays dark
    return bright[0]


@pytest.mark.parametrize(
    "orientation, size, corner",
    [
        (1, (40, 20), "top-left"),  # upright already
        (3, (40, 20), "bottom-right"),  # rotate 180°
        (6, (20, 40), "top-right"),  # rotate 90° clockwise to display
        (8, (20, 40), "bottom-left"),  # rotate 90° anticlockwise to display
    ],
)
def test_exif_orientation_comes_back_upright(tmp_path, exif_jpeg, orientation, size, corner):
    path = exif_jpeg(tmp_path / f"photo-{orientation}.jpg", marked_landscape(), orientation)
    with Image.open(path) as raw:
        assert raw.size == (40, 20) and raw.getexif()[0x0112] == orientation
    for channels in (3, 1):
        loaded = load_image(path, channels=channels)
        assert loaded.size == size
        assert marker_corner(loaded) == corner


def test_exif_orientation_with_jpeg_draft(tmp_path, exif_jpeg):
    big = np.kron(marked_landscape(), np.ones((8, 8, 1), dtype=np.uint8))  # 320 × 160
    path = exif_jpeg(tmp_path / "big.jpg", big, 6)
    loaded = load_image(path, draft_size=32)
    width, height = loaded.size
    assert height > width >= 32 and width < 160  # decoded smaller, still portrait
    assert marker_corner(loaded) == "top-right"


# --- failures --------------------------------------------------------------------------------


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content",
    [
        ("truncated.jpg", lambda: jpeg_bytes()[: len(jpeg_bytes()) // 2]),
        ("truncated.png", lambda: png_bytes()[: len(png_bytes()) // 2]),
        ("corrupt.png", lambda: png_bytes()[:60] + bytes(range(256)) * 4),
        ("text.png", lambda: b"this is a text file, not a picture\n"),
        ("empty.jpg", lambda: b""),
    ],
)
def test_bad_files_are_user_errors_naming_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(UserError) as error:
        load_image(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file") as error:
        load_image(tmp_path / "absent.png")
    assert "absent.png" in str(error.value)


# --- find_images -----------------------------------------------------------------------------


def test_find_images_is_recursive_sorted_and_skips_hidden(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    for name in ["b/c/z.png", "b/a.JPG", "m.webp", "a.tiff", ".hidden.png", ".cache/x.png", "notes.txt", "b/readme"]:
        (tmp_path / name).write_bytes(b"")
    images, others = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in images] == ["a.tiff", "m.webp", "b/a.JPG", "b/c/z.png"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in others) == ["b/readme", "notes.txt"]
    assert all(p.suffix.lower() in IMAGE_EXTENSIONS for p in images)


def test_find_images_on_the_mixed_folder(mixed_image_folder):
    folder, good, bad = mixed_image_folder
    images, others = find_images(folder)
    assert len(images) == good + len(bad)
    assert set(bad) <= {p.name for p in images}
    assert [p.name for p in others] == ["notes.txt"]
    assert {p.parent.name for p in images} >= {"sub", "deeper"}


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_find_images_follows_links_but_not_round_in_circles(tmp_path):
    data = tmp_path / "data"
    (data / "people").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(data / "people" / "one.png")
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    Image.new("RGB", (4, 4)).save(extra / "two.png")
    (data / "linked").symlink_to(extra, target_is_directory=True)
    (data / "people" / "loop").symlink_to(data, target_is_directory=True)  # a cycle
    images, _ = find_images(data)
    assert sorted(p.name for p in images) == ["one.png", "two.png"]
