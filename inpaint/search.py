"""The latent search of semantic inpainting (Yeh et al., CVPR 2017).

For each image y with known-pixel mask M, find z minimising
    L(z) = ‖W ⊙ (G(z) − y)‖₁  +  λ · log(1 − D(G(z)))
where W is zero in the hole and, on a known pixel, the fraction of its neighbourhood that is
missing (known pixels next to the hole count most). The paper's neighbourhood is 7×7; here it is
at least that and grows with the hole (its half-width is the farthest any missing pixel lies from
a known one), so a large hole is matched against a band of context as wide as itself: for half a
face, a 7×7 window would see only 3 columns next to the cut. G and D stay frozen in eval mode, so an
image's result never depends on its batch-mates; losses are summed per image, never averaged
over the batch, so λ means the same at any batch size. z stays in the prior's support (clipped
back into [-1, 1] after every step, or reparametrised as z = tanh(u)). Every image gets several
random restarts, all searched in one batch, and they are ranked by their context loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inpaint.checkpoint import Checkpoint
from inpaint.device import autocast, search_precision

CONSTRAINTS = ("clip", "tanh")


@dataclass(frozen=True)
class SearchSettings:
    iterations: int = 300  # 300 × 4 chosen by benchmarks/inpaint_quality.py --sweep on centre and half masks (README)
    restarts: int = 4
    lam: float = 0.003
    lr: float = 0.03
    seed: int = 0
    top_k: int = 4
    constraint: str = "clip"
    neighbourhood: int | str = "auto"  # side of W's window: "auto" scales it to each hole (≥ 7), or a fixed odd size
    weighting: str = "neighbourhood"  # or "uniform": every known pixel weighs 1 (projection of a whole image)
    precision: str = "auto"  # see inpaint.device.search_precision
    report_every: int = 25


@dataclass
class SearchProgress:
    iteration: int
    iterations: int
    context_loss: torch.Tensor  # (N,) best restart's context loss so far
    current: torch.Tensor  # (N, C, S, S) G(z) of each image's current best restart, model space
    restart_context_loss: torch.Tensor  # (N, k) every restart's context loss
    restart_images: torch.Tensor  # (N, k, C, S, S) every restart's G(z), model space


@dataclass
class SearchResult:
    images: torch.Tensor  # (N, C, S, S) G(ẑ) of the best restart, model space
    z: torch.Tensor  # (N, latent_dim)
    context_loss: torch.Tensor  # (N,)
    perceptual_loss: torch.Tensor  # (N,) λ·log(1 − D(G(ẑ)))
    candidates: torch.Tensor  # (N, k, C, S, S), best first
    candidate_z: torch.Tensor  # (N, k, latent_dim)
    candidate_context_loss: torch.Tensor  # (N, k)


def context_weights(known: torch.Tensor, size: int = 7) -> torch.Tensor:
    """W for masks (N, 1, H, W) with 1 = known: 0 in the hole; on a known pixel the fraction of its
    size×size neighbourhood (the part inside the image) that is missing."""
    known = known.float()
    kernel = torch.ones(1, 1, size, size, device=known.device)
    missing = F.conv2d(1 - known, kernel, padding=size // 2)
    present = F.conv2d(torch.ones_like(known), kernel, padding=size // 2)
    return known * missing / present


def hole_neighbourhood(known: torch.Tensor, smallest: int = 7) -> int:
    """The window side for one mask (1, H, W), 1 = known: 2r + 1, where r is the largest distance
    from a missing pixel to the nearest known pixel, and never below `smallest`."""
    hole = (known[0] < 0.5).cpu().numpy().astype(np.uint8)
    if not hole.any() or hole.all():
        return smallest
    reach = float(cv2.distanceTransform(hole, cv2.DIST_L2, 5).max())
    return max(smallest, 2 * math.ceil(reach) + 1)


def parse_neighbourhood(text: str) -> int | str:
    """A window setting as typed by a user: "auto" or an odd number of pixels."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1 or int(text) % 2 == 0:
        raise ValueError(f"must be auto or an odd number of pixels, not {text!r}")
    return int(text)


def weights_for(known: torch.Tensor, neighbourhood: int | str = "auto") -> torch.Tensor:
    """W for a batch of masks (N, 1, H, W), each with its own window when `neighbourhood` is "auto"."""
    if neighbourhood != "auto":
        return context_weights(known, int(neighbourhood))
    return torch.cat([context_weights(mask[None], hole_neighbourhood(mask)) for mask in known])


