"""The `inpaint` command: a thin argument layer over the library (and the trainer)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inpaint import __version__
from inpaint.errors import UserError
from inpaint.ranks import DEFAULT_TIMEOUT as DEFAULT_RANK_TIMEOUT
from inpaint.validate import auto_or, count_arg, number_arg, seed_arg

# Upper bounds of counts that size memory or time: far above real use, far below exhaustion.
MAX_SAMPLES = 10_000  # 64×64 samples: about 0.5 GB
MAX_FRAMES = 1_000
MAX_STARTS = 256
MAX_ITERATIONS = 100_000
MAX_BATCH = 4_096
MAX_ADAPT_STEPS = 5_000  # inpaint.adapt.MAX_STEPS
fraction_arg = number_arg(0, 0.99, low_open=True)


def _sample(args: argparse.Namespace) -> int:
    from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
    from inpaint.device import select_device
    from inpaint.fileio import check_output
    from inpaint.grids import save_each, save_grid
    from inpaint.images import check_image_path
    from inpaint.sampling import generate, latents_for_seed

    if args.out:
        check_image_path(check_output(args.out, (args.checkpoint,), what="--out"))
    if args.out_dir:
        check_output(args.out_dir, folder=True, what="--out-dir")
    checkpoint = load_checkpoint(
        checkpoint_or_default(args.checkpoint), with_discriminator=False, device=select_device(args.device)
    )
    pictures = generate(checkpoint, latents_for_seed(checkpoint, args.n, args.seed))
    if args.out_dir:
        paths = save_each(pictures, args.out_dir, [f"seed{args.seed}-{i:04d}.png" for i in range(args.n)])
        print(f"wrote {len(paths)} images to {args.out_dir}")
    if args.out or not args.out_dir:
        out = args.out or "samples.png"
        save_grid(pictures, out)
        print(f"wrote a grid of {args.n} samples (seed {args.seed}) from {checkpoint.path} to {out}")
    return 0


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
    from inpaint.adapt import SUGGESTED_STEPS, AdaptSettings
    from inpaint.engine import CROP_MODES
    from inpaint.masks import MASK_KINDS, SIDES
    from inpaint.search import (
        CONSTRAINTS,
        ENCODER_START,
        INITS,
        RANDOM_START,
        SearchSettings,
    )

    defaults = SearchSettings()
    parser.add_argument("--checkpoint", help="checkpoint file or folder (default: the shipped face model)")
    parser.add_argument("--mask-kind", choices=MASK_KINDS, help="a generated mask instead of a mask file")
    parser.add_argument(
        "--fraction", type=fraction_arg, help="hole fraction for centre (0.25), random (0.8), pattern (0.25)"
    )
    parser.add_argument("--side", choices=SIDES, default="left", help="which half the half mask removes (default left)")
    search = parser.add_argument_group("search")
    search.add_argument(
        "--init",
        choices=INITS,
        default=defaults.init,
        help="where the search starts: auto (default: the checkpoint's inpainting encoder when it has one, "
        "else random latents), encoder, random",
    )
    search.add_argument(
        "--iterations",
        type=count_arg(0, MAX_ITERATIONS),
        help=f"optimiser steps (default {ENCODER_START[0]} from the encoder's start, "
        f"{RANDOM_START[0]} from random starts)",
    )
    search.add_argument(
        "--restarts",
        type=count_arg(1, MAX_STARTS),
        help=f"starts per image, searched together and ranked by context loss (default {ENCODER_START[1]} from "
        f"the encoder: its prediction and jittered copies; {RANDOM_START[1]} random)",
    )
    search.add_argument(
        "--jitter",
        type=number_arg(0, 2),
        default=defaults.jitter,
        help=f"spread of the jittered starts around the encoder's prediction (default {defaults.jitter})",
    )
    search.add_argument(
        "--patience",
        type=count_arg(0, MAX_ITERATIONS),
        default=defaults.patience,
        help=f"stop an image after this many iterations without improvement, 0 = never (default {defaults.patience})",
    )
    search.add_argument(
        "--lam",
        type=number_arg(0, 1000),
        default=defaults.lam,
        help=f"weight λ of the perceptual (discriminator) loss (default {defaults.lam})",
    )
    search.add_argument(
        "--lr",
        type=number_arg(0, 10, low_open=True),
        default=defaults.lr,
        help=f"Adam learning rate on z (default {defaults.lr})",
    )
    search.add_argument(
        "--neighbourhood",
        default="auto",
        type=_neighbourhood,
        help="window of the context weighting W: auto (default: grows with the hole, at least 7) "
        "or an odd size, e.g. 7 as in the paper",
    )
    search.add_argument(
        "--constraint",
        choices=CONSTRAINTS,
        default=defaults.constraint,
        help="keep z in [-1, 1] by clipping (default) or tanh",
    )
    search.add_argument("--seed", type=seed_arg, default=0, help="seed of the restarts and generated masks (default 0)")
    search.add_argument("--no-blend", action="store_true", help="paste the raw fill, without Poisson blending")
    search.add_argument(
        "--crop",
        choices=CROP_MODES,
        default="auto",
        help="the square the model sees: auto (for a face model the face the hole belongs to, aligned; "
        "a classical fill when no face owns the hole; for other models the photo's short side over the hole, "
        "as their training images were framed; an image at most twice the model's size: all of it), face (the "
        "likeliest face even if unconfirmed; an error if there is none), context (the hole and its "
        "surroundings), whole",
    )
    adapt_defaults = AdaptSettings()
    adapting = parser.add_argument_group("generator adaptation (after the search)")
    adapting.add_argument(
        "--adapt-steps",
        type=count_arg(0, MAX_ADAPT_STEPS),
        help="steps tuning a copy of the generator (its BatchNorm scales and shifts) to each photo's known pixels "
        f"after the search; default 0 = off; {SUGGESTED_STEPS} is the measured recipe (README: Real photographs)",
    )
    adapting.add_argument(
        "--adapt-lr",
        type=number_arg(0, 1, low_open=True),
        default=adapt_defaults.lr,
        help=f"Adam learning rate of the generator's copy (default {adapt_defaults.lr})",
    )
    search.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    search.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (default): bf16 on a CPU with native bf16 support, else fp32",
    )


def _neighbourhood(text: str) -> int | str:
    from inpaint.search import parse_neighbourhood

    try:
        return parse_neighbourhood(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _search_settings(args: argparse.Namespace):
    from inpaint.search import SearchSettings

    return SearchSettings(
        iterations=args.iterations,
        restarts=args.restarts,
        lam=args.lam,
        lr=args.lr,
        seed=args.seed,
        constraint=args.constraint,
        precision=args.precision,
        neighbourhood=args.neighbourhood,
        init=args.init,
        jitter=args.jitter,
        patience=args.patience,
    )


def _adapt_settings(args: argparse.Namespace):
    from inpaint.adapt import AdaptSettings

    return AdaptSettings(steps=args.adapt_steps, lr=args.adapt_lr)


def _load_for_search(args: argparse.Namespace, local_rank: int = 0):
    """The checkpoint the search needs, on the device asked for (under torchrun, `auto` and `cuda`
    give each process of a machine its own GPU: cuda:LOCAL_RANK)."""
    from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
    from inpaint.device import search_precision, select_device

    device = select_device(args.device, local_rank)
    search_precision(device, args.precision)
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint), device=device)
    if checkpoint.discriminator is None:
        raise UserError(
            f"{checkpoint.path}: holds no discriminator, and the search needs D for its perceptual loss; "
            "use a checkpoint exported with it (a training run's snapshots keep it)"
        )
    return checkpoint


# How each search start reads in the fill's last line.
START_WORDS = {"encoder": "the encoder's start", "random": "random starts"}


def _fill(args: argparse.Namespace) -> int:
    import contextlib
    from dataclasses import replace

    import numpy as np
    from tqdm import tqdm

    from inpaint.adapt import AdaptProgress
    from inpaint.engine import FillItem, FillRequest, describe_view, fill_images
    from inpaint.fileio import check_output
    from inpaint.images import check_image_path, save_image
    from inpaint.locate import parse_face_box
    from inpaint.masks import MaskSource, open_with_hole
    from inpaint.search import resolve_settings

    source, out = Path(args.image), Path(args.out)
    inputs = (args.image, args.mask, args.checkpoint)
    check_output(out, inputs, what="--out")  # before the search, not after it
    if args.candidates:
        check_output(args.candidates, inputs, folder=True, what="--candidates")
    if (args.mask is None) == (args.mask_kind is None):
        raise UserError("give exactly one of --mask FILE or --mask-kind KIND")
    check_image_path(out)
    masks = MaskSource(kind=args.mask_kind, fraction=args.fraction, side=args.side, seed=args.seed)
    image, hole = open_with_hole(source, masks, args.mask)
    width, height = image.size
    face_box = parse_face_box(args.face_box, "--face-box") if args.face_box else None
    checkpoint = _load_for_search(args)
    settings = resolve_settings(checkpoint, _search_settings(args))
    # Every start's fill is kept only when they are written: each costs a full-size copy of the photo.
    settings = replace(settings, top_k=settings.restarts if args.candidates else 1)
    with contextlib.ExitStack() as bars:
        searching = bars.enter_context(
            tqdm(total=max(settings.iterations, settings.scattered_iterations), unit="it", desc="searching z")
        )
        adapting = []  # the adaptation's bar, opened when it starts

        def report(progress) -> None:
            if isinstance(progress, AdaptProgress):
                if not adapting:
                    searching.close()
                    adapting.append(bars.enter_context(tqdm(total=progress.steps, unit="step", desc="adapting G")))
                adapting[0].update(progress.step - adapting[0].n)
                adapting[0].set_postfix(known_l1=f"{progress.loss.min():.2f}")
                return
            if progress.active == 0:  # every image stopped early: the search is complete here
                searching.total = progress.iteration
            searching.update(progress.iteration - searching.n)
            searching.set_postfix(context_loss=f"{progress.context_loss.min():.2f}")

        request = FillRequest(
            settings, crop=args.crop, blend=not args.no_blend, keep_raw=False, adapt=_adapt_settings(args)
        )
        [result] = fill_images(checkpoint, [FillItem(image, hole, face_box)], request, callback=report)
    for note in result.notes:
        print(f"note: {note}")
    if result.framing == "classical":
        print("note: --crop context uses the face model anyway; --face-box X,Y,W,H says where the face is")
    save_image(result.image, out)
    if args.candidates:
        for rank, candidate in enumerate(result.candidates, 1):
            save_image(candidate, Path(args.candidates) / f"{source.stem}-candidate{rank}{out.suffix}")
    print(
        f"wrote {out} ({width}×{height}); hole {np.count_nonzero(hole) / hole.size:.1%} of the image; "
        f"{describe_view(result)}; search from {START_WORDS[settings.init]}"
        f"{'' if checkpoint.encoder else ' (the model has no encoder)'}; {result.seconds:.1f} s"
    )
    return 0


def _batch(args: argparse.Namespace) -> int:
    from inpaint.batch import REPORT_FILE, plan_jobs
    from inpaint.fileio import check_output
    from inpaint.masks import MaskSource
    from inpaint.ranks import Stopped, world_from_env

    if args.mask_dir and args.mask_kind:
        raise UserError("give at most one of --mask-dir and --mask-kind (default: NAME_mask.png beside each image)")
    check_output(args.out_dir, (args.in_dir, args.mask_dir, args.checkpoint), folder=True, what="OUT_DIR")
    masks = MaskSource(
        kind=args.mask_kind,
        folder=Path(args.mask_dir) if args.mask_dir else None,
        fraction=args.fraction,
        side=args.side,
        seed=args.seed,
    )
    world = world_from_env()  # under torchrun: this process's rank; a world of one otherwise
    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    jobs = plan_jobs(in_dir, out_dir, masks)
    checkpoint = _load_for_search(args, world.local_rank)
    who = f"rank {world.rank}: " if world.distributed else ""
    try:
        counts = _run_batch(args, checkpoint, jobs, in_dir, out_dir, masks, world)
    except Stopped as stop:
        raise UserError(
            f"{who}{stop}; the finished outputs are kept: the same command again, on any number of processes, "
            "does the rest"
        ) from None
    if not world.is_main:
        return 0  # rank 0 reports for all; an exit code here would make torchrun stop the others
    counted = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if n)
    print(f"{counted}; report: {out_dir / REPORT_FILE}")
    return 1 if counts["failed"] else 0


def _run_batch(args, checkpoint, jobs, in_dir, out_dir, masks, world):
    """The batch's images on this process, its progress shown; returns the outcomes' counts (with
    several processes: every rank's, on rank 0, whose bar counts them all through the store)."""
    import contextlib
    from collections import Counter

    from tqdm import tqdm

    from inpaint.batch import STATUSES, run_batch, run_batch_on_ranks
    from inpaint.engine import FillRequest, fill_batch_size
    from inpaint.ranks import Link, stops_as_errors
    from inpaint.search import resolve_settings

    request = FillRequest(_search_settings(args), crop=args.crop, blend=not args.no_blend, adapt=_adapt_settings(args))
    batch_size = fill_batch_size(checkpoint, request) if args.batch_size == "auto" else args.batch_size
    counts: Counter[str] = Counter()
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(jobs), unit="img", desc="inpainting", disable=not world.is_main))
        start = resolve_settings(checkpoint, request.search).init
        without = "" if checkpoint.encoder else " (the model has no encoder)"
        shared = f"; {world.size} processes share the images" if world.distributed else ""
        bar.write(f"{batch_size} images per search batch; search from {START_WORDS[start]}{without}{shared}")
        if world.distributed:
            link = stack.enter_context(Link(world, timeout=args.rank_timeout))
            stack.enter_context(stops_as_errors(link))  # the watcher's interrupt: Stopped, with its reason
            entries = run_batch_on_ranks(checkpoint, jobs, in_dir, out_dir, masks, request, link, batch_size)
            if world.is_main:
                link.on_tick = lambda: _show_counts(bar, link.counters(list(STATUSES)))
        else:
            entries = run_batch(checkpoint, jobs, out_dir, masks, request, batch_size)
        for entry in entries:
            counts[entry["status"]] += 1
            if entry["status"] == "failed":
                bar.write(f"{f'rank {world.rank}: ' if world.distributed else ''}failed: {entry['error']}")
            if not world.distributed:
                _show_counts(bar, counts)
        if world.is_main and world.distributed:
            counts = Counter(link.counters(list(STATUSES)))
            _show_counts(bar, counts)
    return counts


