"""Drawing images from a generator: latents from seeds, G(z) back to pixels."""

from __future__ import annotations

import torch

from inpaint.checkpoint import DEFAULT_PIXELS, Checkpoint, model_to_unit
from inpaint.models import Generator


def latents_for_seed(checkpoint: Checkpoint, n: int, seed: int) -> torch.Tensor:
    """n latents from the checkpoint's prior; the same seed always gives the same latents."""
    return checkpoint.prior.sample(n, checkpoint.config.latent_dim, torch.Generator().manual_seed(seed))


@torch.no_grad()
def render(
    generator: Generator, z: torch.Tensor, pixels: dict[str, float] = DEFAULT_PIXELS, batch_size: int = 256
) -> torch.Tensor:
    """G(z) as [0, 1] pixels on the CPU, (N, C, S, S), in chunks on G's own device. G runs in eval
    mode (BatchNorm's running statistics: a sample must not depend on its batch-mates) and is left
    in the mode it was in, so the trainer can draw its grids and scores mid-training."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    try:
        return torch.cat([model_to_unit(generator(part.to(device)), pixels).cpu() for part in z.split(batch_size)])
    finally:
        generator.train(was_training)


def generate(checkpoint: Checkpoint, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """A checkpoint's G(z) as [0, 1] pixels on the CPU, (N, C, S, S)."""
    return render(checkpoint.generator, z, checkpoint.metadata.get("pixels", DEFAULT_PIXELS), batch_size)
