"""Turning a training run into a shipped checkpoint folder with its model card.

`inpaint export RUN_DIR --out checkpoints/NAME` writes:
  model.safetensors   the run's best-scoring snapshot (else its newest), at the chosen precision
  samples.png         64 samples from seed 0
  losses.png          losses, D outputs, sample diversity and scores over training
  nearest.png         16 samples (left) beside their nearest training images by pixel distance
  card.json           every fact for the model card (README.md beside it), machine-readable

For a face model (`--content faces`), the face framing of its training images (where dlib's
landmarks sit in the model's square, inpaint.locate.FaceTemplate) is measured on up to 1,000 of
them and stored in the checkpoint (`content="auto"`: when the face detector finds faces in most of
them). Its framer is trained afterwards by `inpaint train-framer`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from inpaint.checkpoint import (
    WEIGHTS_FILE,
    load_checkpoint,
    model_to_unit,
    save_checkpoint,
)
from inpaint.errors import UserError
from inpaint.fileio import write_text_atomic
from inpaint.grids import save_grid
from inpaint.locate import measure_template
from inpaint.sampling import generate, latents_for_seed
from inpaint_training.data import load_image_folder
from inpaint_training.loss import generator_loss
from inpaint_training.options import TrainOptions, load_options
from inpaint_training.plots import plot_losses
from inpaint_training.run_dir import STATS_FILE, final_snapshot, read_stats

STORAGE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def options_as_command(options: TrainOptions, steps: int | None = None) -> str:
    """The `inpaint train` command line that reproduces these options (non-defaults only). With
    `steps`, the run stops after exactly that many steps instead of its own stop rule: the options
    of a resumed run carry the last session's limit (say `--minutes 45`), not the snapshot's step."""
    if steps is not None:
        options = replace(options, epochs=None, minutes=None, steps=steps)
    defaults = TrainOptions()
    words = ["inpaint", "train"]
    for name, value in options.to_dict().items():
        # The precision is always said: commands recorded while fp32 was the default say none.
        if value == getattr(defaults, name) and name not in ("data", "out", "precision"):
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value not in (None, False, ""):
            words += [flag, str(value)]
    if options.val_count >= 2 and not options.eval_every:  # a held-out split is scored unless told not to
        words += ["--eval-every", "0"]
    return shlex.join(words)


def precision_effect(source, stored) -> dict[str, float]:
    """How much storing at lower precision changes G's pixels and D's loss, on 256 fixed samples."""
    z = latents_for_seed(source, 256, seed=0)
    with torch.no_grad():
        a, b = source.generator(z), stored.generator(z)
        pixels = (model_to_unit(a) - model_to_unit(b)).abs() * 255  # in 0…255 levels
        loss_a = generator_loss(source.discriminator(a))
        loss_b = generator_loss(stored.discriminator(b))
    return {
        "max_pixel_difference_levels": round(float(pixels.max()), 3),
        "mean_pixel_difference_levels": round(float(pixels.mean()), 4),
        "generator_loss_fp32": round(float(loss_a), 5),
        "generator_loss_stored": round(float(loss_b), 5),
    }


def nearest_training_images(samples: torch.Tensor, training: torch.Tensor) -> torch.Tensor:
    """For (N, C, H, W) samples in [0, 1], the training images (uint8) nearest in pixel L2."""
    flat_train = training.flatten(1).float() / 255
    flat_samples = samples.flatten(1)
    distances = torch.cdist(flat_samples, flat_train)
    return training[distances.argmin(dim=1)].float() / 255


def export_run(
    run_dir: Path,
    out: Path,
    storage: str = "fp16",
    data: str | None = None,
    show_progress: bool = True,
    content: str | None = None,
) -> dict[str, Any]:
    run_dir, out = Path(run_dir), Path(out)
    options = load_options(run_dir)
    weights = final_snapshot(run_dir)  # not the run's model.safetensors: that is written from this
    source = load_checkpoint(weights)
    training = dict(source.training)
    training["training_command"] = options_as_command(options, steps=training.get("steps"))
    training["source_snapshot"] = weights.name
    records = read_stats(run_dir / STATS_FILE)  # torn or foreign lines skipped with a warning
    evaluations = [r for r in records if r.get("event") == "eval"]
    training["frechet_history"] = [
        {key: r[key] for key in ("step", "frechet", "frechet_raw") if key in r} for r in evaluations if "frechet" in r
    ]
    training["swd_history"] = [
        {key: r[key] for key in ("step", "swd", "swd_raw") if key in r} for r in evaluations if "swd" in r
    ]
    data_dir = data or options.data
    if not Path(data_dir).is_dir():
        raise UserError(f"{data_dir}: training data not found; pass --data to draw the nearest-neighbour grid")
    images = load_image_folder(
        data_dir,
        options.image_size,
        options.channels,
        show_progress=show_progress,
        warn=lambda m: None,
        holdout=options.val_count,
    )
    if content == "auto":  # faces when the face detector finds one in most training images
        from inpaint.face_metrics import are_faces

        content = "faces" if are_faces(images.images) else None
    framing = None
    if content == "faces":
        pick = torch.linspace(0, len(images) - 1, min(1000, len(images))).long()
        faces = images.images[pick].permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous().numpy()
        framing = measure_template(faces).to_metadata()
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / WEIGHTS_FILE,
        source.generator,
        source.discriminator,
        source.prior,
        training,
        STORAGE_DTYPES[storage],
        content,
        framing,
    )
    stored = load_checkpoint(out)
    facts = {
        "training": training,
        "model": source.config.to_dict(),
        "latent_prior": source.prior.to_dict(),
        "storage": storage,
        "file_bytes": (out / WEIGHTS_FILE).stat().st_size,
        "precision_effect": precision_effect(source, stored),
        "validation_images": options.val_count,
        "content": content,
    }
    save_grid(generate(stored, latents_for_seed(stored, 64, seed=0)), out / "samples.png", columns=8)
    plot_losses(records, out / "losses.png")
    samples = generate(stored, latents_for_seed(stored, 16, seed=0))
    neighbours = nearest_training_images(samples, images.images)
    pairs = torch.stack([samples, neighbours], dim=1).flatten(0, 1)
    save_grid(pairs, out / "nearest.png", columns=8)
    facts["nearest_neighbour_pool"] = len(images)
    if framing:
        facts["face_framing_images"] = framing["images"]
    write_text_atomic(out / "card.json", json.dumps(facts, indent=2) + "\n")
    return facts
