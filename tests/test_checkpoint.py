"""inpaint.checkpoint: safetensors round trip, path resolution, and refusal of everything else."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import inpaint
import inpaint.checkpoint as ckpt
from inpaint.checkpoint import (
    FORMAT_VERSION,
    WEIGHTS_FILE,
    checkpoint_or_default,
    load_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
    snapshot_name,
)
from inpaint.errors import UserError
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator, ModelConfig

CONFIG = ModelConfig(image_size=32, g_width=8, d_width=8)


def trained_looking_pair(seed: int = 0) -> tuple[Generator, Discriminator]:
    """A tiny G/D whose BatchNorm statistics differ from a fresh network's."""
    torch.manual_seed(seed)
    generator, discriminator = Generator(CONFIG), Discriminator(CONFIG)
    with torch.no_grad():
        fakes = generator(torch.rand(16, CONFIG.latent_dim) * 2 - 1)  # train mode: updates stats
        discriminator(fakes)
    return generator.eval(), discriminator.eval()


def save_pair(path: Path, seed: int = 0, **options) -> Path:
    generator, discriminator = trained_looking_pair(seed)
    options.setdefault("training", {"steps": seed})
    return save_checkpoint(path, generator, discriminator, LatentPrior("uniform"), **options)


@pytest.fixture
def pair():
    return trained_looking_pair()


