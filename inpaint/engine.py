"""Inpainting photos of any size: crop → model size → latent search → scale back → paste → blend.

Only pixels inside the hole ever change; the output has the input's size and mode (an alpha
channel is carried over untouched). Many photos are packed into one search batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from PIL import Image

from inpaint.blend import paste, poisson_blend
from inpaint.checkpoint import Checkpoint
from inpaint.crop import Box, choose_box, extract
from inpaint.images import normalise_mode
from inpaint.search import SearchProgress, SearchSettings, search

CROP_MODES = ("auto", "face", "context", "whole")


@dataclass
class FillResult:
    image: Image.Image  # blended (or raw with blend=False), input size and mode
    raw: Image.Image  # the fill pasted into the hole without blending
    candidates: list[Image.Image]  # the top-k fills, best first, each pasted (and blended) like `image`
    context_loss: float
    perceptual_loss: float
    candidate_losses: list[float]
    box: Box
    framing: str  # how the model's square was chosen: whole, face or context
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Prepared:
    original: Image.Image
    pixels: np.ndarray  # (H, W, C) uint8 in the model's channels
    hole: np.ndarray  # (H, W) bool
    box: Box
    framing: str
    model_image: torch.Tensor  # (C, S, S) model space
    model_known: torch.Tensor  # (1, S, S)


def uses_faces(checkpoint: Checkpoint, crop: str) -> bool:
    if crop in ("face", "context", "whole"):
        return crop == "face"
    return checkpoint.metadata.get("content") == "faces"


def colour_pixels(image: Image.Image, channels: int) -> Image.Image:
    """The colour channels the output is built from. Transparent pixels keep their stored colour
    (alpha is put back unchanged at the end), so nothing outside the hole changes."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA").convert("RGB")  # drops alpha without compositing
    return normalise_mode(image, channels)


