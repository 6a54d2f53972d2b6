"""The framer: a small network that tells where the model's square should lie, from what a
square of the photo shows, holes and all.

A face detector and landmark model trained on intact faces are lost when the eyes are blanked
(dlib's detector finds no face in most such photos, and its landmarks guess inside the hole). The
framer is trained for one checkpoint on that checkpoint's own training images, placed into
synthetic photos at random poses with holes of every kind, blank, noisy or intact: given the
64×64 view through a proposed square and its hole mask, it predicts where three reference points
of the true square lie in that view, and how likely the view holds a face at all. Applied a few
times, each time to the corrected view, it walks a rough proposal (a detector's box, or squares
around the hole) onto the training framing; the most confident result wins.

Its weights travel in the checkpoint as `framer.*` tensors, its settings in the metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
from torch import nn

from inpaint.errors import UserError
from inpaint.framing import (
    SUPERSAMPLE,
    Framing,
    compose,
    fit_similarity,
    hole_to_model,
    resize_map,
    to_model,
)

INPUT = 64  # the framer's view, pixels a side, whatever the model's size
# Three points of the true square, in view pixels: where the eyes and the mouth roughly are, so
# that the points move with the face and span it.
REFERENCE = np.array([[16.0, 22.0], [47.0, 22.0], [31.5, 50.0]])
STEPS = 3  # corrections applied to each proposal


@dataclass(frozen=True)
class FramerConfig:
    width: int = 32  # channels of the first layer; doubled at each of the four stride-2 layers

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FramerConfig:
        try:
            width = int(data.get("width", 32))
        except (TypeError, ValueError, AttributeError):
            raise UserError(f"invalid framer settings in the checkpoint's metadata: {str(data)[:80]}") from None
        if not 1 <= width <= 256:
            raise UserError(f"invalid framer width {width} in the checkpoint's metadata")
        return cls(width)


class FramerNet(nn.Module):
    """(N, 4, 64, 64) view (RGB in [-1, 1], then the hole mask) → (N, 7): the reference points'
    offsets from where the proposal puts them (6 numbers, view pixels), and a face logit."""

    def __init__(self, config: FramerConfig = FramerConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = 4
        for out in (config.width, 2 * config.width, 4 * config.width, 8 * config.width):
            layers += [nn.Conv2d(channels, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 256), nn.LeakyReLU(0.2), nn.Linear(256, 7))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(views))


def view_input(pixels: np.ndarray, hole: np.ndarray, view: Framing) -> np.ndarray:
    """The framer's input for a proposed square: (4, 64, 64) float32. pixels (H, W, C) uint8."""
    window = view.resized(INPUT)
    image = to_model(pixels, window)
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(INPUT, INPUT, 1), 3, axis=2)
    mask = hole_to_model(hole, window) if hole is not None else np.zeros((INPUT, INPUT), bool)
    return np.concatenate([image / 127.5 - 1, mask[..., None]], axis=2).transpose(2, 0, 1).astype(np.float32)


def reduced_photo(
    pixels: np.ndarray, hole: np.ndarray | None, windows: list[Framing], margin: float = 0.5
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The part of the photo the windows can reach while they are walked (each enlarged by
    `margin` of its side), shrunk once so that the smallest still has SUPERSAMPLE photo pixels
    per view pixel; the hole as the share of each small pixel it covers; and the 2×3 map from the
    small array to the photo. Views of a big photo are then cut from this small copy: shrinking
    every view from the full-size photo again at each step cost most of the face finding."""
    height, width = pixels.shape[:2]
    boxes = np.array([w.photo_bounds() for w in windows], np.float64)
    reach = margin * np.array([w.side() for w in windows])[:, None]
    left, top = np.maximum(np.floor((boxes[:, :2] - reach).min(0)), 0).astype(int)
    right, bottom = np.minimum(np.ceil((boxes[:, 2:] + reach).max(0)), (width, height)).astype(int)
    shrink = min(1.0, SUPERSAMPLE * INPUT / min(w.side() for w in windows))
    if right <= left or bottom <= top:
        return pixels, hole, np.eye(3)[:2]
    crop = pixels[top:bottom, left:right]
    crop_hole = hole[top:bottom, left:right].astype(np.float32) if hole is not None else None
    new_size = (max(1, round(crop.shape[1] * shrink)), max(1, round(crop.shape[0] * shrink)))
    if shrink < 0.8:
        crop = cv2.resize(crop, new_size, interpolation=cv2.INTER_AREA).reshape(new_size[::-1] + crop.shape[2:])
        crop_hole = cv2.resize(crop_hole, new_size, interpolation=cv2.INTER_AREA) if crop_hole is not None else None
        fx, fy = new_size[0] / (right - left), new_size[1] / (bottom - top)
    else:
        fx = fy = 1.0
    to_small = compose(resize_map(fx, fy), np.array([[1.0, 0, -left], [0, 1.0, -top]]))
    return crop, crop_hole, cv2.invertAffineTransform(to_small)


def correction(prediction: np.ndarray) -> np.ndarray:
    """The 2×3 map from view pixels to corrected view pixels, from one output row (7,)."""
    return fit_similarity(REFERENCE + prediction[:6].reshape(3, 2), REFERENCE)


class Framer:
    """A trained framer, ready to correct proposals (eval mode, on the CPU)."""

    def __init__(self, net: FramerNet) -> None:
        self.net = net.eval().requires_grad_(False)

    @torch.no_grad()
    def refine(
        self, pixels: np.ndarray, hole: np.ndarray | None, proposals: list[Framing], steps: int = STEPS
    ) -> list[tuple[Framing, float]]:
        """Each proposal walked onto the training framing: (framing, probability that it shows a
        face), in the proposals' order. All proposals go through the network together."""
        if not proposals:
            return []
        size = proposals[0].size
        windows = [p.resized(INPUT) for p in proposals]
        small, small_hole, to_photo = reduced_photo(pixels, hole, windows)
        logits = np.zeros(len(windows))
        for _ in range(steps):
            seen = [Framing(compose(w.matrix, to_photo), INPUT, w.how) for w in windows]
            views = torch.from_numpy(np.stack([view_input(small, small_hole, v) for v in seen]))
            out = self.net(views).float().numpy()
            windows = [
                Framing(compose(correction(row), w.matrix), INPUT, w.how, w.confirmed) for row, w in zip(out, windows)
            ]
            logits = out[:, 6]
        return [(w.resized(size), float(1 / (1 + np.exp(-logit)))) for w, logit in zip(windows, logits)]
