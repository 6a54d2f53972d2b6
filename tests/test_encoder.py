"""The inpainting encoder: its output, its training (resume included), its place in the checkpoint,
the search that starts from it, and the early stop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import inpaint_training.encoder as encoder_training
from inpaint.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from inpaint.cli import main
from inpaint.encoder import EncoderConfig, EncoderNet
from inpaint.errors import UserError
from inpaint.latent import LatentPrior
from inpaint.masks import make_mask
from inpaint.models import Discriminator, Generator, ModelConfig
from inpaint.search import SearchSettings, search
from inpaint_training.encoder import EncoderOptions, random_hole, train_encoder

CONFIG = ModelConfig(image_size=32, g_width=8, d_width=8, latent_dim=12)


def _pair() -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    generator, discriminator = Generator(CONFIG), Discriminator(CONFIG)
    with torch.no_grad():  # real BatchNorm statistics, so eval mode is not an identity
        discriminator(generator(torch.rand(64, CONFIG.latent_dim) * 2 - 1))
    return generator.eval(), discriminator.eval()


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """A tiny checkpoint without an encoder, and a folder of its own samples as training images."""
    root = tmp_path_factory.mktemp("encoder")
    generator, discriminator = _pair()
    path = save_checkpoint(root / "plain.safetensors", generator, discriminator, LatentPrior("uniform"))
    (root / "data").mkdir()
    with torch.no_grad():
        samples = generator(torch.rand(48, CONFIG.latent_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    for i, image in enumerate(((samples + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image).save(root / "data" / f"{i:03d}.png")
    return path


def _options(plain: Path, out: Path, **changes) -> EncoderOptions:
    base = EncoderOptions(
        checkpoint=str(plain),
        data=str(plain.parent / "data"),
        out=str(out),
        val_count=8,
        steps=150,
        batch_size=32,
        lr=3e-3,
        width=8,
        log_every=10,
        checkpoint_every=50,
        device="cpu",
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def with_encoder(plain, tmp_path_factory) -> Path:
    return train_encoder(_options(plain, tmp_path_factory.mktemp("run")))


def test_the_encoder_gives_one_latent_per_image_inside_the_prior_support():
    images, known = torch.rand(5, 3, 32, 32) * 2 - 1, torch.ones(5, 1, 32, 32)
    uniform = EncoderNet(CONFIG, LatentPrior("uniform"), EncoderConfig(8)).eval()
    with torch.no_grad():
        z = uniform(images * 50, known)  # even for inputs far outside the pixel range
    assert z.shape == (5, CONFIG.latent_dim) and z.abs().max() <= 1
    normal = EncoderNet(CONFIG, LatentPrior("normal"), EncoderConfig(8)).eval()
    with torch.no_grad():
        assert normal(images, known).shape == (5, CONFIG.latent_dim)
    # The hole's pixels never reach the encoder: garbage in the hole gives the same z.
    hole = torch.from_numpy(make_mask("centre", 32, 32)).bool()
    garbage = images.clone()
    garbage[:, :, hole] = torch.rand_like(garbage[:, :, hole]) * 2 - 1
    mask = (~hole).float()[None, None].expand(5, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(uniform(images, mask), uniform(garbage, mask))


def test_training_holes_cover_every_kind_and_projection():
    rng = np.random.default_rng(0)
    regions = {"eyes": (8, 10, 24, 14), "mouth": (11, 21, 21, 26)}
    fractions = [random_hole(rng, 32, regions).mean() for _ in range(400)]
    assert min(fractions) == 0  # no hole at all: projection
    assert max(fractions) > 0.5  # halves and 80% random pixels
    assert len({round(f, 2) for f in fractions}) > 30


def test_training_writes_a_version_2_checkpoint_with_the_encoder_and_keeps_the_rest(plain, with_encoder):
    loaded = load_checkpoint(with_encoder)
    assert loaded.encoder is not None and loaded.encoder.config.width == 8
    assert loaded.metadata["format_version"] == 2 < FORMAT_VERSION  # a transposed G with an encoder
    facts = loaded.training["encoder"]
    assert facts["steps"] == 150 and facts["held_out"] == 8
    run = with_encoder.parent
    assert (run / "encoder-fills.png").is_file() and (run / "encoder_options.json").is_file()
    lines = (run / "stats.jsonl").read_text().splitlines()
    assert len(lines) == 15 and "psnr_hole_centre" in lines[-1]
    original = load_checkpoint(plain)
    for a, b in zip(original.generator.state_dict().values(), loaded.generator.state_dict().values()):
        assert torch.equal(a, b)


def test_an_encoder_start_beats_a_random_start_at_equal_iterations_on_generated_faces(with_encoder):
    checkpoint = load_checkpoint(with_encoder)
    generator = torch.Generator().manual_seed(7)
    z = torch.rand(16, CONFIG.latent_dim, generator=generator) * 2 - 1
    with torch.no_grad():
        faces = checkpoint.generator(z)
    known = torch.from_numpy(~make_mask("centre", 32, 32)).float()[None, None].expand(16, 1, 32, 32)
    hole = known == 0
    for iterations in (0, 10):
        settings = SearchSettings(iterations=iterations, restarts=1, patience=0)
        started = search(checkpoint, faces, known, replace(settings, init="encoder"))
        drawn = search(checkpoint, faces, known, replace(settings, init="random"))
        assert started.context_loss.mean() < drawn.context_loss.mean()
        error = [(result.images - faces).abs()[hole.expand_as(faces)].mean() for result in (started, drawn)]
        assert error[0] < error[1]  # the hole too, where only the true z knows the answer


def test_old_checkpoints_without_an_encoder_still_load_and_fill(plain, tmp_path):
    with safe_open(str(plain), framework="pt") as handle:
        header = dict(handle.metadata())
    version_1 = tmp_path / "v1.safetensors"
    save_file(load_file(str(plain)), str(version_1), metadata={**header, "format_version": "1"})
    checkpoint = load_checkpoint(version_1)
    assert checkpoint.encoder is None
    images, known = (
        torch.rand(2, 3, 32, 32) * 2 - 1,
        torch.from_numpy(~make_mask("centre", 32, 32)).float()[None, None].repeat(2, 1, 1, 1),
    )
    result = search(checkpoint, images, known, SearchSettings(iterations=5, restarts=2))  # auto: random starts
    assert result.images.shape == (2, 3, 32, 32)
    with pytest.raises(UserError, match="no inpainting encoder"):
        search(checkpoint, images, known, SearchSettings(iterations=5, init="encoder"))
    out = tmp_path / "filled.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    assert (
        main(
            [
                "fill",
                str(tmp_path / "grey.png"),
                "--mask-kind",
                "centre",
                "--checkpoint",
                str(version_1),
                "--crop",
                "whole",
                "--iterations",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file()


def _generated(checkpoint, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.rand(n, CONFIG.latent_dim, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        faces = checkpoint.generator(z)
    kinds = ["centre", "half", "pattern", "random"]
    known = torch.stack([torch.from_numpy(~make_mask(kinds[i % 4], 32, 32, seed=i)).float()[None] for i in range(n)])
    return faces, known


def test_the_early_stop_never_stops_an_image_whose_loss_is_still_falling(with_encoder):
    checkpoint = load_checkpoint(with_encoder)
    faces, known = _generated(checkpoint, 6)
    seen_stops = seen_full_runs = 0
    # Several tolerances, so that whatever this machine's arithmetic makes of the tiny model, some
    # image stops and some runs to the end; the rule is checked on every stop.
    for tolerance in (0.003, 0.01, 0.03, 0.1):
        settings = SearchSettings(
            iterations=120, restarts=2, lr=0.01, init="encoder", report_every=1, patience=8, tolerance=tolerance
        )
        histories: list[torch.Tensor] = []
        stopped = search(checkpoint, faces, known, settings, lambda p: histories.append(p.restart_context_loss.clone()))
        best = torch.stack(histories)  # (1 + iterations, N, k): every start's best context loss, from the start
        seen_stops += int((stopped.iterations < settings.iterations).sum())
        seen_full_runs += int((stopped.iterations == settings.iterations).sum())
        for image, ran in enumerate(stopped.iterations.tolist()):
            if ran == settings.iterations:
                continue
            # It stopped after iteration `ran`: over the `patience` iterations before, no start of it
            # lowered its best context loss by the tolerance (a loss still falling keeps it going).
            fall = 1 - best[ran, image] / best[ran - settings.patience, image]
            assert (fall < settings.tolerance).all(), (tolerance, image, ran, fall)
    assert seen_stops > 0, "the test needs an image that stops"
    assert seen_full_runs > 0, "and one that runs to the end"


def test_results_stay_independent_of_batch_mates_with_encoder_starts_and_early_stops(with_encoder):
    checkpoint = load_checkpoint(with_encoder)
    faces, known = _generated(checkpoint, 4)
    settings = SearchSettings(iterations=60, restarts=3, init="encoder", patience=5, seed=2)
    together = search(checkpoint, faces, known, settings)
    for i in (0, 3):
        alone = search(checkpoint, faces[i : i + 1], known[i : i + 1], settings)
        assert alone.iterations[0] == together.iterations[i]
        assert torch.allclose(alone.z[0], together.z[i], atol=1e-4)


def test_an_interrupted_training_resumes_to_the_same_encoder(plain, tmp_path, monkeypatch):
    options = _options(plain, tmp_path / "straight", steps=30, checkpoint_every=10)
    straight = load_checkpoint(train_encoder(options)).encoder.net.state_dict()

    calls = {"n": 0}
    real_step_losses = encoder_training.step_losses

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 21:
            raise KeyboardInterrupt
        return real_step_losses(*args, **kwargs)

    monkeypatch.setattr(encoder_training, "step_losses", interrupted)
    resumed_options = replace(options, out=str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt):
        train_encoder(resumed_options)
    monkeypatch.setattr(encoder_training, "step_losses", real_step_losses)
    resumed = load_checkpoint(train_encoder(resumed_options, resume=True)).encoder.net.state_dict()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
    steps = [
        int(line.split('"step": ')[1].split(",")[0])
        for line in (tmp_path / "resumed" / "stats.jsonl").read_text().splitlines()
    ]
    assert steps == [10, 20, 30]


def test_train_encoder_command_and_a_fill_that_starts_from_it(plain, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train-encoder",
                "--checkpoint",
                str(plain),
                "--data",
                str(plain.parent / "data"),
                "--out",
                str(run),
                "--steps",
                "4",
                "--batch-size",
                "8",
                "--width",
                "8",
                "--log-every",
                "2",
                "--checkpoint-every",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "inpainting encoder" in capsys.readouterr().out
    Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(tmp_path / "grey.png")
    for init in ("auto", "encoder", "random"):
        out = tmp_path / f"{init}.png"
        assert (
            main(
                [
                    "fill",
                    str(tmp_path / "grey.png"),
                    "--mask-kind",
                    "centre",
                    "--checkpoint",
                    str(run),
                    "--crop",
                    "whole",
                    "--init",
                    init,
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        assert out.is_file()
    assert (
        main(["train-encoder", "--checkpoint", str(plain), "--data", str(tmp_path / "missing"), "--out", str(run)]) == 2
    )
    assert "data folder does not exist" in capsys.readouterr().err
