"""Drawing images from a generator: latents from seeds, G(z) back to pixels."""

from __future__ import annotations

import torch

from inpaint.checkpoint import Checkpoint


def latents_for_seed(checkpoint: Checkpoint, n: int, seed: int) -> torch.Tensor:
    """n latents from the checkpoint's prior; the same seed always gives the same latents."""
    return checkpoint.prior.sample(n, checkpoint.config.latent_dim, torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(checkpoint: Checkpoint, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """G(z) as [0, 1] pixels on the CPU, (N, C, S, S). Runs G in eval mode on its own device."""
    generator = checkpoint.generator.eval()
    device = next(generator.parameters()).device
    chunks = [checkpoint.to_pixels(generator(part.to(device))).cpu() for part in z.split(batch_size)]
    return torch.cat(chunks)
