"""The sliced Wasserstein distance between two image sets, on Laplacian-pyramid patches.

A distribution score that needs no downloaded network, so it means the same for faces, flowers or
any folder a user trains on (Karras et al., "Progressive Growing of GANs", ICLR 2018, §5): each
image becomes a Laplacian pyramid down to 16×16; from every level, 7×7 neighbourhoods at random
places (128 an image) are the descriptors, each set's normalised per colour channel; the distance
between the two sets of one level is the mean, over random unit directions, of the 1-D Wasserstein
distance between the projected descriptors (sorted projections, compared in order). Scores are
×1000 as in the paper; the mean over levels is the summary. Lower is better: the finest level
tells fine texture (noise, checkerboards), the coarsest the layout and colour.

Its scale on a given set is set by two references that `reference_scale` measures: two halves of
the real images (what a perfect generator would score at that count) and the real images against a
blurred copy of themselves (what losing the fine detail costs).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 7  # the neighbourhood's side, as in the paper
PATCHES_PER_IMAGE = 128
SMALLEST_LEVEL = 16  # the pyramid stops at this resolution (the paper's 16×16)
DIRECTIONS = 512  # random projections per level (4 repeats of 128 in the paper's code)


def _binomial_kernel(channels: int, device: torch.device) -> torch.Tensor:
    """The 5-tap binomial filter [1 4 6 4 1]/16 in 2-D, one copy per channel (a depthwise conv)."""
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device) / 16
    return (taps[:, None] * taps[None, :]).expand(channels, 1, 5, 5).contiguous()


def _blur(images: torch.Tensor) -> torch.Tensor:
    kernel = _binomial_kernel(images.shape[1], images.device)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="reflect"), kernel, groups=images.shape[1])


def laplacian_pyramid(images: torch.Tensor, smallest: int = SMALLEST_LEVEL) -> list[torch.Tensor]:
    """(N, C, H, W) float images → band-pass levels from full size down, the last one the low-pass
    residual at `smallest` pixels (or the first level below twice that)."""
    levels, current = [], images
    while current.shape[-1] >= 2 * smallest and current.shape[-2] >= 2 * smallest:
        down = _blur(current)[..., ::2, ::2]
        up = torch.zeros_like(current)
        up[..., ::2, ::2] = down
        levels.append(current - 4 * _blur(up))  # ×4: the zeros inserted carry no energy
        current = down
    levels.append(current)
    return levels


def _patches(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """(N × per_image, C, PATCH, PATCH) neighbourhoods of one level at random places."""
    n, c, h, w = level.shape
    half = PATCH // 2
    ys = torch.randint(half, h - half, (n, per_image), generator=generator)
    xs = torch.randint(half, w - half, (n, per_image), generator=generator)
    offsets = torch.arange(-half, half + 1)
    rows = (ys[..., None] + offsets)[..., :, None].expand(n, per_image, PATCH, PATCH)
    cols = (xs[..., None] + offsets)[..., None, :].expand(n, per_image, PATCH, PATCH)
    picked = level[torch.arange(n)[:, None, None, None], :, rows, cols]  # (n, per_image, P, P, C)
    return picked.permute(0, 1, 4, 2, 3).reshape(n * per_image, c, PATCH, PATCH)


def _normalised(descriptors: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit spread per colour channel over the whole set, then flattened: as the
    paper's code does, each set is normalised by its own statistics."""
    mean = descriptors.mean(dim=(0, 2, 3), keepdim=True)
    spread = descriptors.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-8)
    return ((descriptors - mean) / spread).flatten(1)


def _sliced_distance(a: torch.Tensor, b: torch.Tensor, directions: int, generator: torch.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein distance of the projections (equal
    counts: the sorted projections are compared in order). NumPy sorts: its vectorised sort is
    several times faster than torch's on the CPU for these sizes."""
    total, done = 0.0, 0
    while done < directions:
        count = min(128, directions - done)
        axes = torch.randn(count, a.shape[1], generator=generator)
        axes /= axes.norm(dim=1, keepdim=True)
        projected_a = np.sort((axes @ a.T).numpy(), axis=1)  # (count, N): each direction's row sorted
        projected_b = np.sort((axes @ b.T).numpy(), axis=1)
        total += float(np.abs(projected_a - projected_b).mean()) * count
        done += count
    return total / directions


def _as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (0…255) or [0, 1] floats → float32 on the CPU, 3 channels kept as given."""
    images = images.detach().cpu()
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def sliced_wasserstein(
    a: torch.Tensor,
    b: torch.Tensor,
    patches_per_image: int = PATCHES_PER_IMAGE,
    directions: int = DIRECTIONS,
    seed: int = 0,
) -> dict[str, float | list[float]]:
    """SWD ×1000 between image sets `a` and `b` ((N, C, H, W), uint8 or [0, 1] floats, same size):
    {"swd": mean over levels, "swd_levels": [finest … coarsest]}. The larger set is subsampled to
    the smaller's count (the same `seed` draws the same places and directions each call)."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"image sets differ in shape: {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
    generator = torch.Generator().manual_seed(seed)
    count = min(len(a), len(b))
    if count < 2:
        raise ValueError("the sliced Wasserstein distance needs at least 2 images a side")
    a, b = (_as_float(images) for images in (a, b))
    if len(a) > count:
        a = a[torch.randperm(len(a), generator=generator)[:count]]
    if len(b) > count:
        b = b[torch.randperm(len(b), generator=generator)[:count]]
    scores = []
    with torch.no_grad():
        for level_a, level_b in zip(laplacian_pyramid(a), laplacian_pyramid(b)):
            per_image = min(patches_per_image, (level_a.shape[-1] - PATCH + 1) * (level_a.shape[-2] - PATCH + 1))
            state = generator.get_state()  # the same places in both sets: only the images differ
            patches_a = _normalised(_patches(level_a, per_image, generator))
            generator.set_state(state)
            patches_b = _normalised(_patches(level_b, per_image, generator))
            scores.append(_sliced_distance(patches_a, patches_b, directions, generator) * 1e3)
    return {"swd": round(sum(scores) / len(scores), 3), "swd_levels": [round(s, 3) for s in scores]}


def blurred(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """A Gaussian-blurred copy (uint8 in, uint8 out; floats stay floats): the fine detail gone."""
    from torchvision.transforms.functional import gaussian_blur

    kernel = 2 * round(3 * sigma) + 1
    out = gaussian_blur(_as_float(images), [kernel, kernel], [sigma, sigma])
    return (out * 255).round().to(torch.uint8) if images.dtype == torch.uint8 else out


def reference_scale(real: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """The score's scale on one set, at half its count a side: its two halves against each other
    (what real images score), and one half against the other blurred."""
    half = len(real) // 2
    first, second = real[:half], real[half : 2 * half]
    return {
        "halves": sliced_wasserstein(first, second, seed=seed)["swd"],
        "blurred": sliced_wasserstein(first, blurred(second), seed=seed)["swd"],
    }
