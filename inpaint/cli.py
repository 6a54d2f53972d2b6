"""The `inpaint` command: a thin argument layer over the library (and the trainer)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inpaint import __version__
from inpaint.errors import UserError


def _sample(args: argparse.Namespace) -> int:
    from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
    from inpaint.device import select_device
    from inpaint.grids import save_each, save_grid
    from inpaint.sampling import generate, latents_for_seed

    if args.n < 1:
        raise UserError("--n must be at least 1")
    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint), with_discriminator=False, device=select_device(args.device))
    pictures = generate(checkpoint, latents_for_seed(checkpoint, args.n, args.seed))
    if args.out_dir:
        paths = save_each(pictures, args.out_dir, [f"seed{args.seed}-{i:04d}.png" for i in range(args.n)])
        print(f"wrote {len(paths)} images to {args.out_dir}")
    if args.out or not args.out_dir:
        out = args.out or "samples.png"
        save_grid(pictures, out)
        print(f"wrote a grid of {args.n} samples (seed {args.seed}) from {checkpoint.path} to {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
    from inpaint.face_metrics import face_descriptors, frechet_distance
    from inpaint.sampling import generate, latents_for_seed
    from training.data import decode_images
    from inpaint.images import find_images

    checkpoint = load_checkpoint(checkpoint_or_default(args.checkpoint), with_discriminator=False)
    files, _ = find_images(args.data)
    if args.last:
        files = files[-args.last:]
    if len(files) < 2:
        raise UserError(f"{args.data}: needs at least 2 image files to compare against")
    size, channels = checkpoint.config.image_size, checkpoint.config.channels
    real, kept, _ = decode_images(files, size, channels, warn=lambda m: print(m, file=sys.stderr))
    print(f"{len(kept)} reference images from {args.data}; {args.n} samples (seed {args.seed}) from {checkpoint.path}")
    reference = face_descriptors(real, show_progress=True)
    samples = face_descriptors(generate(checkpoint, latents_for_seed(checkpoint, args.n, args.seed)), show_progress=True)
    print(f"Fréchet face-descriptor distance: {frechet_distance(samples, reference):.5f}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from training.export import export_run

    facts = export_run(Path(args.run_dir), Path(args.out), args.storage, args.data)
    print(json.dumps({k: facts[k] for k in ("file_bytes", "precision_effect", "storage")}, indent=2))
    print(f"wrote {args.out}: model.safetensors, samples.png, losses.png, nearest.png, card.json")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """What `make app` runs: sample faces from the default checkpoint, or, while none is shipped,
    train a small model on the bundled example faces and sample from it."""
    from inpaint.checkpoint import DEFAULT_CHECKPOINT, WEIGHTS_FILE

    out = Path(args.out)
    if (DEFAULT_CHECKPOINT / WEIGHTS_FILE).is_file():
        print(f"sampling 64 faces from the default checkpoint {DEFAULT_CHECKPOINT}")
        return _sample(argparse.Namespace(checkpoint=None, n=64, seed=0, out=str(out / "samples.png"), out_dir=None, device="auto"))
    from training.loop import train
    from training.options import TrainOptions

    examples = Path(__file__).resolve().parent.parent / "examples" / "faces"
    run_dir = out / "demo-run"
    print(
        "No default checkpoint is shipped yet, so this demo trains a small 32×32 model on the "
        f"{len(list(examples.glob('*.jpg')))} bundled example faces for {args.minutes} minute(s), then samples from it.\n"
        f"For a real model: inpaint train --data YOUR_IMAGES --out runs/mine (see README)."
    )
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    options = TrainOptions(
        data=str(examples), out=str(run_dir), image_size=32, g_width=32, d_width=32, batch_size=16,
        minutes=args.minutes, steps=2000, sample_every=100, checkpoint_every=500, log_every=20,
    )
    result = train(options)
    print(f"trained {result.step} steps; watch the sample grids in {run_dir / 'samples'}")
    return _sample(argparse.Namespace(checkpoint=str(run_dir), n=64, seed=0, out=str(out / "samples.png"), out_dir=None, device="auto"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpaint", description="Semantic image inpainting and latent editing with a DCGAN.")
    parser.add_argument("--version", action="version", version=f"inpaint {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a DCGAN on a folder of images", description="Train a DCGAN on a folder of images.")
    from training.cli import add_arguments

    add_arguments(train)

    sample = commands.add_parser("sample", help="draw samples from a checkpoint", description="Draw samples from a checkpoint as a grid or single images.")
    sample.add_argument("--checkpoint", help="checkpoint file or folder (default: the shipped face model)")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--seed", type=int, default=0, help="seed of the latents (default 0)")
    sample.add_argument("--out", help="grid image to write (default samples.png)")
    sample.add_argument("--out-dir", help="also or instead write one image per sample here")
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")

    evaluate = commands.add_parser("eval", help="Fréchet face-descriptor distance of a checkpoint's samples to real faces",
                                   description="Score a checkpoint: Fréchet distance between dlib face descriptors of its samples and of real images (needs the eval extra).")
    evaluate.add_argument("--checkpoint", help="checkpoint file or folder (default: the shipped face model)")
    evaluate.add_argument("--data", required=True, help="folder of real aligned faces")
    evaluate.add_argument("--last", type=int, help="use only the last N files by name (e.g. 500: the validation split of a --val-count 500 run)")
    evaluate.add_argument("--n", type=int, default=1000, help="samples to draw (default 1000)")
    evaluate.add_argument("--seed", type=int, default=0)

    export = commands.add_parser("export", help="package a training run as a shipped checkpoint folder with model-card pictures",
                                 description="Write a run's best snapshot and its model-card pictures (samples, losses, nearest neighbours) to a folder.")
    export.add_argument("run_dir", help="training run folder")
    export.add_argument("--out", required=True, help="checkpoint folder to write, e.g. checkpoints/celeba64")
    export.add_argument("--storage", choices=("fp32", "fp16", "bf16"), default="fp16", help="weight precision on disk (default fp16)")
    export.add_argument("--data", help="training images for the nearest-neighbour grid (default: the run's --data)")

    demo = commands.add_parser("demo", help="what `make app` runs", description=_demo.__doc__)
    demo.add_argument("--out", default="out", help="folder for the demo's outputs (default out/)")
    demo.add_argument("--minutes", type=float, default=1.0, help="training time when no default checkpoint exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    handlers = {"sample": _sample, "demo": _demo, "eval": _evaluate, "export": _export}
    try:
        if args.command == "train":
            from training.cli import run

            return run(args)
        return handlers[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
