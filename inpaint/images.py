"""Reading images from disk into well-defined 8-bit RGB or grayscale, whatever the file holds.

Handles EXIF orientation, palette and transparency, RGBA/LA (composited over white), 16-bit and
float images (rescaled, not clipped), CMYK. Every failure is a `UserError` naming the file.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inpaint.errors import UserError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm"}
)

# Huge photos are legitimate input; the budget bounds what one image may cost. Checked from the
# file's header, before decoding, so a small file that decodes to gigabytes is refused cheaply.
MAX_PIXELS = 120_000_000
MIN_SIDE = 8  # smaller images hold no hole worth a model
# What is decoded at all: what Pillow reads without helper programs (EPS would run Ghostscript)
# and what photos come as (MPO: a JPEG with a second picture, as some cameras write).
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM")
_OPENERS = tuple(f for f in IMAGE_FORMATS if f != "MPO")  # Pillow's JPEG opener reads MPO files
FORMAT_NAMES = "JPEG, PNG, WebP, BMP, TIFF, GIF or PPM"


def is_image_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_images(root: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """All files under `root` (recursive, sorted): (image-named files, other files)."""
    root = Path(root)
    images, others = [], []
    # Linked folders are followed, but each real folder is walked once: a link back up the tree
    # (a cycle) or a second link to the same folder must not list the same files many times.
    seen = {os.path.realpath(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, name))
            if real not in seen:
                seen.add(real)
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            (images if is_image_path(path) else others).append(path)
    return images, others


def open_image(
    path: str | os.PathLike[str], draft_size: int | None = None, max_pixels: int = MAX_PIXELS, name: str | None = None
) -> Image.Image:
    """Open an image fully decoded and upright per its EXIF tag, in its own mode; images over
    `max_pixels` are refused from their header, before any decoding. Messages name the file as
    `name` (say, an upload's own name rather than its temporary path)."""
    path = Path(path)
    name = name or str(path)
    try:
        with warnings.catch_warnings():  # our own budget decides, not Pillow's warning threshold
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=_OPENERS)
        with image:
            check_pixel_budget(image.size, name, max_pixels)
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            return ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except UnidentifiedImageError:
        raise UserError(f"{name}: not an image file ({FORMAT_NAMES} only)") from None
    except Image.DecompressionBombError:  # beyond twice Pillow's limit: refused before it says the size
        found = header_size(path)
        if found and found[1]:
            check_pixel_budget(found[1], name, max_pixels)
        raise UserError(f"{name}: image too large (more than {max_pixels:,} pixels)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{name}: corrupt or truncated image ({error})") from None


def header_size(source: str | os.PathLike[str] | bytes) -> tuple[str, tuple[int, int] | None] | None:
    """The format and (width, height) an image file declares, from its header alone: None if no
    format Pillow knows claims it, a size of None if one claims it but its header cannot be read.

    Image.open does the same but refuses an image over twice Image.MAX_IMAGE_PIXELS before it says
    its size; this asks Pillow's registered formats directly so that a refusal can name the size.
    """
    Image.init()
    claimed = None
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
        prefix = handle.read(16)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            try:
                result = accept is None or accept(prefix)
                if isinstance(result, str) or not result:  # as Image.open: a string is a warning, not a match
                    continue
                claimed = claimed or (format_id if accept is not None else None)
                handle.seek(0)
                image = factory(handle, "")
            except (SyntaxError, IndexError, TypeError, ValueError, EOFError, OSError, struct.error):
                continue
            return image.format or format_id, image.size
    return (claimed, None) if claimed else None


def check_pixel_budget(size: tuple[int, int], source: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an image whose width × height exceeds the budget, naming its size."""
    width, height = size
    if width * height > max_pixels:
        raise UserError(
            f"{source}: image too large ({width}×{height} = {width * height / 1e6:.0f} megapixels; "
            f"at most {max_pixels / 1e6:.0f} megapixels)"
        )


def check_photo_size(size: tuple[int, int], source: str | os.PathLike[str]) -> None:
    """Refuse an image too small on either side to hold a hole and its surroundings."""
    width, height = size
    if min(width, height) < MIN_SIDE:
        raise UserError(f"{source}: {width}×{height} is too small to inpaint (each side at least {MIN_SIDE} pixels)")


def load_image(path: str | os.PathLike[str], channels: int = 3, draft_size: int | None = None) -> Image.Image:
    """Open an image as 8-bit RGB (channels=3) or L (channels=1), upright per its EXIF tag.

    `draft_size` lets JPEG decoding skip detail finer than needed for that short side.
    """
    return normalise_mode(open_image(path, draft_size), channels)


def normalise_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow image as 8-bit RGB (channels=3) or L (channels=1)."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            # The file says 16 bits: scale by that, not by the brightest pixel (a dark 16-bit
            # image whose maximum is <= 255 must stay dark, not be stretched to white).
            top = 65535.0
        else:
            # 32-bit int and float images carry no range: guess it from the values.
            top = (
                1.0
                if mode == "F" and array.max(initial=0) <= 1.0
                else (255.0 if array.max(initial=0) <= 255 else 65535.0)
            )
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB" if channels == 3 else "L")


def check_image_path(path: str | os.PathLike[str]) -> Path:
    """An output path whose extension names an image format, or a one-line refusal listing them."""
    path = Path(path)
    if not is_image_path(path):
        raise UserError(f"{path}: output must have an image extension ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return path


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write atomically in the format the extension names (JPEG at quality 95; JPEG has no
    alpha, so RGBA/LA images are flattened to RGB/L for it)."""
    from inpaint.fileio import atomic_path

    path = check_image_path(path)
    options = {}
    if path.suffix.lower() in (".jpg", ".jpeg"):
        options["quality"] = 95
        if image.mode in ("RGBA", "LA", "P"):
            image = normalise_mode(image, 1 if image.mode == "LA" else 3)
    with atomic_path(path) as tmp:
        image.save(tmp, format=Image.registered_extensions().get(path.suffix.lower()), **options)
    return path