def _show_counts(bar, counts) -> None:
    """Progress as the outcomes so far: the bar at their total, the outcomes beside it."""
    bar.n = sum(counts.values())
    bar.set_postfix({status: n for status, n in counts.items() if n})  # refreshes the bar


def _edit(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import numpy as np
    import torch

    from inpaint import editor
    from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
    from inpaint.fileio import atomic_path, check_output
    from inpaint.grids import save_grid, to_pil
    from inpaint.images import open_image

    out = Path(args.out)
    written = {
        "interpolate": ("strip.png", "interpolation.gif", "latents.npy"),
        "arithmetic": ("equation.png", "result.png", "latents.npy"),
        "project": ("projection.png", "latent.npy"),
    }[args.edit_command]
    specs = [getattr(args, name) for name in ("start", "end", "a", "b", "c", "image") if getattr(args, name, None)]
    inputs = (*[s for s in specs if not s.startswith("seed:")], args.checkpoint)
    check_output(out, inputs, folder=True, what="--out")
    for name in written:
        check_output(out / name, inputs, what="--out")
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint))
    adapting = editor.resolve_projection_adapt(checkpoint, replace(editor.PROJECTION_ADAPT, steps=args.adapt_steps))

    def save_latents(z, path: Path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, z.numpy())

    def point(spec: str):
        """A spec's latents and, for a projected photo, its generator change (None for seeds and files)."""
        z, projection = editor.latents_from_spec(checkpoint, spec, adapting)
        if projection is None:
            return z, None
        adapted = f", generator adapted to it ({adapting.steps} steps)" if projection.deltas else ""
        print(f"projected {spec}: context loss {projection.context_loss:.2f}{adapted}")
        return z, projection.deltas or None

    if args.edit_command == "interpolate":  # the folder is made by the first write, once the inputs are read
        (start, start_deltas), (end, end_deltas) = point(args.start), point(args.end)
        path = editor.interpolate(checkpoint, start.mean(0), end.mean(0), args.frames, args.method)
        deltas = editor.interpolate_deltas(
            editor.mean_deltas(start_deltas), editor.mean_deltas(end_deltas), args.frames
        )
        images = editor.render(checkpoint, path, deltas)
        save_grid(images, out / "strip.png", columns=len(images))
        editor.save_gif(to_pil(images), out / "interpolation.gif", seconds_per_frame=args.frame_seconds)
        save_latents(path, out / "latents.npy")
        print(f"wrote {out}/strip.png, interpolation.gif and latents.npy ({args.frames} frames, {args.method})")
    elif args.edit_command == "arithmetic":
        (a, a_deltas), (b, b_deltas), (c, c_deltas) = point(args.a), point(args.b), point(args.c)
        z = editor.arithmetic(checkpoint, a, b, c, args.variations, args.noise, args.seed)
        deltas = editor.arithmetic_deltas(a_deltas, b_deltas, c_deltas, len(z))
        equation_deltas = editor.stack_deltas(
            [editor.mean_deltas(d) for d in (a_deltas, b_deltas, c_deltas)]
            + [None if deltas is None else {name: value[:1] for name, value in deltas.items()}]
        )
        equation = editor.render(checkpoint, editor.equation(checkpoint, a, b, c, z), equation_deltas)
        save_grid(equation, out / "equation.png", columns=4)
        save_grid(editor.render(checkpoint, z, deltas), out / "result.png")
        save_latents(z, out / "latents.npy")
        print(
            f"wrote {out}/equation.png (A, B, C, A − B + C), "
            f"result.png (the result and {args.variations} variations) and latents.npy"
        )
    else:  # project
        projection = editor.project(checkpoint, open_image(args.image), adapting=adapting)
        save_grid(torch.stack([projection.target, projection.image]), out / "projection.png", columns=2)
        save_latents(projection.z[None], out / "latent.npy")
        adapted = f"; generator adapted to the photo ({adapting.steps} steps)" if projection.deltas else ""
        print(
            f"wrote {out}/projection.png (photo as the model sees it, G(z)) and latent.npy; "
            f"context loss {projection.context_loss:.2f}{adapted}"
        )
    return 0


