"""The latent prior p(z): how latents are drawn, and the support a latent search must stay in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from inpaint.errors import UserError

PRIOR_KINDS = ("uniform", "normal")


@dataclass(frozen=True)
class LatentPrior:
    """`uniform`: z ~ U[-1, 1]^d (Yeh et al.; a search clips z back into the cube).
    `normal`: z ~ N(0, I) (unbounded support)."""

    kind: str = "uniform"

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise UserError(f"latent prior must be one of {', '.join(PRIOR_KINDS)}, not {self.kind!r}")

    def sample(
        self,
        n: int,
        dim: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Draw n latents of size dim. Drawn on the CPU so a seed gives the same z on any device."""
        if self.kind == "uniform":
            z = torch.rand(n, dim, generator=generator) * 2 - 1
        else:
            z = torch.randn(n, dim, generator=generator)
        return z.to(device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatentPrior":
        if not isinstance(data, dict):
            raise UserError(f"latent prior settings must be a mapping, not {type(data).__name__}")
        return cls(kind=str(data.get("kind", "uniform")))
