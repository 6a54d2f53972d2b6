"""The inpainting encoder: a small network that predicts, from a masked image and its mask, the
latent z whose G(z) completes it, so that the latent search starts next to the answer.

A search from random latents spends most of its iterations finding the right face at all; the
encoder amortises that part (iGAN's `cnn_opt`, in-domain GAN inversion), and the search only
refines. E sees what the search sees: the image in model space with the hole's pixels set to 0
(mid-grey, so garbage in the hole never reaches it) and the known-pixel mask as a fourth channel.
Its body is a strided CNN in the spirit of D; the head maps into the prior's support (tanh for the
uniform prior, whose search clips z to [-1, 1]; unbounded for the normal prior).

Trained per checkpoint with G and D frozen (training/encoder.py, `inpaint train-encoder`); its
weights travel in the checkpoint as `encoder.*` tensors, its settings under `encoder`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from inpaint.device import batch_invariant_rows, pad_rows
from inpaint.errors import UserError
from inpaint.latent import LatentPrior
from inpaint.models import ModelConfig


@dataclass(frozen=True)
class EncoderConfig:
    width: int = 32  # channels of the first layer, doubled at each stride-2 layer after it

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EncoderConfig:
        try:
            width = int(data.get("width", 32))
        except (TypeError, ValueError, AttributeError):
            raise UserError(f"invalid encoder settings in the checkpoint's metadata: {str(data)[:80]}") from None
        if not 1 <= width <= 512:
            raise UserError(f"invalid encoder width {width} in the checkpoint's metadata")
        return cls(width)


class EncoderNet(nn.Module):
    """(N, C, S, S) image in model space and (N, 1, S, S) known mask → (N, latent_dim) z in the
    prior's support."""

    def __init__(self, model: ModelConfig, prior: LatentPrior, config: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        self.config = config
        self.bounded = prior.kind == "uniform"
        layers: list[nn.Module] = [nn.Conv2d(model.channels + 1, config.width, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = config.width
        for _ in range(model.num_upsamplings - 1):  # down to 4×4, like D
            layers += [nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2)]
            width *= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width * 16, model.latent_dim)

    def forward(self, images: torch.Tensor, known: torch.Tensor, rowwise: bool = False) -> torch.Tensor:
        """`rowwise`: the head applied to one image at a time as products summed along each weight row,
        so that an image's z is the same bits whatever else shares its batch and however many threads
        run it (a matrix product's blocking, hence its rounding, depends on both)."""
        known = known.to(images.dtype)
        features = self.body(torch.cat([images * known, known], 1)).flatten(1)
        if rowwise and len(features):
            weight, bias = self.head.weight, self.head.bias
            z = torch.cat([(row[:, None] * weight).sum(-1) + bias for row in features.split(1)])
        else:
            z = self.head(features)
        return torch.tanh(z) if self.bounded else z


class Encoder:
    """A trained encoder, ready to predict starting latents (eval mode, frozen)."""

    def __init__(self, net: EncoderNet) -> None:
        self.net = net.eval().requires_grad_(False)

    @property
    def config(self) -> EncoderConfig:
        return self.net.config

    @torch.no_grad()
    def predict(self, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) for images (N, C, S, S) in model space and known masks (N, 1, S, S); an
        image's z does not depend on the others in the batch."""
        device = next(self.net.parameters()).device
        count = len(images)
        rows = batch_invariant_rows(count, device)
        images, known = pad_rows(images, rows), pad_rows(known, rows)
        return self.net(images.to(device).float(), known.to(device).float(), rowwise=True)[:count].float()