def refusal(path: Path) -> str:
    with pytest.raises(UserError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message, "the message must name the file"
    assert "\n" not in message
    return message


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_gives_identical_networks_and_keeps_metadata(tmp_path, pair):
    generator, discriminator = pair
    training = {"steps": 1234, "images_seen": 98765, "data": "faces/", "losses": [0.5, 0.25]}
    path = save_checkpoint(
        tmp_path / "tiny.safetensors", generator, discriminator, LatentPrior("normal"), training, content="faces"
    )
    assert path.is_file()
    loaded = load_checkpoint(path)

    assert loaded.path == path
    assert loaded.config == CONFIG and loaded.generator.config == CONFIG
    assert loaded.prior == LatentPrior("normal")
    assert loaded.training == training
    assert loaded.metadata["content"] == "faces"
    assert loaded.metadata["format_version"] == 2 < FORMAT_VERSION  # a transposed G: readable by older releases
    assert loaded.metadata["inpaint_version"] == inpaint.__version__
    assert loaded.metadata["has_discriminator"] is True

    z = torch.rand(6, CONFIG.latent_dim, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        original = generator(z)
        # Loaded networks use channels_last, whose convolutions add in another order: equal to
        # rounding, with the weights themselves exactly equal (below).
        assert torch.allclose(loaded.generator(z), original, atol=1e-6)
        assert torch.allclose(loaded.discriminator(original), discriminator(original), atol=1e-5)
    # Every parameter and buffer (BatchNorm running statistics included) came back exactly.
    for before, after in ((generator, loaded.generator), (discriminator, loaded.discriminator)):
        state, restored = before.state_dict(), after.state_dict()
        assert state.keys() == restored.keys()
        assert all(torch.equal(state[k], restored[k]) for k in state)

    for network in (loaded.generator, loaded.discriminator):
        assert not network.training and not any(m.training for m in network.modules())
        assert not any(p.requires_grad for p in network.parameters())


def test_a_different_network_does_not_match(tmp_path, pair):
    path = save_checkpoint(tmp_path / "a.safetensors", *pair, LatentPrior())
    other, _ = trained_looking_pair(seed=1)
    z = torch.rand(2, CONFIG.latent_dim) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(load_checkpoint(path).generator(z), other(z))


def test_generator_only_checkpoint(tmp_path, pair):
    path = save_checkpoint(tmp_path / "g.safetensors", pair[0], None, LatentPrior())
    loaded = load_checkpoint(path)
    assert loaded.discriminator is None and loaded.metadata["has_discriminator"] is False
    with safe_open(str(path), framework="pt") as handle:
        assert all(key.startswith("generator.") for key in handle.keys())
    full = save_checkpoint(tmp_path / "gd.safetensors", *pair, LatentPrior())
    assert load_checkpoint(full, with_discriminator=False).discriminator is None


def test_half_precision_weights_are_smaller_and_load_as_float32(tmp_path, pair):
    generator, discriminator = pair
    full = save_checkpoint(tmp_path / "full.safetensors", generator, discriminator, LatentPrior())
    half = save_checkpoint(
        tmp_path / "half.safetensors", generator, discriminator, LatentPrior(), weights_dtype=torch.float16
    )
    assert half.stat().st_size < 0.6 * full.stat().st_size
    stored = load_file(str(half))
    assert stored["generator.main.0.weight"].dtype == torch.float16
    assert stored["generator.main.1.num_batches_tracked"].dtype == torch.int64  # integers untouched

    loaded = load_checkpoint(half)
    for network in (loaded.generator, loaded.discriminator):
        assert all(t.dtype == torch.float32 for t in network.state_dict().values() if t.is_floating_point())
    z = torch.rand(4, CONFIG.latent_dim) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded.generator(z), generator(z), atol=2e-2)


# --- finding the weights file ----------------------------------------------------------------


def test_folder_with_model_safetensors(tmp_path):
    folder = tmp_path / "celeba64"
    save_pair(folder / WEIGHTS_FILE, seed=3)
    (folder / "README.md").write_text("model card")
    assert resolve_checkpoint_path(folder) == folder / WEIGHTS_FILE
    loaded = load_checkpoint(folder)
    assert loaded.path == folder / WEIGHTS_FILE and loaded.training == {"steps": 3}


def test_training_run_folder_picks_the_highest_step(tmp_path):
    run = tmp_path / "run"
    snapshots = run / "checkpoints"
    # Written out of order (the newest step is not the newest file) and with mixed name padding.
    save_pair(snapshots / snapshot_name(300), seed=300)
    save_pair(snapshots / "step-99.safetensors", seed=99)
    save_pair(snapshots / snapshot_name(40), seed=40)
    save_pair(snapshots / "best.safetensors", seed=7)
    save_pair(snapshots / "step-latest.safetensors", seed=8)
    (run / "samples").mkdir()
    assert resolve_checkpoint_path(run) == snapshots / snapshot_name(300)
    assert load_checkpoint(run).training == {"steps": 300}


def test_model_file_wins_over_snapshots(tmp_path):
    save_pair(tmp_path / "checkpoints" / snapshot_name(10), seed=10)
    save_pair(tmp_path / WEIGHTS_FILE, seed=1)
    assert load_checkpoint(tmp_path).training == {"steps": 1}


def test_missing_path_and_empty_folder_are_refused(tmp_path):
    assert "no such checkpoint" in refusal(tmp_path / "absent.safetensors")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    assert "holds no checkpoint" in refusal(tmp_path / "empty")


def test_default_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "DEFAULT_CHECKPOINT", tmp_path / "celeba64")
    with pytest.raises(UserError) as error:
        checkpoint_or_default(None)
    message = str(error.value)
    assert str(tmp_path / "celeba64") in message and "no checkpoint given" in message
    assert checkpoint_or_default(tmp_path / "mine") == tmp_path / "mine"
    save_pair(tmp_path / "celeba64" / WEIGHTS_FILE)
    assert checkpoint_or_default(None) == tmp_path / "celeba64"


# --- refusals --------------------------------------------------------------------------------


