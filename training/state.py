"""Everything a DCGAN run resumes from, in one object: the networks (and G's moving average), the
optimisers, the step, the fixed latents of the sample grids, the best score and the best sample
diversity so far, and the seconds trained in earlier sessions.

No random generator state is kept: every step draws from generators seeded by (seed, rank, step)
(see loop.step_seed), so the step alone puts a resumed run where an uninterrupted one would be.

On disk a snapshot is the weights file (`checkpoints/step-*.safetensors`, the shown G and D) plus
the state file (`checkpoints/state-*.pt`, tensors only, see run_dir); both formats are unchanged
from earlier versions, so older runs resume.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from inpaint.checkpoint import load_checkpoint
from inpaint.errors import UserError
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator
from inpaint_training import run_dir as rd
from inpaint_training.options import TrainOptions

SAMPLE_COUNT = 64  # fixed latents drawn in each sample grid


# How an optimiser runs its update, not what it computes: taken from the device, never from a state file.
_IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable")


def memory_format_of(options: TrainOptions, precision: str, device: torch.device) -> torch.memory_format:
    """The memory layout the networks and real batches use: channels_last when asked for, and always
    for bf16 on the CPU, where oneDNN's bf16 convolutions run about twice as fast in it
    (benchmarks/train_speed.py)."""
    wanted = options.channels_last or (precision == "bf16" and device.type == "cpu")
    return torch.channels_last if wanted else torch.contiguous_format


def adam_for(
    params: Iterator[torch.nn.Parameter], lr: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.Adam:
    """Adam for parameters on `device`. On CUDA the fused kernel updates all parameters in one launch
    instead of several per tensor (a DCGAN step is short enough for launches to count), and lets an fp16
    GradScaler skip a step without reading its inf check back to the host. Elsewhere torch's default
    implementation, unchanged, so CPU runs stay bit-identical to runs saved before."""
    if device.type == "cuda":
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load a saved optimiser state, keeping this optimiser's implementation flags: torch would take
    `fused` from the file, so a state saved on CUDA (fused=True) would run the fused kernel on the CPU
    (not bit-identical to the default one), and a CPU state would turn fusing off on CUDA. torch
    places the moments (and the step counts, on the device for fused) from the flags it loads."""
    groups = [
        {**group, **{key: own[key] for key in _IMPLEMENTATION_FLAGS if key in own}}
        for group, own in zip(saved["param_groups"], optimizer.param_groups, strict=True)
    ]
    optimizer.load_state_dict({**saved, "param_groups": groups})


class TrainState:
    """The resumable state of a GAN run. With EMA on, `g_ema` is what samples, scores and
    checkpoints show (`shown_g`); the raw `generator` trains and is kept in the state file."""

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        g_ema: Generator | None,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        fixed_z: torch.Tensor,
    ) -> None:
        self.generator, self.discriminator, self.g_ema = generator, discriminator, g_ema
        self.opt_g, self.opt_d = opt_g, opt_d
        self.fixed_z = fixed_z
        # The best score (by the evaluator's key: "frechet" for faces, "swd" otherwise) and its step,
        # and the best sample diversity and its step, of the run.
        self.best: dict[str, float] = {
            "frechet": math.inf,
            "swd": math.inf,
            "step": -1,
            "diversity": 0.0,
            "diversity_step": -1,
        }
        self.step = 0
        self.elapsed_before = 0.0  # seconds trained by earlier sessions

    @classmethod
    def create(
        cls, options: TrainOptions, prior: LatentPrior, device: torch.device, memory_format: torch.memory_format
    ) -> TrainState:
        """A fresh run's state: initial weights from `options.seed`, fixed latents from it too."""
        config = options.model_config()
        torch.manual_seed(options.seed)  # the initial weights; later randomness comes from per-step generators
        generator = Generator(config).to(device, memory_format=memory_format)
        discriminator = Discriminator(config).to(device, memory_format=memory_format)
        betas = (options.beta1, options.beta2)
        opt_g = adam_for(generator.parameters(), options.lr, betas, device)
        opt_d = adam_for(discriminator.parameters(), options.lr_d or options.lr, betas, device)
        g_ema = copy.deepcopy(generator).eval().requires_grad_(False) if options.ema_decay else None
        fixed_z = prior.sample(SAMPLE_COUNT, config.latent_dim, torch.Generator().manual_seed(options.seed))
        return cls(generator, discriminator, g_ema, opt_g, opt_d, fixed_z)

    @property
    def shown_g(self) -> Generator:
        """The G that samples, scores and checkpoints show: the EMA one when EMA is on."""
        return self.g_ema if self.g_ema is not None else self.generator

    def state_dict(self, seconds: float, seed: int, world_size: int) -> dict[str, Any]:
        """The state file's contents (tensors and plain values only), `seconds` trained in all."""
        state = {
            "step": self.step,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "fixed_z": self.fixed_z,
            "elapsed_seconds": seconds,
            "seed": seed,
            "world_size": world_size,
            "best": self.best,
        }
        if self.g_ema is not None:
            state["generator_raw"] = self.generator.state_dict()
        return state

    def save(
        self,
        run_dir: Path,
        prior: LatentPrior,
        summary: dict[str, Any],
        seconds: float,
        seed: int,
        world_size: int,
        keep: int,
    ) -> Path:
        """Write this step's snapshot into `run_dir` (state file, then weights; the newest `keep` kept)."""
        return rd.save_snapshot(
            run_dir,
            self.step,
            self.shown_g,
            self.discriminator,
            prior,
            summary,
            self.state_dict(seconds, seed, world_size),
            keep,
        )

    def load(self, snapshot: tuple[int, Path, Path]) -> None:
        """Take the state of a snapshot (step, weights file, state file) as run_dir.latest_snapshot
        gives it; a file that does not fit these networks is a one-line UserError."""
        step, weights_path, state_file = snapshot
        loaded = load_checkpoint(weights_path)
        state = rd.load_state(state_file)
        try:
            self.shown_g.load_state_dict(loaded.generator.state_dict())
            if self.g_ema is not None:
                self.generator.load_state_dict(state["generator_raw"])
            self.discriminator.load_state_dict(loaded.discriminator.state_dict())
            self.best = {**self.best, **state.get("best", {})}  # older files have no diversity or swd
            load_optimizer_state(self.opt_g, state["opt_g"])
            load_optimizer_state(self.opt_d, state["opt_d"])
            self.fixed_z = state["fixed_z"]
            self.elapsed_before = float(state["elapsed_seconds"])
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:  # a foreign or mismatched file
            raise UserError(f"{state_file}: does not match this run's options ({rd.one_line(error)})") from None
        self.step = step
