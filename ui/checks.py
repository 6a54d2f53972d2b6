"""What the app accepts, checked where values enter: uploads and form fields, each refusal one line.

Gradio's own components decode an upload in full before any handler sees it, and answer a file they
cannot read, or a number they cannot round, with a generic "Could not preprocess input component"
and a traceback on the console. The checked_* functions give Gradio's components a preprocess that
checks first: an upload's size, type and pixel count from its header before anything decodes it, a
number's kind and range with the library's `check_number`. A refusal is a gr.Error (the message on
the page, or the client's exception) and one line on the server's console; a traceback is printed
only for a real bug.
"""

from __future__ import annotations

import html
import json
import math
import sys
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from PIL import Image

from inpaint.errors import UserError
from inpaint.images import (
    FORMAT_NAMES,
    IMAGE_EXTENSIONS,
    IMAGE_FORMATS,
    check_pixel_budget,
    header_size,
    open_image,
)
from inpaint.validate import check_number

# The app's pixel budget, smaller than the command line's (inpaint.images.MAX_PIXELS, 120 MP): the
# app serves several people at once on one machine. A request holds the photo, the editor's composite
# and painted layers (H×W×4 arrays), the engine's float copies and the PNGs of its answers: one at
# 24 MP took the server 830 MB above idle (35 bytes a pixel), so 40 MP costs about 1.4 GB, 2.8 GB with
# the two searches the app runs at once. 40 MP admits the photos people take (12 and 24 MP from phones
# by default, 24 to 36 MP from most cameras), refusing with their size the rest (48 MP phone
# "high-resolution" modes, scans) and what only a decompression bomb is made of: the 118 KB PNG of
# 10000×10000 that took the server from 588 MB to over 10 GB.
APP_MAX_PIXELS = 40_000_000
MAX_UPLOAD_MB = 20  # a file someone picks: checked by the page before it is sent, and by the server
MAX_UPLOAD = f"{MAX_UPLOAD_MB}mb"
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024**2  # Gradio's "mb" is 1024² bytes
# What the server's upload route accepts (Gradio's max_file_size, answered with 413 above it). Not
# MAX_UPLOAD: the photo editor does not send the file picked but PNGs of its canvas (the photo, the
# composite, each layer), and a 5.7 MB JPEG of 24 MP became two of 44.7 MB each, so a 20 MB limit
# here left the page waiting forever on every large photo. A PNG of H×W×4 bytes is at most that big
# plus a little, so this admits every export of a photo within the pixel budget.
MAX_TRANSFER_BYTES = math.ceil(APP_MAX_PIXELS * 4 * 1.05 / 1024**2) * 1024**2
MAX_TRANSFER = f"{MAX_TRANSFER_BYTES // 1024**2}mb"
IMAGE_TYPES = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "image/gif",
    "image/x-portable-pixmap",
]


def refuse(message: UserError | str) -> gr.Error:
    """A user error: the message on the page, one line on the server's console, no traceback."""
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"refused: {text}", file=sys.stderr, flush=True)
    # gr.Error renders its message as HTML: a file name or a typed value must show as text.
    return gr.Error(html.escape(text, quote=False), print_exception=False)


def too_large(name: str, size: int, limit: int = MAX_UPLOAD_BYTES) -> str:
    """The refusal of an upload over `limit` bytes (the page's check says the same, see upload_guard.js)."""
    return f"{name}: too large ({size / 1024**2:.1f} MB, limit {limit / 1024**2:.0f} MB)"


# --- Uploads --------------------------------------------------------------------------------------


def check_upload(
    source: Path | bytes, name: str, max_pixels: int = APP_MAX_PIXELS, max_bytes: int = MAX_UPLOAD_BYTES
) -> None:
    """Refuse (UserError) an upload that is missing, empty, over `max_bytes`, not named or made like an
    image of IMAGE_FORMATS, or over `max_pixels`: all from its size and header, nothing decoded."""
    suffix = Path(name).suffix.lower()
    if suffix and suffix not in IMAGE_EXTENSIONS:
        raise UserError(f"{name}: not an image file ({FORMAT_NAMES} only)")
    try:
        size = source.stat().st_size if isinstance(source, Path) else len(source)
    except FileNotFoundError:
        raise UserError(f"{name}: the upload is gone (kept for an hour); upload it again") from None
    if size == 0:
        raise UserError(f"{name}: empty file")
    if size > max_bytes:
        raise UserError(too_large(name, size, max_bytes))
    found = header_size(source)
    if found is None or found[0] not in IMAGE_FORMATS:
        kind = f"a {found[0]} image" if found else "not an image"
        raise UserError(f"{name}: {kind} ({FORMAT_NAMES} only)")
    if found[1] is None:
        raise UserError(f"{name}: corrupt or truncated {found[0]} image")
    check_pixel_budget(found[1], name, max_pixels)


def read_upload(path: str | Path, name: str, max_pixels: int = APP_MAX_PIXELS) -> Image.Image:
    """An uploaded image, checked (check_upload) and then decoded by the library, upright per its EXIF
    tag; every failure a UserError that names the upload, not its temporary path."""
    path = Path(path)
    check_upload(path, name, max_pixels)
    return open_image(path, max_pixels=max_pixels, name=name)


