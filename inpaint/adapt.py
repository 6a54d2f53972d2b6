"""Per-photo generator adaptation: after the latent search, each photo gets its own copy of the
generator's weights, tuned with its latent to the photo's known pixels, so that the fill is drawn
by a generator that can show that person (Bau et al.'s GAN Paint, Pan et al.'s Deep Generative
Prior, Roich et al.'s Pivotal Tuning). The shipped generator never changes: the copies are
per-photo tensors that `Generator.forward_with` draws with, all photos in one batch.

For each photo, with its search latent ẑ as the pivot, the copy θ and the latent z minimise

    ‖M ⊙ (G_θ(z) − y)‖₁  +  λ · log(1 − D(G_θ(z)))  +  α · Σ_layers ‖θ − θ₀‖² / ‖θ₀‖²

the L1 distance on the known pixels, the discriminator's opinion (so the hole stays a face D
believes), and a pull towards the shipped weights θ₀ (so the copy changes only as far as the
known pixels ask: the hole is not smeared with the surroundings). Losses are summed per photo and
Adam is elementwise, so a photo's result never depends on its batch-mates (on the CPU to the bit:
the batch is padded as device.batch_invariant_rows says). Every step keeps its
shapes and reads nothing back to the host (progress is read only at reporting points), so a GPU
runs it without waiting on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from inpaint.checkpoint import Checkpoint
from inpaint.device import batch_invariant_rows, pad_rows
from inpaint.errors import UserError
from inpaint.search import graphed
from inpaint.validate import check_number

# Fills: off by default. On real photographs the recipe below gained +0.24 dB (eyes) and +0.04 dB
# (mouths) and left dlib's same-person distance where it was; on faces the generator knows (CelebA
# faces placed into photos) it raised the face Fréchet distance by a third (README, "Real
# photographs"). `--adapt-steps 40` turns it on.
DEFAULT_STEPS = 0
SUGGESTED_STEPS = 40  # the steps the recipe below was measured with
MAX_STEPS = 5000  # also the command line's bound (inpaint.cli.MAX_ADAPT_STEPS)
# Which of G's tensors get a per-photo copy: every weight; the last two convolutions (transposed, or
# after a resize) and the BatchNorm between them (the finest scales); or every BatchNorm's scales and shifts.
TUNED = ("all", "late", "norms")


@dataclass(frozen=True)
class AdaptSettings:
    """How to adapt the generator to each photo after the search. `steps`: optimiser steps
    (0: off; None: DEFAULT_STEPS for a face model, off for other models)."""

    steps: int | None = None
    lr: float = 1e-2  # the copy's weights
    latent_lr: float = 0.01  # the latent
    anchor: float = 0.0  # α: the pull towards the shipped weights
    lam: float | None = None  # λ: the discriminator's weight (None: the search's)
    tuned: str = "norms"
    report_every: int = 25

    def __post_init__(self) -> None:
        if self.steps is not None:
            check_number(self.steps, "adaptation steps", 0, MAX_STEPS, integer=True)
        check_number(self.lr, "adaptation learning rate", 0, 1)
        check_number(self.latent_lr, "adaptation latent learning rate", 0, 1)
        check_number(self.anchor, "adaptation anchor", 0, 1e6)
        if self.tuned not in TUNED:
            raise UserError(f"adapted tensors must be one of {', '.join(TUNED)}, not {self.tuned!r}")


def resolve_adapt(checkpoint: Checkpoint, settings: AdaptSettings, default_steps: int = DEFAULT_STEPS) -> AdaptSettings:
    """The settings with the step count made concrete: `default_steps` for face models, off for others."""
    if settings.steps is not None:
        return settings
    steps = default_steps if checkpoint.metadata.get("content") == "faces" else 0
    return replace(settings, steps=steps)


@dataclass
class AdaptProgress:
    step: int
    steps: int
    loss: torch.Tensor  # (N,) each photo's known-pixel L1
    current: torch.Tensor  # (N, C, S, S) the adapted G(z), model space


@dataclass
class Adapted:
    """Photos' adapted generators: each photo's latent and its copy of the tuned tensors."""

    z: torch.Tensor  # (N, latent_dim)
    weights: dict[str, torch.Tensor]  # name → (N, *shape), G's tensors as adapted for each photo
    images: torch.Tensor  # (N, C, S, S) G_θ(z), model space
    loss: torch.Tensor  # (N,) the known-pixel L1 at the end

    def deltas(self, checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
        """Each photo's change to the shipped tensors (name → (N, *shape)), on the CPU."""
        shipped = dict(checkpoint.generator.named_parameters())
        return {name: (value - shipped[name].to(value.device)).cpu() for name, value in self.weights.items()}


def tuned_names(checkpoint: Checkpoint, tuned: str) -> list[str]:
    """The generator's tensors that get a per-photo copy."""
    generator = checkpoint.generator
    names = [name for name, _ in generator.named_parameters()]
    if tuned == "norms":
        return [name for name in names if generator.get_parameter(name).dim() == 1]
    if tuned == "late":
        kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
        convolutions = [i for i, layer in enumerate(generator.main) if isinstance(layer, kinds)]
        return [name for name in names if int(name.split(".")[1]) >= convolutions[-2]]
    return names


