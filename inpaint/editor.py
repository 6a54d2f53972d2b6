"""Editing in latent space: samples from seeds, concept arithmetic, interpolation, projection.

Arithmetic on single samples is unstable, so a concept is the mean latent of its exemplars
(Radford et al.). Interpolation uses slerp by default: in 100 dimensions the linear midpoint of two
prior samples has a much smaller norm than a sample and leaves the prior's shell (White, 2016).
Projection finds the z whose G(z) best matches a photo, by the inpainting search with every pixel
known and uniform weights, then (by default, for a face model) adapts a copy of G to the photo
(inpaint.adapt), so that the projection is that person. A projected photo is then a latent and its
generator change ("deltas"): edits carry the change along, interpolation fading it linearly
(from the photo's generator to the shipped one, or to another photo's), arithmetic adding and
subtracting it as it does the latents; a seed's change is zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inpaint.adapt import AdaptSettings, adapt, resolve_adapt
from inpaint.checkpoint import Checkpoint
from inpaint.engine import as_rgb, face_template, model_pixels, model_view, uses_faces
from inpaint.errors import UserError
from inpaint.fileio import atomic_path
from inpaint.framing import Framing
from inpaint.locate import photo_framing
from inpaint.sampling import generate, latents_for_seed
from inpaint.search import SearchSettings, search
from inpaint.validate import MAX_COUNT, SEED_MAX, check_number

INTERPOLATIONS = ("slerp", "lerp")
# A projection is adapted harder than a fill: an edit is made once and must start from the person
# (every weight of G tuned, 100 steps: the astronaut's 64×64 view comes back at 38 dB against 23
# with a fill's 40 steps of BatchNorm scales), while a fill must stay quick and its hole a face G
# believes (README, "Real photographs").
PROJECTION_ADAPT = AdaptSettings(tuned="all", lr=2e-4)
PROJECTION_STEPS = 100  # for a face model; other models: off
Deltas = dict[str, torch.Tensor]  # a generator's change: tensor name → (N, *shape), one row per latent


def latents_for_seeds(checkpoint: Checkpoint, seeds: list[int]) -> torch.Tensor:
    """One latent per seed: seed s always gives the same face (the first sample of `inpaint sample --seed s`)."""
    return torch.cat([latents_for_seed(checkpoint, 1, seed) for seed in seeds])


def parse_seeds(text: str | None, source: str = "seeds", allow_empty: bool = False, most: int = MAX_COUNT) -> list[int]:
    """Seeds as typed: "3, 5, 8" (or separated by ";"; a `seed:` prefix is allowed), each in numpy's
    range, at most `most` of them; at least one unless `allow_empty`."""
    parts = [p.strip() for p in str(text or "").strip().removeprefix("seed:").replace(";", ",").split(",") if p.strip()]
    if not parts and not allow_empty:
        raise UserError(f"{source}: no seeds given; write them as 3,5,8")
    if len(parts) > most:
        raise UserError(f"{source}: {len(parts):,} seeds; at most {most:,}")
    return [int(check_number(p, f"{source}: each seed", 0, SEED_MAX, integer=True)) for p in parts]


def load_latents(path: str | Path, latent_dim: int) -> torch.Tensor:
    """(N, latent_dim) latents from a .npy file (as `inpaint edit` writes them): numbers, not
    empty, finite, a whole number of latents of the checkpoint's size."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        why = "not a NumPy .npy array file" if "pickle" in str(error) or "magic" in str(error) else str(error)
        raise UserError(f"{path}: not a latent file ({why})") from None
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise UserError(f"{path}: latents must be numbers, not {getattr(array, 'dtype', type(array))}")
    if array.size == 0 or array.size % latent_dim:
        raise UserError(f"{path}: holds {array.size} numbers, not a whole number of latents of size {latent_dim}")
    if array.size > MAX_COUNT * latent_dim:
        raise UserError(f"{path}: holds {array.size // latent_dim:,} latents; at most {MAX_COUNT:,}")
    if not np.isfinite(array).all():
        raise UserError(f"{path}: latents contain NaN or infinite values")
    return torch.from_numpy(array.astype(np.float32)).reshape(-1, latent_dim)


