"""Per-photo generator adaptation: after the latent search, a copy of the generator's weights is
tuned to one photo's known pixels (with the latent), so the fill is drawn by a generator that can
show that person; the shipped generator never changes.

(Work in progress: the settings are defined first so that the engine, the front ends and the
benchmarks can carry them; `steps=0` means off.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdaptSettings:
    """How to adapt the generator to each photo after the search. `steps`: optimiser steps
    (0: off; None: the model's default, on for face models)."""

    steps: int | None = 0
    seed: int = 0
