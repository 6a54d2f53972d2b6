"""Differentiable augmentation (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
Training", NeurIPS 2020): the same random colour, translation and cutout applied to real and fake
images before D, so D cannot memorise a small data set and G still gets gradients through it.
Random parameters come from a CPU generator, so a run stays reproducible on any device; they reach
a GPU through pinned memory, so drawing them never waits for the GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from inpaint.device import host_to_device

POLICIES = ("color", "translation", "cutout")


def _uniform(generator: torch.Generator, like: torch.Tensor, *shape: int) -> torch.Tensor:
    return host_to_device(torch.rand(*shape, generator=generator), like.device).to(like.dtype)


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Augment a batch (N, C, H, W) in model space [-1, 1]."""
    n, _, height, width = x.shape
    if "color" in policy:
        x = x + (_uniform(generator, x, n, 1, 1, 1) - 0.5)  # brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(generator, x, n, 1, 1, 1) * 2) + mean  # saturation
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (_uniform(generator, x, n, 1, 1, 1) + 0.5) + mean  # contrast
    if "translation" in policy:
        sy, sx = int(height * 0.125 + 0.5), int(width * 0.125 + 0.5)
        ty = host_to_device(torch.randint(-sy, sy + 1, (n, 1, 1), generator=generator), x.device)
        tx = host_to_device(torch.randint(-sx, sx + 1, (n, 1, 1), generator=generator), x.device)
        rows = (torch.arange(height, device=x.device)[None, :, None] + ty + 1).clamp(0, height + 1)
        cols = (torch.arange(width, device=x.device)[None, None, :] + tx + 1).clamp(0, width + 1)
        padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
        x = padded[torch.arange(n, device=x.device)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    if "cutout" in policy:
        ch, cw = int(height * 0.5 + 0.5), int(width * 0.5 + 0.5)
        oy = host_to_device(torch.randint(0, height + (1 - ch % 2), (n, 1, 1), generator=generator), x.device)
        ox = host_to_device(torch.randint(0, width + (1 - cw % 2), (n, 1, 1), generator=generator), x.device)
        rows = torch.arange(height, device=x.device)[None, :, None] - oy + ch // 2
        cols = torch.arange(width, device=x.device)[None, None, :] - ox + cw // 2
        inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x