class _Adaptation:
    """The state of one adaptation, all on the device: each photo's copy of the tuned tensors and its
    latent, with their optimiser. `step` reads nothing back to the host and keeps its tensors in
    place, so CUDA can record it once as a graph and replay it (inpaint.search.graphed)."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        images: torch.Tensor,
        known: torch.Tensor,
        z: torch.Tensor,
        settings: AdaptSettings,
        lam: float,
        graphable: bool | None = None,
    ) -> None:
        """`graphable`: the step fit for a CUDA graph (fused Adam: no host reads); None: on CUDA.
        Elsewhere the plain Adam, which the fused CPU kernel is not: it rounds the elements past its
        last full vector differently, so a photo's steps would depend on its batch's size."""
        self.generator, self.discriminator = checkpoint.generator, checkpoint.discriminator
        self.settings, self.lam = settings, lam
        device = self.device = next(self.generator.parameters()).device
        self.count = len(images)  # the photos; the rows past them pad the batch (batch_invariant_rows)
        n = batch_invariant_rows(self.count, device)
        images, known, z = pad_rows(images, n), pad_rows(known, n), pad_rows(z, n)
        self.targets, self.known = images.to(device), known.to(device).float()
        names = tuned_names(checkpoint, settings.tuned)
        self.shipped = {name: self.generator.get_parameter(name).detach() for name in names}
        self.weights = {name: v.expand(n, *v.shape).clone().requires_grad_(True) for name, v in self.shipped.items()}
        self.scale = {name: v.square().sum().clamp_min(1e-12) for name, v in self.shipped.items()}
        # A latent learning rate of 0 keeps the search's latent as a fixed pivot (as Pivotal Tuning
        # does): the backward pass then stops at the first tuned layer.
        self.latent = z.to(device).clone().requires_grad_(settings.latent_lr > 0)
        groups = [{"params": list(self.weights.values()), "lr": settings.lr}]
        if settings.latent_lr > 0:
            groups.append({"params": [self.latent], "lr": settings.latent_lr})
        self.tensors = [tensor for group in groups for tensor in group["params"]]
        graphable = device.type == "cuda" if graphable is None else graphable
        self.optimiser = torch.optim.Adam(groups, fused=True if graphable else None)
        self.bounded = checkpoint.prior.kind == "uniform"

    def losses(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The adapted G(z), each photo's known-pixel L1 and its whole loss (N,)."""
        fake = self.generator.forward_with(self.latent, self.weights)
        reconstruction = (self.known * (fake - self.targets)).abs().flatten(1).sum(1)
        logits = self.discriminator(fake.contiguous(memory_format=torch.channels_last)).float()
        total = reconstruction - self.lam * F.softplus(logits)  # λ·log(1 − sigmoid(logits)), stable form
        if self.settings.anchor:
            for name, weight in self.weights.items():
                pull = (weight - self.shipped[name]).square().flatten(1).sum(1) / self.scale[name]
                total = total + self.settings.anchor * pull
        return fake, reconstruction, total

    def step(self) -> None:
        """One Adam step of every photo's copy and latent."""
        _, _, total = self.losses()
        # A sum: each photo sees only its own loss. Only these tensors' gradients are taken, so G's
        # and D's own weights are never touched.
        for tensor, gradient in zip(self.tensors, torch.autograd.grad(total.sum(), self.tensors)):
            # cuDNN may hand back a weight's gradient in another memory layout; fused Adam needs
            # the parameter's own strides.
            tensor.grad = gradient if gradient.stride() == tensor.stride() else torch.empty_like(tensor).copy_(gradient)
        self.optimiser.step()
        if self.bounded and self.latent.requires_grad:
            with torch.no_grad():
                self.latent.clamp_(-1, 1)  # in place: z stays in the prior's support

    def progress(self, step: int, steps: int) -> AdaptProgress:
        """Where the adaptation stands (reads the state back to the host); the photos' rows only."""
        with torch.no_grad():
            fake, reconstruction, _ = self.losses()
        count = self.count
        return AdaptProgress(step, steps, reconstruction[:count].cpu(), fake[:count].cpu())


def adapt(
    checkpoint: Checkpoint,
    images: torch.Tensor,
    known: torch.Tensor,
    z: torch.Tensor,
    settings: AdaptSettings,
    lam: float = 0.003,
    callback: Callable[[AdaptProgress], bool | None] | None = None,
) -> Adapted:
    """Adapt a copy of G to each photo. images (N, C, S, S) model space; known (N, 1, S, S), 1 =
    known pixel; z (N, latent_dim) the search's latents. `callback` gets an AdaptProgress before
    the first step, every `report_every` steps and at the end; returning True stops there. `lam` is
    the search's λ, used unless the settings give their own."""
    if checkpoint.discriminator is None:
        raise ValueError("adaptation needs the checkpoint's discriminator")
    steps = settings.steps or 0
    run = _Adaptation(checkpoint, images, known, z, settings, settings.lam if settings.lam is not None else lam)
    done = 0
    with graphed(run.step, run.optimiser, run.device, steps) as step:
        for done in range(steps):
            if callback is not None and done % settings.report_every == 0 and callback(run.progress(done, steps)):
                break
            step()
        else:
            done = steps
    final = run.progress(done, steps)
    if callback is not None:
        callback(final)
    count = run.count
    weights = {name: value.detach()[:count] for name, value in run.weights.items()}
    return Adapted(run.latent.detach()[:count], weights, final.current, final.loss)
