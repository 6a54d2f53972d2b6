"""inpaint.models (the DCGAN pair and its configuration) and inpaint.tv_compat."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inpaint.errors import UserError
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator, ModelConfig
from inpaint.tv_compat import import_torchvision


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes_and_ranges(size, channels):
    torch.manual_seed(size + channels)
    config = ModelConfig(image_size=size, channels=channels, latent_dim=16, g_width=4, d_width=4)
    generator, discriminator = Generator(config), Discriminator(config)
    z = torch.rand(3, 16) * 2 - 1
    for mode in ("train", "eval"):
        getattr(generator, mode)(), getattr(discriminator, mode)()
        with torch.no_grad():
            images = generator(z)
            logits = discriminator(images)
        assert images.shape == (3, channels, size, size)
        assert images.min() >= -1 and images.max() <= 1
        if mode == "train":  # (a fresh net's eval-mode output is ~0: its BatchNorm saw no data)
            assert images.std() > 0.01  # not a constant picture
        assert logits.shape == (3,) and logits.dtype == torch.float32
        assert torch.isfinite(logits).all()
    # Latents may also arrive as (N, latent_dim, 1, 1).
    with torch.no_grad():
        assert torch.equal(generator(z.reshape(3, 16, 1, 1)), generator(z))
    # One stride-2 step per doubling from the 4×4 base.
    ups = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    downs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert len(ups) == len(downs) == size.bit_length() - 2


def test_generator_ends_in_tanh_and_discriminator_returns_raw_logits():
    config = ModelConfig(image_size=32, g_width=4, d_width=4)
    generator, discriminator = Generator(config), Discriminator(config)
    assert isinstance(list(generator.main)[-1], nn.Tanh)
    assert not any(isinstance(m, nn.Sigmoid) for m in discriminator.modules())
    # The logits are the last convolution's raw output: nothing squashes them afterwards, so
    # they are unbounded (a larger last layer gives proportionally larger logits).
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    discriminator.eval()
    with torch.no_grad():
        features = discriminator.main[:-1](images)
        logits = discriminator(images)
        assert torch.allclose(logits, discriminator.main[-1](features).reshape(-1))
        discriminator.main[-1].weight.mul_(1e4)
        assert torch.allclose(discriminator(images), logits * 1e4, rtol=1e-4, atol=1e-4)
    assert logits.shape == (4,)


def test_batch_items_are_independent_in_eval_mode():
    config = ModelConfig(image_size=32, g_width=4, d_width=4)
    generator, discriminator = Generator(config).eval(), Discriminator(config).eval()
    z = torch.rand(5, config.latent_dim) * 2 - 1
    with torch.no_grad():
        images = generator(z)
        assert torch.allclose(generator(z[2:3]), images[2:3], atol=1e-6)
        assert torch.allclose(discriminator(images[2:3]), discriminator(images)[2:3], atol=1e-5)


def test_default_64_parameter_counts():
    config = ModelConfig()
    assert (config.image_size, config.channels, config.latent_dim, config.g_width, config.d_width) == (
        64,
        3,
        100,
        64,
        64,
    )
    assert count(Generator(config)) == 3_576_704
    assert count(Discriminator(config)) == 2_765_568


def test_widths_scale_the_networks():
    small, wide = ModelConfig(image_size=32, g_width=8, d_width=8), ModelConfig(image_size=32, g_width=16, d_width=16)
    assert count(Generator(wide)) > 2 * count(Generator(small))
    assert count(Discriminator(wide)) > 2 * count(Discriminator(small))


def test_dcgan_initialisation():
    torch.manual_seed(0)
    config = ModelConfig()
    for network in (Generator(config), Discriminator(config)):
        convs = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        weights = torch.cat([m.weight.detach().flatten() for m in convs])
        assert abs(weights.std().item() - 0.02) < 0.001
        assert abs(weights.mean().item()) < 0.001
        assert all(m.bias is None for m in convs)
        norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms
        scale = torch.cat([m.weight.detach() for m in norms])
        assert abs(scale.mean().item() - 1) < 0.01 and abs(scale.std().item() - 0.02) < 0.005
        assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)


def test_discriminator_input_layer_has_no_batchnorm():
    layers = list(Discriminator(ModelConfig(image_size=32, d_width=4)).main)
    assert isinstance(layers[0], nn.Conv2d) and isinstance(layers[1], nn.LeakyReLU)
    assert layers[1].negative_slope == pytest.approx(0.2)


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"image_size": 48}, ["48", "32, 64, 128"]),
        ({"image_size": 256}, ["256"]),
        ({"channels": 2}, ["channels", "2"]),
        ({"channels": 4}, ["channels", "4"]),
        ({"latent_dim": 0}, ["latent_dim"]),
        ({"g_width": -1}, ["g_width"]),
    ],
)
def test_invalid_configs_are_user_errors(settings, words):
    with pytest.raises(UserError) as error:
        ModelConfig(**settings)
    assert all(word in str(error.value) for word in words)


def test_config_dict_round_trip():
    config = ModelConfig(image_size=128, channels=1, latent_dim=64, g_width=32, d_width=16)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict({k: str(v) for k, v in config.to_dict().items()}) == config
    with pytest.raises(UserError, match="unknown model settings"):
        ModelConfig.from_dict({**config.to_dict(), "depth": 5})
    with pytest.raises(UserError):
        ModelConfig.from_dict({"image_size": 48})


def test_import_torchvision_gives_a_working_make_grid():
    torchvision = import_torchvision()
    assert torchvision.__name__ == "torchvision" and hasattr(torchvision, "__version__")
    assert import_torchvision() is torchvision  # imported once, then reused
    from torchvision.utils import make_grid

    images = torch.stack([torch.full((3, 8, 8), float(i) / 4) for i in range(4)])
    grid = make_grid(images, nrow=2, padding=2, pad_value=1.0)
    assert grid.shape == (3, 2 * 8 + 3 * 2, 2 * 8 + 3 * 2)
    # Image k sits in row k // 2, column k % 2, after the padding.
    for k in range(4):
        top, left = 2 + (k // 2) * 10, 2 + (k % 2) * 10
        assert torch.equal(grid[:, top : top + 8, left : left + 8], images[k])
    assert grid[:, 0].eq(1).all() and grid[:, :, 0].eq(1).all()


def test_priors_are_seeded_and_in_support():
    uniform = LatentPrior("uniform").sample(1000, 100, torch.Generator().manual_seed(1))
    assert uniform.abs().max() <= 1 and uniform.abs().mean() > 0.45
    again = LatentPrior("uniform").sample(1000, 100, torch.Generator().manual_seed(1))
    assert torch.equal(uniform, again)
    normal = LatentPrior("normal").sample(1000, 100, torch.Generator().manual_seed(1))
    assert abs(normal.std().item() - 1) < 0.02
    with pytest.raises(UserError):
        LatentPrior("cauchy")


# --- the generator's doubling layers: transposed convolutions or resize and convolve ---------


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize("size", [32, 64, 128])
def test_each_upsampling_builds_what_its_parameter_count_says(upsample, size):
    config = ModelConfig(image_size=size, g_width=8, d_width=8, upsample=upsample)
    generator, discriminator = Generator(config), Discriminator(config)
    assert count(generator) + count(discriminator) == config.parameter_count()
    with torch.no_grad():
        assert generator(torch.rand(2, config.latent_dim) * 2 - 1).shape == (2, 3, size, size)
    transposed = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    # The 1×1 → 4×4 base is a transposed convolution either way (one input pixel: no overlap to be uneven).
    assert len(transposed) == (1 if upsample == "resize" else size.bit_length() - 2)


def test_resize_upsampling_leaves_no_checkerboard_where_transposed_convolutions_do():
    """A flat map doubled by a 4×4 stride-2 transposed convolution comes out in a 2×2-periodic
    pattern (each output pixel sums a different subset of the kernel); resized, then convolved, it
    stays flat away from the border."""
    torch.manual_seed(0)
    flat = torch.ones(1, 8, 6, 6)
    spread = {}
    for upsample in ("transpose", "resize"):
        generator = Generator(ModelConfig(image_size=32, g_width=8, d_width=8, upsample=upsample))
        last = list(generator.main)[-2 if upsample == "transpose" else -3 :][:-1]  # the last doubling
        with torch.no_grad():
            inner = nn.Sequential(*last)(flat)[..., 2:-2, 2:-2]
        spread[upsample] = (inner - inner.mean(dim=(2, 3), keepdim=True)).abs().max().item()
    assert spread["resize"] < 1e-6 < spread["transpose"] / 100


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_per_sample_weights_draw_what_the_shared_ones_do(upsample):
    torch.manual_seed(1)
    generator = Generator(ModelConfig(image_size=32, g_width=8, d_width=8, upsample=upsample))
    with torch.no_grad():
        generator(torch.rand(8, 100) * 2 - 1)  # BatchNorm statistics that are not a fresh net's
    generator.eval()
    z = torch.rand(3, 100) * 2 - 1
    copies = {name: p.detach().expand(3, *p.shape).clone() for name, p in generator.named_parameters()}
    with torch.no_grad():
        assert torch.allclose(generator.forward_with(z, copies), generator(z), atol=1e-6)
        copies["main.0.weight"][1].mul_(2)  # one sample's own copy changes that sample alone
        changed, shared = generator.forward_with(z, copies), generator(z)
    assert torch.allclose(changed[[0, 2]], shared[[0, 2]], atol=1e-6)
    assert (changed[1] - shared[1]).norm() > 0.1 * shared[1].norm()


def test_upsampling_is_read_from_metadata_and_older_checkpoints_mean_transpose():
    config = ModelConfig(image_size=32, g_width=8, d_width=8, upsample="resize")
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict({"image_size": 32, "g_width": 8, "d_width": 8}).upsample == "transpose"
    with pytest.raises(UserError, match="upsample must be one of transpose, resize"):
        ModelConfig.from_dict({"upsample": "bilinear"})
