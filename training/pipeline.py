"""`inpaint train`, from a folder of images to a model the engine uses at full speed, in two phases:

  1/2  the GAN (training.loop): G and D, snapshots in RUN/checkpoints;
  2/2  the inpainting encoder (training.encoder) for the GAN's best snapshot (else its newest), in
       RUN/encoder (state, stats, encoder-fills.png).

Between them the run's model card is written beside it as `inpaint export` writes one (samples.png,
losses.png, nearest.png, card.json; a README.md that shows them), and at the end RUN/model.safetensors
is the GAN with its encoder: `--checkpoint RUN` and `inpaint app --run RUN` take it with no other
step. With --minutes, the encoder gets --encoder-share of the time and the GAN the rest;
--encoder-steps 0 (or --no-encoder) leaves the encoder out.

Where a run stands is read from its folder, so `--resume` continues whichever phase was cut short:
  - no final model yet and the GAN's last session did not reach its limit: the GAN continues;
  - the GAN reached its limit but its card is incomplete (README.md, written last, is missing):
    the card is written, then the encoder phase starts;
  - the card is complete and the model has no encoder yet: the encoder phase (re)starts or resumes;
  - finished (the model holds its encoder): nothing to do, unless a new --steps, --epochs or
    --minutes asks the GAN for more; then the encoder is trained afresh for the new G.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inpaint.checkpoint import WEIGHTS_FILE, load_checkpoint, read_metadata
from inpaint.fileio import write_text_atomic
from inpaint.models import upsample_note
from inpaint_training import encoder as encoder_training
from inpaint_training.options import TrainOptions
from inpaint_training.run_dir import STATS_FILE, latest_snapshot, read_stats, remove_leftovers

ENCODER_DIR = "encoder"
CARD_FILE = "card.json"
CARD_README = "README.md"  # written last: its presence marks a complete card
# Phases of a run folder (see current_phase).
GAN, EXPORT, ENCODER, DONE = "gan", "export", "encoder", "done"


@dataclass
class PipelineResult:
    run_dir: Path
    stopped_by: str  # the GAN's reason ("steps", "epochs", "minutes", "interrupt"; "finished": unknown)
    step: int | None  # the GAN's last step (None: unknown)
    epoch: float | None
    model: Path | None  # RUN/model.safetensors once written
    gan_trained: bool = True  # whether the GAN trained in this call (False: an earlier one finished it)


def _last_gan_end(run_dir: Path) -> dict[str, Any] | None:
    """The end record of the GAN's last session, if it ended by its limit (not by a signal or a
    kill) at the newest snapshot, with the epoch of that step: a resumed run then goes on with the
    encoder instead of training the GAN longer."""
    snapshot = latest_snapshot(run_dir)
    records = read_stats(run_dir / STATS_FILE, lambda message: None)
    ends = [r for r in records if r.get("event") == "end"]
    if not (snapshot and ends and ends[-1]["step"] == snapshot[0] and ends[-1].get("stopped_by") != "interrupt"):
        return None
    epochs = [r["epoch"] for r in records if r.get("step") == snapshot[0] and "epoch" in r]
    return {**ends[-1], "epoch": epochs[-1] if epochs else None}


def current_phase(run_dir: Path, options: TrainOptions) -> str:
    """Where a run folder stands: GAN, EXPORT (the GAN is done, its card and model not yet written),
    ENCODER (the encoder phase began) or DONE."""
    model = run_dir / WEIGHTS_FILE
    if model.is_file():
        if "encoder" in read_metadata(model):
            return DONE
        if not (run_dir / CARD_README).is_file():  # the card's last file: a kill cut the card short
            return EXPORT
        return DONE if options.encoder_steps == 0 else ENCODER
    return EXPORT if _last_gan_end(run_dir) is not None else GAN


def _plan(options: TrainOptions) -> str:
    """One line saying what the two phases will do."""
    if options.encoder_steps == 0:
        return "the GAN alone (--no-encoder: fills will search from random starts)"
    if options.minutes is None:
        return f"phase 1/2 the GAN, then phase 2/2 the inpainting encoder ({options.encoder_steps} steps)"
    return (
        f"phase 1/2 the GAN for {options.gan_minutes():.3g} min, then phase 2/2 the inpainting encoder for "
        f"{options.encoder_minutes():.3g} min (at most {options.encoder_steps} steps; --encoder-share "
        f"{options.encoder_share:g} of --minutes {options.minutes:g})"
    )


def train_run(
    options: TrainOptions,
    resume: bool = False,
    more_gan: bool = False,
    log: Callable[..., None] = print,
    show_progress: bool = True,
) -> PipelineResult:
    """Train (or resume) a whole run: the GAN, its model card, then its encoder. `more_gan`: the
    user gave a new limit, so a finished GAN trains on."""
    from inpaint_training.loop import train

    run_dir = Path(options.out)
    phase = current_phase(run_dir, options) if resume else GAN
    if phase in (DONE, EXPORT, ENCODER) and more_gan:
        phase = GAN
    step = epoch = None
    stopped_by = "finished"
    if phase != GAN:  # the GAN loop, which clears what killed writes left, does not run
        remove_leftovers(run_dir, warn=log)
        end = _last_gan_end(run_dir) or {}
        step, epoch, stopped_by = end.get("step"), end.get("epoch"), end.get("stopped_by", "finished")
    if phase == DONE:
        log(f"{run_dir} is finished: {run_dir / WEIGHTS_FILE}. A new --steps, --epochs or --minutes trains it longer.")
        return PipelineResult(run_dir, stopped_by, step, epoch, run_dir / WEIGHTS_FILE, gan_trained=False)
    gan_trained = phase == GAN
    if phase == GAN:
        if os.environ.get("RANK", "0") == "0":
            log(f"training {_plan(options)}")
        desc = "GAN (1/2)" if options.encoder_steps else "GAN"
        result = train(options, resume, log, show_progress, desc=desc, minutes=options.gan_minutes())
        step, epoch, stopped_by = result.step, result.epoch, result.stopped_by
        if stopped_by == "interrupt" or os.environ.get("RANK", "0") != "0":  # the encoder: rank 0 alone
            return PipelineResult(run_dir, stopped_by, step, epoch, None, gan_trained)
    elif phase == ENCODER:
        log(f"resuming {run_dir}: the GAN is done; phase 2/2, the inpainting encoder")
    else:
        log(f"resuming {run_dir}: the GAN reached its limit; its model card, then phase 2/2, the inpainting encoder")
    if phase != ENCODER:
        _forget_encoder(run_dir)  # trained for another G, if any
        write_card(run_dir, show_progress)
    if options.encoder_steps:
        _encoder_phase(options, run_dir, resume=phase == ENCODER)
    return PipelineResult(run_dir, stopped_by, step, epoch, run_dir / WEIGHTS_FILE, gan_trained)


def _forget_encoder(run_dir: Path) -> None:
    """Remove an encoder phase's state and options, so the next one starts afresh."""
    folder = run_dir / ENCODER_DIR
    for name in (encoder_training.STATE_FILE, encoder_training.OPTIONS_FILE):
        (folder / name).unlink(missing_ok=True)


