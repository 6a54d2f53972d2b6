"""The DCGAN generator and discriminator (Radford et al., 2016) and their configuration.

One definition serves training, inpainting, editing and the app; a checkpoint's metadata holds a
`ModelConfig`, from which `build_generator` / `build_discriminator` rebuild the exact networks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from inpaint.errors import UserError
from inpaint.validate import check_number

SUPPORTED_IMAGE_SIZES = (32, 64, 128)
# How the generator doubles its maps: "transpose" (the DCGAN's 4×4 stride-2 transposed convolutions)
# or "resize" (nearest-neighbour ×2, then a 3×3 convolution: Odena et al., 2016). Transposed
# convolutions whose kernel the stride does not divide evenly leave a checkerboard in young models;
# resizing first spreads every input pixel evenly, so there is none to unlearn.
UPSAMPLE_KINDS = ("transpose", "resize")
# Bounds on what a configuration (typed, or read from a checkpoint's metadata) may ask to build:
# a forged or mistyped one must be refused before terabytes are allocated, not by the allocator.
MAX_LATENT_DIM = 4096
MAX_WIDTH = 1024  # channels of a network's full-resolution layer (64 is the DCGAN default)
MAX_PARAMETERS = 2_000_000_000  # G and D together: about 32 GB of weights, gradients and Adam state


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a DCGAN pair. Widths are the channel counts of the full-resolution layer."""

    image_size: int = 64
    channels: int = 3
    latent_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    upsample: str = "transpose"  # UPSAMPLE_KINDS; checkpoints written before it existed are "transpose"

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLE_KINDS:
            raise UserError(f"upsample must be one of {', '.join(UPSAMPLE_KINDS)}, not {self.upsample!r}")
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise UserError(
                f"image size {self.image_size} is not supported; choose one of "
                f"{', '.join(map(str, SUPPORTED_IMAGE_SIZES))}"
            )
        if self.channels not in (1, 3):
            raise UserError(f"channels must be 1 (grayscale) or 3 (RGB), not {self.channels}")
        check_number(self.latent_dim, "latent_dim", 1, MAX_LATENT_DIM, integer=True)
        for name in ("g_width", "d_width"):
            check_number(getattr(self, name), name, 1, MAX_WIDTH, integer=True)
        parameters = self.parameter_count()
        if parameters > MAX_PARAMETERS:
            size = self.image_size
            raise UserError(
                f"a {size}×{size} model with widths {self.g_width}/{self.d_width} would have {parameters / 1e9:.1f} "
                f"billion parameters (about {parameters * 16 / 1e9:.0f} GB to train); at most "
                f"{MAX_PARAMETERS / 1e9:.0f} billion: lower the widths"
            )

    def parameter_count(self) -> int:
        """Parameters of G and D, counted from their layer widths (as built below) without
        allocating anything."""
        n = self.num_upsamplings
        g = [self.g_width * 2 ** (n - 1 - i) for i in range(n)]  # widest first
        d = [self.d_width * 2**i for i in range(n)]
        up_kernel = 16 if self.upsample == "transpose" else 9  # the doubling layers' 4×4 or 3×3 kernels
        doubling = sum(a * b for a, b in zip(g, g[1:])) + g[-1] * self.channels
        g_convs = 16 * self.latent_dim * g[0] + up_kernel * doubling
        d_convs = 16 * (self.channels * d[0] + sum(a * b for a, b in zip(d, d[1:])) + d[-1])
        return g_convs + d_convs + 2 * (sum(g) + sum(d[1:]))  # BatchNorm's scale and shift

    @property
    def num_upsamplings(self) -> int:
        """Stride-2 layers between the 4×4 base and the full image (4 for 64×64)."""
        return self.image_size.bit_length() - 1 - 2

    def to_dict(self) -> dict[str, int | str]:
        data = asdict(self)
        if self.upsample == "transpose":  # written as before the field existed: older releases read it
            del data["upsample"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"unknown model settings {sorted(unknown)}")
        if not isinstance(data, dict):
            raise UserError(f"model settings must be a mapping, not {type(data).__name__}")
        return cls(**{k: v if k == "upsample" else check_number(v, k, integer=True) for k, v in data.items()})


def upsample_note(model: dict[str, Any]) -> str:
    """What a model card or the app adds to a checkpoint's widths (its `model` metadata) about G's
    doubling layers: nothing for the DCGAN's transposed convolutions."""
    return ", G doubling by resize and convolution" if model.get("upsample") == "resize" else ""


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _doubling(config: ModelConfig, channels_in: int, channels_out: int) -> list[nn.Module]:
    """The generator's layers that double the maps' side (see UPSAMPLE_KINDS)."""
    if config.upsample == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels_in, channels_out, 3, 1, 1, bias=False)]
    return [nn.ConvTranspose2d(channels_in, channels_out, 4, 2, 1, bias=False)]


class Generator(nn.Module):
    """z (N, latent_dim) → image (N, C, S, S) in [-1, 1]: a transposed conv to 4×4, then doubling
    layers (transposed convs, or resize and conv), BatchNorm, ReLU, tanh."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = config.g_width * 2 ** (config.num_upsamplings - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.latent_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(config.num_upsamplings - 1):
            layers += [*_doubling(config, width, width // 2), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [*_doubling(config, width, config.channels), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], -1, 1, 1))

    def forward_with(self, z: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """G(z) drawn with some of its tensors replaced, one copy per latent: `weights` maps
        parameter names (as named_parameters gives them, "main.3.weight") to tensors with a leading
        entry per row of z, (N, *shape). Each sample is drawn by its own copy, all in one batch (a
        convolution with per-sample weights runs as one grouped convolution over the batch).
        BatchNorm always uses its running statistics (eval mode), so samples never mix."""
        n = z.shape[0]
        x = z.reshape(n, -1, 1, 1)
        for index, layer in enumerate(self.main):
            weight, bias = weights.get(f"main.{index}.weight"), weights.get(f"main.{index}.bias")
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and weight is not None:
                # (N, in, out, k, k) transposed or (N, out, in, k, k) plain: either way the samples'
                # kernels stacked on the first axis are the grouped convolution's.
                convolve = (
                    nn.functional.conv_transpose2d if isinstance(layer, nn.ConvTranspose2d) else nn.functional.conv2d
                )
                x = convolve(
                    x.reshape(1, -1, *x.shape[2:]),
                    weight.flatten(0, 1),
                    stride=layer.stride,
                    padding=layer.padding,
                    groups=n,
                )
                x = x.reshape(n, -1, *x.shape[2:])
            elif isinstance(layer, nn.BatchNorm2d):
                x = nn.functional.batch_norm(x, layer.running_mean, layer.running_var, eps=layer.eps)
                scale = _per_sample(layer.weight if weight is None else weight)
                x = x * scale + _per_sample(layer.bias if bias is None else bias)
            else:
                x = layer(x)
        return x


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    """Per-channel values (C,) or per-sample ones (N, C), shaped to scale (N, C, H, W) maps."""
    return values.reshape(-1 if values.dim() == 2 else 1, values.shape[-1], 1, 1)


class Discriminator(nn.Module):
    """Image (N, C, S, S) → realness logits (N,): strided convs, BatchNorm, LeakyReLU 0.2."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = config.d_width
        # No BatchNorm on the input layer (Radford et al.).
        layers: list[nn.Module] = [
            nn.Conv2d(config.channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(config.num_upsamplings - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.main(image).reshape(-1)
