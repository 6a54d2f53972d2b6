"""The shipped default face checkpoint: its metadata, and samples whose statistics are face-like."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpaint.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from inpaint.models import Generator
from inpaint.sampling import generate, latents_for_seed


@pytest.fixture(scope="module")
def default():
    return load_checkpoint(DEFAULT_CHECKPOINT)


def face_statistics(pictures: torch.Tensor) -> dict[str, float]:
    """Numbers that separate aligned faces from flat images and from noise; pictures in [0, 1]."""
    n = pictures.shape[0]
    flat = pictures.flatten(1)
    mirrored = pictures.flip(-1).flatten(1)
    centred, mirrored = flat - flat.mean(1, keepdim=True), mirrored - mirrored.mean(1, keepdim=True)
    mirror_corr = (centred * mirrored).sum(1) / (centred.norm(dim=1) * mirrored.norm(dim=1) + 1e-8)
    right = pictures[..., 1:].flatten(1)
    left = pictures[..., :-1].flatten(1)
    neighbour_corr = torch.stack([torch.corrcoef(torch.stack([left[i], right[i]]))[0, 1] for i in range(n)])
    size = pictures.shape[-1]
    centre = pictures[:, :, size * 3 // 8 : size * 5 // 8, size * 3 // 8 : size * 5 // 8]
    return {
        "within_image_std": float(flat.std(1).mean()),  # not a flat colour
        "mirror_correlation": float(mirror_corr.nan_to_num(0).mean()),  # aligned faces are near-symmetric
        "neighbour_correlation": float(neighbour_corr.nan_to_num(0).mean()),  # smooth, unlike noise
        "spread_across_samples": float(pictures.std(0).mean()),  # different faces, not one
        "centre_red_minus_blue": float((centre[:, 0] - centre[:, 2]).mean()),  # skin tones in the middle
    }


FACE_LIKE = {
    "within_image_std": 0.12,
    "mirror_correlation": 0.15,
    "neighbour_correlation": 0.8,
    "spread_across_samples": 0.15,
    "centre_red_minus_blue": 0.05,
}


def failures(statistics: dict[str, float]) -> list[str]:
    return [f"{name}={statistics[name]:.3f} < {low}" for name, low in FACE_LIKE.items() if not statistics[name] >= low]


def test_metadata_describes_a_celeba_face_model(default):
    assert default.config.image_size == 64 and default.config.channels == 3
    assert default.metadata.get("content") == "faces"
    training = default.training
    assert training["data_name"] == "celeba"
    assert training["images"] == 13183 and training["validation_images"] == 500
    assert training["steps"] > 1000 and training["epochs"] > 5
    assert 0 < training["frechet"] < 0.2
    assert default.discriminator is not None


def test_samples_are_face_like(default):
    pictures = generate(default, latents_for_seed(default, 64, seed=0))
    assert pictures.shape == (64, 3, 64, 64)
    assert not failures(face_statistics(pictures))


def test_the_statistics_reject_an_untrained_generator_and_noise(default):
    torch.manual_seed(0)
    untrained = Generator(default.config).eval()
    with torch.no_grad():
        flat = default.to_pixels(untrained(latents_for_seed(default, 64, seed=0)))
    assert failures(face_statistics(flat))
    assert failures(face_statistics(torch.rand(64, 3, 64, 64, generator=torch.Generator().manual_seed(0))))


def test_the_default_carries_an_encoder_that_starts_the_search_near_held_out_faces(default):
    from pathlib import Path

    from PIL import Image

    from inpaint.masks import make_mask
    from inpaint.search import SearchSettings, search

    assert default.encoder is not None and default.metadata["format_version"] == 2
    examples = sorted((Path(__file__).resolve().parent.parent / "examples" / "faces").glob("*.jpg"))[
        :6
    ]  # validation faces
    faces = torch.stack(
        [torch.from_numpy(np.array(Image.open(p).convert("RGB").resize((64, 64)))).permute(2, 0, 1) for p in examples]
    )
    images = default.from_pixels(faces.float() / 255)
    for kind in ("centre", "half"):
        known = torch.from_numpy(~make_mask(kind, 64, 64)).float()[None, None].expand(len(faces), 1, 64, 64)
        start = SearchSettings(iterations=0, restarts=1)
        encoder = search(default, images, known, SearchSettings(**{**start.__dict__, "init": "encoder"}))
        random = search(default, images, known, SearchSettings(**{**start.__dict__, "init": "random"}))
        assert (encoder.context_loss < random.context_loss).all(), kind


@pytest.mark.parametrize("precision", ["fp32", "auto"])  # auto: bf16 on a CPU with native bf16
def test_a_search_gives_the_same_bits_alone_in_any_batch_and_on_any_thread_count(default, precision):
    """What lets `inpaint batch` split its images among processes (and resume) with outputs identical
    to one uninterrupted run: on the CPU an image's search, from the encoder's start to the end, is
    the same bits whatever shares its batch and however many threads run it."""
    from inpaint.masks import make_mask
    from inpaint.search import SearchSettings, search

    generator = torch.Generator().manual_seed(3)
    images = torch.rand(7, 3, 64, 64, generator=generator) * 2 - 1
    known = torch.stack([torch.from_numpy(~make_mask(kind, 64, 64)).float()[None] for kind in ["centre", "half"] * 3])
    known = torch.cat([known, known[:1]])  # 7 images: odd sizes are where blocked kernels differ
    settings = SearchSettings(restarts=1, patience=5, precision=precision)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        together = search(default, images, known, settings)
        three = search(default, images[2:5], known[2:5], settings)
        torch.set_num_threads(1)
        alone = [search(default, images[i : i + 1], known[i : i + 1], settings) for i in (0, 3, 6)]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(three.z, together.z[2:5])
    for result, i in zip(alone, (0, 3, 6)):
        assert torch.equal(result.z[0], together.z[i]), f"image {i} alone on one thread"
        assert torch.equal(result.images[0], together.images[i])
