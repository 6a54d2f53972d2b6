"""Inpainting photos of any size: framing → model square → latent search → warp back → detail →
paste → blend.

The model sees a square of the photo (`inpaint.locate`): for a face model, the face the hole
belongs to, aligned as in its training data; else the hole with its context. The fill is warped
back onto the hole's bounding box only, given grain matched to the photo's where it was enlarged
(`inpaint.texture`), pasted into the hole and Poisson-blended. A face model asked to fill a hole
that no face owns says so and fills it with a classical method instead (unless told to use a
context crop). Only pixels inside the hole ever change; the output has the input's size and
mode (an alpha channel is carried over untouched). Many photos are packed into one search batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from inpaint.adapt import AdaptProgress, AdaptSettings, adapt, resolve_adapt
from inpaint.blend import classical_fill, paste, poisson_blend
from inpaint.checkpoint import Checkpoint
from inpaint.device import available_cores
from inpaint.errors import UserError
from inpaint.framing import Framing, apply, from_model, hole_to_model, to_model
from inpaint.images import normalise_mode
from inpaint.locate import (
    FaceTemplate,
    box_framing,
    context_framing,
    find_face_framing,
    scene_framing,
    shows_face,
    whole_framing,
)
from inpaint.masks import hole_box
from inpaint.search import (
    SearchProgress,
    SearchResult,
    SearchSettings,
    auto_batch_size,
    resolve_settings,
    search,
)
from inpaint.texture import MIN_UPSCALE, match_colours, photo_detail, restore_edges

CROP_MODES = ("auto", "face", "context", "whole")
VERIFY_STARTS = 4  # starts per image when a face must still be confirmed by its fill
NO_FACE_NOTE = (
    "no face owns the hole: the face model only draws faces, so it was filled with OpenCV's Telea "
    "method instead (the context crop forces the face model; a face box X,Y,W,H says where the face is)"
)
# Said when adaptation was asked for and a fill's framing is not one of ADAPTED_FRAMINGS, so that
# --adapt-steps on a flower model (or an aligned face) is never silently ignored.
NOT_ADAPTED_NOTE = (
    "the generator was not adapted to this photo: adaptation applies to faces framed in a photo, "
    "and this fill's square is framed as {how!r}"
)
FaceBox = tuple[float, float, float, float]  # x, y, width, height in photo pixels


@dataclass(frozen=True)
class FillRequest:
    """How to fill, as the command line, the batch and the app all ask for it (the photos and
    their holes are FillItems). Each field's help is what the front ends show."""

    search: SearchSettings = field(
        default_factory=SearchSettings, metadata={"help": "the latent search (inpaint.search)"}
    )
    crop: str = field(
        default="auto", metadata={"help": "the square the model sees: auto, face, context, whole (CROP_MODES)"}
    )
    blend: bool = field(
        default=True, metadata={"help": "Poisson-blend the fill into the photo (else paste it as it is)"}
    )
    keep_raw: bool = field(default=True, metadata={"help": "also return the unblended picture (a full-size copy more)"})
    adapt: AdaptSettings = field(
        default_factory=AdaptSettings,
        metadata={"help": "the generator adapted to each photo after the search (inpaint.adapt)"},
    )

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise UserError(f"crop must be one of {', '.join(CROP_MODES)}, not {self.crop!r}")


@dataclass
class FillItem:
    """One photo to fill. `face_box`: the face the hole belongs to, when the user knows better
    than the finder; `view`: a square already chosen with `choose_view` (say, shown to the user
    before the search), used as it is."""

    image: Image.Image
    hole: np.ndarray  # (H, W) bool, True = fill
    face_box: FaceBox | None = None
    view: Framing | None = None


@dataclass
class FillResult:
    image: Image.Image  # blended (or raw with blend=False), input size and mode
    raw: Image.Image | None  # the fill pasted into the hole without blending (None with keep_raw=False)
    candidates: list[Image.Image]  # the top-k fills, best first, each pasted (and blended) like `image`
    context_loss: float
    perceptual_loss: float
    candidate_losses: list[float]
    view: Framing | None  # the square the model saw (None: no model was used)
    framing: str  # how the model's square was chosen: whole, face, face-box, context; classical or none without one
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    adapted: bool = False  # the fill was drawn by the generator adapted to this photo