def latents_from_spec(
    checkpoint: Checkpoint, spec: str, adapting: AdaptSettings = PROJECTION_ADAPT
) -> tuple[torch.Tensor, "Projection | None"]:
    """Latents named by a spec: `seed:3,5,8` (samples by seed), a .npy file of latents, or an
    image file, projected (its Projection is returned too). (N, D) latents."""
    if spec.startswith("seed:"):
        return latents_for_seeds(checkpoint, parse_seeds(spec, spec)), None
    if Path(spec).suffix.lower() == ".npy":
        return load_latents(spec, checkpoint.config.latent_dim), None
    from inpaint.images import open_image

    projection = project(checkpoint, open_image(spec), adapting=adapting)
    return projection.z[None], projection


def keep_in_support(checkpoint: Checkpoint, z: torch.Tensor) -> torch.Tensor:
    return z.clamp(-1, 1) if checkpoint.prior.kind == "uniform" else z


def concept(latents: torch.Tensor) -> torch.Tensor:
    """A concept: the mean latent of its exemplars (N, D) → (D,)."""
    if latents.ndim != 2 or len(latents) == 0:
        raise ValueError("a concept needs at least one exemplar latent")
    return latents.mean(0)


def arithmetic(
    checkpoint: Checkpoint,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    variations: int = 0,
    noise: float = 0.25,
    seed: int = 0,
) -> torch.Tensor:
    """A − B + C over concepts (each (N, D) exemplars), plus `variations` noisy neighbours.
    Returns (1 + variations, D): the result first."""
    z = concept(a) - concept(b) + concept(c)
    generator = torch.Generator().manual_seed(seed)
    around = z + noise * torch.randn(variations, z.numel(), generator=generator)
    return keep_in_support(checkpoint, torch.cat([z[None], around]))


def equation(
    checkpoint: Checkpoint, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, result: torch.Tensor
) -> torch.Tensor:
    """The latents of the equation picture A, B, C, A − B + C (4, D): each concept's mean latent
    (kept in the prior's support) and the result, from concepts' exemplars (N, D) and
    `arithmetic`'s output."""
    concepts = [keep_in_support(checkpoint, concept(x)) for x in (a, b, c)]
    return torch.stack([*concepts, result[0]])


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation for t in [0, 1] (T,) → (T, D); linear when the two are nearly parallel."""
    n0, n1 = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.arccos((n0 * n1).sum().clamp(-1, 1))
    t = t[:, None]
    if omega.abs() < 1e-4:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def interpolate(
    checkpoint: Checkpoint, z0: torch.Tensor, z1: torch.Tensor, frames: int, method: str = "slerp"
) -> torch.Tensor:
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}")
    if frames < 2:
        raise ValueError("an interpolation needs at least 2 frames")
    t = torch.linspace(0, 1, frames)
    path = slerp(z0, z1, t) if method == "slerp" else (1 - t[:, None]) * z0 + t[:, None] * z1
    return keep_in_support(checkpoint, path)


def save_gif(
    frames: list[Image.Image], path: str | Path, seconds_per_frame: float = 0.1, scale: int = 2, bounce: bool = True
) -> Path:
    """An animated GIF (looping; forth and back when `bounce`), enlarged `scale` times."""
    frames = [f.resize((f.width * scale, f.height * scale), Image.Resampling.NEAREST).convert("RGB") for f in frames]
    if bounce:
        frames = frames + frames[-2:0:-1]
    with atomic_path(path) as tmp:
        frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=int(seconds_per_frame * 1000), loop=0
        )
    return Path(path)


@dataclass
class Projection:
    z: torch.Tensor  # (D,)
    image: torch.Tensor  # (C, S, S) the photo as drawn: G(z), by the generator adapted to it if it was, in [0, 1]
    target: torch.Tensor  # (C, S, S) the photo as the model sees it, in [0, 1]
    context_loss: float  # the search's, before adaptation
    view: Framing  # where the model's square lies in the photo
    deltas: Deltas = field(default_factory=dict)  # the generator's change for this photo (1, *shape); empty: none


def project(
    checkpoint: Checkpoint,
    photo: Image.Image,
    settings: SearchSettings = SearchSettings(lam=0.0),
    adapting: AdaptSettings = PROJECTION_ADAPT,
) -> Projection:
    """The latent whose G(z) best matches a photo, framed like the engine frames a face (the
    largest face, aligned, for a face model; else the centre square), found with every pixel
    known and uniform weights, from the encoder's prediction when the checkpoint has one; then
    the generator adapted to the photo (`adapting`; by default on for a face model)."""
    size = checkpoint.config.image_size
    pixels = model_pixels(checkpoint, photo)  # the photo → model square, as the engine builds it
    view = photo_framing(
        as_rgb(pixels), face_template(checkpoint), size, uses_faces(checkpoint, "auto"), checkpoint.framer
    )
    target = model_view(pixels, view)
    known = torch.ones(1, 1, size, size)
    settings = SearchSettings(**{**settings.__dict__, "weighting": "uniform", "top_k": 1})
    result = search(checkpoint, checkpoint.from_pixels(target)[None], known, settings)
    projection = Projection(
        result.z[0], checkpoint.to_pixels(result.images[0]), target, float(result.context_loss[0]), view
    )
    adapting = resolve_projection_adapt(checkpoint, adapting)
    if adapting.steps:
        # D keeps its say (the search's default λ) even though the projection's search had none: the
        # adapted generator must still draw faces as the edits move away from the photo.
        adapted = adapt(
            checkpoint, checkpoint.from_pixels(target)[None], known, result.z, adapting, SearchSettings().lam
        )
        projection.z, projection.deltas = adapted.z[0].cpu(), adapted.deltas(checkpoint)
        projection.image = checkpoint.to_pixels(adapted.images[0])
    return projection


def resolve_projection_adapt(checkpoint: Checkpoint, adapting: AdaptSettings = PROJECTION_ADAPT) -> AdaptSettings:
    """A projection's adaptation with its steps made concrete (PROJECTION_STEPS for a face model)."""
    return resolve_adapt(checkpoint, adapting, PROJECTION_STEPS)


