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
back into [-1, 1] after every step, or reparametrised as z = tanh(u)).

Every image gets several starts (restarts), all searched in one batch and ranked by their context
loss. With an inpainting encoder in the checkpoint (inpaint.encoder) the starts are E's prediction
and jittered copies of it, and a short refinement suffices; without one they are seeded random
draws from the prior and the search runs longer. Each start keeps the best latent it has met. An
image stops early once none of its starts has lowered its best context loss by `tolerance`
(relative) over the last `patience` iterations; its rows then leave the batch, so a stopped image
costs nothing more and its batch-mates carry on unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inpaint.checkpoint import Checkpoint
from inpaint.device import autocast, search_precision
from inpaint.errors import UserError

CONSTRAINTS = ("clip", "tanh")
INITS = ("auto", "encoder", "random")
# (iterations, restarts) when the settings leave them open, by where the search starts; chosen by
# benchmarks/inpaint_quality.py --sweep (README, "Choosing the search defaults").
ENCODER_START = (25, 1)
RANDOM_START = (300, 4)
# Scattered holes (80% of the pixels missing at random) leave known pixels next to every missing
# one: the context then pins the face down, and the search keeps improving it well past the 25
# iterations that suit compact holes, where longer searches only fit the surroundings better
# (sweep-encoder.json: random 25 → 100 iterations +0.7 dB in the hole; centre −0.1 dB). A hole is
# scattered when its missing pixels lie on average within SCATTERED_REACH pixels of a known one.
ENCODER_SCATTERED = 100
SCATTERED_REACH = 2.0


@dataclass(frozen=True)
class SearchSettings:
    iterations: int | None = None  # None: ENCODER_START or RANDOM_START, by where the search starts
    scattered_iterations: int | None = (
        None  # for scattered holes; None: ENCODER_SCATTERED from the encoder, else `iterations`
    )
    restarts: int | None = None  # starts per image, searched together and ranked by context loss
    lam: float = 0.003
    lr: float = 0.03
    seed: int = 0
    top_k: int = 4
    constraint: str = "clip"
    neighbourhood: int | str = "auto"  # side of W's window: "auto" scales it to each hole (≥ 7), or a fixed odd size
    weighting: str = "neighbourhood"  # or "uniform": every known pixel weighs 1 (projection of a whole image)
    precision: str = "auto"  # see inpaint.device.search_precision
    report_every: int = 25
    # "encoder": E's prediction and jittered copies; "random": prior draws; "auto": E when the checkpoint has one
    init: str = "auto"
    jitter: float = 0.2  # spread of the jittered starts around E's prediction, in units of the prior's scale
    patience: int = 15  # an image stops after this many iterations without improvement (0: never stops early)
    tolerance: float = 0.002  # the relative fall of the context loss that counts as an improvement


def resolve_settings(checkpoint: Checkpoint, settings: SearchSettings) -> SearchSettings:
    """The settings with `init` made concrete and open iteration and restart counts filled in."""
    if settings.init not in INITS:
        raise UserError(f"search start must be one of {', '.join(INITS)}, not {settings.init!r}")
    init = settings.init
    if init == "auto":
        init = "encoder" if checkpoint.encoder is not None else "random"
    if init == "encoder" and checkpoint.encoder is None:
        raise UserError(
            f"{checkpoint.path}: has no inpainting encoder to start the search from (train one with "
            "`inpaint train-encoder`, or start from random latents)"
        )
    iterations, restarts = ENCODER_START if init == "encoder" else RANDOM_START
    scattered = ENCODER_SCATTERED if init == "encoder" else iterations
    if settings.iterations is not None:  # a count the user chose holds for every hole
        iterations = scattered = settings.iterations
    return replace(
        settings,
        init=init,
        iterations=iterations,
        scattered_iterations=scattered if settings.scattered_iterations is None else settings.scattered_iterations,
        restarts=restarts if settings.restarts is None else settings.restarts,
    )


def hole_reach(known: torch.Tensor) -> np.ndarray | None:
    """For one mask (1, H, W), 1 = known: each missing pixel's distance to the nearest known pixel
    (a flat array), or None when nothing or everything is missing."""
    hole = (known[0] < 0.5).cpu().numpy()
    if not hole.any() or hole.all():
        return None
    return cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)[hole]


def scattered_holes(known: torch.Tensor) -> torch.Tensor:
    """(N,) bool: which masks (N, 1, H, W), 1 = known, are scattered: their missing pixels lie on
    average within SCATTERED_REACH pixels of a known one."""
    reaches = [hole_reach(mask) for mask in known]
    return torch.tensor([r is not None and float(r.mean()) <= SCATTERED_REACH for r in reaches], dtype=torch.bool)


@dataclass
class SearchProgress:
    iteration: int
    iterations: int
    context_loss: torch.Tensor  # (N,) best restart's context loss so far
    current: torch.Tensor  # (N, C, S, S) G(z) of each image's current best restart, model space
    restart_context_loss: torch.Tensor  # (N, k) every restart's best context loss so far
    restart_images: torch.Tensor  # (N, k, C, S, S) G(z) of every restart's best latent so far, model space
    active: int  # images still searching (the others stopped early)


