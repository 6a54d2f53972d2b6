"""The DCGAN training loop: non-saturating GAN loss on logits, Adam, snapshots, resume, DDP.

Randomness is derived from (seed, rank, step) rather than carried in generator state, so a
resumed run draws exactly the batches, flips and noise an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from inpaint.checkpoint import (
    BEST_FILE,
    SNAPSHOT_DIR,
    save_checkpoint,
    uint8_to_model,
)
from inpaint.device import autocast, host_to_device, search_precision, select_device
from inpaint.errors import UserError
from inpaint.grids import save_grid
from inpaint.latent import LatentPrior
from inpaint.sampling import render
from inpaint_training import run_dir as rd
from inpaint_training.data import ImageSet, load_image_folder
from inpaint_training.distributed import (
    World,
    all_gather_floats,
    all_reduce_,
    init_world,
    local_rank_from_env,
    shutdown,
)
from inpaint_training.diversity import CollapseGuard, diversity, reference_spread
from inpaint_training.evaluation import Evaluator
from inpaint_training.loss import GANLoss, LossTotals
from inpaint_training.options import (
    DEFAULT_EPOCHS,
    FIXED_ON_RESUME,
    TrainOptions,
    load_options,
    save_options,
)
from inpaint_training.plots import plot_losses
from inpaint_training.state import TrainState, memory_format_of

# Exact resume on CUDA needs deterministic kernels (cuda_determinism below). cuBLAS is deterministic
# only with a fixed workspace per stream: torch.use_deterministic_algorithms refuses cuBLAS calls
# without this setting, and torch reads it once, when it first creates a cuBLAS workspace. So it is
# set here, at import, before any training can touch CUDA; a value the user set is kept.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

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
    # One multi-tensor kernel on a GPU instead of one launch per parameter (the same values).
    torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1 - decay)
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


def train(
    options: TrainOptions,
    resume: bool = False,
    log=print,
    show_progress: bool = True,
    desc: str | None = None,
    minutes: float | None = None,
) -> TrainResult:
    """Train (or resume) the GAN of a run into `options.out`. The session stops after `minutes` when
    given (training.pipeline gives the GAN's share of --minutes), else after --minutes; `desc`
    labels the progress bar. Only rank 0 writes files or prints."""
    options.validate()
    run_dir = Path(options.out)
    device = select_device(options.device, local_rank_from_env())
    precision = search_precision(device, options.precision)
    world = init_world(device)
    say = log if world.is_main else (lambda *a, **k: None)
    try:
        with cuda_determinism(device):
            shown = show_progress and world.is_main
            limit = minutes if minutes is not None else options.minutes
            return _train(options, run_dir, resume, device, precision, world, say, shown, desc, limit)
    finally:
        shutdown(world)


@dataclass
class _Session:
    """What stays fixed through one session of a run (one call of train())."""

    options: TrainOptions
    run_dir: Path
    device: torch.device
    precision: str
    world: World
    data: ImageSet
    prior: LatentPrior
    stats: rd.StatsLog
    steps_per_epoch: int
    total_steps: int | None
    say: Callable[..., None]
    minutes: float | None  # this session's time limit (None: none)
    evaluator: Evaluator | None = None
    reference_spread: float | None = None  # of the first real images: the scale of diversity (None: none)
    collapse: CollapseGuard = field(default_factory=lambda: CollapseGuard(0.0))

    @property
    def eval_steps(self) -> int:
        """Steps between scores (0: never)."""
        every = self.options.eval_every
        return max(1, round(every * self.steps_per_epoch)) if every else 0


@dataclass
class _Clock:
    """Where a session stands: when it started, the last stats line, grid and snapshot, and the
    steps and speed of the interval since the last stats line."""

    started: float
    elapsed_before: float  # seconds trained by earlier sessions
    first_step: int
    last_saved: int
    last_sampled: int
    last_logged: float  # time of the last stats line
    last_shown: float  # time of the last samples/latest.png
    interval_start: float
    interval_steps: int = 0
    last_scored: int = -1  # the step of the session's last score on the validation split
    images_per_second: float = 0.0
    last_losses: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, step: int, elapsed_before: float) -> _Clock:
        """A session's clock, started now at `step`."""
        now = time.perf_counter()
        return cls(now, elapsed_before, step, step, step, now, now, now)

    def seconds(self) -> float:
        """Seconds trained by the run so far, earlier sessions included."""
        return self.elapsed_before + time.perf_counter() - self.started


class _Batches:
    """The real images and latents of each step. Every rank takes its share of an epoch's shuffled
    order; flips and latents come from generators seeded by (seed, rank, step)."""

    def __init__(self, session: _Session) -> None:
        options, world, data, device = session.options, session.world, session.data, session.device
        self.images = data.images.to(device)
        self.sampler = DistributedSampler(
            range(len(data)), num_replicas=world.size, rank=world.rank, shuffle=True, seed=options.seed, drop_last=True
        )
        self.steps_per_epoch = session.steps_per_epoch
        self.batch, self.seed, self.rank, self.device = options.batch_size, options.seed, world.rank, device
        self.memory_format = memory_format_of(options, session.precision, device)
        self.prior, self.latent_dim = session.prior, options.latent_dim
        self.order_epoch, self.order = -1, torch.empty(0, dtype=torch.long)

    def draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """(real images in model space, latents, the generator of the step's augmentation)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self.order_epoch:
            self.sampler.set_epoch(epoch)
            self.order, self.order_epoch = torch.tensor(list(self.sampler), dtype=torch.long), epoch
        index = host_to_device(self.order[position * self.batch : (position + 1) * self.batch], self.device)
        real = self.images[index]
        flips = torch.rand(self.batch, generator=_step_generator(self.seed, self.rank, step, 0)) < 0.5
        real = torch.where(host_to_device(flips, self.device)[:, None, None, None], real.flip(3), real)
        real = uint8_to_model(real).contiguous(memory_format=self.memory_format)
        z = self.prior.sample(self.batch, self.latent_dim, _step_generator(self.seed, self.rank, step, 1))
        return real, host_to_device(z, self.device), _step_generator(self.seed, self.rank, step, 2)


def _find_snapshot(
    run_dir: Path, resume: bool, world: World, say: Callable[..., None]
) -> tuple[int, Path, Path] | None:
    """The snapshot to resume from (None for a new run), after checking that `resume` fits the folder;
    clears what killed writes left in it."""
    snapshot = rd.latest_snapshot(run_dir) if run_dir.exists() else None
    if resume and snapshot is None:
        raise UserError(f"{run_dir}: has no complete snapshot to resume from")
    if not resume and snapshot is not None:
        raise UserError(
            f"{run_dir}: already holds a training run; resume it with --resume {run_dir} or pick another --out"
        )
    if world.is_main and run_dir.exists():
        rd.remove_leftovers(run_dir, warn=say)
    return snapshot


def _load_data(options: TrainOptions, show_progress: bool, say: Callable[..., None]) -> ImageSet:
    """The training images (and held-out files), saying what was skipped or ignored."""
    data = load_image_folder(
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
    return data


def _step_budget(options: TrainOptions, images: int, world: World) -> tuple[int, int | None]:
    """(steps per epoch, total steps or None for a time limit alone); with no limit given, the
    default number of epochs is set in `options`."""
    steps_per_epoch = images // (options.batch_size * world.size)
    if steps_per_epoch == 0:
        raise UserError(
            f"{options.data}: {images} usable images are fewer than one batch "
            f"({options.batch_size} × {world.size} process(es)); lower --batch-size"
        )
    if not options.stop_limits_given():
        options.epochs = DEFAULT_EPOCHS
    limits = [math.ceil(options.epochs * steps_per_epoch)] if options.epochs else []
    limits += [options.steps] if options.steps else []
    return steps_per_epoch, min(limits) if limits else None


def _start_run_dir(session: _Session, step: int) -> None:
    """Rank 0 writes the options with what they resolved to, and drops stats lines after `step`."""
    if not session.world.is_main:
        return
    data = session.data
    resolved = {
        "device": str(session.device),
        "precision": session.precision,
        "channels_last": memory_format_of(session.options, session.precision, session.device) == torch.channels_last,
        "world_size": session.world.size,
        "images": len(data),
        "skipped_files": [str(p) for p, _ in data.skipped],
        "steps_per_epoch": session.steps_per_epoch,
        "total_steps": session.total_steps,
        "host": socket.gethostname(),
    }
    session.run_dir.mkdir(parents=True, exist_ok=True)
    save_options(session.run_dir, session.options, resolved)
    session.stats.truncate_after(step)


def compiled(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`module` under torch.compile in `mode` (see options.COMPILE_MODES), or as it is for "off". The
    wrapper shares the module's weights: snapshots, EMA and evaluation keep using the module itself."""
    return module if mode == "off" else torch.compile(module, mode=None if mode == "default" else mode)


def _gan_loss(options: TrainOptions, state: TrainState, device: torch.device, precision: str, world: World) -> GANLoss:
    """The step's losses over the state's networks (wrapped in DDP when distributed, then compiled
    when asked)."""
    g_ddp = DistributedDataParallel(state.generator) if world.distributed else state.generator
    d_ddp = DistributedDataParallel(state.discriminator) if world.distributed else state.discriminator
    return GANLoss(
        compiled(g_ddp, options.compile),
        compiled(d_ddp, options.compile),
        compiled(state.discriminator, options.compile),
        state.opt_g,
        state.opt_d,
        torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        device,
        precision,
        options.label_smoothing,
        options.diffaug_policy(),
    )


def _make_evaluator(
    options: TrainOptions, data: ImageSet, prior: LatentPrior, world: World, say: Callable[..., None]
) -> Evaluator | None:
    """The scorer against the held-out images (rank 0 only, with --eval-every)."""
    if not (options.eval_every and world.is_main):
        return None
    evaluator = Evaluator(
        data.holdout_files,
        options.image_size,
        options.channels,
        prior,
        options.eval_samples,
        options.seed,
        warn=say,
    )
    say(
        f"scoring against {evaluator.count} held-out images every {options.eval_every:g} epoch(s): "
        f"{evaluator.description}"
    )
    return evaluator


def _summary(session: _Session, step: int, seconds: float, losses: dict[str, float]) -> dict[str, Any]:
    """The training facts a checkpoint's metadata carries."""
    options, device = session.options, session.device
    return {
        "data": str(Path(options.data).resolve()),
        "data_name": Path(options.data).resolve().name,
        "images": len(session.data),
        "steps": step,
        "epochs": round(step / session.steps_per_epoch, 3),
        "batch_size": options.batch_size * session.world.size,
        "wall_seconds": round(seconds, 1),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "world_size": session.world.size,
        "precision": session.precision,
        "seed": options.seed,
        "losses": losses,
    }


def _write_samples(
    session: _Session, state: TrainState, keep: bool = True, write: Callable[[str], None] | None = None
) -> None:
    """The fixed latents' grid as samples/latest.png (and, with `keep`, as the step's own file), its
    diversity as a stats line (with a warning through `write` when it drops), and the loss plot."""
    with autocast(session.device, session.precision):
        pictures = render(state.shown_g, state.fixed_z)
    if keep:
        save_grid(pictures, session.run_dir / rd.SAMPLES_DIR / f"step-{state.step:09d}.png", columns=8)
    save_grid(pictures, session.run_dir / rd.SAMPLES_DIR / "latest.png", columns=8)
    if session.reference_spread is not None:
        _record_diversity(session, state, diversity(pictures, session.reference_spread), write or session.say)
    plot_losses(session.stats.read(), session.run_dir / rd.LOSS_PLOT)


def _record_diversity(session: _Session, state: TrainState, value: float, write: Callable[[str], None]) -> None:
    """Log a grid's diversity, keep the run's best in the state, and warn once when it drops (see
    training.diversity)."""
    step, best = state.step, state.best["diversity"]
    session.stats.append(
        {
            "event": "diversity",
            "step": step,
            "epoch": round(step / session.steps_per_epoch, 4),
            "diversity": round(value, 4),
        }
    )
    if session.collapse.should_warn(value, best):
        write(
            f"warning: step {step}: the samples are losing variety (diversity {value:.3f}, best {best:.3f} at step "
            f"{state.best['diversity_step']}); the generator may be collapsing. {_best_snapshot_hint(session, state)}"
        )
    if value > best:
        state.best.update(diversity=value, diversity_step=step)


def _best_snapshot_hint(session: _Session, state: TrainState) -> str:
    """Where a snapshot from before a collapse can be found."""
    best = session.run_dir / SNAPSHOT_DIR / BEST_FILE
    if best.is_file():
        return f"The best-scored snapshot (step {state.best['step']}) is {best}."
    hint = (
        f"The newest {session.options.keep_snapshots} step snapshot(s) are kept in {session.run_dir / SNAPSHOT_DIR}"
        " (--keep-snapshots keeps more)"
    )
    if not session.options.eval_every:
        hint += "; --eval-every (with --val-count) keeps the best-scored one as checkpoints/best.safetensors"
    return hint + "."


def _write_snapshot(session: _Session, state: TrainState, seconds: float, losses: dict[str, float]) -> None:
    """The state and weights of the current step (see TrainState.save)."""
    options = session.options
    summary = _summary(session, state.step, seconds, losses)
    state.save(
        session.run_dir, session.prior, summary, seconds, options.seed, session.world.size, options.keep_snapshots
    )


def _evaluate(session: _Session, state: TrainState, clock: _Clock, progress: tqdm) -> None:
    """Score the shown G (and the raw one under EMA); a new best score saves checkpoints/best."""
    evaluator, step = session.evaluator, state.step
    eval_started = time.perf_counter()
    seconds = clock.elapsed_before + eval_started - clock.started
    scores = evaluator.score(state.shown_g)
    if state.g_ema is not None:
        scores.update({f"{name}_raw": value for name, value in evaluator.score(state.generator).items()})
    session.stats.append({"event": "eval", "step": step, "epoch": round(step / session.steps_per_epoch, 4), **scores})
    progress.write(f"step {step}: scores {scores} (lower is better)")
    clock.last_scored = step
    key = evaluator.key
    if scores[key] < state.best[key]:
        state.best.update({key: scores[key], "step": step})
        info = {
            **_summary(session, step, seconds, clock.last_losses),
            **{name: value for name, value in scores.items() if not name.endswith("_raw")},
            "best_by": key,
            "validation_images": evaluator.count,
        }
        save_checkpoint(
            session.run_dir / SNAPSHOT_DIR / BEST_FILE, state.shown_g, state.discriminator, session.prior, info
        )
    clock.interval_start += time.perf_counter() - eval_started  # keep images/s about training


def _log_due(session: _Session, clock: _Clock, step: int) -> bool:
    """Whether this step reads the losses back: every log step, before any snapshot, at the end and
    at a session's first step (the user sees losses and a grid within seconds)."""
    options = session.options
    return (
        step % options.log_every == 0
        or step % options.checkpoint_every == 0
        or step == session.total_steps
        or step == clock.first_step + 1
    )


def _log_stats(session: _Session, clock: _Clock, sums: torch.Tensor, progress: tqdm, step: int, now: float) -> None:
    """Average the loss sums over the interval and the ranks, stop on NaN or infinity, and write a
    stats line (rank 0) and the progress bar's figures; starts the next interval."""
    options, world = session.options, session.world
    totals = LossTotals.from_tensor(all_reduce_(sums.clone(), world) / world.size)
    if totals.non_finite > 0:
        raise NonFiniteLoss(
            f"loss became NaN or infinite by step {step}; stopped. The last good snapshot "
            f"(step {clock.last_saved}) is kept in {session.run_dir}/checkpoints; "
            "try a lower --lr or --precision fp32"
        )
    n = max(clock.interval_steps, 1)
    clock.images_per_second = n * options.batch_size * world.size / max(now - clock.interval_start, 1e-9)
    clock.last_losses = totals.means(n)
    record = {
        "step": step,
        "epoch": round(step / session.steps_per_epoch, 4),
        **clock.last_losses,
        "images_per_second": round(clock.images_per_second, 1),
        "seconds": round(clock.elapsed_before + now - clock.started, 2),
    }
    if world.is_main:
        session.stats.append(record)
    progress.set_postfix(
        epoch=f"{step / session.steps_per_epoch:.2f}",
        D=f"{clock.last_losses['loss_d']:.3f}",
        G=f"{clock.last_losses['loss_g']:.3f}",
        img_s=f"{clock.images_per_second:.0f}",
    )
    sums.zero_()
    clock.interval_start, clock.interval_steps, clock.last_logged = now, 0, now
    if session.minutes is not None:  # the time limit as a step total, for the bar's ETA
        remaining = session.minutes * 60 - (now - clock.started)
        estimate = step + max(0, round((step - clock.first_step) / max(now - clock.started, 1e-9) * remaining))
        progress.total = min(estimate, session.total_steps) if session.total_steps is not None else estimate


def _agreed_flags(session: _Session, clock: _Clock, stop: _StopRequest, now: float) -> tuple[bool, bool, bool]:
    """(a signal asks to stop, the time limit is reached, a minute has passed since the last stats line).
    A single process decides on the host alone: no device tensor, so no wait for the GPU. Under DDP
    every rank must decide alike (a rank that stopped or logged alone would hang the others), so the
    flags are all-reduced (max) across ranks: one device round trip, made every --log-every steps."""
    flags = (
        stop.requested,
        session.minutes is not None and (now - clock.started) / 60 >= session.minutes,
        now - clock.last_logged >= REPORT_SECONDS,
    )
    if not session.world.distributed:
        return flags
    agreed = all_reduce_(torch.tensor([float(flag) for flag in flags], device=session.device), session.world, "max")
    interrupt, minutes, report = (value > 0 for value in agreed.tolist())
    return interrupt, minutes, report


def _check_in(
    session: _Session, clock: _Clock, sums: torch.Tensor, stop: _StopRequest, progress: tqdm, step: int
) -> str | None:
    """Whether to stop (a signal, the time limit) and whether a minute has passed since the last stats
    line, as all ranks agree; logs when due. Returns the stop reason, or None to go on."""
    now = time.perf_counter()
    interrupt, out_of_time, report = _agreed_flags(session, clock, stop, now)
    if _log_due(session, clock, step) or interrupt or out_of_time or report:
        _log_stats(session, clock, sums, progress, step, now)
    if interrupt:
        return "interrupt"
    if out_of_time:
        return "minutes"
    return None


def _show_and_save(session: _Session, state: TrainState, clock: _Clock, progress: tqdm) -> None:
    """After a step: the scores, the sample grid and the snapshot, each when due."""
    options, step, is_main = session.options, state.step, session.world.is_main
    write = session.say if progress.disable else progress.write  # a line above the bar, if there is one
    if session.evaluator is not None and step % session.eval_steps == 0:
        _evaluate(session, state, clock, progress)
    if is_main and step % options.sample_every == 0:
        _write_samples(session, state, write=write)
        clock.last_sampled, clock.last_shown = step, time.perf_counter()
    elif is_main and (step == clock.first_step + 1 or time.perf_counter() - clock.last_shown >= REPORT_SECONDS):
        # latest.png only: a long run would fill samples/ otherwise
        _write_samples(session, state, keep=False, write=write)
        clock.last_shown = time.perf_counter()
    if is_main and step % options.checkpoint_every == 0:
        _write_snapshot(session, state, clock.seconds(), clock.last_losses)
        clock.last_saved = step


def _finish(session: _Session, state: TrainState, clock: _Clock, stopped_by: str) -> TrainResult:
    """The session's last snapshot and grid, a check that the replicas agree, and the end record."""
    world, step = session.world, state.step
    seconds = clock.seconds()
    if world.is_main:
        if step != clock.last_sampled:  # before the snapshot, which then keeps this grid's diversity
            _write_samples(session, state)
        if step != clock.last_saved:
            _write_snapshot(session, state, seconds, clock.last_losses)
    modules = [state.generator, state.discriminator]
    checksums = [row[0] for row in all_gather_floats([_parameter_checksum(modules)], world, session.device)]
    if len(set(checksums)) > 1:
        raise RuntimeError(f"replicas diverged: weight checksums per rank {checksums}")
    if world.is_main:
        session.stats.append(
            {
                "event": "end",
                "step": step,
                "stopped_by": stopped_by,
                "replica_checksums": checksums,
                "seconds": round(seconds, 2),
                "world_size": world.size,
            }
        )
    return TrainResult(
        session.run_dir,
        step,
        step / session.steps_per_epoch,
        stopped_by,
        clock.last_losses,
        clock.images_per_second,
        checksums,
    )


def _train(
    options: TrainOptions,
    run_dir: Path,
    resume: bool,
    device: torch.device,
    precision: str,
    world: World,
    say: Callable[..., None],
    show_progress: bool,
    desc: str | None = None,
    minutes: float | None = None,
) -> TrainResult:
    """One session of a run: set up (or resume), then step until a limit or a signal stops it."""
    snapshot = _find_snapshot(run_dir, resume, world, say)
    data = _load_data(options, show_progress, say)
    steps_per_epoch, total_steps = _step_budget(options, len(data), world)
    prior = LatentPrior(options.prior)
    state = TrainState.create(options, prior, device, memory_format_of(options, precision, device))
    if snapshot is not None:
        state.load(snapshot)
        say(f"resuming {run_dir} from step {state.step}")
    state.generator.train().requires_grad_(True)
    state.discriminator.train().requires_grad_(True)
    stats = rd.StatsLog(run_dir, warn=say)
    session = _Session(
        options, run_dir, device, precision, world, data, prior, stats, steps_per_epoch, total_steps, say, minutes
    )
    _start_run_dir(session, state.step)
    gan = _gan_loss(options, state, device, precision, world)
    batches = _Batches(session)
    session.evaluator = _make_evaluator(options, data, prior, world, say)
    if world.is_main:
        session.reference_spread = reference_spread(data.images)
        session.collapse = CollapseGuard(options.collapse_threshold)

    # Running sums on the device, read back only at logging points (no per-step GPU sync).
    sums = torch.zeros(len(fields(LossTotals)), device=device, dtype=torch.float64)
    clock = _Clock.start(state.step, state.elapsed_before)
    stopped_by = "steps" if options.steps and total_steps == options.steps else "epochs"
    progress = tqdm(
        total=total_steps, initial=state.step, unit="step", desc=desc, disable=not show_progress, dynamic_ncols=True
    )
    # Steps between check-ins: a single process checks its flags on the host every step; under DDP a
    # check-in is an all-reduce, so it comes every --log-every steps (and whenever a stats line is due).
    check_every = 1 if not world.distributed else options.log_every
    with _StopRequest() as stop:
        while total_steps is None or state.step < total_steps:
            losses = gan.step(*batches.draw(state.step))
            if state.g_ema is not None:
                decay = min(options.ema_decay, (1 + state.step) / (10 + state.step))
                _update_ema(state.g_ema, state.generator, decay)
            with torch.no_grad():
                sums += losses.as_sums()
            state.step += 1
            clock.interval_steps += 1
            progress.update(1)
            if _log_due(session, clock, state.step) or state.step % check_every == 0:
                reason = _check_in(session, clock, sums, stop, progress, state.step)
                if reason is not None:
                    stopped_by = reason
                    break
            _show_and_save(session, state, clock, progress)
    if _final_score_due(session, state, clock, stopped_by):
        _evaluate(session, state, clock, progress)
    progress.close()
    return _finish(session, state, clock, stopped_by)


def _final_score_due(session: _Session, state: TrainState, clock: _Clock, stopped_by: str) -> bool:
    """Whether the session's last step is scored although off the --eval-every schedule: otherwise
    the steps after the last score could never become the best, and the run's model (its best
    snapshot) would throw them away. Not after Ctrl-C, which should stop at once."""
    trained = state.step > clock.first_step
    return session.evaluator is not None and trained and stopped_by != "interrupt" and clock.last_scored != state.step
