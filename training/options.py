"""Every knob of a training run, resolved and saved as `training_options.json` in its run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from inpaint.errors import UserError
from inpaint.fileio import write_text_atomic
from inpaint.latent import LatentPrior
from inpaint.models import ModelConfig
from inpaint_training.limits import TRAIN_LIMITS, check_all, flag

OPTIONS_FILE = "training_options.json"
DEFAULT_EPOCHS = 25
# A new run that holds out a validation split is scored on it this often (epochs) unless told
# otherwise: the score over time, and the best snapshot, are why one holds images out.
DEFAULT_EVAL_EVERY = 3.0

# Options that fix what the networks and the data stream are: a resumed run must keep them.
FIXED_ON_RESUME = (
    "data",
    "val_count",
    "image_size",
    "channels",
    "latent_dim",
    "g_width",
    "d_width",
    "g_upsample",
    "prior",
    "batch_size",
    "seed",
)
TEXT_FIELDS = ("data", "out", "g_upsample", "prior", "diffaug", "device", "precision", "compile")
# torch.compile's modes for G and D ("off": eager). On a GPU "reduce-overhead" also records the
# compiled steps as CUDA graphs, which is what a launch-bound small DCGAN needs.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
OPTIONAL_FIELDS = ("lr_d", "eval_every", "epochs", "steps", "minutes", "workers")  # None: not given
# G and D together: weights, gradients and Adam's two moments take 16 bytes a parameter, so 2 billion
# (32 GB) is beyond any single accelerator's share for a DCGAN; the default 64×64 pair has 6 million.


@dataclass
class TrainOptions:
    data: str = ""
    out: str = ""
    image_size: int = 64
    channels: int = 3
    latent_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    # inpaint.models.UPSAMPLE_KINDS. Resize-and-convolve: on a small set, in the same 30 minutes, its
    # fills beat the transposed convolutions' checkerboard by up to 1.3 dB (README: Your own images).
    g_upsample: str = "resize"
    prior: str = "uniform"
    batch_size: int = 64
    lr: float = 2e-4
    lr_d: float | None = None  # discriminator learning rate (None: same as lr)
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.0  # exponential moving average of G's weights (0: off)
    label_smoothing: float = 0.0  # one-sided: D's target for real images is 1 - this
    diffaug: str = ""  # comma-separated DiffAugment policies: color,translation,cutout
    val_count: int = 0  # hold out this many files (highest names) as a validation split
    eval_every: float | None = None  # epochs between scores on the held-out split (None or 0: never)
    eval_samples: int = 500
    collapse_threshold: float = 0.5  # warn when sample diversity falls below this × the run's best (0: never)
    epochs: float | None = None
    steps: int | None = None
    minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    # "auto": bf16 with channels_last on a CPU with native bf16 matrix instructions (about 3× the
    # images a second of fp32 there: a 30-minute run gets three times the steps), else fp32.
    precision: str = "auto"
    channels_last: bool = False  # also on whenever training runs in bf16 on the CPU
    compile: str = "off"  # COMPILE_MODES
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_snapshots: int = 2
    workers: int | None = None
    # The inpainting encoder trained after the GAN in the same command (training.pipeline): its steps
    # (0: no encoder phase) and, with --minutes, its share of the time.
    encoder_steps: int = 4000
    encoder_share: float = 0.2

    def validate(self, source: Path | None = None) -> "TrainOptions":
        """Refuse options that cannot train; `source` names the file they were read from (a resumed
        run's training_options.json), so errors name it and the field instead of the flag."""

        def label(name: str) -> str:
            return f"{source}: {name}" if source is not None else flag(name)

        for name in TEXT_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise UserError(f"{label(name)}: must be text, got {getattr(self, name)!r}")
        if self.compile not in COMPILE_MODES:
            raise UserError(f"{label('compile')}: must be one of {', '.join(COMPILE_MODES)}, not {self.compile!r}")
        if not isinstance(self.channels_last, bool):
            raise UserError(f"{label('channels_last')}: must be true or false, got {self.channels_last!r}")
        check_all(self, TRAIN_LIMITS, label, optional=OPTIONAL_FIELDS)
        try:
            self.model_config()
            LatentPrior(self.prior)
        except UserError as error:
            raise UserError(f"{source}: {error}" if source is not None else str(error)) from None
        from inpaint_training.augment import POLICIES

        unknown = set(self.diffaug_policy()) - set(POLICIES)
        if unknown:
            raise UserError(
                f"{label('diffaug')}: unknown policy {', '.join(sorted(unknown))}; choose from {', '.join(POLICIES)}"
            )
        if self.eval_every and self.val_count < 2:
            raise UserError(f"{label('eval_every')}: needs a validation split: --val-count N (at least 2)")
        return self

    def diffaug_policy(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.diffaug.split(",") if p.strip())

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            self.image_size, self.channels, self.latent_dim, self.g_width, self.d_width, upsample=self.g_upsample
        )

    def gan_minutes(self) -> float | None:
        """The GAN phase's part of --minutes: all of it, less the encoder phase's share."""
        if self.minutes is None or self.encoder_steps == 0:
            return self.minutes
        return self.minutes * (1 - self.encoder_share)

    def encoder_minutes(self) -> float | None:
        """The encoder phase's part of --minutes (None: no time limit, it runs its steps)."""
        return None if self.minutes is None else self.minutes * self.encoder_share

    def stop_limits_given(self) -> bool:
        return any(v is not None for v in (self.epochs, self.steps, self.minutes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainOptions":
        known = {f.name for f in fields(cls)}
        # Runs saved before G could resize trained transposed convolutions.
        data = {"g_upsample": "transpose", **data}
        return cls(**{k: v for k, v in data.items() if k in known})


def save_options(run_dir: Path, options: TrainOptions, resolved: dict[str, Any]) -> None:
    """Write the options plus facts resolved at start (device, image count, world size…)."""
    payload = {**options.to_dict(), "resolved": resolved}
    write_text_atomic(Path(run_dir) / OPTIONS_FILE, json.dumps(payload, indent=2) + "\n")


def load_options(run_dir: Path) -> TrainOptions:
    """A run's saved options, checked as the flags are: a hand-edited or foreign file is refused in one
    line naming the file and the field."""
    path = Path(run_dir) / OPTIONS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run_dir}: not a training run (no {OPTIONS_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: unreadable ({error})") from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise UserError(f"{path}: not a training-options file (a JSON object is expected, it holds a {kind})")
    return TrainOptions.from_dict(data).validate(source=path)
