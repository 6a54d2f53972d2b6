"""The DCGAN definition: shapes for every supported size, ranges, initialisation, configuration."""

from __future__ import annotations

import pytest
import torch

from inpaint.errors import UserError
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator, ModelConfig
from inpaint.tv_compat import import_torchvision


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(size, channels):
    config = ModelConfig(image_size=size, channels=channels, g_width=8, d_width=8, latent_dim=20)
    generator, discriminator = Generator(config).eval(), Discriminator(config).eval()
    with torch.no_grad():
        images = generator(torch.rand(3, 20) * 2 - 1)
        logits = discriminator(images)
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0
    assert logits.shape == (3,)


def test_standard_dcgan_parameter_counts():
    config = ModelConfig()
    assert sum(p.numel() for p in Generator(config).parameters()) == 3_576_704
    assert sum(p.numel() for p in Discriminator(config).parameters()) == 2_765_568


def test_dcgan_initialisation():
    torch.manual_seed(0)
    generator = Generator(ModelConfig())
    conv = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.001
    norms = torch.cat([m.weight for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(norms.mean().item() - 1) < 0.01


def test_first_discriminator_layer_has_no_batchnorm():
    layers = list(Discriminator(ModelConfig()).main)
    assert isinstance(layers[0], torch.nn.Conv2d) and isinstance(layers[1], torch.nn.LeakyReLU)
    assert layers[1].negative_slope == 0.2


@pytest.mark.parametrize("settings", [{"image_size": 48}, {"image_size": 256}, {"channels": 2}, {"latent_dim": 0}])
def test_invalid_configs_are_clear_errors(settings):
    with pytest.raises(UserError):
        ModelConfig(**settings)


def test_config_dict_round_trip_rejects_unknown_keys():
    config = ModelConfig(image_size=128, channels=1)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserError, match="unknown model settings"):
        ModelConfig.from_dict({**config.to_dict(), "depth": 3})


def test_priors_are_seeded_and_in_support():
    uniform = LatentPrior("uniform").sample(1000, 100, torch.Generator().manual_seed(1))
    assert uniform.abs().max() <= 1 and uniform.abs().mean() > 0.45
    again = LatentPrior("uniform").sample(1000, 100, torch.Generator().manual_seed(1))
    assert torch.equal(uniform, again)
    normal = LatentPrior("normal").sample(1000, 100, torch.Generator().manual_seed(1))
    assert abs(normal.std().item() - 1) < 0.02
    with pytest.raises(UserError):
        LatentPrior("cauchy")


def test_torchvision_pure_python_parts_import():
    torchvision = import_torchvision()
    from torchvision.utils import make_grid

    grid = make_grid(torch.rand(4, 3, 8, 8), nrow=2, padding=0)
    assert torchvision.__version__.startswith("0.28") and grid.shape == (3, 16, 16)
