"""The GAN losses of one training step, apart from the loop that schedules steps (as stylegan2-ada
keeps loss.py apart from its training loop).

D: the logistic loss in softplus form, real → 1 and fake → 0, with one-sided label smoothing (the
real target moves to 1 - s). G: the non-saturating loss softplus(-D(G(z))). With a DiffAugment
policy, real and fake images pass through the same kind of random augmentation before D.

One step updates D first, then G against the updated D (D frozen, its DDP wrapper bypassed so it
gets no gradients); under fp16 one GradScaler scales both losses and updates once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inpaint.device import autocast
from inpaint_training.augment import diff_augment


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    """D's logistic loss in softplus form; one-sided smoothing moves the real target to 1 - smoothing."""
    return (
        (1 - smoothing) * F.softplus(-real_logits).mean()
        + smoothing * F.softplus(real_logits).mean()
        + F.softplus(fake_logits).mean()
    )


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: softplus(-D(G(z))), averaged over the batch."""
    return F.softplus(-fake_logits).mean()


def augmenter(policy: tuple[str, ...], generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """The DiffAugment of one step (all its calls draw from `generator`, in order), or the identity."""
    if not policy:
        return lambda x: x
    return lambda x: diff_augment(x, policy, generator)


@dataclass
class StepLosses:
    """What one step's losses say, as 0-d tensors on the device (read back only when logged)."""

    loss_d: torch.Tensor  # D's loss
    loss_g: torch.Tensor  # G's loss
    d_real: torch.Tensor  # D's logits on the real batch (float32, one per image)
    d_fake: torch.Tensor  # D's logits on the fake batch, before D's update

    def as_sums(self) -> torch.Tensor:
        """The values LossTotals averages, in its field order, as float64 on the device."""
        return torch.stack(
            [
                self.loss_d.double(),
                self.loss_g.double(),
                torch.sigmoid(self.d_real).mean().double(),
                torch.sigmoid(self.d_fake).mean().double(),
                (~(torch.isfinite(self.loss_d) & torch.isfinite(self.loss_g))).double(),
            ]
        )


@dataclass
class LossTotals:
    """Sums over steps (and ranks) of the logged values: the losses, D's mean sigmoid output on real
    and fake images, and the number of steps whose losses were not finite."""

    loss_d: float
    loss_g: float
    d_real: float
    d_fake: float
    non_finite: float

    @classmethod
    def from_tensor(cls, sums: torch.Tensor) -> LossTotals:
        """Read back a vector of sums laid out as StepLosses.as_sums lays out one step."""
        return cls(*(float(value) for value in sums))

    def means(self, steps: int) -> dict[str, float]:
        """The per-step means as a stats line shows them (losses to 5 places, D's outputs to 4)."""
        return {
            "loss_d": round(self.loss_d / steps, 5),
            "loss_g": round(self.loss_g / steps, 5),
            "d_real": round(self.d_real / steps, 4),
            "d_fake": round(self.d_fake / steps, 4),
        }


class GANLoss:
    """The networks, optimisers and loss scaling of a GAN, and one training step of both players.

    `g_train` and `d_train` are what the step calls forward (the DDP wrappers when distributed);
    `discriminator` is the bare D, used for G's loss so that D gets no gradients there."""

    def __init__(
        self,
        g_train: torch.nn.Module,
        d_train: torch.nn.Module,
        discriminator: torch.nn.Module,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        device: torch.device,
        precision: str,
        smoothing: float,
        policy: tuple[str, ...],
    ) -> None:
        self.g_train, self.d_train, self.discriminator = g_train, d_train, discriminator
        self.opt_g, self.opt_d, self.scaler = opt_g, opt_d, scaler
        self.device, self.precision = device, precision
        self.smoothing, self.policy = smoothing, policy

    def step(self, real: torch.Tensor, z: torch.Tensor, augment_rng: torch.Generator) -> StepLosses:
        """Update D on (real, G(z)), then G against the updated D; returns the step's losses."""
        augment = augmenter(self.policy, augment_rng)
        with autocast(self.device, self.precision):
            fake = self.g_train(z)
            d_real = self.d_train(augment(real)).float()
            d_fake = self.d_train(augment(fake.detach())).float()
            loss_d = discriminator_loss(d_real, d_fake, self.smoothing)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        self.discriminator.requires_grad_(False)
        with autocast(self.device, self.precision):
            loss_g = generator_loss(self.discriminator(augment(fake)).float())
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.discriminator.requires_grad_(True)
        return StepLosses(loss_d, loss_g, d_real, d_fake)