class Payload:
    """Unpickling this creates `marker`: proof that loading ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_the_payload_really_runs_when_unpickled(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_plain_torch_save_is_refused(tmp_path, pair):
    for legacy in (False, True):
        path = tmp_path / f"weights-{legacy}.pth"
        torch.save(pair[0].state_dict(), path, _use_new_zipfile_serialization=not legacy)
        assert "pickled PyTorch file" in refusal(path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_without_running(tmp_path, suffix, legacy):
    marker = tmp_path / "payload-ran"
    path = tmp_path / f"evil{suffix}"
    torch.save({"generator": Payload(marker)}, path, _use_new_zipfile_serialization=not legacy)
    assert not marker.exists()
    assert "pickled" in refusal(path)
    with pytest.raises(UserError):
        ckpt.read_metadata(path)
    assert not marker.exists(), "loading a checkpoint ran code from a pickle"


def test_truncated_checkpoint_is_refused(tmp_path):
    whole = save_pair(tmp_path / "whole.safetensors").read_bytes()
    for name, cut in (("half", len(whole) // 2), ("header-only", 200), ("nearly", len(whole) - 1)):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(whole[:cut])
        message = refusal(path)
        assert "truncated" in message or "corrupt" in message


def test_png_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, "PNG")
    for name in ("picture.png", "disguised.safetensors"):
        (tmp_path / name).write_bytes(buffer.getvalue())
        assert "not safetensors" in refusal(tmp_path / name)


def test_foreign_safetensors_is_refused(tmp_path, pair):
    state = {k: v.contiguous() for k, v in pair[0].state_dict().items()}
    save_file(state, str(tmp_path / "plain.safetensors"))
    save_file(state, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    for name in ("plain.safetensors", "other.safetensors"):
        assert "not an inpaint checkpoint" in refusal(tmp_path / name)


def rewrite_header(source: Path, target: Path, **changes: str) -> Path:
    """Copy a checkpoint with some of its safetensors header entries replaced."""
    with safe_open(str(source), framework="pt") as handle:
        header = dict(handle.metadata())
    header.update(changes)
    save_file(load_file(str(source)), str(target), metadata=header)
    return target


def test_newer_format_version_is_refused_with_upgrade_advice(tmp_path):
    good = save_pair(tmp_path / "good.safetensors")
    assert load_checkpoint(rewrite_header(good, tmp_path / "same.safetensors", format_version="1")).config == CONFIG
    future = rewrite_header(good, tmp_path / "future.safetensors", format_version="99")
    message = refusal(future)
    assert "version 99" in message and "upgrade" in message.lower()


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"format_version": "one"}, "damaged header"),
        ({"metadata": "{not json"}, "damaged header"),
        ({"format_version": "0"}, "version 0"),
        ({"metadata": '{"model": {"image_size": 48}}'}, "invalid model metadata"),
        ({"metadata": '{"model": {"image_size": 64, "g_width": 8, "d_width": 8}}'}, "do not match"),
    ],
)
def test_damaged_headers_are_refused(tmp_path, changes, expected):
    path = rewrite_header(save_pair(tmp_path / "good.safetensors"), tmp_path / "bad.safetensors", **changes)
    assert expected in refusal(path)


def test_metadata_is_readable_without_weights(tmp_path):
    metadata = ckpt.read_metadata(save_pair(tmp_path / "pair.safetensors"))
    assert metadata["format"] == "inpaint-dcgan" and metadata["model"]["image_size"] == 32
    assert metadata["pixels"] == {"mean": 0.5, "std": 0.5}


def test_a_resizing_generator_is_written_in_the_version_that_knows_it(tmp_path):
    """A transposed G's file is written as before G could resize (no `upsample`, version 2), so older
    releases still read it; a resizing G's says version 3, so they ask to be upgraded instead of
    building the wrong network."""
    transposed = ckpt.read_metadata(save_pair(tmp_path / "t.safetensors"))
    assert transposed["format_version"] == 2 and "upsample" not in transposed["model"]
    config = ModelConfig(image_size=32, g_width=8, d_width=8, upsample="resize")
    torch.manual_seed(0)
    generator, discriminator = Generator(config).eval(), Discriminator(config).eval()
    path = save_checkpoint(tmp_path / "r.safetensors", generator, discriminator, LatentPrior("uniform"), {})
    loaded = load_checkpoint(path)
    assert loaded.metadata["format_version"] == 3 and loaded.config == config
    z = torch.rand(2, config.latent_dim) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded.generator(z), generator(z), atol=1e-6)