def write_card(run_dir: Path, show_progress: bool = True) -> dict[str, Any]:
    """The run's model card beside it, as `inpaint export` writes one (at full precision; a face
    set gets its face framing), and RUN/model.safetensors from the best snapshot."""
    from inpaint_training.export import export_run

    (run_dir / CARD_README).unlink(missing_ok=True)  # until the new card is complete
    facts = export_run(run_dir, run_dir, storage="fp32", show_progress=show_progress, content="auto")
    write_text_atomic(run_dir / CARD_README, card_markdown(run_dir, facts))
    return facts


def _encoder_phase(options: TrainOptions, run_dir: Path, resume: bool) -> Path:
    """Train the encoder for RUN/model.safetensors in RUN/encoder, then put the model with its
    encoder in place of it (one atomic rename) and add the encoder's facts to the card."""
    folder = run_dir / ENCODER_DIR
    settings = encoder_training.EncoderOptions(
        checkpoint=str(run_dir / WEIGHTS_FILE),
        data=options.data,
        out=str(folder),
        val_count=options.val_count,
        steps=options.encoder_steps,
        seed=options.seed,
        device=options.device,
        minutes=options.encoder_minutes(),
    )
    written = encoder_training.train_encoder(settings, resume=resume, desc="encoder (2/2)")
    os.replace(written, run_dir / WEIGHTS_FILE)
    card = run_dir / CARD_FILE
    facts = json.loads(card.read_text(encoding="utf-8")) if card.is_file() else {}
    facts.setdefault("training", {})["encoder"] = load_checkpoint(run_dir, with_discriminator=False).training.get(
        "encoder", {}
    )
    write_text_atomic(card, json.dumps(facts, indent=2) + "\n")
    write_text_atomic(run_dir / CARD_README, card_markdown(run_dir, facts))
    return run_dir / WEIGHTS_FILE


