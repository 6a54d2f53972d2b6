"""The DCGAN training loop: non-saturating GAN loss on logits, Adam, snapshots, resume, DDP.

Randomness is derived from (seed, rank, step) rather than carried in generator state, so a
resumed run draws exactly the batches, flips and noise an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from inpaint.checkpoint import (
    BEST_FILE,
    SNAPSHOT_DIR,
    load_checkpoint,
    model_to_unit,
    save_checkpoint,
    uint8_to_model,
)
from inpaint.device import autocast, check_precision, select_device
from inpaint.errors import UserError
from inpaint.grids import save_grid
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator
from inpaint_training import run_dir as rd
from inpaint_training.augment import diff_augment
from inpaint_training.data import ImageSet, load_image_folder
from inpaint_training.distributed import (
    World,
    all_gather_floats,
    all_reduce_,
    init_world,
    local_rank_from_env,
    shutdown,
)
from inpaint_training.evaluation import FaceFrechetEvaluator
from inpaint_training.options import (
    DEFAULT_EPOCHS,
    FIXED_ON_RESUME,
    TrainOptions,
    load_options,
    save_options,
)
from inpaint_training.plots import plot_losses

# Exact resume on CUDA needs deterministic kernels (cuda_determinism below). cuBLAS is deterministic
# only with a fixed workspace per stream: torch.use_deterministic_algorithms refuses cuBLAS calls
# without this setting, and torch reads it once, when it first creates a cuBLAS workspace. So it is
# set here, at import, before any training can touch CUDA; a value the user set is kept.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

SAMPLE_COUNT = 64
# A stats line and a fresh samples/latest.png at least this often, whatever the step intervals: a slow
# or short run (--minutes 5 at the default --sample-every 500) shows its progress as it goes.
REPORT_SECONDS = 60.0


class NonFiniteLoss(Exception):
    """A loss became NaN or infinite; the run stops and keeps its last good snapshot."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: float
    stopped_by: str  # "steps" | "epochs" | "minutes" | "interrupt"
    losses: dict[str, float]
    images_per_second: float
    replica_checksums: list[float]


class _StopRequest:
    """Ctrl-C or SIGTERM asks the loop to stop at the next step boundary and save a snapshot;
    a second signal aborts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_StopRequest":
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. called from an app worker)
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


_MASK64 = (1 << 64) - 1


def _mix64(value: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit integers that makes nearby inputs unrelated."""
    value = (value + 0x9E37_79B9_7F4A_7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58_476D_1CE4_E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D0_49BB_1331_11EB) & _MASK64
    return value ^ (value >> 31)


def step_seed(seed: int, rank: int, step: int, stream: int) -> int:
    """The seed of one random stream of one step, by integer arithmetic alone: the same under every
    Python (hash() of a tuple is not promised to stay), so a run resumes exactly anywhere."""
    value = 0
    for part in (seed, rank, step, stream):
        value = _mix64(value ^ (part & _MASK64))
    return value & 0x7FFF_FFFF_FFFF_FFFF


