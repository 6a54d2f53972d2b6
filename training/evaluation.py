"""Scoring a generator during training: Fréchet distance of face descriptors against held-out faces."""

from __future__ import annotations

from pathlib import Path

import torch

from inpaint.face_metrics import face_descriptors, frechet_distance
from inpaint.latent import LatentPrior
from inpaint.models import Generator
from inpaint.sampling import render
from inpaint_training.data import decode_images


class FaceFrechetEvaluator:
    """Descriptors of the validation faces are computed once; each score samples G afresh from
    the same fixed latents, so scores along a run differ only by the generator."""

    def __init__(
        self, files: list[Path], image_size: int, channels: int, prior: LatentPrior, samples: int, seed: int, warn=print
    ) -> None:
        images, _, _ = decode_images(files, image_size, channels, show_progress=False, warn=warn)
        self.reference = face_descriptors(images)
        self.count = len(images)
        self.prior, self.samples, self.seed = prior, samples, seed

    @torch.no_grad()
    def score(self, generator: Generator) -> float:
        z = self.prior.sample(self.samples, generator.config.latent_dim, torch.Generator().manual_seed(self.seed + 1))
        return frechet_distance(face_descriptors(render(generator, z, batch_size=250)), self.reference)
