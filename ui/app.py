"""The Gradio app: Inpaint, Edit and Model tabs, a thin layer over the library.

Every handler takes uploaded images and form values only (no server paths): checkpoints are
chosen from a fixed list found at start-up, examples come from the bundled folder.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from inpaint import editor
from inpaint.checkpoint import DEFAULT_CHECKPOINT, WEIGHTS_FILE, Checkpoint, list_snapshots, load_checkpoint, read_metadata
from inpaint.engine import FillItem, choose_view, fill_images, model_pixels
from inpaint.framing import draw, to_model
from inpaint.locate import parse_face_box
from inpaint.grids import grid_image
from inpaint.errors import UserError
from inpaint.masks import MASK_KINDS, make_mask
from inpaint.sampling import generate
from inpaint.device import limit_cpu_threads
from inpaint.search import INITS, SearchProgress, SearchSettings, resolve_settings
from ui.editor_value import background_image, painted_mask

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "faces").glob("*.jpg"))
MAX_UPLOAD = "20mb"
CONCURRENCY = 2  # searches at once; more only queue up on a CPU
PRESETS = ("painted",) + MASK_KINDS


def find_checkpoints(runs: list[Path] | None = None) -> dict[str, Path]:
    """Shipped checkpoints under checkpoints/ and any run folders given on the command line."""
    found = {}
    folder = ROOT / "checkpoints"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
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
            raise gr.Error(f"unknown model {name!r}")
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load_checkpoint(self.choices[name])
            return self._loaded[name]


def _pil(images: torch.Tensor) -> list[Image.Image]:
    return editor.to_pil(images)


def _save_png(image: Image.Image, stem: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="inpaint-"))
    path = folder / f"{stem}.png"
    image.save(path)
    return str(path)


def build_app(models: Models) -> gr.Blocks:
    with gr.Blocks(title="inpaint: semantic inpainting with a DCGAN") as app:
        gr.Markdown("# inpaint\nPaint over part of a face and let the GAN fill it in; explore the face model's latent space.")
        model = gr.Dropdown(list(models.choices), value=models.default, label="Model", scale=0)
        with gr.Tab("Inpaint"):
            _inpaint_tab(models, model)
        with gr.Tab("Edit"):
            _edit_tab(models, model)
        with gr.Tab("Model"):
            describe, outputs = _model_tab(models, model)
        app.load(describe, model, outputs, api_name=False)
    return app


def _inpaint_tab(models: Models, model: gr.Dropdown) -> None:
    with gr.Row():
        with gr.Column():
            photo = gr.ImageEditor(
                type="numpy", label="Photo: paint over what to replace", image_mode="RGBA", sources=("upload", "clipboard"),
                brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", default_size=12, color_mode="fixed"),
                layers=False, transforms=(), format="png", height=420, elem_id="photo",
            )
            if EXAMPLES:
                gr.Examples([[str(p)] for p in EXAMPLES[:8]], inputs=[photo], label="Example faces (CelebA validation split)")
            preset = gr.Radio(PRESETS, value="painted", label="Mask", info="painted = your brush strokes; or a preset hole")
            with gr.Accordion("Where the model looks", open=False):
                crop = gr.Radio(["auto", "face", "context"], value="auto", label="Square the model sees",
                                info="auto: the face the hole belongs to, aligned (a classical fill when no face owns the hole); "
                                     "face: a face or an error; context: the hole and its surroundings, face or not")
                face_box = gr.Textbox(label="Face box: X, Y, W, H in pixels", elem_id="face-box",
                                      placeholder="empty: found by itself. Or click the face's top-left, then bottom-right corner "
                                                  "on 'What the model sees'")
            with gr.Accordion("Settings", open=False):
                defaults = SearchSettings()
                init = gr.Radio(list(INITS), value=defaults.init, label="Search starts from",
                                info="auto: the model's inpainting encoder when it has one (a short refinement follows), "
                                     "else random latents (a longer search)")
                planned = _planned(models, models.default, defaults.init)
                iterations = gr.Slider(0, 2000, value=planned.iterations, step=5, label="Iterations (stops early once the fill settles)")
                restarts = gr.Slider(1, 32, value=planned.restarts, step=1, label="Starts (candidates searched at once)")
                lam = gr.Number(value=defaults.lam, label="λ: weight of the discriminator's opinion")
                seed = gr.Number(value=0, precision=0, label="Seed")
                blend = gr.Checkbox(value=True, label="Poisson blending")
            with gr.Row():
                run = gr.Button("Inpaint", variant="primary", elem_id="run")
                stop = gr.Button("Stop", elem_id="stop")
        with gr.Column():
            status = gr.Markdown("Upload a photo or pick an example, paint over the part to replace, then press Inpaint.")
            with gr.Row():
                view = gr.Image(label="What the model sees (green square; yellow: the top of the face)", format="png",
                                interactive=False, height=220, elem_id="view")
                preview = gr.Image(label="The model's square and the search's current G(z)", format="png", interactive=False, height=220)
            result = gr.Image(label="Result", format="png", interactive=False, elem_id="result")
            raw = gr.Image(label="Raw fill (no blending)", format="png", interactive=False)
            candidates = gr.Gallery(label="Ranked candidates (best first)", columns=4, height=180, format="png", object_fit="contain", preview=False)
            download = gr.File(label="Download the result")
    clicks = gr.State({"scale": 1.0, "first": None})

    def inpaint(model_name, value, preset_name, crop_mode, box_text, iterations_n, restarts_n, lam_value, seed_value, blend_on,
                init_mode="auto", progress=gr.Progress()):
        try:
            checkpoint = models.get(model_name)
            image = background_image(value)
            if preset_name == "painted":
                hole = painted_mask(value, image.size)
            else:
                hole = make_mask(preset_name, image.height, image.width, seed=int(seed_value or 0))
            box = parse_face_box(box_text, "face box") if (box_text or "").strip() else None
            if not hole.any():
                raise UserError("Nothing to fill: paint over part of the photo, or choose a mask preset.")
            pixels = model_pixels(checkpoint, image)
            chosen = choose_view(checkpoint, pixels, hole, crop_mode, box)
        except UserError as error:
            raise gr.Error(str(error))
        picture, scale = draw(np.repeat(pixels, 3, 2) if pixels.shape[2] == 1 else pixels, chosen, hole)
        size = checkpoint.config.image_size
        if chosen is None:
            seen, framing_text = None, "**No face owns the hole**, so it is filled with OpenCV's Telea method (the face model only draws faces). To use the model anyway, give the face box (click two corners on the picture) or choose the *context* square."
        else:
            seen = Image.fromarray(np.clip(to_model(pixels, chosen), 0, 255).astype(np.uint8).squeeze()).resize((4 * size, 4 * size), Image.Resampling.NEAREST)
            framing_text = (f"The model sees the green square ({chosen.how}: {chosen.side():.0f} px wide, turned {chosen.angle:+.0f}°) "
                            f"and draws it at **{size}×{size} pixels**"
                            + (f"; the fill is enlarged {1 / chosen.scale:.1f}× and given the photo's own fine detail." if 1 / chosen.scale > 1.5 else "."))
        yield (gr.skip(), gr.skip(), gr.skip(), seen, gr.skip(), framing_text, picture, {"scale": scale, "first": None})
        try:
            settings = resolve_settings(checkpoint, SearchSettings(iterations=int(iterations_n), restarts=int(restarts_n), lam=float(lam_value),
                                                                   seed=int(seed_value or 0), init=init_mode or "auto"))
        except UserError as error:
            raise gr.Error(str(error))
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def report(update: SearchProgress) -> bool:
            events.put(update)
            return cancelled.is_set()

        def work() -> None:
            try:
                item = FillItem(image, hole, box, chosen)
                events.put(fill_images(checkpoint, [item], settings, blend=bool(blend_on), crop=crop_mode, callback=report)[0])
            except Exception as error:  # surfaced to the page below
                events.put(error)

        threading.Thread(target=work, daemon=True).start()
        try:
            while True:
                item = events.get()
                if isinstance(item, SearchProgress):
                    progress(item.iteration / item.iterations, desc="searching z")
                    current = _pil(checkpoint.to_pixels(item.current))[0].resize((4 * size, 4 * size), Image.Resampling.NEAREST)
                    yield (gr.skip(), gr.skip(), gr.skip(), current, gr.skip(),
                           f"{framing_text}\n\nIteration {item.iteration} / {item.iterations}: context loss {float(item.context_loss[0]):.2f}",
                           gr.skip(), gr.skip())
                elif isinstance(item, Exception):
                    raise gr.Error(f"Inpainting failed: {item}")
                else:
                    done = f"Done in {item.seconds:.1f} s: {hole.mean():.1%} of the photo filled"
                    if item.view is not None:
                        done += f"; context loss {item.context_loss:.2f}"
                    yield (item.image, item.raw, item.candidates, gr.skip(), _save_png(item.image, "inpainted"),
                           f"{framing_text}\n\n{done}.", picture, gr.skip())
                    return
        finally:
            cancelled.set()  # Stop, a closed page or the end: let the search thread finish early

    def corner(state, text, evt: gr.SelectData):
        """Two clicks on the framing picture: the face's top-left, then bottom-right corner."""
        x, y = (v / max(state.get("scale", 1.0), 1e-9) for v in evt.index)
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
            raise gr.Error(str(error))
        return planned.iterations, planned.restarts

    for trigger in (model.change, init.change):
        trigger(search_defaults, [model, init], [iterations, restarts], api_name=False)
    event = run.click(
        inpaint, [model, photo, preset, crop, face_box, iterations, restarts, lam, seed, blend, init],
        [result, raw, candidates, preview, download, status, view, clicks],
        api_name="inpaint", concurrency_limit=CONCURRENCY,
    )
    view.select(corner, [clicks, face_box], [clicks, face_box], api_name=False)
    stop.click(None, None, None, cancels=[event])