def _step_generator(seed: int, rank: int, step: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(step_seed(seed, rank, step, stream))


def _parameter_checksum(modules: list[torch.nn.Module]) -> float:
    """A position-weighted sum of all parameters: equal on every rank iff DDP kept them in sync.

    BatchNorm running statistics are left out: each rank updates them from its own batches and
    DDP re-broadcasts rank 0's at every forward; rank 0's are the ones saved."""
    total = 0.0
    for module in modules:
        for i, tensor in enumerate(module.parameters()):
            values = tensor.detach().double()
            total += float(values.sum()) * (i + 1) + float(values.abs().sum())
    return total


@torch.no_grad()
def _update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for mean, value in zip(average.parameters(), model.parameters()):
        mean.lerp_(value, 1 - decay)
    for mean, value in zip(average.buffers(), model.buffers()):
        mean.copy_(value)  # BatchNorm statistics follow the trained G


@contextlib.contextmanager
def cuda_determinism(device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training on CUDA, so a resumed run repeats an uninterrupted one
    bit for bit (the CPU kernels already are). cuDNN otherwise picks convolution algorithms that
    accumulate with atomics, or by timing (benchmark). warn_only: an operation without a
    deterministic CUDA kernel warns rather than stopping a run (tests/test_cuda.py turns that
    warning into a failure). INPAINT_CUDA_DETERMINISTIC=0 trades exactness for speed. The
    process-wide settings are restored afterwards."""
    if device.type != "cuda" or os.environ.get("INPAINT_CUDA_DETERMINISTIC", "1") == "0":
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def resume_options(run_dir: Path, overrides: dict[str, Any]) -> TrainOptions:
    """The saved options of a run, with the given overrides (those that may change on resume)."""
    options = load_options(run_dir)
    for key, value in overrides.items():
        if key in FIXED_ON_RESUME and value != getattr(options, key):
            raise UserError(
                f"--{key.replace('_', '-')} cannot change when resuming (the run uses {getattr(options, key)!r})"
            )
        setattr(options, key, value)
    options.out = str(run_dir)
    return options


def train(options: TrainOptions, resume: bool = False, log=print, show_progress: bool = True) -> TrainResult:
    """Train (or resume) a run into `options.out`. Only rank 0 writes files or prints."""
    options.validate()
    run_dir = Path(options.out)
    device = select_device(options.device, local_rank_from_env())
    precision = check_precision(device, options.precision)
    world = init_world(device)
    say = log if world.is_main else (lambda *a, **k: None)
    try:
        with cuda_determinism(device):
            return _train(options, run_dir, resume, device, precision, world, say, show_progress and world.is_main)
    finally:
        shutdown(world)


def _train(options, run_dir, resume, device, precision, world: World, say, show_progress) -> TrainResult:
    snapshot = rd.latest_snapshot(run_dir) if run_dir.exists() else None
    if resume and snapshot is None:
        raise UserError(f"{run_dir}: has no complete snapshot to resume from")
    if not resume and snapshot is not None:
        raise UserError(
            f"{run_dir}: already holds a training run; resume it with --resume {run_dir} or pick another --out"
        )
    if world.is_main and run_dir.exists():
        rd.remove_leftovers(run_dir, warn=say)

    data: ImageSet = load_image_folder(
        options.data,
        options.image_size,
        options.channels,
        options.workers,
        show_progress,
        warn=say,
        holdout=options.val_count,
    )
    if data.skipped:
        say(f"skipped {len(data.skipped)} unreadable image file(s) of {len(data.files) + len(data.skipped)}")
    if data.ignored:
        say(f"ignored {len(data.ignored)} file(s) that are not images, e.g. {data.ignored[0].name}")
    steps_per_epoch = len(data) // (options.batch_size * world.size)
    if steps_per_epoch == 0:
        raise UserError(
            f"{options.data}: {len(data)} usable images are fewer than one batch "
            f"({options.batch_size} × {world.size} process(es)); lower --batch-size"
        )
    if not options.stop_limits_given():
        options.epochs = DEFAULT_EPOCHS
    limits = [math.ceil(options.epochs * steps_per_epoch)] if options.epochs else []
    limits += [options.steps] if options.steps else []
    total_steps = min(limits) if limits else None

    config = options.model_config()
    prior = LatentPrior(options.prior)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    torch.manual_seed(options.seed)  # the initial weights; later randomness comes from _step_generator
    generator = Generator(config).to(device, memory_format=memory_format)
    discriminator = Discriminator(config).to(device, memory_format=memory_format)
    opt_g = torch.optim.Adam(generator.parameters(), lr=options.lr, betas=(options.beta1, options.beta2))
    opt_d = torch.optim.Adam(
        discriminator.parameters(), lr=options.lr_d or options.lr, betas=(options.beta1, options.beta2)
    )
    # With EMA on, the averaged G is what samples, scores and checkpoints show; the raw G trains.
    g_ema = copy.deepcopy(generator).eval().requires_grad_(False) if options.ema_decay else None
    shown_g = g_ema if g_ema is not None else generator
    best = {"frechet": math.inf, "step": -1}
    fixed_z = prior.sample(SAMPLE_COUNT, config.latent_dim, torch.Generator().manual_seed(options.seed))
    step, elapsed_before = 0, 0.0
    if snapshot is not None:
        step, weights_path, state_file = snapshot
        loaded = load_checkpoint(weights_path)
        state = rd.load_state(state_file)
        try:
            shown_g.load_state_dict(loaded.generator.state_dict())
            if g_ema is not None:
                generator.load_state_dict(state["generator_raw"])
            discriminator.load_state_dict(loaded.discriminator.state_dict())
            best = state.get("best", best)
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            fixed_z = state["fixed_z"]
            elapsed_before = float(state["elapsed_seconds"])
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:  # a foreign or mismatched file
            raise UserError(f"{state_file}: does not match this run's options ({rd.one_line(error)})") from None
        say(f"resuming {run_dir} from step {step}")
    generator.train().requires_grad_(True)
    discriminator.train().requires_grad_(True)

    resolved = {
        "device": str(device),
        "precision": precision,
        "world_size": world.size,
        "images": len(data),
        "skipped_files": [str(p) for p, _ in data.skipped],
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "host": socket.gethostname(),
    }
    stats = rd.StatsLog(run_dir, warn=say)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_options(run_dir, options, resolved)
        stats.truncate_after(step)

    g_ddp = DistributedDataParallel(generator) if world.distributed else generator
    d_ddp = DistributedDataParallel(discriminator) if world.distributed else discriminator
    images = data.images.to(device)
    sampler = DistributedSampler(
        range(len(data)), num_replicas=world.size, rank=world.rank, shuffle=True, seed=options.seed, drop_last=True
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    batch = options.batch_size
    policy = options.diffaug_policy()
    smoothing = options.label_smoothing
    evaluator = None
    if options.eval_every and world.is_main:
        say(f"scoring against {len(data.holdout_files)} held-out images every {options.eval_every:g} epoch(s)")
        evaluator = FaceFrechetEvaluator(
            data.holdout_files,
            options.image_size,
            options.channels,
            prior,
            options.eval_samples,
            options.seed,
            warn=say,
        )
    eval_steps = max(1, round(options.eval_every * steps_per_epoch)) if options.eval_every else 0

    def evaluate(current_step: int, seconds: float) -> None:
        scores = {"frechet": round(evaluator.score(shown_g), 6)}
        if g_ema is not None:
            scores["frechet_raw"] = round(evaluator.score(generator), 6)
        stats.append(
            {"event": "eval", "step": current_step, "epoch": round(current_step / steps_per_epoch, 4), **scores}
        )
        progress.write(f"step {current_step}: Fréchet face distance {scores}")
        if scores["frechet"] < best["frechet"]:
            best.update(frechet=scores["frechet"], step=current_step)
            info = {
                **summary(current_step, seconds, last_losses),
                "frechet": scores["frechet"],
                "validation_images": evaluator.count,
            }
            save_checkpoint(run_dir / SNAPSHOT_DIR / BEST_FILE, shown_g, discriminator, prior, info)

    def summary(current_step: int, seconds: float, losses: dict[str, float]) -> dict[str, Any]:
        return {
            "data": str(Path(options.data).resolve()),
            "data_name": Path(options.data).resolve().name,
            "images": len(data),
            "steps": current_step,
            "epochs": round(current_step / steps_per_epoch, 3),
            "batch_size": batch * world.size,
            "wall_seconds": round(seconds, 1),
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "world_size": world.size,
            "precision": precision,
            "seed": options.seed,
            "losses": losses,
        }

    def write_samples(current_step: int, keep: bool = True) -> None:
        """The fixed latents' grid as samples/latest.png (and, with `keep`, as the step's own file)."""
        was_training = shown_g.training
        shown_g.eval()
        with torch.no_grad(), autocast(device, precision):
            pictures = model_to_unit(shown_g(fixed_z.to(device)))
        shown_g.train(was_training)
        if keep:
            save_grid(pictures, run_dir / rd.SAMPLES_DIR / f"step-{current_step:09d}.png", columns=8)
        save_grid(pictures, run_dir / rd.SAMPLES_DIR / "latest.png", columns=8)
        plot_losses(stats.read(), run_dir / rd.LOSS_PLOT)

    def write_snapshot(current_step: int, seconds: float, losses: dict[str, float]) -> None:
        state = {
            "step": current_step,
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "fixed_z": fixed_z,
            "elapsed_seconds": seconds,
            "seed": options.seed,
            "world_size": world.size,
            "best": best,
        }
        if g_ema is not None:
            state["generator_raw"] = generator.state_dict()
        rd.save_snapshot(
            run_dir,
            current_step,
            shown_g,
            discriminator,
            prior,
            summary(current_step, seconds, losses),
            state,
            options.keep_snapshots,
        )

    # Running sums on the device, read back only at logging points (no per-step GPU sync).
    sums = torch.zeros(5, device=device, dtype=torch.float64)  # loss_d, loss_g, D(x), D(G(z)), non-finite
    last_losses: dict[str, float] = {}
    started = time.perf_counter()
    interval_start, interval_steps = started, 0
    images_per_second = 0.0
    stopped_by = "steps" if options.steps and total_steps == options.steps else "epochs"
    progress = tqdm(total=total_steps, initial=step, unit="step", disable=not show_progress, dynamic_ncols=True)
    first_step = last_saved = last_sampled = step
    last_logged = last_shown = started  # times of the last stats line and samples/latest.png
    order_epoch, order = -1, torch.empty(0, dtype=torch.long)
    sync_every = 1 if not world.distributed else options.log_every

    with _StopRequest() as stop:
        while total_steps is None or step < total_steps:
            epoch, position = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                sampler.set_epoch(epoch)
                order, order_epoch = torch.tensor(list(sampler), dtype=torch.long), epoch
            index = order[position * batch : (position + 1) * batch].to(device)
            real = images[index]
            flips = torch.rand(batch, generator=_step_generator(options.seed, world.rank, step, 0)) < 0.5
            real = torch.where(flips.to(device)[:, None, None, None], real.flip(3), real)
            real = uint8_to_model(real).contiguous(memory_format=memory_format)
            z = prior.sample(batch, config.latent_dim, _step_generator(options.seed, world.rank, step, 1), device)

            # Discriminator: real → 1, fake → 0 (softplus form of the logistic loss).
            augment_rng = _step_generator(options.seed, world.rank, step, 2)
            augment = (lambda x: diff_augment(x, policy, augment_rng)) if policy else (lambda x: x)
            with autocast(device, precision):
                fake = g_ddp(z)
                d_real = d_ddp(augment(real)).float()
                d_fake = d_ddp(augment(fake.detach())).float()
                # Logistic loss in softplus form; one-sided smoothing moves the real target to 1 - s.
                loss_d = (
                    (1 - smoothing) * F.softplus(-d_real).mean()
                    + smoothing * F.softplus(d_real).mean()
                    + F.softplus(d_fake).mean()
                )
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)

            # Generator: non-saturating loss, D frozen (bypassing its DDP wrapper: no D gradients).
            discriminator.requires_grad_(False)
            with autocast(device, precision):
                loss_g = F.softplus(-discriminator(augment(fake)).float()).mean()
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(loss_g).backward()
            scaler.step(opt_g)
            scaler.update()
            discriminator.requires_grad_(True)
            if g_ema is not None:
                _update_ema(g_ema, generator, min(options.ema_decay, (1 + step) / (10 + step)))

            with torch.no_grad():
                sums += torch.stack(
                    [
                        loss_d.double(),
                        loss_g.double(),
                        torch.sigmoid(d_real).mean().double(),
                        torch.sigmoid(d_fake).mean().double(),
                        (~(torch.isfinite(loss_d) & torch.isfinite(loss_g))).double(),
                    ]
                )
            step += 1
            interval_steps += 1
            progress.update(1)

            # Losses are read back (and checked for NaN) at every log step and before any snapshot.
            # The session's first step is logged (and drawn) at once: the user sees losses and a grid
            # within seconds, not after --log-every / --sample-every steps.
            at_log = (
                step % options.log_every == 0
                or step % options.checkpoint_every == 0
                or step == total_steps
                or step == first_step + 1
            )
            if at_log or step % sync_every == 0:
                now = time.perf_counter()
                flags = torch.tensor(
                    [
                        float(stop.requested),
                        float(options.minutes is not None and (now - started) / 60 >= options.minutes),
                        float(now - last_logged >= REPORT_SECONDS),  # reduced too: every rank logs together
                    ],
                    device=device,
                )
                all_reduce_(flags, world, "max")
                if at_log or flags.any():
                    totals = all_reduce_(sums.clone(), world) / world.size
                    if totals[4] > 0:
                        raise NonFiniteLoss(
                            f"loss became NaN or infinite by step {step}; stopped. The last good snapshot "
                            f"(step {last_saved}) is kept in {run_dir}/checkpoints; "
                            "try a lower --lr or --precision fp32"
                        )
                    n = max(interval_steps, 1)
                    images_per_second = n * batch * world.size / max(now - interval_start, 1e-9)
                    last_losses = {
                        "loss_d": round(float(totals[0]) / n, 5),
                        "loss_g": round(float(totals[1]) / n, 5),
                        "d_real": round(float(totals[2]) / n, 4),
                        "d_fake": round(float(totals[3]) / n, 4),
                    }
                    record = {
                        "step": step,
                        "epoch": round(step / steps_per_epoch, 4),
                        **last_losses,
                        "images_per_second": round(images_per_second, 1),
                        "seconds": round(elapsed_before + now - started, 2),
                    }
                    if world.is_main:
                        stats.append(record)
                    progress.set_postfix(
                        epoch=f"{step / steps_per_epoch:.2f}",
                        D=f"{last_losses['loss_d']:.3f}",
                        G=f"{last_losses['loss_g']:.3f}",
                        img_s=f"{images_per_second:.0f}",
                    )
                    sums.zero_()
                    interval_start, interval_steps, last_logged = now, 0, now
                    if options.minutes is not None:  # the time limit as a step total, for the bar's ETA
                        remaining = options.minutes * 60 - (now - started)
                        estimate = step + max(0, round((step - first_step) / max(now - started, 1e-9) * remaining))
                        progress.total = min(estimate, total_steps) if total_steps is not None else estimate
                if flags[0] > 0:
                    stopped_by = "interrupt"
                    break
                if flags[1] > 0:
                    stopped_by = "minutes"
                    break
            if evaluator is not None and step % eval_steps == 0:
                eval_started = time.perf_counter()
                evaluate(step, elapsed_before + eval_started - started)
                interval_start += time.perf_counter() - eval_started  # keep images/s about training
            if world.is_main and step % options.sample_every == 0:
                write_samples(step)
                last_sampled, last_shown = step, time.perf_counter()
            elif world.is_main and (step == first_step + 1 or time.perf_counter() - last_shown >= REPORT_SECONDS):
                write_samples(step, keep=False)  # latest.png only: a long run would fill samples/ otherwise
                last_shown = time.perf_counter()
            if world.is_main and step % options.checkpoint_every == 0:
                write_snapshot(step, elapsed_before + time.perf_counter() - started, last_losses)
                last_saved = step
    progress.close()

    seconds = elapsed_before + time.perf_counter() - started
    if world.is_main:
        if step != last_saved:
            write_snapshot(step, seconds, last_losses)
        if step != last_sampled:
            write_samples(step)
    checksums = [row[0] for row in all_gather_floats([_parameter_checksum([generator, discriminator])], world, device)]
    if len(set(checksums)) > 1:
        raise RuntimeError(f"replicas diverged: weight checksums per rank {checksums}")
    if world.is_main:
        summary_record = {
            "event": "end",
            "step": step,
            "stopped_by": stopped_by,
            "replica_checksums": checksums,
            "seconds": round(seconds, 2),
            "world_size": world.size,
        }
        stats.append(summary_record)
    return TrainResult(run_dir, step, step / steps_per_epoch, stopped_by, last_losses, images_per_second, checksums)