def _prior_init(checkpoint: Checkpoint, n_images: int, settings: SearchSettings) -> torch.Tensor:
    """Starting latents: restart r of every image starts from the same seeded draw, so an image's
    search never depends on which other images share its batch."""
    generator = torch.Generator().manual_seed(settings.seed)
    z0 = checkpoint.prior.sample(settings.restarts, checkpoint.config.latent_dim, generator)
    return z0.repeat(n_images, 1)


def search(
    checkpoint: Checkpoint,
    images: torch.Tensor,
    known: torch.Tensor,
    settings: SearchSettings = SearchSettings(),
    callback: Callable[[SearchProgress], bool | None] | None = None,
) -> SearchResult:
    """Inpaint a batch. images (N, C, S, S) in model space; known (N, 1, S, S), 1 = known pixel.

    `callback` gets a SearchProgress every `report_every` iterations; returning True stops early."""
    generator, discriminator = checkpoint.generator, checkpoint.discriminator
    if discriminator is None:
        raise ValueError("the latent search needs the checkpoint's discriminator")
    generator.eval().requires_grad_(False)
    discriminator.eval().requires_grad_(False)
    device = next(generator.parameters()).device
    precision = search_precision(device, settings.precision)
    # channels_last is faster for these convolutions on the CPU in either precision (search_speed.py).
    generator.to(memory_format=torch.channels_last)
    discriminator.to(memory_format=torch.channels_last)
    n, k = images.shape[0], settings.restarts
    targets = images.to(device).repeat_interleave(k, 0)
    if settings.weighting == "uniform":
        weights = known.to(device).float().repeat_interleave(k, 0)
    else:
        weights = weights_for(known.to(device), settings.neighbourhood).repeat_interleave(k, 0)

    bounded = checkpoint.prior.kind == "uniform"
    z0 = _prior_init(checkpoint, n, settings).to(device)
    if bounded and settings.constraint == "tanh":
        variable = torch.atanh(z0.clamp(-0.999, 0.999)).requires_grad_(True)
    else:
        variable = z0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([variable], lr=settings.lr)

    def latents() -> torch.Tensor:
        return torch.tanh(variable) if bounded and settings.constraint == "tanh" else variable

    def losses(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with autocast(device, precision):
            fake = generator(z)
            logits = discriminator(fake)
        fake, logits = fake.float(), logits.float()
        context = (weights * (fake - targets).abs()).flatten(1).sum(1)
        perceptual = -settings.lam * F.softplus(logits)  # λ·log(1 − sigmoid(logits)), stable form
        return fake, context, perceptual

    for iteration in range(settings.iterations):
        fake, context, perceptual = losses(latents())
        optimiser.zero_grad(set_to_none=True)
        (context + perceptual).sum().backward()  # a sum: each latent sees only its own loss
        optimiser.step()
        if bounded and settings.constraint == "clip":
            with torch.no_grad():
                variable.clamp_(-1, 1)  # in place: z stays in the prior's support
        if callback is not None and ((iteration + 1) % settings.report_every == 0 or iteration + 1 == settings.iterations):
            with torch.no_grad():
                per_image = context.detach().view(n, k).cpu()
                every = fake.detach().view(n, k, *fake.shape[1:]).cpu()
                current = every[torch.arange(n), per_image.argmin(1)]
            if callback(SearchProgress(iteration + 1, settings.iterations, per_image.min(1).values, current, per_image, every)):
                break

    with torch.no_grad():
        z = latents().detach()
        fake, context, perceptual = losses(z)
    context, perceptual = context.view(n, k), perceptual.view(n, k)
    order = context.argsort(dim=1)  # ranked by the context loss
    top = order[:, : max(1, min(settings.top_k, k))]
    rows = torch.arange(n, device=device)[:, None]
    fake = fake.view(n, k, *fake.shape[1:])
    z = z.view(n, k, -1)
    return SearchResult(
        images=fake[rows[:, 0], order[:, 0]].cpu(),
        z=z[rows[:, 0], order[:, 0]].cpu(),
        context_loss=context[rows[:, 0], order[:, 0]].cpu(),
        perceptual_loss=perceptual[rows[:, 0], order[:, 0]].cpu(),
        candidates=fake[rows, top].cpu(),
        candidate_z=z[rows, top].cpu(),
        candidate_context_loss=context[rows, top].cpu(),
    )
