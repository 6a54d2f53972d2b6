"""inpaint_training.data.load_image_folder: a folder of mixed files becomes one (N, C, S, S) uint8 tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint.errors import UserError
from inpaint.images import find_images
from inpaint_training.data import load_image_folder


def load(folder, size=32, channels=3, **options):
    warnings: list[str] = []
    data = load_image_folder(folder, size, channels, show_progress=False, warn=warnings.append, **options)
    return data, warnings


@pytest.mark.parametrize("channels", [3, 1])
def test_mixed_folder_decodes_the_good_files_and_skips_the_bad(mixed_image_folder, channels):
    folder, good, bad = mixed_image_folder
    data, warnings = load(folder, size=32, channels=channels)

    assert data.images.shape == (good, channels, 32, 32)
    assert data.images.dtype == torch.uint8 and data.images.is_contiguous()
    assert len(data) == good == len(data.files)

    # Exactly the corrupt and the fake files are skipped, each with one warning naming it.
    assert sorted(path.name for path, _ in data.skipped) == sorted(bad)
    assert all(problem for _, problem in data.skipped)
    assert len(warnings) == len(bad)
    for name in bad:
        assert sum(name in warning for warning in warnings) == 1
    assert [path.name for path in data.ignored] == ["notes.txt"]

    # Every image-named file is either kept or skipped, never both, in sorted order.
    images, _ = find_images(folder)
    assert sorted(data.files + [path for path, _ in data.skipped]) == sorted(images)
    assert data.files == [path for path in images if path.name not in bad]
    assert {"gray.png", "rgba.png", "sixteen.png", "rotated.jpg", "palette.png"} <= {p.name for p in data.files}
    assert {p.suffix for p in data.files} >= {".png", ".jpg", ".webp", ".bmp", ".tiff"}
    assert data.holdout_files == []


def test_rows_line_up_with_their_files(mixed_image_folder):
    folder, _, _ = mixed_image_folder
    data, _ = load(folder)
    rows = {path.name: data.images[i] for i, path in enumerate(data.files)}
    # Grayscale sources come out with three equal channels; colour noise never does.
    for name in ("gray.png", "sixteen.png"):
        assert torch.equal(rows[name][0], rows[name][1]) and torch.equal(rows[name][1], rows[name][2])
    for name in ("img00.png", "img03.bmp", "rgba.png"):
        assert not torch.equal(rows[name][0], rows[name][1])
    # Each image is its own decode: no two rows are the same picture.
    flat = data.images.reshape(len(data), -1)
    assert len({tuple(row.tolist()) for row in flat}) == len(data)


def test_lossless_file_is_decoded_exactly(tmp_path):
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "exact.png")
    data, warnings = load(tmp_path, size=32)
    assert warnings == [] and data.images.shape == (1, 3, 32, 32)
    assert torch.equal(data.images[0], torch.from_numpy(picture).permute(2, 0, 1))


@pytest.mark.parametrize(
    "width, height, along, ext",
    [(90, 30, "x", "png"), (30, 90, "y", "png"), (600, 200, "x", "jpg"), (200, 600, "y", "webp")],
)
def test_short_side_resize_then_centre_crop(tmp_path, bands, width, height, along, ext):
    Image.fromarray(bands(width, height, along)).save(tmp_path / f"banded.{ext}", quality=95)
    data, _ = load(tmp_path, size=32)
    assert data.images.shape == (1, 3, 32, 32)
    image = data.images[0].float()
    mean = image.mean(dim=(1, 2))
    assert mean[1] > 230 and mean[0] < 25 and mean[2] < 25  # only the green middle third remains
    # The short side fills the frame: green reaches every edge (not letterboxed or squeezed).
    assert image[1, :, 0].mean() > 200 and image[1, :, -1].mean() > 200
    assert image[1, 0, :].mean() > 200 and image[1, -1, :].mean() > 200


def test_exif_rotation_is_applied_before_cropping(tmp_path, exif_jpeg):
    stored = np.zeros((30, 60, 3), dtype=np.uint8)
    stored[:, :30, 0] = 255  # red left half, blue right half, as stored
    stored[:, 30:, 2] = 255
    exif_jpeg(tmp_path / "turned.jpg", stored, 6)  # shown turned 90° clockwise: red on top
    data, _ = load(tmp_path, size=32)
    image = data.images[0].float()
    top, bottom = image[:, :12].mean(dim=(1, 2)), image[:, -12:].mean(dim=(1, 2))
    assert top[0] > 200 and top[2] < 40
    assert bottom[2] > 200 and bottom[0] < 40


def test_holdout_sets_aside_the_last_files_undecoded(tmp_path):
    for i in range(5):
        Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    data, _ = load(tmp_path, size=32, holdout=2)
    assert [p.name for p in data.files] == ["0.png", "1.png", "2.png"]
    assert [p.name for p in data.holdout_files] == ["3.png", "4.png"]
    assert data.images.shape[0] == 3 and data.images[:, 0, 0, 0].tolist() == [0, 50, 100]


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist") as error:
        load(tmp_path / "nowhere")
    assert "nowhere" in str(error.value)


def test_file_instead_of_folder_is_a_user_error(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "one.png")
    with pytest.raises(UserError, match="not a folder"):
        load(tmp_path / "one.png")


@pytest.mark.parametrize("contents", [[], ["notes.txt", "README"]])
def test_folder_without_image_files_is_a_user_error(tmp_path, contents):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in contents:
        (folder / name).write_text("text")
    with pytest.raises(UserError, match="contains no image files") as error:
        load(folder)
    assert str(folder) in str(error.value)


def test_folder_of_only_bad_files_is_a_user_error(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "fake.png").write_text("not a picture")
    (folder / "sub" / "empty.jpg").write_bytes(b"")
    warnings: list[str] = []
    with pytest.raises(UserError, match="none of its 2 image files could be read") as error:
        load_image_folder(folder, 32, 3, show_progress=False, warn=warnings.append)
    assert str(folder) in str(error.value)
    assert len(warnings) == 2
    assert any("fake.png" in w for w in warnings) and any("empty.jpg" in w for w in warnings)