def _planned(models: Models, model_name: str, init_mode: str) -> SearchSettings:
    """The default search for a model and a start: resolve_settings fills in the counts."""
    return resolve_settings(models.get(model_name), SearchSettings(init=init_mode or "auto"))


def _concept(checkpoint: Checkpoint, seeds: str, photo: Image.Image | None) -> torch.Tensor:
    latents = []
    text = (seeds or "").replace(";", ",")
    try:
        latents += [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise gr.Error(f"seeds must be whole numbers separated by commas, not {seeds!r}")
    z = [editor.latents_for_seeds(checkpoint, latents)] if latents else []
    if photo is not None:
        z.append(editor.project(checkpoint, photo).z[None])
    if not z:
        raise gr.Error("each concept needs seeds (e.g. 3, 17, 42) or a photo")
    return torch.cat(z)


def _edit_tab(models: Models, model: gr.Dropdown) -> None:
    gr.Markdown("Samples are named by their seed. Click a sample to add its seed to concept A, B or C.")
    with gr.Row():
        first = gr.Number(value=0, precision=0, label="First seed")
        count = gr.Slider(4, 48, value=16, step=4, label="Samples")
        show = gr.Button("Show samples", elem_id="show-samples")
    gallery = gr.Gallery(label="Samples", columns=8, height=300, format="png", allow_preview=False, elem_id="samples")
    target = gr.Radio(["A", "B", "C"], value="A", label="Clicking a sample adds it to")
    with gr.Row():
        concept_seeds, concept_photos = [], []
        for name, hint in (("A", "e.g. smiling women"), ("B", "e.g. neutral women"), ("C", "e.g. neutral men")):
            with gr.Column():
                concept_seeds.append(gr.Textbox(label=f"Concept {name}: seeds", placeholder=hint, elem_id=f"concept-{name.lower()}"))
                concept_photos.append(gr.Image(type="pil", label=f"or a photo for {name} (projected)", height=120, sources=("upload",)))
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
        frames = gr.Slider(3, 24, value=8, step=1, label="Frames")
        method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path")
        walk = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
    strip = gr.Image(label="Frames", format="png", interactive=False, elem_id="strip")
    with gr.Row():
        frame_index = gr.Slider(0, 7, value=0, step=1, label="Frame")
        frame = gr.Image(label="Frame", format="png", interactive=False, height=200)
        gif = gr.Image(label="Animation", type="filepath", interactive=False, height=200)
    frames_state = gr.State([])

    def samples(model_name, first_seed, n):
        checkpoint = models.get(model_name)
        seeds = list(range(int(first_seed or 0), int(first_seed or 0) + int(n)))
        images = _pil(generate(checkpoint, editor.latents_for_seeds(checkpoint, seeds)))
        return [(image, f"seed {seed}") for image, seed in zip(images, seeds)]

    def add_pick(which, first_seed, a, b, c, evt: gr.SelectData):
        seed = int(first_seed or 0) + int(evt.index)
        boxes = {"A": a, "B": b, "C": c}
        boxes[which] = ", ".join(filter(None, [(boxes[which] or "").strip(), str(seed)]))
        return boxes["A"], boxes["B"], boxes["C"]

    def arithmetic(model_name, a_seeds, b_seeds, c_seeds, a_photo, b_photo, c_photo, n_variations, noise_level):
        checkpoint = models.get(model_name)
        a, b, c = (_concept(checkpoint, s, p) for s, p in ((a_seeds, a_photo), (b_seeds, b_photo), (c_seeds, c_photo)))
        z = editor.arithmetic(checkpoint, a, b, c, int(n_variations), float(noise_level))
        concepts = torch.stack([editor.keep_in_support(checkpoint, editor.concept(x)) for x in (a, b, c)])
        pictures = generate(checkpoint, torch.cat([concepts, z]))
        labels = ["A − B + C"] + [f"variation {i}" for i in range(1, len(z))]
        return grid_image(pictures[:4], columns=4), list(zip(_pil(pictures[3:]), labels))

    def interpolate(model_name, start_text, end_text, n_frames, path_kind):
        checkpoint = models.get(model_name)
        z0, z1 = _concept(checkpoint, start_text, None).mean(0), _concept(checkpoint, end_text, None).mean(0)
        pictures = generate(checkpoint, editor.interpolate(checkpoint, z0, z1, int(n_frames), path_kind))
        images = _pil(pictures)
        folder = Path(tempfile.mkdtemp(prefix="inpaint-"))
        editor.save_gif(images, folder / "interpolation.gif")
        return grid_image(pictures, columns=len(images)), str(folder / "interpolation.gif"), images, gr.update(maximum=len(images) - 1, value=0), images[0]

    def pick_frame(images, index):
        return images[int(index)] if images else None

    show.click(samples, [model, first, count], gallery, api_name="samples", concurrency_limit=CONCURRENCY)
    gallery.select(add_pick, [target, first, *concept_seeds], concept_seeds)
    compute.click(arithmetic, [model, *concept_seeds, *concept_photos, variations, noise], [equation, results], api_name="arithmetic", concurrency_limit=CONCURRENCY)
    walk.click(interpolate, [model, start, end, frames, method], [strip, gif, frames_state, frame_index, frame], api_name="interpolate", concurrency_limit=CONCURRENCY)
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
            "| property | value |", "|---|---|",
            f"| architecture | DCGAN {config['image_size']}×{config['image_size']}, {config['channels']} channel(s), z of {config['latent_dim']} ({meta.get('latent_prior', {}).get('kind', 'uniform')}), widths G {config['g_width']} / D {config['d_width']} |",
            f"| data | {training.get('data_name', '?')}: {training.get('images', '?')} images" + (f", {training['validation_images']} held out" if training.get("validation_images") else "") + " |",
            f"| training | {training.get('steps', '?')} steps, {training.get('epochs', '?')} epochs, {training.get('wall_seconds', 0) / 60:.0f} min on {training.get('device', '?')} |",
        ]
        if "frechet" in training:
            lines.append(f"| Fréchet face distance | {training['frechet']} (lower is better) |")
        parts = [name for key, name in (("framing", "face framing"), ("framer", "framer"), ("encoder", "inpainting encoder")) if key in meta]
        if parts:
            lines.append(f"| added to it | {', '.join(parts)} (format version {meta.get('format_version', 1)}) |")
        command = training.get("training_command", "inpaint train --data YOUR_IMAGES --out runs/mine")
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


def serve(models: Models, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True):
    """Build, queue and launch the app (uploads limited to MAX_UPLOAD); returns (Blocks, local URL)."""
    app = build_app(models)
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    launched = app.launch(
        server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD, prevent_thread_lock=not block, show_error=True, quiet=not block
    )
    return app, launched[1]


def launch(host: str = "127.0.0.1", port: int | None = None, share: bool = False, runs: list[Path] | None = None) -> None:
    limit_cpu_threads(concurrent=CONCURRENCY)  # two searches at once must not fight over the same cores
    serve(Models(find_checkpoints(runs)), host, port, share, block=True)