def _prepare(checkpoint: Checkpoint, image: Image.Image, hole: np.ndarray, crop: str) -> _Prepared:
    channels, size = checkpoint.config.channels, checkpoint.config.image_size
    pixels = np.asarray(colour_pixels(image, channels))
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    rgb = pixels if channels == 3 else np.repeat(pixels, 3, axis=2)
    if crop == "whole":
        box, framing = Box(0, 0, max(hole.shape)), "whole"
        box = Box((hole.shape[1] - box.side) // 2, (hole.shape[0] - box.side) // 2, box.side)
    else:
        box, framing = choose_box(rgb, hole, uses_faces(checkpoint, crop), size)
    crop_pixels = extract(pixels, box)
    inside = _inside_image(hole.shape, box)
    crop_hole = extract(hole, box) & inside
    small = cv2.resize(crop_pixels, (size, size), interpolation=cv2.INTER_AREA)
    small = small[..., None] if small.ndim == 2 else small
    # A model pixel counts as known only if every photo pixel under it is known.
    small_hole = cv2.resize(crop_hole.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0
    model_image = checkpoint.from_pixels(torch.from_numpy(small).permute(2, 0, 1).float() / 255)
    return _Prepared(image, pixels, hole, box, framing, model_image, torch.from_numpy(~small_hole).float()[None])


def _inside_image(shape: tuple[int, int], box: Box) -> np.ndarray:
    rows = np.arange(box.top, box.bottom)
    cols = np.arange(box.left, box.right)
    return ((rows >= 0) & (rows < shape[0]))[:, None] & ((cols >= 0) & (cols < shape[1]))[None, :]


def _hole_region(hole: np.ndarray) -> tuple[slice, slice]:
    """The hole's bounding box plus the one-pixel ring of known pixels that Poisson blending
    reads: the only part of the photo that finishing a fill touches (a small part of a big photo)."""
    ys, xs = np.nonzero(hole)
    return (slice(max(ys.min() - 1, 0), min(ys.max() + 2, hole.shape[0])),
            slice(max(xs.min() - 1, 0), min(xs.max() + 2, hole.shape[1])))


def _fill_canvas(prepared: _Prepared, fill: torch.Tensor, checkpoint: Checkpoint, region: tuple[slice, slice]) -> np.ndarray:
    """The photo's pixels in `region` (float, 0…255) with the model-size fill, scaled to the box,
    laid over them where the box covers the region."""
    pixels = checkpoint.to_pixels(fill).permute(1, 2, 0).numpy() * 255
    scaled = cv2.resize(pixels, (prepared.box.side, prepared.box.side), interpolation=cv2.INTER_CUBIC)
    scaled = scaled[..., None] if scaled.ndim == 2 else scaled
    rows, cols = region
    canvas = prepared.pixels[region].astype(np.float64)
    top, left = max(prepared.box.top, rows.start), max(prepared.box.left, cols.start)
    bottom, right = min(prepared.box.bottom, rows.stop), min(prepared.box.right, cols.stop)
    if bottom > top and right > left:
        canvas[top - rows.start: bottom - rows.start, left - cols.start: right - cols.start] = scaled[
            top - prepared.box.top: bottom - prepared.box.top, left - prepared.box.left: right - prepared.box.left]
    return canvas


def _to_output(prepared: _Prepared, region: tuple[slice, slice], pixels: np.ndarray) -> Image.Image:
    """The photo with `region` replaced by `pixels` (float), back in the input's mode: alpha
    carried over, grayscale kept, anything else as RGB."""
    array = prepared.pixels.copy()
    array[region] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    mode = prepared.original.mode
    if array.shape[2] == 1:
        result = Image.fromarray(array[..., 0], "L")
    else:
        result = Image.fromarray(array, "RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in prepared.original.info):
        alpha = prepared.original.convert("RGBA").getchannel("A")
        result = result.convert("RGBA" if mode != "LA" else "LA")
        result.putalpha(alpha)
        return result
    if mode == "L" and result.mode != "L":
        return result.convert("L")
    if mode == "RGB" and result.mode != "RGB":
        return result.convert("RGB")
    return result


def fill_images(
    checkpoint: Checkpoint,
    items: list[tuple[Image.Image, np.ndarray]],
    settings: SearchSettings = SearchSettings(),
    blend: bool = True,
    crop: str = "auto",
    callback: Callable[[SearchProgress], bool | None] | None = None,
) -> list[FillResult]:
    """Inpaint (image, hole) pairs in one search batch. hole: (H, W) bool, True = fill."""
    started = time.perf_counter()
    outputs: list[FillResult | None] = [None] * len(items)
    todo = []
    for index, (image, hole) in enumerate(items):
        if hole.any():
            todo.append(index)
        else:  # nothing to fill: the image comes back as it is
            same = image.copy()
            outputs[index] = FillResult(same, same, [same], 0.0, 0.0, [0.0], Box(0, 0, 0), "none", 0.0, ["mask is empty; image unchanged"])
    if not todo:
        return outputs
    prepared = [_prepare(checkpoint, *items[index], crop) for index in todo]
    result = search(
        checkpoint,
        torch.stack([p.model_image for p in prepared]),
        torch.stack([p.model_known for p in prepared]),
        settings,
        callback,
    )
    per_image = (time.perf_counter() - started) / len(todo)
    for i, (index, item) in enumerate(zip(todo, prepared)):
        t0 = time.perf_counter()
        region = _hole_region(item.hole)
        known, hole = item.pixels[region].astype(np.float64), item.hole[region]
        finished = []
        for fill in result.candidates[i]:
            canvas = _fill_canvas(item, fill, checkpoint, region)
            raw = paste(known, canvas, hole)
            finished.append((raw, poisson_blend(known, canvas, hole) if blend else raw))
        raw_best, best = finished[0]
        outputs[index] = FillResult(
            image=_to_output(item, region, best),
            raw=_to_output(item, region, raw_best),
            candidates=[_to_output(item, region, shown) for _, shown in finished],
            context_loss=float(result.context_loss[i]),
            perceptual_loss=float(result.perceptual_loss[i]),
            candidate_losses=[float(v) for v in result.candidate_context_loss[i]],
            box=item.box,
            framing=item.framing,
            seconds=per_image + time.perf_counter() - t0,
        )
    return outputs
