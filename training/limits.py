"""The allowed range of every numeric training option: one table per trainer, used both as argparse
`type=` functions (refused where typed) and by the options' `validate()` (for values read back from
a run's files or given through the API).

Sizes are capped where a larger value could not be allocated or would never finish, not where a
run would merely be unusual: the caps say why a request is refused before any memory is touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inpaint.models import MAX_LATENT_DIM, MAX_WIDTH
from inpaint.validate import MAX_COUNT, SEED_MAX, check_number, number_arg

MAX_STEPS = 10**9  # steps and step intervals: far beyond any run, still a finite loop
MAX_EPOCHS = 10**6
MAX_MINUTES = 10**7  # about 19 years
MAX_FILES = 10**7  # a held-out split is a count of image files
MAX_BATCH = 8192  # images per step: larger batches do not fit any accelerator at DCGAN sizes
MAX_WORKERS = 256
MAX_WEIGHT = 1e6  # loss weights


@dataclass(frozen=True)
class Limit:
    """low ≤ value ≤ high (strict with low_open / high_open: Adam's betas and the EMA decay must
    stay below 1, where they mean nothing)."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False
    high_open: bool = False

    def check(self, value: Any, name: str) -> float | int:
        """The value as a number, or UserError("NAME: must be …, got VALUE")."""
        return check_number(
            value, name, self.low, self.high, integer=self.integer, low_open=self.low_open, high_open=self.high_open
        )

    def arg(self) -> Callable[[str], float | int]:
        """An argparse `type=` applying this limit (argparse prefixes the flag's name)."""
        return number_arg(self.low, self.high, integer=self.integer, low_open=self.low_open, high_open=self.high_open)


def check_all(
    options: Any, limits: dict[str, Limit], label: Callable[[str], str], optional: tuple[str, ...] = ()
) -> None:
    """Check every field of `options` named in `limits` (those in `optional` may be None: not given),
    storing the parsed value of whole-number fields (a file may hold "64" or 64.0 where the code needs 64)."""
    for name, limit in limits.items():
        value = getattr(options, name)
        if value is None and name in optional:
            continue
        number = limit.check(value, label(name))
        if limit.integer or isinstance(value, str):
            setattr(options, name, number)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_COUNT = Limit(1, MAX_STEPS, integer=True)  # steps, and steps between logs, samples, snapshots
_LR = Limit(0, 1, low_open=True)
_BETA = Limit(0, 1, high_open=True)
_SEED = Limit(0, SEED_MAX, integer=True)
_VAL_COUNT = Limit(0, MAX_FILES, integer=True)
_WIDTH = Limit(1, MAX_WIDTH, integer=True)
_WEIGHT = Limit(0, MAX_WEIGHT)

TRAIN_LIMITS: dict[str, Limit] = {
    "image_size": Limit(1, 4096, integer=True),  # the supported sizes are checked by ModelConfig
    "channels": Limit(1, 3, integer=True),
    "latent_dim": Limit(1, MAX_LATENT_DIM, integer=True),
    "g_width": _WIDTH,
    "d_width": _WIDTH,
    "batch_size": Limit(1, MAX_BATCH, integer=True),
    "lr": _LR,
    "lr_d": _LR,
    "beta1": _BETA,
    "beta2": _BETA,
    "ema_decay": _BETA,
    "label_smoothing": Limit(0, 0.5, high_open=True),
    "val_count": _VAL_COUNT,
    "eval_every": Limit(0, MAX_EPOCHS),  # 0: never (a split held out without scoring)
    "eval_samples": Limit(2, MAX_COUNT, integer=True),
    "collapse_threshold": Limit(0, 1),  # a fraction of the best diversity so far
    "epochs": Limit(0, MAX_EPOCHS, low_open=True),
    "steps": _COUNT,
    "minutes": Limit(0, MAX_MINUTES, low_open=True),
    "seed": _SEED,
    "log_every": _COUNT,
    "sample_every": _COUNT,
    "checkpoint_every": _COUNT,
    "keep_snapshots": Limit(1, 1000, integer=True),
    "workers": Limit(0, MAX_WORKERS, integer=True),
    "encoder_steps": Limit(0, MAX_STEPS, integer=True),  # 0: no encoder phase
    "encoder_share": Limit(0, 1, low_open=True, high_open=True),  # of --minutes
}

ENCODER_LIMITS: dict[str, Limit] = {
    "val_count": _VAL_COUNT,
    "steps": _COUNT,
    "batch_size": Limit(2, MAX_BATCH, integer=True),  # half generated, half real
    "lr": _LR,
    "width": _WIDTH,
    "latent_weight": _WEIGHT,
    "pixel_weight": _WEIGHT,
    "hole_weight": _WEIGHT,
    "feature_weight": _WEIGHT,
    "seed": _SEED,
    "log_every": _COUNT,
    "checkpoint_every": _COUNT,
    "minutes": Limit(0, MAX_MINUTES, low_open=True),
}

FRAMER_LIMITS: dict[str, Limit] = {
    "val_count": _VAL_COUNT,
    "steps": _COUNT,
    "batch_size": Limit(1, MAX_BATCH, integer=True),
    "lr": _LR,
    "width": _WIDTH,
    "seed": _SEED,
    "template_images": Limit(1, MAX_COUNT, integer=True),
    "log_every": _COUNT,
    "checkpoint_every": _COUNT,
}