@dataclass
class _Prepared:
    original: Image.Image
    pixels: np.ndarray  # (H, W, C) uint8 in the model's channels
    hole: np.ndarray  # (H, W) bool
    view: Framing | None  # None: no face owns the hole; filled classically
    notes: list[str]
    model_image: torch.Tensor | None = None  # (C, S, S) model space
    model_known: torch.Tensor | None = None  # (1, S, S)


def uses_faces(checkpoint: Checkpoint, crop: str) -> bool:
    if crop in ("face", "context", "whole"):
        return crop == "face"
    return checkpoint.metadata.get("content") == "faces"


def face_template(checkpoint: Checkpoint) -> FaceTemplate | None:
    """The checkpoint's measured face framing, or None (older checkpoints, non-face models)."""
    return FaceTemplate.from_metadata(checkpoint.metadata.get("framing"))


def colour_pixels(image: Image.Image, channels: int) -> Image.Image:
    """The colour channels the output is built from. Transparent pixels keep their stored colour
    (alpha is put back unchanged at the end), so nothing outside the hole changes."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA").convert("RGB")  # drops alpha without compositing
    return normalise_mode(image, channels)


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 1) grayscale pixels as (H, W, 3), for the face finder; RGB as it is."""
    return pixels if pixels.shape[2] == 3 else np.repeat(pixels, 3, axis=2)


def choose_view(
    checkpoint: Checkpoint, pixels: np.ndarray, hole: np.ndarray, crop: str = "auto", face_box: FaceBox | None = None
) -> Framing | None:
    """The square the model sees for this hole, or None when a face model finds no face that owns
    it (crop "auto": fill classically; crop "face": an error). pixels (H, W, C) uint8."""
    size = checkpoint.config.image_size
    height, width = hole.shape
    if crop == "whole":
        return whole_framing(hole.shape, size)
    if face_box is not None:
        return box_framing(as_rgb(pixels), face_box, face_template(checkpoint), size, hole, checkpoint.framer)
    if crop == "auto" and height == width and width <= 2 * size:
        return Framing.square(0, 0, width, size, "whole")  # a small square image: already framed
    if uses_faces(checkpoint, crop):
        found = find_face_framing(as_rgb(pixels), hole, face_template(checkpoint), size, checkpoint.framer)
        if found is not None:
            return found
        if crop == "face":
            raise UserError("no face owns the hole (none found around it); give the face's box X,Y,W,H")
        return None
    return context_framing(hole, size) if crop == "context" else scene_framing(hole, size)


def model_pixels(checkpoint: Checkpoint, image: Image.Image) -> np.ndarray:
    """(H, W, C) uint8 in the model's channels."""
    wanted = "RGB" if checkpoint.config.channels == 3 else "L"
    # A photo already in the model's mode is read as it is: no full-size converted copy.
    pixels = np.asarray(image if image.mode == wanted else colour_pixels(image, checkpoint.config.channels))
    return pixels[..., None] if pixels.ndim == 2 else pixels


def model_view(pixels: np.ndarray, view: Framing) -> torch.Tensor:
    """The photo's pixels (H, W, C) uint8 seen through the model's square: (C, S, S) in [0, 1]."""
    return torch.from_numpy(to_model(pixels, view) / 255).permute(2, 0, 1).float()


def _prepare(checkpoint: Checkpoint, item: FillItem, crop: str) -> _Prepared:
    image, hole = item.image, item.hole
    pixels = model_pixels(checkpoint, image)
    view = item.view or choose_view(checkpoint, pixels, hole, crop, item.face_box)
    if view is None:
        return _Prepared(image, pixels, hole, None, [NO_FACE_NOTE])
    seen = model_view(pixels, view)
    known = torch.from_numpy(~hole_to_model(hole, view)).float()[None]
    notes = []
    if view.how in ("face", "face-box") and 1 / view.scale > 1.5:
        notes.append(
            f"the model draws {view.size}×{view.size} pixels; this face's square is {view.side():.0f} pixels "
            f"wide, so the fill is enlarged {1 / view.scale:.1f}× and given grain like the photo's"
        )
    return _Prepared(image, pixels, hole, view, notes, checkpoint.from_pixels(seen), known)


