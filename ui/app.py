"""The Gradio app: Inpaint, Edit and Model tabs, a thin layer over the library.

Every handler takes uploaded images and form values only (no server paths): checkpoints are
chosen from a fixed list found at start-up, examples come from the bundled folder. Every upload and
form value is checked where it enters (ui/checks.py): a refusal is one line, never a traceback.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from inpaint import editor
from inpaint.adapt import SUGGESTED_STEPS, AdaptProgress, AdaptSettings, resolve_adapt
from inpaint.assets import checkpoints_folder, example_faces
from inpaint.checkpoint import (
    DEFAULT_CHECKPOINT,
    WEIGHTS_FILE,
    Checkpoint,
    list_snapshots,
    load_checkpoint,
    read_metadata,
    training_command,
)
from inpaint.device import limit_cpu_threads
from inpaint.engine import (
    NO_FACE_NOTE,
    NOT_ADAPTED_NOTE,
    FillItem,
    FillRequest,
    FillResult,
    choose_view,
    fill_images,
    model_pixels,
)
from inpaint.errors import UserError
from inpaint.framing import draw, to_model
from inpaint.grids import grid_image, to_pil
from inpaint.locate import parse_face_box
from inpaint.masks import MASK_KINDS, make_mask
from inpaint.models import upsample_note
from inpaint.sampling import generate
from inpaint.search import INITS, SearchProgress, SearchSettings, resolve_settings
from inpaint.validate import SEED_MAX
from inpaint_ui.checks import (
    MAX_TRANSFER,
    MAX_UPLOAD,  # noqa: F401 (the upload limit, named where the app is)
    checked,
    checked_choice,
    checked_editor,
    checked_number,
    checked_photo,
    read_upload,
    refuse,
    upload_guard_head,
)
from inpaint_ui.editor_value import background_image, painted_mask
from inpaint_ui.scratch import Scratch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = example_faces()
CONCURRENCY = 2  # searches at once; more only queue up on a CPU
# Requests waiting at once, over all endpoints (the two running do not count). A waiting request holds
# no memory (its uploads are decoded when it starts), so the bound is the wait: a default inpainting
# takes about 1.7 s here, so the last of 32 waits about half a minute, and the page shows each one its
# place and the estimated wait. Beyond that the page says "This application is currently busy. Please
# try again." (gradio_client raises QueueError("Queue is full! …")).
QUEUE_SIZE = 32
# Gradio's cache (uploads, and every image the app shows, previews included): every 10 minutes, the
# files older than an hour go; all of them when the server stops. An hour keeps a result's download
# link working for as long as anyone looks at it.
CACHE_CLEANUP = (600, 3600)
PRESETS = ("painted",) + MASK_KINDS
MAX_ITERATIONS, MAX_RESTARTS = 2000, 32  # the sliders' ranges
MAX_ADAPT_STEPS = 500
LAM_MAX = 10.0  # λ weighs the discriminator's opinion against the context (default 0.003): 10 is already absurd
MAX_CONCEPT_SEEDS = 256  # seeds averaged into one concept
MAX_SAMPLES, MAX_FRAMES = 48, 24  # the sliders' ranges
# An API caller who leaves out a named endpoint's parameter gets its field's initial value on the page (Gradio's
# default), except for these. The search's counts start on the page at the default model's; left out, they are
# the chosen model's own (None, which resolve_settings fills in). A concept's photo is optional, as on the page.
# Keyed by endpoint, then parameter.
API_DEFAULTS: dict[str, dict[str, Any]] = {
    "inpaint": {"iterations_n": None, "restarts_n": None, "adapt_steps_n": None},
    "arithmetic": {"a_photo": None, "b_photo": None, "c_photo": None},
}


def find_checkpoints(runs: list[Path] | None = None) -> dict[str, Path]:
    """Shipped checkpoints under checkpoints/ and any run folders given on the command line."""
    found = {}
    folder = checkpoints_folder()
    for path in sorted(folder.iterdir()) if folder is not None else []:
        if (path / WEIGHTS_FILE).is_file():
            found[path.name] = path
    for run in runs or []:
        if list_snapshots(run) or (Path(run) / WEIGHTS_FILE).is_file():
            found[f"run: {Path(run).name}"] = Path(run)
        else:
            raise UserError(f"{run}: not a checkpoint folder or training run")
    if not found:
        raise UserError(f"no checkpoints: {DEFAULT_CHECKPOINT} is missing and no run folder was given")
    return found


class Models:
    """Loaded checkpoints by name, loaded once each."""

    def __init__(self, choices: dict[str, Path]) -> None:
        self.choices = choices
        self._loaded: dict[str, Checkpoint] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> str:
        return DEFAULT_CHECKPOINT.name if DEFAULT_CHECKPOINT.name in self.choices else next(iter(self.choices))

    def get(self, name: str) -> Checkpoint:
        if name not in self.choices:
            raise refuse(f"unknown model {name!r}")
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load_checkpoint(self.choices[name])
            return self._loaded[name]


class App(gr.Blocks):
    """The app's Blocks: the API it describes to its callers (gradio_client, the page's "Use via API") takes
    API_DEFAULTS's defaults."""

    def get_api_info(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        info = super().get_api_info(*args, **kwargs)
        for name, defaults in API_DEFAULTS.items():
            for parameter in info["named_endpoints"].get(f"/{name}", {}).get("parameters", []):
                if parameter.get("parameter_name") in defaults:
                    parameter["parameter_has_default"] = True
                    parameter["parameter_default"] = defaults[parameter["parameter_name"]]
        return info


def _pil(images: torch.Tensor) -> list[Image.Image]:
    return to_pil(images)


def notes_for_status(result: FillResult, framed: bool) -> str:
    """What a finished fill's notes add to the status line, which already says how the model's square was
    framed (its enlargement included) and, when nothing was framed, that no face owns the hole: that no face
    owned it after all (the model had a square but none of its fills showed a face), and that the generator
    was not adapted to the photo although that was asked for."""
    notes = []
    if framed and result.framing == "classical":
        notes.append(NO_FACE_NOTE)
    not_adapted = NOT_ADAPTED_NOTE.format(how=result.framing)
    if not_adapted in result.notes:
        notes.append(not_adapted)
    return "".join(f"\n\nNote: {note}." for note in notes)


def stopped_status(text: str | None) -> str:
    """The status line once Stop is pressed: the search's last iteration, said to be stopped."""
    text = text or ""
    head, _, last = text.rpartition("\n\n")
    if last.startswith(("Done in", "Stopped", "Note: ")):
        return text  # finished before the Stop arrived, or stopped already
    progress = re.match(r"Iteration (\d+) / (\d+)", last)
    if progress:
        return f"{head}\n\nStopped at iteration {progress[1]} / {progress[2]}."
    return f"{text}\n\nStopped." if text else "Stopped."


def build_app(models: Models, scratch: Scratch | None = None) -> gr.Blocks:
    """The app; the files it hands out are written to `scratch` (app.scratch, a new one by default)."""
    scratch = scratch or Scratch()
    with App(title="inpaint: semantic inpainting with a DCGAN", delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(
            "# inpaint\nPaint over part of a face and let the GAN fill it in; explore the face model's latent space."
        )
        model = checked_choice(gr.Dropdown(list(models.choices), value=models.default, label="Model", scale=0))
        with gr.Tab("Inpaint"):
            _inpaint_tab(models, model, scratch)
        with gr.Tab("Edit"):
            _edit_tab(models, model, scratch)
        with gr.Tab("Model"):
            describe, outputs = _model_tab(models, model)
        app.load(describe, model, outputs, api_name=False)
    app.scratch = scratch
    return app


def _inpaint_tab(models: Models, model: gr.Dropdown, scratch: Scratch) -> None:
    with gr.Row():
        with gr.Column():
            photo = gr.ImageEditor(
                type="numpy",
                label="Photo: paint over what to replace",
                image_mode="RGBA",
                sources=("upload", "clipboard"),
                brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", default_size=12, color_mode="fixed"),
                layers=False,
                transforms=(),
                format="png",
                height=420,
                elem_id="photo",
            )
            if EXAMPLES:
                gr.Examples(
                    [[str(p)] for p in EXAMPLES[:8]], inputs=[photo], label="Example faces (CelebA validation split)"
                )
            preset = gr.Radio(
                PRESETS, value="painted", label="Mask", info="painted = your brush strokes; or a preset hole"
            )
            with gr.Accordion("Where the model looks", open=False):
                crop = gr.Radio(
                    ["auto", "face", "context"],
                    value="auto",
                    label="Square the model sees",
                    info="auto: the face the hole belongs to, aligned (a classical fill when no face owns the hole); "
                    "face: a face or an error; context: the hole and its surroundings, face or not",
                )
                face_box = gr.Textbox(
                    value="",
                    label="Face box: X, Y, W, H in pixels",
                    elem_id="face-box",
                    placeholder="empty: found by itself. Or click the face's top-left, then bottom-right corner "
                    "on 'What the model sees'",
                )
            with gr.Accordion("Settings", open=False):
                defaults = SearchSettings()
                init = gr.Radio(
                    list(INITS),
                    value=defaults.init,
                    label="Search starts from",
                    info="auto: the model's inpainting encoder when it has one (a short refinement follows), "
                    "else random latents (a longer search)",
                )
                planned = _planned(models, models.default, defaults.init)
                iterations = gr.Slider(
                    0,
                    MAX_ITERATIONS,
                    value=planned.iterations,
                    step=5,
                    label="Iterations (stops early once the fill settles)",
                    elem_id="iterations",
                )
                restarts = gr.Slider(
                    1, MAX_RESTARTS, value=planned.restarts, step=1, label="Starts (candidates searched at once)"
                )
                lam = gr.Number(
                    value=defaults.lam, minimum=0, maximum=LAM_MAX, label="λ: weight of the discriminator's opinion"
                )
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=SEED_MAX, label="Seed")
                blend = gr.Checkbox(value=True, label="Poisson blending")
                adapt_steps = gr.Slider(
                    0,
                    MAX_ADAPT_STEPS,
                    value=_adapt_steps(models, models.default),
                    step=5,
                    label="Adapt the generator to the photo: steps (0 = off)",
                    info="after the search, a copy of the generator is tuned to the photo's known pixels, so the "
                    f"fill can look more like this person; off by default, {SUGGESTED_STEPS} is the measured recipe",
                    elem_id="adapt-steps",
                )
            with gr.Row():
                run = gr.Button("Inpaint", variant="primary", elem_id="run")
                stop = gr.Button("Stop", elem_id="stop")
        with gr.Column():
            status = gr.Markdown(
                "Upload a photo or pick an example, paint over the part to replace, then press Inpaint.",
                elem_id="status",
            )
            with gr.Row():
                view = gr.Image(
                    label="What the model sees (green square; yellow: the top of the face)",
                    format="png",
                    interactive=False,
                    height=220,
                    elem_id="view",
                )
                preview = gr.Image(
                    label="The model's square and the search's current G(z)",
                    format="png",
                    interactive=False,
                    height=220,
                )
            result = gr.Image(label="Result", format="png", interactive=False, elem_id="result")
            raw = gr.Image(label="Raw fill (no blending)", format="png", interactive=False)
            candidates = gr.Gallery(
                label="Ranked candidates (best first)",
                columns=4,
                height=180,
                format="png",
                object_fit="contain",
                preview=False,
            )
            download = gr.File(label="Download the result")
    clicks = gr.State({"scale": 1.0, "first": None})
    checked_editor(photo)
    for field in (iterations, restarts, adapt_steps):
        checked_number(field, empty=True)  # an API caller's None: the model's own count (API_DEFAULTS)
    for field in (lam, seed):
        checked_number(field)
    for choice in (preset, crop, init):
        checked_choice(choice)

    running: dict[str, tuple[threading.Event, threading.Event]] = {}  # session → its search's (stop, finished)

    @contextlib.contextmanager
    def search_session(request: gr.Request | None, progress: gr.Progress) -> Iterator[threading.Event]:
        """The session's search, registered for Stop (request_stop): yields the event that Stop sets, which is set
        at the end anyway (Stop, a closed page or the search done) so that the search thread finishes early."""
        session = getattr(request, "session_hash", None) or str(id(progress))
        cancelled, finished = threading.Event(), threading.Event()
        running[session] = (cancelled, finished)
        try:
            yield cancelled
        finally:
            cancelled.set()
            if running.get(session, (None,))[0] is cancelled:
                del running[session]
            finished.set()

    # The /inpaint endpoint. Its parameters are this function's, named and ordered as API callers pass them; the
    # event below lists their fields in the same order. A parameter added later goes last in both, and a caller
    # who leaves it out gets its field's initial value, or API_DEFAULTS's: tests/test_app_api.py calls each
    # endpoint with its original parameters only.
    def inpaint(
        model_name,
        value,
        preset_name,
        crop_mode,
        box_text,
        iterations_n,
        restarts_n,
        lam_value,
        seed_value,
        blend_on,
        init_mode,
        adapt_steps_n,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        with search_session(request, progress) as cancelled:
            try:
                checkpoint = models.get(model_name)
                image = background_image(value)
                if preset_name == "painted":
                    hole = painted_mask(value, image.size)
                else:
                    hole = make_mask(preset_name, image.height, image.width, seed=seed_value or 0)
                box = parse_face_box(box_text, "face box") if (box_text or "").strip() else None
                if not hole.any():
                    raise UserError("Nothing to fill: paint over part of the photo, or choose a mask preset.")
                pixels = model_pixels(checkpoint, image)
                chosen = choose_view(checkpoint, pixels, hole, crop_mode, box)
            except UserError as error:
                raise refuse(error) from None
            picture, scale = draw(np.repeat(pixels, 3, 2) if pixels.shape[2] == 1 else pixels, chosen, hole)
            size = checkpoint.config.image_size
            if chosen is None:
                seen, framing_text = (
                    None,
                    "**No face owns the hole**, so it is filled with OpenCV's Telea method "
                    "(the face model only draws faces). To use the model anyway, give the face box "
                    "(click two corners on the picture) or choose the *context* square.",
                )
            else:
                seen = Image.fromarray(np.clip(to_model(pixels, chosen), 0, 255).astype(np.uint8).squeeze()).resize(
                    (4 * size, 4 * size), Image.Resampling.NEAREST
                )
                framing_text = (
                    f"The model sees the green square ({chosen.how}: {chosen.side():.0f} px wide, "
                    f"turned {chosen.angle:+.0f}°) "
                    f"and draws it at **{size}×{size} pixels**"
                    + (
                        f"; the fill is enlarged {1 / chosen.scale:.1f}× and given grain like the photo's."
                        if 1 / chosen.scale > 1.5
                        else "."
                    )
                )
            yield (
                gr.skip(),
                gr.skip(),
                gr.skip(),
                seen,
                gr.skip(),
                framing_text,
                picture,
                {"scale": scale, "first": None},
            )
            shown = framing_text  # the status line as the page shows it
            try:  # the fields' own checks (ui/checks.py) passed these: whole numbers and λ in their ranges
                lam_value = defaults.lam if lam_value is None else lam_value
                # Left out by an API caller (None) or the slider left at the model's default: the model's defaults,
                # scattered holes' longer budget included.
                if iterations_n == _planned(models, model_name, init_mode).iterations:
                    iterations_n = None
                settings = resolve_settings(
                    checkpoint,
                    SearchSettings(
                        iterations=iterations_n,
                        restarts=restarts_n,
                        lam=lam_value,
                        seed=seed_value or 0,
                        init=init_mode or "auto",
                    ),
                )
                adapting = AdaptSettings(steps=None if adapt_steps_n is None else int(adapt_steps_n))
            except UserError as error:
                raise refuse(error) from None
            events: queue.Queue = queue.Queue()

            def report(update: SearchProgress) -> bool:
                events.put(update)
                return cancelled.is_set()

            def work() -> None:
                try:
                    item = FillItem(image, hole, box, chosen)
                    events.put(
                        fill_images(
                            checkpoint,
                            [item],
                            FillRequest(settings, crop=crop_mode, blend=bool(blend_on), adapt=adapting),
                            callback=report,
                        )[0]
                    )
                except Exception as error:  # surfaced to the page below
                    events.put(error)

            threading.Thread(target=work, daemon=True).start()
            while True:
                try:
                    item = events.get(timeout=0.1)
                except queue.Empty:
                    item = None
                if cancelled.is_set():
                    # Stop: this request says so as its last message; said by the Stop button instead, it could be
                    # overwritten by progress messages still on their way to the page.
                    yield (gr.skip(),) * 5 + (stopped_status(shown), gr.skip(), gr.skip())
                    return
                if isinstance(item, (SearchProgress, AdaptProgress)):
                    current = _pil(checkpoint.to_pixels(item.current))[0].resize(
                        (4 * size, 4 * size), Image.Resampling.NEAREST
                    )
                    if isinstance(item, SearchProgress):
                        progress(item.iteration / item.iterations, desc="searching z")
                        shown = (
                            f"{framing_text}\n\nIteration {item.iteration} / {item.iterations}: "
                            f"context loss {float(item.context_loss[0]):.2f}"
                        )
                    else:
                        progress(item.step / max(item.steps, 1), desc="adapting the generator")
                        shown = (
                            f"{framing_text}\n\nAdapting the generator to the photo: step {item.step} / "
                            f"{item.steps}, known pixels' L1 {float(item.loss[0]):.1f}"
                        )
                    yield (gr.skip(), gr.skip(), gr.skip(), current, gr.skip(), shown, gr.skip(), gr.skip())
                elif isinstance(item, UserError):
                    raise refuse(item)
                elif isinstance(item, Exception):  # a bug: the traceback goes to the console
                    raise gr.Error(f"Inpainting failed: {item}") from item
                elif item is not None:
                    done = f"Done in {item.seconds:.1f} s: {hole.mean():.1%} of the photo filled"
                    if item.view is not None:
                        done += f"; context loss {item.context_loss:.2f}"
                    yield (
                        item.image,
                        item.raw,
                        item.candidates,
                        gr.skip(),
                        scratch.save_png(item.image, "inpainted"),
                        f"{framing_text}\n\n{done}.{notes_for_status(item, chosen is not None)}",
                        picture,
                        gr.skip(),
                    )
                    return

    def request_stop(request: gr.Request) -> bool:
        """Stop: the session's running search ends and says so itself (waited for here); False when none
        runs, and the page then cancels the request still waiting in the queue, if any."""
        search = running.get(getattr(request, "session_hash", None))
        if search is None:
            return False
        search[0].set()
        search[1].wait(10)
        return True

    def corner(state, text, evt: gr.SelectData):
        """Two clicks on the framing picture: the face's top-left, then bottom-right corner."""
        position = evt.index if isinstance(evt.index, (list, tuple)) and len(evt.index) == 2 else (None, None)
        x, y = (checked(v, "click position", 0) / max(state.get("scale", 1.0), 1e-9) for v in position)
        if state.get("first") is None:
            return {**state, "first": (x, y)}, text
        (x0, y0) = state["first"]
        left, top, right, bottom = min(x0, x), min(y0, y), max(x0, x), max(y0, y)
        return {**state, "first": None}, f"{left:.0f}, {top:.0f}, {right - left:.0f}, {bottom - top:.0f}"

    def search_defaults(model_name, init_mode):
        """The iteration and start counts that suit the chosen model and start."""
        try:
            planned = _planned(models, model_name, init_mode)
        except UserError as error:
            raise refuse(error) from None
        return planned.iterations, planned.restarts

    for trigger in (model.change, init.change):
        trigger(search_defaults, [model, init], [iterations, restarts], api_name=False)
    model.change(lambda name: _adapt_steps(models, name), model, adapt_steps, api_name=False)
    event = run.click(
        inpaint,
        [model, photo, preset, crop, face_box, iterations, restarts, lam, seed, blend, init, adapt_steps],  # parameters
        [result, raw, candidates, preview, download, status, view, clicks],
        api_name="inpaint",
        concurrency_limit=CONCURRENCY,
        show_progress="full",  # full: a waiting user sees their place in the queue and the estimated wait
    )
    view.select(corner, [clicks, face_box], [clicks, face_box], api_name=False)
    # Stop is not queued: it must act at once, not after the requests waiting ahead of it, and even when the queue
    # is full. A running search ends itself, its "Stopped" the last message it sends: cancelled by the page
    # instead, the progress messages still on their way would arrive after that status and hide it. A request
    # still waiting is cancelled by the page (a hidden button: Gradio drops `cancels` given to .then()).
    stopped = gr.Checkbox(visible="hidden")
    cancel_waiting = gr.Button(visible="hidden", elem_id="cancel-waiting")
    cancel_waiting.click(None, None, None, cancels=[event])
    stop.click(request_stop, None, stopped, queue=False, api_name=False).then(
        None, stopped, None, js="(ran) => { if (!ran) document.getElementById('cancel-waiting')?.click(); }"
    )


def _adapt_steps(models: Models, model_name: str) -> int:
    """The adaptation steps a model gets by default (resolve_adapt: on for face models)."""
    return resolve_adapt(models.get(model_name), AdaptSettings()).steps


def _planned(models: Models, model_name: str, init_mode: str) -> SearchSettings:
    """The default search for a model and a start: resolve_settings fills in the counts."""
    return resolve_settings(models.get(model_name), SearchSettings(init=init_mode or "auto"))


def _concept(
    checkpoint: Checkpoint, seeds: str, photo: str | None, name: str, empty: str
) -> tuple[torch.Tensor, editor.Deltas | None]:
    """A concept's latents: those of its seeds, and the projection of its photo (a checked upload's path),
    with their generator changes (the photo's adaptation; None when there is none); `name` names the seeds
    field in refusals, `empty` says what an empty concept needs."""
    try:
        latents = editor.parse_seeds(seeds, name, allow_empty=True, most=MAX_CONCEPT_SEEDS)
    except UserError as error:
        raise refuse(error) from None
    z = [editor.latents_for_seeds(checkpoint, latents)] if latents else []
    changes: list[editor.Deltas | None] = [None] * len(latents)
    if photo is not None:
        try:
            picture = read_upload(photo, Path(photo).name)
        except UserError as error:
            raise refuse(error) from None
        projection = editor.project(checkpoint, picture)
        z.append(projection.z[None])
        changes.append(projection.deltas or None)
    if not z:
        raise refuse(f"{name.split(':')[0]}: {empty}")
    return torch.cat(z), editor.stack_deltas(changes)


def _edit_tab(models: Models, model: gr.Dropdown, scratch: Scratch) -> None:
    gr.Markdown("Samples are named by their seed. Click a sample to add its seed to concept A, B or C.")
    with gr.Row():
        first = gr.Number(value=0, precision=0, minimum=0, maximum=SEED_MAX - MAX_SAMPLES, label="First seed")
        count = gr.Slider(4, MAX_SAMPLES, value=16, step=4, label="Samples")
        show = gr.Button("Show samples", elem_id="show-samples")
    gallery = gr.Gallery(label="Samples", columns=8, height=300, format="png", allow_preview=False, elem_id="samples")
    target = gr.Radio(["A", "B", "C"], value="A", label="Clicking a sample adds it to")
    with gr.Row():
        concept_seeds, concept_photos = [], []
        for name, hint in (("A", "e.g. smiling women"), ("B", "e.g. neutral women"), ("C", "e.g. neutral men")):
            with gr.Column():
                concept_seeds.append(
                    gr.Textbox(
                        value="", label=f"Concept {name}: seeds", placeholder=hint, elem_id=f"concept-{name.lower()}"
                    )
                )
                concept_photos.append(
                    gr.Image(
                        type="filepath",
                        image_mode=None,
                        height=120,
                        sources=("upload",),
                        label=f"or a photo for {name} (projected)",
                    )
                )
    with gr.Row():
        variations = gr.Slider(0, 15, value=7, step=1, label="Variations")
        noise = gr.Slider(0.0, 1.0, value=0.25, step=0.05, label="Variation noise")
        compute = gr.Button("A − B + C", variant="primary", elem_id="arithmetic")
    equation = gr.Image(label="A, B, C and A − B + C", format="png", interactive=False, elem_id="equation")
    results = gr.Gallery(label="A − B + C and its variations", columns=8, height=200, format="png")
    gr.Markdown("### Interpolation")
    with gr.Row():
        start = gr.Textbox(label="From (seed)", value="0")
        end = gr.Textbox(label="To (seed)", value="1")
        frames = gr.Slider(3, MAX_FRAMES, value=8, step=1, label="Frames")
        method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path")
        walk = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
    strip = gr.Image(label="Frames", format="png", interactive=False, elem_id="strip")
    with gr.Row():
        frame_index = gr.Slider(0, 7, value=0, step=1, label="Frame")
        frame = gr.Image(label="Frame", format="png", interactive=False, height=200)
        gif = gr.Image(label="Animation", type="filepath", interactive=False, height=200)
    frames_state = gr.State([])
    for upload in concept_photos:
        checked_photo(upload)
    for field in (first, count, variations, noise, frames):
        checked_number(field)
    for choice in (target, method):
        checked_choice(choice)

    def samples(model_name, first_seed, n):
        checkpoint = models.get(model_name)
        seeds = list(range(first_seed or 0, (first_seed or 0) + n))
        images = _pil(generate(checkpoint, editor.latents_for_seeds(checkpoint, seeds)))
        return [(image, f"seed {seed}") for image, seed in zip(images, seeds)]

    def add_pick(which, first_seed, a, b, c, evt: gr.SelectData):
        seed = (first_seed or 0) + checked(evt.index, "sample", 0, MAX_SAMPLES - 1, integer=True)
        boxes = {"A": a, "B": b, "C": c}
        boxes[which] = ", ".join(filter(None, [(boxes[which] or "").strip(), str(seed)]))
        return boxes["A"], boxes["B"], boxes["C"]

    def arithmetic(model_name, a_seeds, b_seeds, c_seeds, a_photo, b_photo, c_photo, n_variations, noise_level):
        checkpoint = models.get(model_name)
        (a, a_deltas), (b, b_deltas), (c, c_deltas) = (
            _concept(checkpoint, s, p, f"Concept {name}: seeds", "needs seeds (e.g. 3, 17, 42) or a photo")
            for name, s, p in (("A", a_seeds, a_photo), ("B", b_seeds, b_photo), ("C", c_seeds, c_photo))
        )
        z = editor.arithmetic(checkpoint, a, b, c, n_variations, noise_level)
        deltas = editor.arithmetic_deltas(a_deltas, b_deltas, c_deltas, len(z))
        concepts = editor.stack_deltas([editor.mean_deltas(d) for d in (a_deltas, b_deltas, c_deltas)])
        pictures = torch.cat(
            [
                editor.render(checkpoint, editor.equation(checkpoint, a, b, c, z)[:3], concepts),
                editor.render(checkpoint, z, deltas),
            ]
        )
        labels = ["A − B + C"] + [f"variation {i}" for i in range(1, len(z))]
        return grid_image(pictures[:4], columns=4), list(zip(_pil(pictures[3:]), labels))

    def interpolate(model_name, start_text, end_text, n_frames, path_kind):
        checkpoint = models.get(model_name)
        z0, z1 = (
            _concept(checkpoint, text, None, name, "needs a seed (e.g. 3)")[0].mean(0)
            for name, text in (("From", start_text), ("To", end_text))
        )
        pictures = generate(checkpoint, editor.interpolate(checkpoint, z0, z1, n_frames, path_kind))
        images = _pil(pictures)
        animation = scratch.path("interpolation", ".gif")
        editor.save_gif(images, animation)
        return (
            grid_image(pictures, columns=len(images)),
            str(animation),
            images,
            gr.update(maximum=len(images) - 1, value=0),
            images[0],
        )

    def pick_frame(images, index):
        # not checked_number: its maximum follows the frames made, so Gradio rebuilds it (with its own checks)
        index = checked(index, "Frame", 0, MAX_FRAMES - 1, integer=True)
        return images[index] if images and index < len(images) else None

    show.click(samples, [model, first, count], gallery, api_name="samples", concurrency_limit=CONCURRENCY)
    # Not in the API: it needs the click on a sample (Gradio's SelectData), which an API call has none of.
    gallery.select(add_pick, [target, first, *concept_seeds], concept_seeds, api_name=False)
    compute.click(
        arithmetic,
        [model, *concept_seeds, *concept_photos, variations, noise],
        [equation, results],
        api_name="arithmetic",
        concurrency_limit=CONCURRENCY,
    )
    walk.click(
        interpolate,
        [model, start, end, frames, method],
        [strip, gif, frames_state, frame_index, frame],
        api_name="interpolate",
        concurrency_limit=CONCURRENCY,
    )
    frame_index.change(pick_frame, [frames_state, frame_index], frame, api_name=False)


def _model_tab(models: Models, model: gr.Dropdown) -> None:
    facts = gr.Markdown()
    grid = gr.Image(label="Samples (seed 0)", format="png", interactive=False)

    def describe(model_name):
        checkpoint = models.get(model_name)
        path = models.choices[model_name]
        meta = read_metadata(path)
        training = meta.get("training", {})
        config = meta["model"]
        lines = [
            f"**{model_name}**: `{checkpoint.path}`",
            "",
            "| property | value |",
            "|---|---|",
            (
                f"| architecture | DCGAN {config['image_size']}×{config['image_size']}, "
                f"{config['channels']} channel(s), z of {config['latent_dim']} "
                f"({meta.get('latent_prior', {}).get('kind', 'uniform')}), "
                f"widths G {config['g_width']} / D {config['d_width']}" + upsample_note(config) + " |"
            ),
            f"| data | {training.get('data_name', '?')}: {training.get('images', '?')} images"
            + (f", {training['validation_images']} held out" if training.get("validation_images") else "")
            + " |",
            (
                f"| training | {training.get('steps', '?')} steps, {training.get('epochs', '?')} epochs, "
                f"{training.get('wall_seconds', 0) / 60:.0f} min on {training.get('device', '?')} |"
            ),
        ]
        if "frechet" in training:
            lines.append(f"| Fréchet face distance | {training['frechet']} (lower is better) |")
        if "swd" in training:
            lines.append(f"| sliced Wasserstein distance ×10³ | {training['swd']} (lower is better) |")
        parts = [
            name
            for key, name in (("framing", "face framing"), ("framer", "framer"), ("encoder", "inpainting encoder"))
            if key in meta
        ]
        if parts:
            lines.append(f"| added to it | {', '.join(parts)} (format version {meta.get('format_version', 1)}) |")
        command = training_command(meta) or "inpaint train --data YOUR_IMAGES --out runs/mine"
        lines += ["", "Retrain or train your own on the command line (see the README):", "", f"```sh\n{command}\n```"]
        card = Path(path) / "README.md"
        if card.is_file():
            lines.append(f"\nThe full model card is `{card.relative_to(ROOT) if card.is_relative_to(ROOT) else card}`.")
        samples_png = Path(path) / "samples.png"
        if samples_png.is_file():
            picture = Image.open(samples_png)
        else:
            picture = grid_image(generate(checkpoint, editor.latents_for_seeds(checkpoint, list(range(16)))), columns=4)
        return "\n".join(lines), picture

    model.change(describe, model, [facts, grid], api_name="describe_model")
    return describe, [facts, grid]


def serve(
    models: Models,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    block: bool = True,
    queue_size: int = QUEUE_SIZE,
    scratch: Scratch | None = None,
):
    """Build, queue and launch the app; returns (Blocks, local URL). A file someone picks is limited to
    MAX_UPLOAD and the pixel budget, checked by the page before it is sent (ui/upload_guard.js) and
    by the server; the server's upload route takes up to MAX_TRANSFER, what the photo editor sends."""
    app = build_app(models, scratch)
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=queue_size)
    launched = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_TRANSFER,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=not block,
        head=upload_guard_head(),
    )
    return app, launched[1]


def launch(
    host: str = "127.0.0.1", port: int | None = None, share: bool = False, runs: list[Path] | None = None
) -> None:
    limit_cpu_threads(concurrent=CONCURRENCY)  # two searches at once must not fight over the same cores
    serve(Models(find_checkpoints(runs)), host, port, share, block=True)
