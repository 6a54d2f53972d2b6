"""Training a checkpoint's inpainting encoder (inpaint.encoder) with G and D frozen.

Every step holds two half-batches, each with a hole of a kind the product meets (centre squares,
halves from every side, blob patterns, 50–90% random pixels, brush strokes, eye and mouth boxes
where a face model's framing says they are, or no hole at all: projection):
  - G's own samples, where the true z is known: latent regression ‖E − z‖² plus the pixel L1
    between G(E) and the sample over the whole image;
  - real images of the training split (flipped at random), where only reconstruction through G
    is available: the L1 over the known pixels, the L1 over the hole's pixels at a lower weight
    (what E cannot see, it should guess by the likeliest face, not by anything definite: the
    search refines from there), and a perceptual loss on D's features (the relative L1 between
    D's hidden layers on G(E) and on the real image; the project's own D, no downloaded network).
Randomness comes from (seed, step), so a resumed run sees exactly the batches an uninterrupted one
would. The run folder holds encoder-state.pt (weights, optimiser, schedule, step; tensors only),
stats.jsonl, encoder_options.json, a picture of the encoder's fills on held-out images at each
validation (encoder-fills.png: rows original, masked, G(E)) and at the end model.safetensors: the
checkpoint with the encoder added.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from inpaint.checkpoint import (
    WEIGHTS_FILE,
    Checkpoint,
    load_checkpoint,
    resave_checkpoint,
)
from inpaint.device import autocast, search_precision, select_device
from inpaint.encoder import EncoderConfig, EncoderNet
from inpaint.errors import UserError
from inpaint.fileio import check_output, write_text_atomic
from inpaint.grids import save_grid
from inpaint.locate import FaceTemplate
from inpaint.masks import half_mask, make_mask, stroke_mask
from inpaint.metrics import psnr
from inpaint_training.data import decode_images
from inpaint_training.limits import ENCODER_LIMITS, check_all, flag
from inpaint_training.run_dir import NetworkState, StatsLog, remove_leftovers, split_files

STATE_FILE = "encoder-state.pt"
OPTIONS_FILE = "encoder_options.json"
PICTURE_FILE = "encoder-fills.png"
HOLE_KINDS = ("centre", "half", "pattern", "random", "strokes", "eyes", "mouth", "none")
VALIDATION_MASKS = ("centre", "half", "pattern", "random")  # the paper's four, as inpaint_quality.py scores them


@dataclass
class EncoderOptions:
    checkpoint: str = ""
    data: str = ""
    out: str = ""
    val_count: int = 0
    steps: int = 4000
    batch_size: int = 64  # half G's samples, half real images
    lr: float = 2e-3
    width: int = 32
    latent_weight: float = 1.0
    pixel_weight: float = 1.0
    hole_weight: float = 0.5
    feature_weight: float = 0.5
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    checkpoint_every: int = 500
    minutes: float | None = None  # a time budget: the steps are cut to what fits (fixed at the start)

    def validate(self) -> EncoderOptions:
        check_all(self, ENCODER_LIMITS, flag, optional=("minutes",))
        return self


# --- Holes --------------------------------------------------------------------------------------


def random_hole(rng: np.random.Generator, size: int, regions: dict | None) -> np.ndarray:
    """One hole (size × size, True = missing) of a kind drawn from HOLE_KINDS (eye and mouth boxes
    only for a face model; other models draw another kind instead)."""
    kinds = HOLE_KINDS if regions else tuple(k for k in HOLE_KINDS if k not in ("eyes", "mouth"))
    kind = kinds[int(rng.integers(len(kinds)))]
    seed = int(rng.integers(2**31))
    if kind == "centre":
        hole = np.zeros((size, size), bool)
        side = int(round(size * np.sqrt(rng.uniform(0.1, 0.4))))
        top, left = (size - side) // 2 + rng.integers(-size // 8, size // 8 + 1, 2)
        hole[max(0, top) : top + side, max(0, left) : left + side] = True
        return hole
    if kind == "half":
        return half_mask(size, size, ("left", "right", "top", "bottom")[int(rng.integers(4))])
    if kind == "pattern":
        return make_mask("pattern", size, size, rng.uniform(0.1, 0.5), seed)
    if kind == "random":
        return make_mask("random", size, size, rng.uniform(0.5, 0.9), seed)
    if kind == "strokes":
        return stroke_mask(size, size, rng)
    if kind in ("eyes", "mouth"):
        left, top, right, bottom = np.asarray(regions[kind]) + rng.normal(0, 0.04 * size, 4)
        hole = np.zeros((size, size), bool)
        hole[max(0, int(top)) : max(0, int(np.ceil(bottom))), max(0, int(left)) : max(0, int(np.ceil(right)))] = True
        return hole
    return np.zeros((size, size), bool)


def known_masks(rng: np.random.Generator, n: int, size: int, regions: dict | None) -> torch.Tensor:
    """(n, 1, size, size) float masks, 1 = known pixel."""
    return torch.from_numpy(np.stack([~random_hole(rng, size, regions) for _ in range(n)])).float()[:, None]


# --- Losses -------------------------------------------------------------------------------------


def discriminator_features(discriminator: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """D's hidden activations (after each LeakyReLU), the last 4×4 block included."""
    features = []
    x = images
    for layer in discriminator.main[:-1]:
        x = layer(x)
        if isinstance(layer, torch.nn.LeakyReLU):
            features.append(x)
    return features


