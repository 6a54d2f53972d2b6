"""`inpaint train`: argument parsing for the trainer (the phases are in training.pipeline, the GAN's
loop in training.loop, the encoder's in training.encoder)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from inpaint.device import PRECISIONS
from inpaint.fileio import check_output
from inpaint.latent import PRIOR_KINDS
from inpaint.models import SUPPORTED_IMAGE_SIZES, UPSAMPLE_KINDS
from inpaint_training.limits import TRAIN_LIMITS
from inpaint_training.options import COMPILE_MODES, DEFAULT_EPOCHS, DEFAULT_EVAL_EVERY, TrainOptions

_DEFAULTS = TrainOptions()


def _limit(name: str) -> Callable[[str], float | int]:
    """The flag's argparse type: NaN, infinities and out-of-range values are refused where typed,
    with the range (the same table TrainOptions.validate applies to a resumed run's file)."""
    return TRAIN_LIMITS[name].arg()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("data and output")
    where.add_argument("--data", help="folder of training images (searched recursively)")
    where.add_argument("--out", help="run folder to create (options, stats, samples, checkpoints)")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted or finished run")
    where.add_argument(
        "--dry-run", action="store_true", help="smoke test: a few steps on generated images, no data needed"
    )

    model = parser.add_argument_group("model")
    model.add_argument("--image-size", type=int, choices=SUPPORTED_IMAGE_SIZES, help=f"default {_DEFAULTS.image_size}")
    model.add_argument("--channels", type=int, choices=(1, 3), help="1 = grayscale, 3 = RGB (default)")
    model.add_argument("--latent-dim", type=_limit("latent_dim"), help=f"size of z (default {_DEFAULTS.latent_dim})")
    model.add_argument("--g-width", type=_limit("g_width"), help=f"generator width (default {_DEFAULTS.g_width})")
    model.add_argument("--d-width", type=_limit("d_width"), help=f"discriminator width (default {_DEFAULTS.d_width})")
    model.add_argument(
        "--g-upsample",
        choices=UPSAMPLE_KINDS,
        help="how G doubles its maps: resize (default: nearest-neighbour ×2, then a 3×3 convolution; no "
        "checkerboard) or transpose (the original DCGAN's transposed convolutions; about twice as fast)",
    )
    model.add_argument("--prior", choices=PRIOR_KINDS, help="latent prior (default uniform on [-1, 1])")

    optim = parser.add_argument_group("optimisation and stopping")
    optim.add_argument(
        "--batch-size", type=_limit("batch_size"), help=f"images per step per process (default {_DEFAULTS.batch_size})"
    )
    optim.add_argument("--lr", type=_limit("lr"), help=f"Adam learning rate for G and D (default {_DEFAULTS.lr})")
    optim.add_argument(
        "--lr-d", type=_limit("lr_d"), help="discriminator learning rate, if different (two time-scale update)"
    )
    optim.add_argument("--beta1", type=_limit("beta1"), help=f"Adam β1 (default {_DEFAULTS.beta1})")
    optim.add_argument(
        "--epochs",
        type=_limit("epochs"),
        help=f"stop after this many epochs (default {DEFAULT_EPOCHS} if no limit is given)",
    )
    optim.add_argument(
        "--steps", type=_limit("steps"), help="stop after this many steps (total, counting resumed ones)"
    )
    optim.add_argument("--minutes", type=_limit("minutes"), help="stop after this many minutes of this session")
    optim.add_argument("--seed", type=_limit("seed"), help="seed for initialisation, data order and noise (default 0)")

    stab = parser.add_argument_group("stabilisers")
    stab.add_argument(
        "--ema-decay",
        type=_limit("ema_decay"),
        help="keep an exponential moving average of G's weights, e.g. 0.999 (default off); "
        "checkpoints hold the average",
    )
    stab.add_argument(
        "--label-smoothing",
        type=_limit("label_smoothing"),
        help="one-sided label smoothing: D's target for real images is 1 - this (e.g. 0.1)",
    )
    stab.add_argument(
        "--diffaug", help="differentiable augmentation policies for D's inputs, e.g. color,translation,cutout"
    )

    evals = parser.add_argument_group(
        "evaluation (sliced Wasserstein distance; for faces also dlib's face descriptors, installed with the package)"
    )
    evals.add_argument(
        "--val-count",
        type=_limit("val_count"),
        help="hold out the N image files with the highest names as a validation split",
    )
    evals.add_argument(
        "--eval-every",
        type=_limit("eval_every"),
        help="epochs between scores on the validation split (sliced Wasserstein distance; for faces also the "
        "Fréchet face-descriptor distance, which then picks the best); the best is kept as "
        f"checkpoints/best.safetensors (default with --val-count: {DEFAULT_EVAL_EVERY:g}; 0: never)",
    )
    evals.add_argument(
        "--eval-samples",
        type=_limit("eval_samples"),
        help=f"generated images per score (default {_DEFAULTS.eval_samples})",
    )

    encoder = parser.add_argument_group(
        "phase 2: the inpainting encoder (starts every fill's search next to the answer; written into RUN's model)"
    )
    encoder.add_argument(
        "--encoder-steps",
        type=_limit("encoder_steps"),
        help=f"its training steps (default {_DEFAULTS.encoder_steps}; with --minutes, at most what fits its share)",
    )
    encoder.add_argument(
        "--encoder-share",
        type=_limit("encoder_share"),
        help=f"its share of --minutes (default {_DEFAULTS.encoder_share:g}; the GAN gets the rest)",
    )
    encoder.add_argument(
        "--no-encoder",
        action="store_true",
        help="train the GAN alone (fills then search from random starts: many times slower)",
    )

    speed = parser.add_argument_group("hardware")
    speed.add_argument("--device", help="auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    speed.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        help="auto (default: bf16 on a CPU with native bf16 support, else fp32), fp32, bf16, fp16 (GPU only)",
    )
    speed.add_argument(
        "--channels-last",
        action="store_true",
        default=None,
        help="channels_last memory format (faster with bf16; always on for bf16 on the CPU)",
    )
    speed.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        help="torch.compile G and D: off (default), default, reduce-overhead (on a GPU: CUDA graphs too), "
        "max-autotune; the first steps then take a while to compile",
    )
    speed.add_argument(
        "--workers", type=_limit("workers"), help="processes decoding images at start (default: up to 4)"
    )

    output = parser.add_argument_group("logging")
    output.add_argument(
        "--log-every", type=_limit("log_every"), help=f"steps between stats lines (default {_DEFAULTS.log_every})"
    )
    output.add_argument(
        "--sample-every",
        type=_limit("sample_every"),
        help=f"steps between sample grids (default {_DEFAULTS.sample_every})",
    )
    output.add_argument(
        "--checkpoint-every",
        type=_limit("checkpoint_every"),
        help=f"steps between snapshots (default {_DEFAULTS.checkpoint_every})",
    )
    output.add_argument(
        "--collapse-threshold",
        type=_limit("collapse_threshold"),
        help="warn when the sample grid's diversity falls below this fraction of the run's best "
        f"(or near 0): the generator may be collapsing (default {_DEFAULTS.collapse_threshold}, 0 = never)",
    )
    output.add_argument(
        "--keep-snapshots", type=_limit("keep_snapshots"), help=f"snapshots kept (default {_DEFAULTS.keep_snapshots})"
    )