def _upload_name(file: FileData | bytes | None, role: str) -> str:
    name = getattr(file, "orig_name", None)
    return Path(name).name if name else role


def checked_editor(editor: gr.ImageEditor) -> gr.ImageEditor:
    """The photo editor, its photo, composite and layers checked before Gradio decodes them: by pixels,
    and by bytes only up to MAX_TRANSFER (from a page they are the canvas's PNG exports, not the file
    picked, which the page checked against MAX_UPLOAD)."""
    preprocess, convert = editor.preprocess, editor.convert_and_format_image

    def checked_preprocess(payload: Any) -> Any:
        if payload is None:
            return None
        files = editor.blob_storage.get(payload.id) if payload.id is not None else payload
        try:
            if files is not None:
                roles = [("photo", files.background), ("composite", files.composite)]
                roles += [(f"painted layer {i + 1}", layer) for i, layer in enumerate(files.layers or [])]
                for role, file in roles:
                    if file is not None:
                        source = Path(file.path) if isinstance(file, FileData) else bytes(file)
                        check_upload(source, _upload_name(file, role), max_bytes=MAX_TRANSFER_BYTES)
            return preprocess(payload)
        except UserError as error:
            raise refuse(error) from None
        finally:
            if payload.id is not None:
                editor.blob_storage.pop(payload.id, None)  # a refused edit's blobs are not kept

    def checked_convert(file: Any, flatten_on_white: bool = False) -> Any:
        try:
            return convert(file, flatten_on_white)
        except (OSError, SyntaxError, ValueError) as error:  # the header was fine, the pixels are not
            raise refuse(f"{_upload_name(file, 'photo')}: corrupt or truncated image ({error})") from None

    editor.preprocess, editor.convert_and_format_image = checked_preprocess, checked_convert
    return editor


def checked_photo(image: gr.Image) -> gr.Image:
    """An image upload that hands its handler the upload's path once check_upload passed it (decode it
    with read_upload), whatever the component's `type`: nothing is decoded before the checks."""

    def checked_preprocess(payload: Any) -> str | None:
        if payload is None:
            return None
        name = _upload_name(payload, "photo")
        if payload.path is None:
            raise refuse(f"{name}: send the image as a file upload")
        try:
            check_upload(Path(payload.path), name)
        except UserError as error:
            raise refuse(error) from None
        return payload.path

    image.preprocess = checked_preprocess
    return image


# --- Form fields ----------------------------------------------------------------------------------
# The checks replace the components' own preprocess on the instance: subclasses of Gradio's components
# would do the same, but Gradio writes a .pyi stub next to the module of every component class.


def field_name(label: str | None) -> str:
    """The short name of a field in messages: its label up to a colon or a parenthesis."""
    return (label or "value").split(" (")[0].split(":")[0].strip()


def checked_number(field: gr.Number | gr.Slider, *, empty: bool = False) -> gr.Number | gr.Slider:
    """A number field or slider whose value reaches the handler as a finite number in the field's range,
    whole for a Number of precision 0 and a Slider of whole steps, or is refused with one line naming
    the field; an empty Number (None) passes as None, and so does an empty slider where `empty` says so
    (a page never sends one: an API caller's default that the handler fills in)."""
    if isinstance(field, gr.Slider):
        integer = all(float(v).is_integer() for v in (field.minimum, field.step))
    else:
        integer = field.precision == 0

    def checked_preprocess(payload: Any) -> float | int | None:
        if payload is None and (empty or isinstance(field, gr.Number)):
            return None
        try:
            return check_number(payload, field_name(field.label), field.minimum, field.maximum, integer=integer)
        except UserError as error:
            raise refuse(error) from None

    field.preprocess = checked_preprocess
    return field


def checked_choice(field: gr.Radio | gr.Dropdown) -> gr.Radio | gr.Dropdown:
    """A radio group or dropdown whose refusal of a value not among its choices is one line, not a traceback."""
    preprocess = field.preprocess

    def checked_preprocess(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except gr.Error:
            choices = ", ".join(str(value) for _, value in field.choices)
            raise refuse(f"{field_name(field.label)}: must be one of {choices}, got {payload!r}") from None

    field.preprocess = checked_preprocess
    return field


def checked(
    value: Any, name: str, low: float | None = None, high: float | None = None, *, integer: bool = False
) -> Any:
    """check_number for values that come another way than a field (click positions, typed seeds)."""
    try:
        return check_number(value, name, low, high, integer=integer)
    except UserError as error:
        raise refuse(error) from None


def upload_guard_head() -> str:
    """The <script> for the page's <head> that checks a picked or dropped file before it is sent."""
    script = (
        Path(__file__)
        .with_name("upload_guard.js")
        .read_text(encoding="utf-8")
        .replace("__LIMIT_BYTES__", str(MAX_UPLOAD_BYTES))
        .replace("__LIMIT_MB__", str(MAX_UPLOAD_MB))
        .replace("__MAX_PIXELS__", str(APP_MAX_PIXELS))
        .replace("__EXTENSIONS__", json.dumps(sorted(IMAGE_EXTENSIONS)))
        .replace("__TYPES__", json.dumps(IMAGE_TYPES))
        .replace("__FORMATS__", json.dumps(FORMAT_NAMES))
    )
    return f"<script>\n{script}</script>"