def feature_loss(discriminator: torch.nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over D's hidden layers of L1(f(fake), f(real)) / mean |f(real)|: scale-free per layer."""
    with torch.no_grad():
        targets = discriminator_features(discriminator, real)
    losses = [
        (f - t).abs().mean() / (t.abs().mean() + 1e-6)
        for f, t in zip(discriminator_features(discriminator, fake), targets)
    ]
    return torch.stack(losses).mean()


@dataclass
class StepLosses:
    latent: torch.Tensor
    pixels_generated: torch.Tensor
    pixels_known: torch.Tensor
    pixels_hole: torch.Tensor
    features: torch.Tensor

    def total(self, options: EncoderOptions) -> torch.Tensor:
        return (
            options.latent_weight * self.latent
            + options.pixel_weight * (self.pixels_generated + self.pixels_known)
            + options.hole_weight * self.pixels_hole
            + options.feature_weight * self.features
        )

    def record(self) -> dict[str, float]:
        return {f.name: round(getattr(self, f.name).item(), 5) for f in fields(self)}


def step_losses(
    checkpoint: Checkpoint,
    net: EncoderNet,
    z: torch.Tensor,
    generated_known: torch.Tensor,
    real: torch.Tensor,
    real_known: torch.Tensor,
    precision: str,
) -> StepLosses:
    """The losses of one step: z (B, D) G's latents with their masks, real (B, C, S, S) model-space
    images with theirs."""
    generator, discriminator = checkpoint.generator, checkpoint.discriminator
    device = z.device
    with torch.no_grad(), autocast(device, precision):
        generated = generator(z).float()
    with autocast(device, precision):
        predicted = net(torch.cat([generated, real]), torch.cat([generated_known, real_known])).float()
        drawn = generator(predicted).float()
        fake_of_real = drawn[len(z) :]
        features = (
            feature_loss(discriminator, fake_of_real, real)
            if discriminator is not None
            else torch.zeros((), device=device)
        )
    known_pixels = real_known.expand_as(real)
    error = (fake_of_real - real).abs()
    return StepLosses(
        latent=F.mse_loss(predicted[: len(z)], z),
        pixels_generated=(drawn[: len(z)] - generated).abs().mean(),
        pixels_known=(error * known_pixels).sum() / known_pixels.sum().clamp(min=1),
        pixels_hole=(error * (1 - known_pixels)).sum() / (1 - known_pixels).sum().clamp(min=1),
        features=features.float(),
    )


# --- Validation ---------------------------------------------------------------------------------


def validate(
    checkpoint: Checkpoint, net: EncoderNet, images: torch.Tensor, picture: Path | None = None
) -> dict[str, float]:
    """Hole PSNR of G(E) pasted into each held-out image, per mask of VALIDATION_MASKS (E alone, no
    search), and optionally a picture of the fills: rows original, masked, G(E), per mask."""
    size = checkpoint.config.image_size
    device = next(net.parameters()).device
    net.eval()
    scores, rows = {}, []
    with torch.no_grad():
        real = checkpoint.from_pixels(images.float().to(device) / 255)
        for kind in VALIDATION_MASKS:
            hole = make_mask(kind, size, size, seed=1)
            known = torch.from_numpy(~hole).float()[None, None].to(device).expand(len(real), 1, size, size)
            fill = checkpoint.generator(net(real, known)).float()
            pasted = torch.where(known.bool(), real, fill)
            truth = (checkpoint.to_pixels(real) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            ours = (checkpoint.to_pixels(pasted) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            scores[f"psnr_hole_{kind}"] = round(float(np.mean([psnr(t, o, hole) for t, o in zip(truth, ours)])), 3)
            shown = slice(0, min(8, len(real)))
            rows += [
                checkpoint.to_pixels(real[shown]),
                checkpoint.to_pixels(real[shown] * known[shown]),
                checkpoint.to_pixels(fill[shown]),
            ]
    net.train()
    if picture is not None:
        save_grid(torch.cat([r.cpu() for r in rows]), picture, columns=min(8, len(images)))
    return scores


# --- The run ------------------------------------------------------------------------------------


def seconds_per_step(loss_of_step, net: EncoderNet, steps: int = 5, warm_up: int = 2) -> float:
    """The time of one training step (forward, backward, Adam) of a throwaway `net`, after
    `warm_up` steps (the first ones pay for allocations and kernel choices): what fixes a
    time-limited run's step budget."""
    optimiser = torch.optim.Adam(net.parameters())
    times = []
    for step in range(warm_up + steps):
        started = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        loss_of_step(step).backward()
        optimiser.step()
        times.append(time.perf_counter() - started)
    return float(np.median(times[warm_up:]))


def steps_in_budget(seconds_per_step: float, minutes: float, wanted: int) -> int:
    """The steps that fit in `minutes` at the measured speed (at most `wanted`, at least 1), with a
    tenth kept back for the validations and the final save."""
    return max(1, min(wanted, int(minutes * 60 * 0.9 / max(seconds_per_step, 1e-6))))


def _saved_steps(run: Path) -> int | None:
    """The step budget an interrupted run resolved at its start (a time-limited run's)."""
    try:
        saved = json.loads((run / OPTIONS_FILE).read_text(encoding="utf-8"))
        return int(saved["steps"]) if saved.get("minutes") is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_encoder(options: EncoderOptions, resume: bool = False, desc: str = "training the encoder") -> Path:
    """Train an inpainting encoder for options.checkpoint; returns the written checkpoint file. With
    options.minutes the step budget is cut to what fits, timed on the first steps of a fresh run and
    kept for its resumption (the learning-rate schedule depends on it)."""
    options.validate()
    run = check_output(options.out, (options.data, options.checkpoint), folder=True, what="--out")
    device = select_device(options.device)
    checkpoint = load_checkpoint(options.checkpoint, device=device)
    config, size = checkpoint.config, checkpoint.config.image_size
    files, held_out = split_files(options.data, options.val_count)
    run.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be good
    remove_leftovers(run)  # the temporary files of writes a kill interrupted
    images, _, _ = decode_images(files, size, config.channels)
    if len(images) < 2:
        raise UserError(f"{options.data}: fewer than 2 of its images could be read")
    check = decode_images(held_out[:256], size, config.channels, show_progress=False)[0] if held_out else images[-64:]
    template = FaceTemplate.from_metadata(checkpoint.metadata.get("framing"))
    regions = template.regions(size) if template is not None else None

    precision = search_precision(device)
    half = options.batch_size // 2
    state_file = run / STATE_FILE

    def losses_of(net: EncoderNet, step: int) -> StepLosses:
        """The losses of step `step`: its batch, flips, latents and holes come from (seed, step)."""
        rng = np.random.default_rng([options.seed, step])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        z = checkpoint.prior.sample(half, config.latent_dim, generator).to(device)
        real = images[torch.from_numpy(rng.integers(0, len(images), half))].float()
        flip = torch.from_numpy(rng.random(half) < 0.5)
        real[flip] = real[flip].flip(-1)
        real = checkpoint.from_pixels(real.to(device) / 255)
        generated_known, real_known = (known_masks(rng, half, size, regions).to(device) for _ in range(2))
        return step_losses(checkpoint, net, z, generated_known, real, real_known, precision)

    def new_net() -> EncoderNet:
        torch.manual_seed(options.seed)
        return EncoderNet(config, checkpoint.prior, EncoderConfig(options.width)).to(device)

    if options.minutes is not None:
        budget = _saved_steps(run) if resume and state_file.is_file() else None
        if budget is None:
            probe = new_net()
            timing = seconds_per_step(lambda step: losses_of(probe, step).total(options), probe)
            budget = steps_in_budget(timing, options.minutes, options.steps)
        options.steps = budget
    write_text_atomic(
        run / OPTIONS_FILE,
        json.dumps({**asdict(options), "training_images": len(images), "held_out_images": len(held_out)}, indent=2)
        + "\n",
    )
    net = new_net()
    optimiser = torch.optim.Adam(net.parameters(), lr=options.lr / 10, betas=(0.9, 0.99))
    # torch's OneCycleLR divides by zero when its warm-up is exactly one step (pct_start × steps = 1).
    warm_up = 0.1 if options.steps != 10 else 0.15
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, options.lr, total_steps=options.steps, pct_start=warm_up)
    stats = StatsLog(run)
    state = NetworkState(state_file, options.steps, net=net, optimiser=optimiser, schedule=schedule)
    step = state.resume(stats, resume)

    started, seen = time.perf_counter(), 0
    bar = tqdm(total=options.steps, initial=step, unit="step", desc=desc)
    try:
        while step < options.steps:
            losses = losses_of(net, step)
            loss = losses.total(options)
            if not torch.isfinite(loss):
                raise UserError(
                    f"the encoder's loss became {float(loss)} at step {step}; the last state is kept in {state_file}"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            seen += 2 * half
            bar.update(1)
            if step % options.log_every == 0 or step == options.steps:
                record = {
                    "step": step,
                    **losses.record(),
                    "images_per_second": round(seen / (time.perf_counter() - started), 1),
                }
                if step % options.checkpoint_every == 0 or step == options.steps:
                    record.update(validate(checkpoint, net, check, run / PICTURE_FILE))
                    state.save(step)
                stats.append(record)
                bar.set_postfix(
                    {k: v for k, v in record.items() if k in ("latent", "pixels_known", "psnr_hole_centre")}
                )
    except KeyboardInterrupt:
        state.save(step)
        bar.close()
        raise
    bar.close()
    final = validate(checkpoint, net, check, run / PICTURE_FILE)
    recipe = {
        k: getattr(options, k)
        for k in (
            "val_count",
            "steps",
            "batch_size",
            "lr",
            "width",
            "latent_weight",
            "pixel_weight",
            "hole_weight",
            "feature_weight",
            "seed",
        )
    }
    training = {
        **checkpoint.training,
        "encoder": {
            "steps": options.steps,
            "images": len(images),
            "held_out": len(held_out),
            "options": recipe,
            "device": str(device),
            "precision": precision,
            "seconds": round(time.perf_counter() - started, 1),
            **final,
        },
    }
    path = run / WEIGHTS_FILE
    resave_checkpoint(checkpoint, path, training, encoder=net.cpu().eval())
    return path