@dataclass
class SearchResult:
    images: torch.Tensor  # (N, C, S, S) G(ẑ) of the best restart, model space
    z: torch.Tensor  # (N, latent_dim)
    context_loss: torch.Tensor  # (N,)
    perceptual_loss: torch.Tensor  # (N,) λ·log(1 − D(G(ẑ)))
    candidates: torch.Tensor  # (N, k, C, S, S), best first
    candidate_z: torch.Tensor  # (N, k, latent_dim)
    candidate_context_loss: torch.Tensor  # (N, k)
    iterations: torch.Tensor  # (N,) iterations each image ran before it stopped


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
    reach = hole_reach(known)
    return smallest if reach is None else max(smallest, 2 * math.ceil(float(reach.max())) + 1)


MAX_NEIGHBOURHOOD = 255  # wider than any model's image: a larger window only costs time


def parse_neighbourhood(text: str) -> int | str:
    """A window setting as typed by a user: "auto" or an odd number of pixels."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1 or int(text) % 2 == 0 or int(text) > MAX_NEIGHBOURHOOD:
        raise ValueError(f"must be auto or an odd number of pixels up to {MAX_NEIGHBOURHOOD}, not {text!r}")
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


def _encoder_init(
    checkpoint: Checkpoint, images: torch.Tensor, known: torch.Tensor, settings: SearchSettings
) -> torch.Tensor:
    """Starting latents around E's prediction: restart 0 is the prediction itself, restart r > 0
    adds `jitter` times the r-th seeded prior draw (the same offsets for every image, and the same
    first offsets whatever the number of restarts)."""
    predicted = checkpoint.encoder.predict(images, known).cpu()
    generator = torch.Generator().manual_seed(settings.seed)
    dim = checkpoint.config.latent_dim
    offsets = [torch.zeros(dim)] + [checkpoint.prior.sample(1, dim, generator)[0] for _ in range(settings.restarts - 1)]
    z0 = predicted[:, None] + settings.jitter * torch.stack(offsets)[None]
    if checkpoint.prior.kind == "uniform":
        z0 = z0.clamp(-1, 1)
    return z0.flatten(0, 1)


def search(
    checkpoint: Checkpoint,
    images: torch.Tensor,
    known: torch.Tensor,
    settings: SearchSettings = SearchSettings(),
    callback: Callable[[SearchProgress], bool | None] | None = None,
) -> SearchResult:
    """Inpaint a batch. images (N, C, S, S) in model space; known (N, 1, S, S), 1 = known pixel.

    `callback` gets a SearchProgress for the starting points (iteration 0) and then every
    `report_every` iterations; returning True stops the search there.
    The caller's networks are used as they are (eval mode, no gradients; see load_checkpoint)."""
    settings = resolve_settings(checkpoint, settings)
    generator, discriminator = checkpoint.generator, checkpoint.discriminator
    if discriminator is None:
        raise ValueError("the latent search needs the checkpoint's discriminator")
    if generator.training or discriminator.training:  # BatchNorm in training mode would mix batch-mates
        raise ValueError("the latent search needs G and D in eval mode")
    device = next(generator.parameters()).device
    precision = search_precision(device, settings.precision)
    n, k = images.shape[0], settings.restarts
    targets = images.to(device).repeat_interleave(k, 0).contiguous(memory_format=torch.channels_last)
    if settings.weighting == "uniform":
        weights = known.to(device).float().repeat_interleave(k, 0)
    else:
        weights = weights_for(known.to(device), settings.neighbourhood).repeat_interleave(k, 0)

    bounded = checkpoint.prior.kind == "uniform"
    if settings.init == "encoder":
        z0 = _encoder_init(checkpoint, images, known, settings).to(device)
    else:
        z0 = _prior_init(checkpoint, n, settings).to(device)
    tanh = bounded and settings.constraint == "tanh"
    variable = (torch.atanh(z0.clamp(-0.999, 0.999)) if tanh else z0.clone()).requires_grad_(True)
    # Adam is elementwise, so a row's steps depend only on its own gradients; rows of stopped
    # images get no gradient and are never read again (each row's best latent is kept apart).
    optimiser = torch.optim.Adam([variable], lr=settings.lr)

    def latents() -> torch.Tensor:
        return torch.tanh(variable) if tanh else variable

    def losses(z: torch.Tensor, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """G(z), context and perceptual losses of the given rows (None: all of them)."""
        with autocast(device, precision):
            fake = generator(z)
            logits = discriminator(fake.contiguous(memory_format=torch.channels_last))
        fake, logits = fake.float(), logits.float()
        w, y = (weights, targets) if rows is None else (weights[rows], targets[rows])
        context = (w * (fake - y).abs()).flatten(1).sum(1)
        perceptual = -settings.lam * F.softplus(logits)  # λ·log(1 − sigmoid(logits)), stable form
        return fake, context, perceptual

    best_z = z0.detach().clone()
    best_context = torch.full((n * k,), math.inf, device=device)
    # A row gains when its loss has fallen by `tolerance` since its last gain; an image whose rows
    # have not gained for `patience` iterations has fallen by less than that over those iterations.
    reference = torch.full((n * k,), math.inf, device=device)
    last_gain = torch.zeros(n * k, dtype=torch.long, device=device)
    active = torch.ones(n, dtype=torch.bool, device=device)
    # Each image's own iteration budget (scattered holes search longer); the loop runs to the largest.
    budget = torch.where(scattered_holes(known), settings.scattered_iterations, settings.iterations).to(device)
    settings = replace(settings, iterations=int(budget.max()) if n else settings.iterations)
    ran = budget.cpu().clone()

    def keep_best(z: torch.Tensor, context: torch.Tensor, rows: torch.Tensor | None, iteration: int) -> None:
        if rows is None:
            rows = every_row
        gained = context < reference[rows] * (1 - settings.tolerance)
        reference[rows[gained]] = context[gained]
        last_gain[rows[gained]] = iteration
        better = context < best_context[rows]
        best_context[rows[better]] = context[better]
        best_z[rows[better]] = z[better]

    def report(iteration: int) -> bool | None:
        with torch.no_grad(), autocast(device, precision):
            every = generator(best_z).float().view(n, k, *images.shape[1:]).cpu()
        per_image = best_context.view(n, k).cpu()
        current = every[torch.arange(n), per_image.argmin(1)]
        progress = SearchProgress(
            iteration, settings.iterations, per_image.min(1).values, current, per_image, every, int(active.sum())
        )
        return callback(progress)

    def active_rows() -> torch.Tensor | None:
        """The rows still searching; None while every image is (no copies then)."""
        return None if bool(active.all()) else active.repeat_interleave(k).nonzero().squeeze(1)

    every_row = torch.arange(n * k, device=device)
    if callback is not None:  # the starting points, before any step
        with torch.no_grad():
            keep_best(best_z, losses(best_z, None)[1], None, 0)
        if report(0):
            settings = replace(settings, iterations=0)
            ran[:] = 0
    for iteration in range(settings.iterations):
        rows = active_rows()
        z = latents() if rows is None else latents()[rows]
        _, context, perceptual = losses(z, rows)
        keep_best(z.detach(), context.detach(), rows, iteration)
        # A sum: each latent sees only its own loss. Only z's gradient is taken, so G's and D's
        # weights are never touched, whatever their requires_grad.
        (variable.grad,) = torch.autograd.grad((context + perceptual).sum(), [variable])
        optimiser.step()
        if bounded and settings.constraint == "clip":
            with torch.no_grad():
                variable.clamp_(-1, 1)  # in place: z stays in the prior's support
        finished = budget <= iteration + 1
        spent = active & finished
        if spent.any():  # the latents after an image's last step are scored before it leaves
            spent_rows = spent.repeat_interleave(k).nonzero().squeeze(1)
            with torch.no_grad():
                z_spent = latents()[spent_rows]
                keep_best(z_spent, losses(z_spent, spent_rows)[1], spent_rows, iteration + 1)
        if settings.patience:
            finished |= (iteration - last_gain.view(n, k).max(1).values) >= settings.patience
        ran[(active & finished).cpu()] = iteration + 1
        active &= ~finished
        stop = not active.any()
        if callback is not None and (
            (iteration + 1) % settings.report_every == 0 or iteration + 1 == settings.iterations or stop
        ):
            if report(iteration + 1):
                ran[active.cpu()] = iteration + 1
                break
        if stop:
            break

    with torch.no_grad():  # the latents after the last step have not been scored yet
        if active.any():
            rows = active_rows()
            z = latents() if rows is None else latents()[rows]
            keep_best(z, losses(z, rows)[1], rows, settings.iterations)
        fake, context, perceptual = losses(best_z, None)
    context, perceptual = context.view(n, k), perceptual.view(n, k)
    order = context.argsort(dim=1)  # ranked by the context loss
    top = order[:, : max(1, min(settings.top_k, k))]
    image_rows = torch.arange(n, device=device)[:, None]
    fake = fake.view(n, k, *fake.shape[1:])
    z = best_z.view(n, k, -1)
    return SearchResult(
        images=fake[image_rows[:, 0], order[:, 0]].cpu(),
        z=z[image_rows[:, 0], order[:, 0]].cpu(),
        context_loss=context[image_rows[:, 0], order[:, 0]].cpu(),
        perceptual_loss=perceptual[image_rows[:, 0], order[:, 0]].cpu(),
        candidates=fake[image_rows, top].cpu(),
        candidate_z=z[image_rows, top].cpu(),
        candidate_context_loss=context[image_rows, top].cpu(),
        iterations=ran,
    )