def render(checkpoint: Checkpoint, z: torch.Tensor, deltas: Deltas | None = None) -> torch.Tensor:
    """G(z) as [0, 1] pixels (N, C, S, S), each latent drawn with its row of `deltas` added to the
    shipped generator's tensors (none: the shipped generator)."""
    if not deltas:
        return generate(checkpoint, z)
    generator = checkpoint.generator
    device = next(generator.parameters()).device
    weights = {name: generator.get_parameter(name) + delta.to(device) for name, delta in deltas.items()}
    with torch.no_grad():
        return checkpoint.to_pixels(generator.forward_with(z.to(device), weights)).cpu()


def mean_deltas(deltas: Deltas | None) -> Deltas | None:
    """A concept's generator change: the mean of its exemplars' (one row)."""
    return {name: value.mean(0, keepdim=True) for name, value in deltas.items()} if deltas else None


def combine_deltas(weighted: list[tuple[float | torch.Tensor, Deltas | None]]) -> Deltas | None:
    """Σ weight · deltas over one-row changes, None counting as zero: (T,) weights give T rows."""
    names = {name for _, deltas in weighted if deltas for name in deltas}
    if not names:
        return None
    combined = {}
    for name in names:
        total = 0
        for weight, deltas in weighted:
            if deltas:
                weight = torch.as_tensor(weight, dtype=deltas[name].dtype).reshape(-1, *[1] * (deltas[name].dim() - 1))
                total = total + weight * deltas[name]
        combined[name] = total
    return combined


def stack_deltas(rows: list[Deltas | None]) -> Deltas | None:
    """One-row changes (None: zero) stacked into one change of len(rows) rows."""
    weights = torch.eye(len(rows))
    return combine_deltas([(weights[:, i], deltas) for i, deltas in enumerate(rows)])


def interpolate_deltas(start: Deltas | None, end: Deltas | None, frames: int) -> Deltas | None:
    """The generator's change along an interpolation: linear from the start's to the end's (frames rows)."""
    t = torch.linspace(0, 1, frames)
    return combine_deltas([(1 - t, start), (t, end)])


def arithmetic_deltas(a: Deltas | None, b: Deltas | None, c: Deltas | None, rows: int) -> Deltas | None:
    """The generator's change of A − B + C (concepts' mean changes), for `rows` results."""
    combined = combine_deltas([(1.0, mean_deltas(a)), (-1.0, mean_deltas(b)), (1.0, mean_deltas(c))])
    return {name: value.expand(rows, *value.shape[1:]) for name, value in combined.items()} if combined else None