def _given(args: argparse.Namespace) -> dict:
    """The option values the user actually typed (None means not given)."""
    names = {f.name for f in fields(TrainOptions)} - {"out"}
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if getattr(args, "no_encoder", False):
        if given.get("encoder_steps"):
            from inpaint.errors import UserError

            raise UserError("--no-encoder and --encoder-steps contradict each other; give one")
        given["encoder_steps"] = 0
    return given


def new_run_defaults(given: dict) -> dict:
    """The typed options of a new run with the defaults that depend on other options: a held-out
    split (--val-count of at least 2) is scored every DEFAULT_EVAL_EVERY epochs unless
    --eval-every says otherwise (0: never)."""
    if given.get("val_count", 0) >= 2 and "eval_every" not in given:
        return {**given, "eval_every": DEFAULT_EVAL_EVERY}
    return given


def run(args: argparse.Namespace) -> int:
    from inpaint.errors import UserError
    from inpaint_training.loop import NonFiniteLoss, resume_options
    from inpaint_training.pipeline import train_run

    given = _given(args)
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    report = print if main_process else (lambda *a, **k: None)
    try:
        if args.dry_run:
            from inpaint_training.dry_run import dry_run_options

            with tempfile.TemporaryDirectory(prefix="inpaint-dry-run-") as tmp:
                options = dry_run_options(Path(tmp), args.out)
                result = train_run(options, log=report)
                report(f"dry run finished: {result.step} GAN steps, then the encoder; model {result.model}")
            return 0
        if args.resume:
            if args.out and Path(args.out) != Path(args.resume):
                raise UserError("--out and --resume name different folders; a resumed run continues in place")
            options = resume_options(Path(args.resume), given)
            more_gan = any(name in given for name in ("steps", "epochs", "minutes"))
            result = train_run(options, resume=True, more_gan=more_gan, log=report)
        else:
            if not args.data or not args.out:
                raise UserError("inpaint train needs --data DIR and --out RUN_DIR (or --resume RUN_DIR, or --dry-run)")
            check_output(args.out, (args.data,), folder=True, what="--out")
            options = TrainOptions(**{**new_run_defaults(given), "out": args.out})
            result = train_run(options, log=report)
    except NonFiniteLoss as error:
        report(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the encoder phase keeps its state on Ctrl-C
        report(f"interrupted; continue with: inpaint train --resume {args.resume or args.out}", file=sys.stderr)
        return 130
    if result.stopped_by == "interrupt":
        report(
            f"interrupted at step {result.step}; snapshot saved. Continue with: inpaint train --resume {result.run_dir}"
        )
        return 130
    if result.step is not None:
        epoch = f" (epoch {result.epoch:.2f})" if result.epoch is not None else ""
        earlier = "" if result.gan_trained else " in an earlier session"
        report(f"the GAN stopped by {result.stopped_by} at step {result.step}{epoch}{earlier}")
    if result.model is not None and main_process:
        report(
            f"model: {result.model} (model card: {result.run_dir}/README.md). "
            f"Use it with: inpaint fill --checkpoint {result.run_dir} …, inpaint app --run {result.run_dir}"
        )
    return 0
