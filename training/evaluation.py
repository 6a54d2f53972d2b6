"""Scoring a generator during training against the held-out images.

Every set gets the sliced Wasserstein distance on Laplacian-pyramid patches (inpaint.swd), which
needs no downloaded network and means the same for any content. A set of faces (dlib's detector
finds a face in most held-out images) also gets the Fréchet distance of dlib's face descriptors,
which then picks the best snapshot, as it always has for face models; for any other set the SWD
picks it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inpaint.face_metrics import are_faces, face_descriptors, frechet_distance
from inpaint.latent import LatentPrior
from inpaint.models import Generator
from inpaint.sampling import render
from inpaint.swd import sliced_wasserstein
from inpaint_training.data import decode_images


class Evaluator:
    """The held-out images (and, for faces, their descriptors) are read once; each score samples G
    afresh from the same fixed latents, so scores along a run differ only by the generator."""

    def __init__(
        self, files: list[Path], image_size: int, channels: int, prior: LatentPrior, samples: int, seed: int, warn=print
    ) -> None:
        self.reference, _, _ = decode_images(files, image_size, channels, show_progress=False, warn=warn)
        self.count = len(self.reference)
        self.faces = are_faces(self.reference)
        self.face_reference = face_descriptors(self.reference) if self.faces else None
        self.prior, self.samples, self.seed = prior, samples, seed

    @property
    def key(self) -> str:
        """The score that picks the best snapshot (lower is better)."""
        return "frechet" if self.faces else "swd"

    @property
    def description(self) -> str:
        if self.faces:
            return "Fréchet face distance (picks the best snapshot) and sliced Wasserstein distance"
        return "sliced Wasserstein distance (the held-out images are not faces: no face score)"

    @torch.no_grad()
    def score(self, generator: Generator) -> dict[str, float]:
        """{"swd": …, and for faces "frechet": …} of G's samples against the held-out images."""
        z = self.prior.sample(self.samples, generator.config.latent_dim, torch.Generator().manual_seed(self.seed + 1))
        pictures = render(generator, z, batch_size=250)
        scores = {"swd": sliced_wasserstein(pictures, self.reference, seed=self.seed)["swd"]}
        if self.face_reference is not None:
            scores["frechet"] = round(frechet_distance(face_descriptors(pictures), self.face_reference), 6)
        return scores
