"""The shipped default face checkpoint: present, well described, and drawing face-like images."""

from __future__ import annotations

import pytest
import torch

from inpaint.checkpoint import DEFAULT_CHECKPOINT, FORMAT_VERSION, checkpoint_or_default, load_checkpoint, read_metadata
from inpaint.sampling import generate, latents_for_seed


@pytest.fixture(scope="module")
def checkpoint():
    return load_checkpoint(checkpoint_or_default(None))


@pytest.fixture(scope="module")
def samples(checkpoint) -> torch.Tensor:
    return generate(checkpoint, latents_for_seed(checkpoint, 64, seed=0))


def test_metadata_describes_the_model_and_its_training():
    metadata = read_metadata(DEFAULT_CHECKPOINT)
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["model"] == {"image_size": 64, "channels": 3, "latent_dim": 100, "g_width": 64, "d_width": 64}
    assert metadata["latent_prior"] == {"kind": "uniform"}
    training = metadata["training"]
    assert training["data_name"] == "celeba" and training["images"] == 13_183 and training["validation_images"] == 500
    assert training["steps"] > 1000 and training["wall_seconds"] > 600
    assert training["training_command"].startswith("inpaint train --data")
    assert 0 < training["frechet"] < 0.2


def test_both_networks_are_shipped(checkpoint):
    assert checkpoint.discriminator is not None
    assert sum(p.numel() for p in checkpoint.generator.parameters()) == 3_576_704


def _mirror_correlation(images: torch.Tensor) -> float:
    a = images.flatten(1) - images.flatten(1).mean(1, keepdim=True)
    b = images.flip(-1).flatten(1) - images.flip(-1).flatten(1).mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean().item()


def test_samples_are_face_like_not_constant_not_noise(samples):
    # Measured on 64 samples: an untrained G gives std 0.001, mirror correlation −0.19, spread
    # 0.001; uniform noise gives mirror correlation 0.00 and no warm centre; real faces give
    # std 0.26, mirror correlation 0.46, spread 0.35, centre red − blue 0.27.
    assert samples.shape == (64, 3, 64, 64)
    assert samples.flatten(1).std(1).mean() > 0.12  # not constant
    assert _mirror_correlation(samples) > 0.15  # left-right symmetric like faces, unlike noise
    spread = torch.cdist(samples.flatten(1), samples.flatten(1)).mean() / samples[0].numel() ** 0.5
    assert spread > 0.15  # varied, not one face 64 times
    centre = samples[:, :, 20:44, 20:44]
    assert centre[:, 0].mean() - centre[:, 2].mean() > 0.05  # skin tones: more red than blue


def test_samples_are_closer_to_real_faces_than_noise_for_a_face_network(samples):
    pytest.importorskip("dlib")
    import numpy as np
    from pathlib import Path

    from inpaint.face_metrics import face_descriptors, frechet_distance
    from training.data import load_image_folder

    real = face_descriptors(load_image_folder(Path(__file__).resolve().parent.parent / "examples" / "faces", 64, 3, show_progress=False).images)
    fake = face_descriptors(samples[:16])
    noise = face_descriptors(torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert frechet_distance(fake, real) < frechet_distance(noise, real)
    assert np.linalg.norm(fake.mean(0) - real.mean(0)) < np.linalg.norm(noise.mean(0) - real.mean(0))
