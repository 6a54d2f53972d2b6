"""Fréchet distance between face-descriptor statistics of two image sets.

The descriptor is dlib's ResNet face-recognition network (128-d), an independent pretrained face
model that installs offline with the package (dlib-bin and face_recognition_models, which
also find faces for the engine). Aligned 64×64 crops in CelebA framing are upscaled to the 150×150 chips
the network expects. Lower is better; two halves of a set of real faces score ≈ 0.006.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from inpaint.errors import UserError

CHIP_SIZE = 150
_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_model = None


def _descriptor_model():
    """Load dlib's face descriptor once (the models package's own __init__ needs pkg_resources,
    which new setuptools lacks, so its data folder is located without importing it)."""
    global _model
    if _model is None:
        spec = importlib.util.find_spec("face_recognition_models")
        try:
            import dlib
        except ImportError:
            spec = None
        if spec is None or spec.origin is None:
            raise UserError("face metrics need dlib: pip install dlib-bin face_recognition_models")
        _model = dlib.face_recognition_model_v1(str(Path(spec.origin).parent / "models" / _MODEL_FILE))
    return _model


def face_descriptors(images: torch.Tensor, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] (or uint8) → (N, 128) float64 descriptors."""
    model = _descriptor_model()
    if images.dtype != torch.uint8:
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    chips = images.permute(0, 2, 3, 1).contiguous().numpy()
    out = []
    for start in tqdm(
        range(0, len(chips), batch_size), desc="face descriptors", disable=not show_progress, leave=False
    ):
        batch = [
            np.ascontiguousarray(cv2.resize(chip, (CHIP_SIZE, CHIP_SIZE), interpolation=cv2.INTER_CUBIC))
            for chip in chips[start : start + batch_size]
        ]
        out.extend(np.asarray(d) for d in model.compute_face_descriptor(batch))
    return np.stack(out).astype(np.float64)


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½) between two (N, D) feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    distance = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return max(0.0, float(distance))  # rounding can leave a tiny negative for identical sets


RELIABLE_COUNT = 500  # below this many images a side, the distance's bias and spread grow quickly


def evaluation_warnings(reference: torch.Tensor, samples: int, template=None, probe: int = 48) -> list[str]:
    """What makes a Fréchet score of `samples` generated images against `reference` (N, C, S, S)
    uint8 untrustworthy: too few images, or references that are not faces (the descriptor only
    means something on faces; checked by the face detector on up to `probe` of them, where the
    model's face `template` puts a face)."""
    warnings = []
    fewest = min(len(reference), samples)
    if fewest < RELIABLE_COUNT:
        warnings.append(
            f"only {fewest} images on one side: the distance is biased upwards and varies from run to run "
            f"below about {RELIABLE_COUNT}; compare scores only at equal counts"
        )
    seen, checked = faces_seen(reference, template, probe)
    if seen < checked / 2:
        warnings.append(
            f"a face detector finds a face in only {seen} of {checked} reference images checked: "
            "the score compares face descriptors and means little for images that are not aligned faces"
        )
    return warnings


def faces_seen(images: torch.Tensor, template=None, probe: int = 48) -> tuple[int, int]:
    """(how many show a face, how many were checked): the face detector on up to `probe` of the
    (N, C, S, S) uint8 images, evenly spread, looking where the face `template` puts a face."""
    from inpaint.locate import shows_face

    picked = images[torch.linspace(0, len(images) - 1, min(probe, len(images))).long()]
    views = picked.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).contiguous().numpy()
    known = np.ones(views.shape[1:3], bool)
    return sum(shows_face(view[None], known, template) for view in views), len(views)


def are_faces(images: torch.Tensor, template=None) -> bool:
    """Whether a set of (N, C, S, S) uint8 images are faces: dlib is installed and its detector
    finds one in most of them."""
    from inpaint import faces

    if not faces.available():
        return False
    seen, checked = faces_seen(images, template)
    return seen >= checked / 2