def _hole_region(hole: np.ndarray, margin: int = 1) -> tuple[slice, slice]:
    """The hole's bounding box plus `margin` pixels (1: the ring of known pixels Poisson blending
    reads), clipped to the image: the only part of the photo that finishing a fill touches."""
    left, top, right, bottom = hole_box(hole)
    return (
        slice(max(top - margin, 0), min(bottom + 1 + margin, hole.shape[0])),
        slice(max(left - margin, 0), min(right + 1 + margin, hole.shape[1])),
    )


def _in_view(view: Framing, rows: slice, cols: slice) -> np.ndarray:
    """(h, w) bool: which pixels of the rectangle the model's square covers."""
    ys, xs = np.mgrid[rows, cols]
    model = apply(view.matrix, np.stack([xs.ravel(), ys.ravel()], 1))
    inside = (model >= -0.5).all(1) & (model <= view.size - 0.5).all(1)
    return inside.reshape(ys.shape)


def _finish(item: _Prepared, fills: list[np.ndarray], blend: bool, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(raw, shown) pixel arrays over the hole's region for each model-size fill (S, S, C) 0…255:
    the fill warped back (its edges restored where it was enlarged), its colours matched to the
    photo's, given grain like the photo's, pasted into the hole, blended. Hole pixels outside the
    model's square get a classical fill."""
    region = _hole_region(item.hole)
    upscale = 1 / item.view.scale
    # The rings colours and detail are measured on reach beyond the blend's region.
    wide = _hole_region(item.hole, int(max(8 * upscale, 8)))
    inner = (
        slice(region[0].start - wide[0].start, region[0].stop - wide[0].start),
        slice(region[1].start - wide[1].start, region[1].stop - wide[1].start),
    )
    known, hole = item.pixels[region].astype(np.float64), item.hole[region]
    outside = hole & ~_in_view(item.view, *region)
    base = classical_fill(item.pixels, item.hole, region).astype(np.float64) if outside.any() else known
    finished = []
    for fill in fills:
        canvas = restore_edges(from_model(fill, item.view, *wide), upscale)
        canvas = match_colours(canvas, item.pixels[wide], ~item.hole[wide], item.hole[wide], upscale)
        if upscale >= MIN_UPSCALE:
            detail = photo_detail(item.pixels[wide], ~item.hole[wide], item.hole[wide], upscale, canvas, seed)
            canvas = canvas + detail
        canvas = np.where(outside[..., None], base, canvas[inner].astype(np.float64))
        raw = paste(known, canvas, hole)
        finished.append((raw, poisson_blend(known, canvas, hole) if blend else raw))
    return finished


def _fills_show_a_face(checkpoint: Checkpoint, item: _Prepared, candidates: torch.Tensor) -> bool:
    """Whether the model's square, its hole filled by any of the candidates, shows a face a
    detector can see and the photo supports (for a face framing that only the framer vouched
    for): see locate.shows_face."""

    def pictures(pixels: torch.Tensor) -> np.ndarray:
        array = (pixels.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
        return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array

    known = item.model_known
    completed = checkpoint.to_pixels(known * item.model_image + (1 - known) * candidates)
    drawn = pictures(checkpoint.to_pixels(candidates))  # the generator's whole pictures: their outline
    return shows_face(pictures(completed), known[0].numpy() > 0.5, face_template(checkpoint), drawn)


def _classical_result(item: _Prepared, region: tuple[slice, slice], seconds: float, notes: list[str]) -> FillResult:
    """OpenCV's Telea fill of the hole (no model): raw and blended are the same picture."""
    image = _to_output(item, region, classical_fill(item.pixels, item.hole, region).astype(np.float64))
    return FillResult(image, image, [image], 0.0, 0.0, [0.0], None, "classical", seconds, notes)


def _to_output(prepared: _Prepared, region: tuple[slice, slice], pixels: np.ndarray) -> Image.Image:
    """The photo with `region` replaced by `pixels` (float), back in the input's mode: alpha
    carried over, grayscale kept, anything else as RGB. For the common modes only the region is
    converted and pasted into one copy of the photo: a 100-megapixel photo costs one more copy."""
    patch = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    patch_image = Image.fromarray(patch[..., 0], "L") if patch.shape[2] == 1 else Image.fromarray(patch, "RGB")
    original, box = prepared.original, (region[1].start, region[0].start, region[1].stop, region[0].stop)
    if original.mode in ("RGB", "L", "RGBA", "LA"):
        result = original.copy()
        if original.mode in ("RGBA", "LA"):  # the fill takes the photo's own alpha over the region
            patch_image = patch_image.convert(original.mode)
            patch_image.putalpha(original.crop(box).getchannel("A"))
        result.paste(patch_image, box)  # paste converts the patch to the photo's mode
        return result
    array = prepared.pixels.copy()
    array[region] = patch
    result = Image.fromarray(array[..., 0], "L") if array.shape[2] == 1 else Image.fromarray(array, "RGB")
    mode = original.mode
    if mode == "PA" or (mode == "P" and "transparency" in original.info):
        alpha = original.convert("RGBA").getchannel("A")
        result = result.convert("RGBA")
        result.putalpha(alpha)
    return result


def _unchanged(image: Image.Image) -> FillResult:
    same = image.copy()
    return FillResult(same, same, [same], 0.0, 0.0, [0.0], None, "none", 0.0, ["mask is empty; image unchanged"])


def host_workers(checkpoint: Checkpoint) -> int:
    """Threads for the per-photo host work around a search (framing, warping back, blending): one
    when the networks run on the CPU, whose cores the search already uses; else the free cores."""
    if next(checkpoint.generator.parameters()).device.type == "cpu":
        return 1
    return max(1, min(8, available_cores()))


def fill_batch_size(checkpoint: Checkpoint, request: FillRequest) -> int:
    """Photos per search for `request` (search.auto_batch_size), counting the extra starts that a
    face which must still be confirmed by its fill is given."""
    settings = resolve_settings(checkpoint, request.search)
    if request.crop == "auto" and uses_faces(checkpoint, request.crop):
        settings = replace(settings, restarts=max(settings.restarts, VERIFY_STARTS))
    return auto_batch_size(checkpoint, settings)


def _map(function: Callable, values: list, workers: int) -> list:
    """`function` over `values` in order, on `workers` threads (OpenCV and NumPy release the GIL)."""
    if workers <= 1 or len(values) <= 1:
        return [function(value) for value in values]
    with ThreadPoolExecutor(min(workers, len(values))) as pool:
        return list(pool.map(function, values))


@dataclass
class SearchedFills:
    """Photos whose search (and generator adaptation) is done and whose fills are still to be
    finished on the host (warped back, given grain, blended): `finish` may run on another thread
    while the next batch searches."""

    checkpoint: Checkpoint
    request: FillRequest
    seed: int
    prepared: dict[int, _Prepared]
    outputs: list[FillResult | None]
    results: dict[int, SearchResult]  # searched photo → its search's result (a batch of one)
    per_image: float  # seconds of framing, search and adaptation per photo
    faces: dict[int, bool] = field(default_factory=dict)  # searched photo → whether the face model fills it
    adapted: dict[int, torch.Tensor] = field(default_factory=dict)  # photo → its adapted G(z), model space

    def finish(self, workers: int = 1) -> list[FillResult]:
        """Every photo's FillResult, in the order they were given."""
        indices = list(self.prepared)
        for index, output in zip(indices, _map(self._finish_one, indices, workers)):
            self.outputs[index] = output
        return self.outputs

    def _adaptation_notes(self, index: int) -> list[str]:
        """A note when the request asked for adaptation and this searched photo did not get it."""
        if index in self.adapted or not resolve_adapt(self.checkpoint, self.request.adapt).steps:
            return []
        return [NOT_ADAPTED_NOTE.format(how=self.prepared[index].view.how)]

    def _finish_one(self, index: int) -> FillResult:
        item, blend = self.prepared[index], self.request.blend
        t0 = time.perf_counter()
        region = _hole_region(item.hole)
        if item.view is None:
            return _classical_result(item, region, self.per_image + time.perf_counter() - t0, item.notes)
        if not self.faces.get(index, True):
            return _classical_result(item, region, self.per_image + time.perf_counter() - t0, [NO_FACE_NOTE])
        result = self.results[index]  # a batch of one
        candidates = result.candidates[0]
        if index in self.adapted:  # the adapted fill replaces the search's best
            candidates = torch.cat([self.adapted[index][None], candidates[1:]])
        fills = [self.checkpoint.to_pixels(fill).permute(1, 2, 0).numpy() * 255 for fill in candidates]
        finished = _finish(item, fills, blend, self.seed)
        raw_best, best = finished[0]
        image = _to_output(item, region, best)
        return FillResult(
            image=image,
            raw=(_to_output(item, region, raw_best) if blend else image) if self.request.keep_raw else None,
            candidates=[image] + [_to_output(item, region, shown) for _, shown in finished[1:]],
            context_loss=float(result.context_loss[0]),
            perceptual_loss=float(result.perceptual_loss[0]),
            candidate_losses=[float(v) for v in result.candidate_context_loss[0]],
            view=item.view,
            framing=item.view.how,
            seconds=self.per_image + time.perf_counter() - t0,
            notes=[*item.notes, *self._adaptation_notes(index)],
            adapted=index in self.adapted,
        )


Progress = SearchProgress | AdaptProgress
ADAPTED_FRAMINGS = ("face", "face-box")  # the framings whose fills get a generator adapted to the photo


def search_fills(
    checkpoint: Checkpoint,
    items: list[FillItem] | list[tuple[Image.Image, np.ndarray]],
    request: FillRequest = FillRequest(),
    callback: Callable[[Progress], bool | None] | None = None,
    workers: int = 1,
) -> SearchedFills:
    """Frame the photos (on `workers` threads), search them in one batch (two when some faces still
    need confirming: _search_each), keep the faces a framer-only framing must show, and adapt the
    generator to each photo the face model fills; the fills are finished by the returned object's
    `finish`. `callback` gets the search's
    progress, then the adaptation's (returning True stops either)."""
    settings, crop = request.search, request.crop
    started = time.perf_counter()
    items = [item if isinstance(item, FillItem) else FillItem(*item) for item in items]
    outputs: list[FillResult | None] = [None] * len(items)
    holed = [index for index, item in enumerate(items) if item.hole.any()]
    for index, item in enumerate(items):
        if not item.hole.any():  # nothing to fill: the image comes back as it is
            outputs[index] = _unchanged(item.image)
    framed = _map(lambda index: _prepare(checkpoint, items[index], crop), holed, workers)
    prepared = dict(zip(holed, framed))
    searched = [index for index, item in prepared.items() if item.view is not None]
    fills = SearchedFills(checkpoint, request, settings.seed, prepared, outputs, {}, 0.0)
    if searched:
        fills.results = _search_each(checkpoint, prepared, searched, settings, crop, callback)
        fills.faces = _faces_kept(checkpoint, prepared, fills.results, crop, workers)
        fills.adapted = _adapted(checkpoint, request, prepared, fills, callback)
    fills.per_image = (time.perf_counter() - started) / max(len(prepared), 1)
    return fills


def _search_each(
    checkpoint: Checkpoint,
    prepared: dict[int, _Prepared],
    searched: list[int],
    settings: SearchSettings,
    crop: str,
    callback: Callable[[Progress], bool | None] | None,
) -> dict[int, SearchResult]:
    """Search the framed photos, in as few batches as their numbers of starts allow; each photo's
    result (a batch of one) by its index. A face only the framer vouched for (crop "auto") is kept
    if a fill shows it to a detector: it gets at least VERIFY_STARTS starts, more chances that one
    of them draws it clearly enough (photo_quality.py). Only such photos get them, so that a
    photo's fill never depends on which photos share its batch."""
    settings = resolve_settings(checkpoint, settings)
    groups: dict[int, list[int]] = {}
    for index in searched:
        verify = crop == "auto" and not prepared[index].view.confirmed
        groups.setdefault(max(settings.restarts, VERIFY_STARTS) if verify else settings.restarts, []).append(index)
    results = {}
    for restarts, members in sorted(groups.items()):
        result = search(
            checkpoint,
            torch.stack([prepared[i].model_image for i in members]),
            torch.stack([prepared[i].model_known for i in members]),
            replace(settings, restarts=restarts),
            callback,
        )
        results.update({index: result.row(position) for position, index in enumerate(members)})
    return results


def _faces_kept(
    checkpoint: Checkpoint,
    prepared: dict[int, _Prepared],
    results: dict[int, SearchResult],
    crop: str,
    workers: int,
) -> dict[int, bool]:
    """For each searched photo, whether the face model fills it: yes, unless its face was framed
    by the framer alone (crop "auto") and none of the search's fills shows it (then no face owns
    the hole). Judged on the search's own fills, before any adaptation to the photo."""

    def kept(index: int) -> bool:
        item = prepared[index]
        if crop != "auto" or item.view.confirmed:
            return True
        return _fills_show_a_face(checkpoint, item, results[index].candidates[0])

    searched = list(results)
    return dict(zip(searched, _map(kept, searched, workers)))


def _adapted(
    checkpoint: Checkpoint,
    request: FillRequest,
    prepared: dict[int, _Prepared],
    fills: SearchedFills,
    callback: Callable[[Progress], bool | None] | None,
) -> dict[int, torch.Tensor]:
    """The generator adapted to each photo whose face the face model fills (its best fill redrawn),
    when the request's adaptation has steps. Only faces framed in a photo ("face", "face-box"): an
    image already framed as the model's own square ("whole", e.g. an aligned 64×64 face) is what
    the generator was trained on; faces seen at the model's scale gained nothing from it (README,
    "Real photographs")."""
    settings = resolve_adapt(checkpoint, request.adapt)
    chosen = [index for index in fills.results if fills.faces[index] and prepared[index].view.how in ADAPTED_FRAMINGS]
    if not settings.steps or not chosen:
        return {}
    adapted = adapt(
        checkpoint,
        torch.stack([prepared[index].model_image for index in chosen]),
        torch.stack([prepared[index].model_known for index in chosen]),
        torch.cat([fills.results[index].z for index in chosen]),
        settings,
        lam=resolve_settings(checkpoint, request.search).lam,
        callback=callback,
    )
    return dict(zip(chosen, adapted.images))


def fill_images(
    checkpoint: Checkpoint,
    items: list[FillItem] | list[tuple[Image.Image, np.ndarray]],
    request: FillRequest = FillRequest(),
    callback: Callable[[Progress], bool | None] | None = None,
    workers: int | None = None,
) -> list[FillResult]:
    """Inpaint photos in one search batch: FillItems, or (image, hole) pairs, as `request` says.
    `callback` gets the search's progress (returning True stops it). `workers`: threads for the
    per-photo host work (None: host_workers)."""
    workers = host_workers(checkpoint) if workers is None else workers
    return search_fills(checkpoint, items, request, callback, workers).finish(workers)


def describe_view(result: FillResult) -> str:
    """One line on how a fill was made: the square the model saw, or why none was used; losses."""
    if result.view is None:
        return f"framing: {result.framing}"
    view = result.view
    corner = np.round(view.corners()[0]).astype(int)
    return (
        f"framing: {view.how} (the model's {view.size}×{view.size} square is {view.side():.0f} px wide at "
        f"({corner[0]}, {corner[1]}), turned {view.angle:+.0f}°); context loss {result.context_loss:.2f}, "
        f"perceptual loss {result.perceptual_loss:.4f}" + ("; generator adapted to the photo" if result.adapted else "")
    )