def card_markdown(run_dir: Path, facts: dict[str, Any]) -> str:
    """The model card of a run: what it was trained on and how, its pictures, its scores."""
    training = facts.get("training", {})
    model = facts.get("model", {})
    lines = [
        f"# {run_dir.name}: a model trained with `inpaint train`",
        "",
        f"Data: `{training.get('data', '?')}`, {training.get('images', '?')} training images"
        + (f", {facts['validation_images']} held out" if facts.get("validation_images") else "")
        + f". Model: DCGAN {model.get('image_size', '?')}×{model.get('image_size', '?')}, widths G "
        f"{model.get('g_width', '?')} / D {model.get('d_width', '?')}, z of {model.get('latent_dim', '?')}"
        + upsample_note(model)
        + ".",
        f"Trained {training.get('steps', '?')} steps ({training.get('epochs', '?')} epochs) in "
        f"{training.get('wall_seconds', 0) / 60:.1f} min on {training.get('device', '?')}; weights from "
        f"`{training.get('source_snapshot', '?')}`.",
        "",
        "```sh",
        training.get("training_command", ""),
        "```",
        "",
        "![samples](samples.png)",
        "",
        "*64 samples from seed 0.*",
        "",
        "![losses and scores](losses.png)",
        "",
        "*Losses, D's outputs, sample diversity and the scores on the held-out images over training.*",
        "",
        "![nearest training images](nearest.png)",
        "",
        "*16 samples, each followed by its nearest training image (pixel L2): copies would show here.*",
    ]
    history = training.get("swd_history") or []
    if history:
        lines += ["", "| step | sliced Wasserstein distance (×10³, lower is better) |", "|---|---|"]
        lines += [f"| {r['step']} | {r['swd']} |" for r in history]
    frechet = training.get("frechet_history") or []
    if frechet:
        lines += ["", "| step | Fréchet face distance |", "|---|---|"]
        lines += [f"| {r['step']} | {r['frechet']} |" for r in frechet]
    encoder = training.get("encoder")
    if encoder:
        scores = ", ".join(f"{k.removeprefix('psnr_hole_')} {v} dB" for k, v in encoder.items() if k.startswith("psnr"))
        lines += [
            "",
            f"Inpainting encoder: {encoder.get('steps')} steps in {encoder.get('seconds', 0) / 60:.1f} min; "
            f"its fills alone (no search) on {'held-out' if facts.get('validation_images') else 'training'} images, "
            f"hole PSNR: {scores} "
            "(pictures: `encoder/encoder-fills.png`).",
        ]
    return "\n".join(lines) + "\n"