def _train_addition(args: argparse.Namespace, options_class, train, what: str) -> int:
    """Train a part added to a checkpoint (the framer, the encoder) from the command's flags."""
    from dataclasses import fields

    from inpaint.checkpoint import checkpoint_or_default

    given = {f.name: getattr(args, f.name) for f in fields(options_class) if getattr(args, f.name, None) is not None}
    options = options_class(**{**given, "checkpoint": str(checkpoint_or_default(args.checkpoint))})
    try:
        path = train(options, resume=args.resume)
    except KeyboardInterrupt:
        print(f"interrupted; continue with the same command and --resume (state in {args.out})", file=sys.stderr)
        return 130
    print(f"wrote {path}: the checkpoint with its {what}; use it with --checkpoint {path.parent}")
    return 0


def _train_framer(args: argparse.Namespace) -> int:
    from inpaint_training.framer import FramerOptions, train_framer

    return _train_addition(args, FramerOptions, train_framer, "framer and face framing")


def _train_encoder(args: argparse.Namespace) -> int:
    from inpaint_training.encoder import EncoderOptions, train_encoder

    return _train_addition(args, EncoderOptions, train_encoder, "inpainting encoder")


def _app(args: argparse.Namespace) -> int:
    from inpaint_ui.app import launch

    if args.share:
        print("warning: --share publishes the app on a public link")
    launch(host=args.host, port=args.port, share=args.share, runs=[Path(r) for r in args.run])
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
    from inpaint.engine import face_template
    from inpaint.face_metrics import (
        are_faces,
        evaluation_warnings,
        face_descriptors,
        frechet_distance,
    )
    from inpaint.images import find_images
    from inpaint.sampling import generate, latents_for_seed
    from inpaint.swd import reference_scale, sliced_wasserstein
    from inpaint_training.data import decode_images

    if not Path(args.data).is_dir():
        raise UserError(f"{args.data}: folder does not exist")
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint), with_discriminator=False)
    files, _ = find_images(args.data)
    if args.last:
        files = files[-args.last :]
    if len(files) < 2:
        raise UserError(f"{args.data}: needs at least 2 image files to compare against, found {len(files)}")
    size, channels = checkpoint.config.image_size, checkpoint.config.channels
    real, kept, _ = decode_images(files, size, channels, warn=lambda m: print(m, file=sys.stderr))
    print(f"{len(kept)} reference images from {args.data}; {args.n} samples (seed {args.seed}) from {checkpoint.path}")
    samples = generate(checkpoint, latents_for_seed(checkpoint, args.n, args.seed))
    scale = reference_scale(real, args.seed)
    score = sliced_wasserstein(samples, real, seed=args.seed)["swd"]
    print(
        f"sliced Wasserstein distance (×10³, lower is better): {score:.2f}"
        f"  [its scale here: the references' two halves {scale['halves']:.2f}, against a blurred copy "
        f"{scale['blurred']:.2f}, at {len(real) // 2} a side]"
    )
    if not are_faces(real, face_template(checkpoint)):
        print("no Fréchet face distance: the reference images are not faces (or dlib is not installed)")
        return 0
    for warning in evaluation_warnings(real, args.n, face_template(checkpoint)):
        print(f"warning: {warning}", file=sys.stderr)
    reference = face_descriptors(real, show_progress=True)
    print(f"Fréchet face-descriptor distance: {frechet_distance(face_descriptors(samples), reference):.5f}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from inpaint.fileio import check_output
    from inpaint_training.export import export_run

    check_output(args.out, (args.run_dir, args.data), folder=True, what="--out")
    facts = export_run(Path(args.run_dir), Path(args.out), args.storage, args.data, content=args.content)
    print(json.dumps({k: facts[k] for k in ("file_bytes", "precision_effect", "storage")}, indent=2))
    print(f"wrote {args.out}: model.safetensors, samples.png, losses.png, nearest.png, card.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from inpaint_training.limits import ENCODER_LIMITS, FRAMER_LIMITS

    parser = argparse.ArgumentParser(
        prog="inpaint", description="Semantic image inpainting and latent editing with a DCGAN."
    )
    parser.add_argument("--version", action="version", version=f"inpaint {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a DCGAN on a folder of images", description="Train a DCGAN on a folder of images."
    )
    from inpaint_training.cli import add_arguments

    add_arguments(train)

    sample = commands.add_parser(
        "sample",
        help="draw samples from a checkpoint",
        description="Draw samples from a checkpoint as a grid or single images.",
    )
    sample.add_argument("--checkpoint", help="checkpoint file or folder (default: the shipped face model)")
    sample.add_argument("--n", type=count_arg(1, MAX_SAMPLES), default=64, help="number of samples (default 64)")
    sample.add_argument("--seed", type=seed_arg, default=0, help="seed of the latents (default 0)")
    sample.add_argument("--out", help="grid image to write (default samples.png)")
    sample.add_argument("--out-dir", help="also or instead write one image per sample here")
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")

    fill = commands.add_parser(
        "fill",
        help="inpaint one image",
        description="Inpaint one image: fill the hole given by a mask file (white = hole) or a mask kind.",
    )
    fill.add_argument("image", help="image to inpaint (any size; it is never modified)")
    fill.add_argument(
        "--mask", help="mask image: white (above mid-grey) = hole, black = keep; same aspect ratio as the image"
    )
    fill.add_argument("--out", required=True, help="output image (same size and mode as the input)")
    fill.add_argument("--candidates", help="also write the ranked candidate fills to this folder")
    fill.add_argument(
        "--face-box", metavar="X,Y,W,H", help="the face the hole belongs to, when it is not found by itself (pixels)"
    )
    _add_search_arguments(fill)

    batch = commands.add_parser(
        "batch",
        help="inpaint a folder tree",
        description="Inpaint every image under IN_DIR into a mirrored tree under OUT_DIR. "
        "Masks: NAME_mask.png beside each image (default), --mask-dir, or --mask-kind. "
        "A face the finder misses can be given as X,Y,W,H in NAME_face.txt beside the image. "
        "A rerun skips finished outputs.",
    )
    batch.add_argument("in_dir")
    batch.add_argument("out_dir")
    batch.add_argument("--mask-dir", help="folder mirroring IN_DIR with NAME_mask.png (or NAME.png) masks")
    # NAME_face.txt beside an image (or in --mask-dir) holds X,Y,W,H of its face: see inpaint.batch.
    batch.add_argument(
        "--batch-size",
        type=auto_or(count_arg(1, MAX_BATCH)),
        default="auto",
        help="images searched together: a number, or auto (default): 16 on the CPU, on a GPU as many as "
        "half its free memory holds, up to 1024",
    )
    batch.add_argument(
        "--rank-timeout",
        type=number_arg(5, 3600),
        default=DEFAULT_RANK_TIMEOUT,
        help="under torchrun: seconds without news from a process before the others stop, naming it "
        f"(default {DEFAULT_RANK_TIMEOUT:.0f})",
    )
    _add_search_arguments(batch)

    edit = commands.add_parser(
        "edit",
        help="latent editing: interpolate, arithmetic, project",
        description="Edit in latent space. "
        "Latents are given as seed:3,5,8 (samples by seed), a .npy file, or a photo to project.",
    )
    edit_commands = edit.add_subparsers(dest="edit_command", required=True, metavar="EDIT")
    walk = edit_commands.add_parser("interpolate", help="frames between two faces: strip, GIF, latents")
    walk.add_argument("start", help="seed:N, latents .npy or a photo")
    walk.add_argument("end", help="seed:N, latents .npy or a photo")
    walk.add_argument(
        "--frames", type=count_arg(2, MAX_FRAMES), default=8, help="frames, both ends included (default 8)"
    )
    walk.add_argument("--method", choices=("slerp", "lerp"), default="slerp")
    walk.add_argument(
        "--frame-seconds", type=number_arg(0.01, 60), default=0.12, help="seconds per GIF frame (default 0.12)"
    )
    sums = edit_commands.add_parser("arithmetic", help="A − B + C over concepts (each the mean of its exemplars)")
    sums.add_argument("a", help="concept A, e.g. seed:1,4,9 (smiling women)")
    sums.add_argument("b", help="concept B, e.g. seed:2,5,7 (neutral women)")
    sums.add_argument("c", help="concept C, e.g. seed:3,6,8 (neutral men)")
    sums.add_argument(
        "--variations", type=count_arg(0, MAX_SAMPLES), default=7, help="noisy variations around the result (default 7)"
    )
    sums.add_argument("--noise", type=number_arg(0, 10), default=0.25, help="spread of the variations (default 0.25)")
    sums.add_argument("--seed", type=seed_arg, default=0)
    proj = edit_commands.add_parser("project", help="find the latent of a photo")
    proj.add_argument("image")
    for sub in (walk, sums, proj):
        sub.add_argument("--checkpoint", help="checkpoint (default: the shipped face model)")
        sub.add_argument("--out", required=True, help="output folder")
        sub.add_argument(
            "--adapt-steps",
            type=count_arg(0, MAX_ADAPT_STEPS),
            help="steps adapting a copy of the generator (every weight) to a projected photo, so the projection is "
            "that person; 0 = off (default 100 for a face model, off for other models)",
        )

    framer = commands.add_parser(
        "train-framer",
        help="train a face checkpoint's framer (finds the face a hole belongs to, eyes covered or not)",
        description="Train the framer of a face checkpoint on its training images "
        "and write the checkpoint with it (and the measured face framing) to OUT/model.safetensors. "
        "About 25 minutes on 2 CPU cores at the default 20,000 steps.",
    )
    framer.add_argument("--checkpoint", help="face checkpoint (default: the shipped face model)")
    framer.add_argument("--data", required=True, help="the checkpoint's training images")
    framer.add_argument("--out", required=True, help="run folder: state, stats, and the new model.safetensors")
    framer.add_argument(
        "--val-count",
        type=FRAMER_LIMITS["val_count"].arg(),
        help="hold out the last N files, as the checkpoint's training did (e.g. 500)",
    )
    framer.add_argument("--steps", type=FRAMER_LIMITS["steps"].arg(), help="training steps (default 20000)")
    framer.add_argument("--batch-size", type=FRAMER_LIMITS["batch_size"].arg(), help="examples per step (default 64)")
    framer.add_argument(
        "--lr", type=FRAMER_LIMITS["lr"].arg(), help="peak learning rate of the one-cycle schedule (default 2e-3)"
    )
    framer.add_argument("--width", type=FRAMER_LIMITS["width"].arg(), help="channels of the first layer (default 32)")
    framer.add_argument(
        "--seed", type=FRAMER_LIMITS["seed"].arg(), help="seed of the examples and the initialisation (default 0)"
    )
    framer.add_argument(
        "--log-every", type=FRAMER_LIMITS["log_every"].arg(), help="steps between stats lines (default 100)"
    )
    framer.add_argument(
        "--checkpoint-every",
        type=FRAMER_LIMITS["checkpoint_every"].arg(),
        help="steps between saved states and validation scores (default 1000)",
    )
    framer.add_argument("--resume", action="store_true", help="continue from OUT's last state")

    encoder = commands.add_parser(
        "train-encoder",
        help="train a checkpoint's inpainting encoder (starts the search next to the answer)",
        description="Train an inpainting encoder E(masked image, mask) → z for a checkpoint, with G and D frozen, "
        "on G's own samples and the checkpoint's training images, "
        "and write the checkpoint with it to OUT/model.safetensors.",
    )
    encoder.add_argument("--checkpoint", help="checkpoint (default: the shipped face model)")
    encoder.add_argument("--data", required=True, help="the checkpoint's training images")
    encoder.add_argument(
        "--out", required=True, help="run folder: state, stats, pictures, and the new model.safetensors"
    )
    encoder.add_argument(
        "--val-count",
        type=ENCODER_LIMITS["val_count"].arg(),
        help="hold out the last N files, as the checkpoint's training did (e.g. 500)",
    )
    encoder.add_argument("--steps", type=ENCODER_LIMITS["steps"].arg(), help="training steps (default 4000)")
    encoder.add_argument(
        "--batch-size",
        type=ENCODER_LIMITS["batch_size"].arg(),
        help="examples per step, half generated and half real (default 64)",
    )
    encoder.add_argument(
        "--lr", type=ENCODER_LIMITS["lr"].arg(), help="peak learning rate of the one-cycle schedule (default 2e-3)"
    )
    encoder.add_argument(
        "--width", type=ENCODER_LIMITS["width"].arg(), help="channels of the encoder's first layer (default 32)"
    )
    encoder.add_argument(
        "--latent-weight",
        type=ENCODER_LIMITS["latent_weight"].arg(),
        help="weight of the latent regression on G's samples (default 1)",
    )
    encoder.add_argument(
        "--pixel-weight", type=ENCODER_LIMITS["pixel_weight"].arg(), help="weight of the pixel L1 losses (default 1)"
    )
    encoder.add_argument(
        "--hole-weight",
        type=ENCODER_LIMITS["hole_weight"].arg(),
        help="weight of the L1 over the hole's pixels of real images (default 0.5)",
    )
    encoder.add_argument(
        "--feature-weight",
        type=ENCODER_LIMITS["feature_weight"].arg(),
        help="weight of the loss on D's features of real images (default 0.5)",
    )
    encoder.add_argument(
        "--seed", type=ENCODER_LIMITS["seed"].arg(), help="seed of the batches, holes and initialisation (default 0)"
    )
    encoder.add_argument("--device", help="auto (default), cpu, cuda, mps")
    encoder.add_argument(
        "--log-every", type=ENCODER_LIMITS["log_every"].arg(), help="steps between stats lines (default 50)"
    )
    encoder.add_argument(
        "--checkpoint-every",
        type=ENCODER_LIMITS["checkpoint_every"].arg(),
        help="steps between saved states, validation scores and pictures (default 500)",
    )
    encoder.add_argument("--resume", action="store_true", help="continue from OUT's last state")

    evaluate = commands.add_parser(
        "eval",
        help="how close a checkpoint's samples are to real images (any content; faces get a face score too)",
        description="Score a checkpoint's samples against real images: the sliced Wasserstein distance on "
        "Laplacian-pyramid patches (any content, with its scale on these images), and for faces the Fréchet "
        "distance between dlib face descriptors.",
    )
    evaluate.add_argument("--checkpoint", help="checkpoint file or folder (default: the shipped face model)")
    evaluate.add_argument("--data", required=True, help="folder of real images (e.g. the run's held-out split)")
    evaluate.add_argument(
        "--last",
        type=count_arg(2, 10_000_000),
        help="use only the last N files by name (e.g. 500: the validation split of a --val-count 500 run)",
    )
    evaluate.add_argument("--n", type=count_arg(2, MAX_SAMPLES), default=1000, help="samples to draw (default 1000)")
    evaluate.add_argument("--seed", type=seed_arg, default=0)

    export = commands.add_parser(
        "export",
        help="package a training run as a shipped checkpoint folder with model-card pictures",
        description="Write a run's best snapshot and its model-card pictures "
        "(samples, losses, nearest neighbours) to a folder.",
    )
    export.add_argument("run_dir", help="training run folder")
    export.add_argument("--out", required=True, help="checkpoint folder to write, e.g. checkpoints/celeba64")
    export.add_argument(
        "--storage", choices=("fp32", "fp16", "bf16"), default="fp16", help="weight precision on disk (default fp16)"
    )
    export.add_argument("--data", help="training images for the nearest-neighbour grid (default: the run's --data)")
    export.add_argument(
        "--content",
        choices=("faces",),
        help="what the model draws: faces makes inpainting frame photos around detected faces",
    )

    app = commands.add_parser(
        "app", help="the Gradio web app", description="Start the web app (Inpaint, Edit, Model tabs)."
    )
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=count_arg(1, 65535), help="port (default: Gradio's, 7860 or the next free one)")
    app.add_argument("--share", action="store_true", help="also publish a temporary public link (off by default)")
    app.add_argument(
        "--run", action="append", default=[], help="also offer this training run or checkpoint folder (repeatable)"
    )

    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    handlers = {
        "app": _app,
        "edit": _edit,
        "fill": _fill,
        "batch": _batch,
        "sample": _sample,
        "eval": _evaluate,
        "export": _export,
        "train-framer": _train_framer,
        "train-encoder": _train_encoder,
    }
    try:
        if args.command == "train":
            from inpaint_training.cli import run

            return run(args)
        if args.command in ("fill", "batch", "edit", "sample"):  # the app sets its own (ui.app.launch)
            from inpaint.device import limit_cpu_threads
            from inpaint.ranks import local_world_size_from_env

            limit_cpu_threads(processes=local_world_size_from_env() if args.command == "batch" else 1)
        return handlers[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
