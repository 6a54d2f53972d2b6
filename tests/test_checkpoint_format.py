"""The checkpoint format: round trip, resolution of folders, and refusal of anything else."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import inpaint.checkpoint as ckpt
from inpaint.checkpoint import FORMAT_VERSION, load_checkpoint, read_metadata, save_checkpoint
from inpaint.errors import UserError
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator, ModelConfig

CONFIG = ModelConfig(image_size=32, g_width=8, d_width=8, latent_dim=16)


def tiny_pair(seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    generator, discriminator = Generator(CONFIG), Discriminator(CONFIG)
    # Move BatchNorm statistics away from their defaults so the round trip must carry them.
    generator.train()
    with torch.no_grad():
        generator(torch.rand(8, CONFIG.latent_dim) * 2 - 1)
    return generator.eval(), discriminator.eval()


@pytest.fixture
def saved(tmp_path) -> tuple[Path, Generator, Discriminator]:
    generator, discriminator = tiny_pair()
    path = save_checkpoint(tmp_path / "model.safetensors", generator, discriminator, LatentPrior("uniform"), {"steps": 7, "images": 3})
    return path, generator, discriminator


def test_round_trip_rebuilds_identical_networks_from_metadata(saved):
    path, generator, discriminator = saved
    loaded = load_checkpoint(path)
    assert loaded.config == CONFIG and loaded.prior.kind == "uniform"
    assert loaded.training == {"steps": 7, "images": 3}
    z = torch.rand(4, CONFIG.latent_dim) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.generator(z), generator(z))
        image = generator(z)
        assert torch.equal(loaded.discriminator(image), discriminator(image))
    assert not loaded.generator.training and not loaded.discriminator.training
    assert not any(p.requires_grad for p in loaded.generator.parameters())


def test_without_discriminator(saved):
    assert load_checkpoint(saved[0], with_discriminator=False).discriminator is None


def test_folder_and_run_resolution(tmp_path, saved):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(saved[0].read_bytes())
    assert load_checkpoint(folder).path == folder / "model.safetensors"
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    generator, discriminator = tiny_pair(seed=1)
    for step in (5, 40, 300):
        save_checkpoint(run / ckpt.snapshot_name(step), generator, discriminator, LatentPrior(), {"steps": step})
    assert load_checkpoint(tmp_path / "run").training["steps"] == 300


def test_half_precision_storage_is_smaller_and_loads_as_float32(tmp_path, saved):
    path, generator, discriminator = saved
    half = save_checkpoint(tmp_path / "half.safetensors", generator, discriminator, LatentPrior(), weights_dtype=torch.float16)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    loaded = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in loaded.generator.parameters())
    z = torch.rand(2, CONFIG.latent_dim) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded.generator(z), generator(z), atol=2e-2)


class Payload:
    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def assert_refused(path: Path, *fragments: str) -> None:
    with pytest.raises(UserError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_pickle_payload_is_refused_without_running_it(tmp_path):
    payload = Payload()
    payload.marker = tmp_path / "payload-ran"
    torch.save({"generator": payload}, tmp_path / "evil.pt")
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump(payload, handle)
    assert not payload.marker.exists()
    assert_refused(tmp_path / "evil.pt", "pickled PyTorch file")
    assert_refused(tmp_path / "evil.pkl", "pickled PyTorch file")
    assert not payload.marker.exists()


def test_plain_torch_save_state_dict_is_refused(tmp_path):
    torch.save(tiny_pair()[0].state_dict(), tmp_path / "weights.pth")
    assert_refused(tmp_path / "weights.pth", "pickled")


def test_truncated_checkpoint_is_refused(tmp_path, saved):
    data = saved[0].read_bytes()
    for fraction in (0.5, 0.01):
        cut = tmp_path / f"cut-{fraction}.safetensors"
        cut.write_bytes(data[: int(len(data) * fraction)])
        assert_refused(cut, "truncated")


def test_other_formats_are_refused(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "picture.png")
    assert_refused(tmp_path / "picture.png", "not safetensors")
    save_file({"weight": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "pt"})
    assert_refused(tmp_path / "foreign.safetensors", "not an inpaint checkpoint")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    assert_refused(tmp_path / "empty.safetensors")


def rewrite_header(path: Path, change) -> None:
    """Edit a safetensors file's JSON header in place (keeping the tensor bytes)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    change(header)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + length :])


def test_newer_format_version_is_refused_with_upgrade_advice(saved):
    path = saved[0]
    rewrite_header(path, lambda h: h["__metadata__"].update(format_version=str(FORMAT_VERSION + 98)))
    assert_refused(path, f"version {FORMAT_VERSION + 98}", "upgrade")


def test_mismatched_architecture_metadata_is_refused(saved):
    path = saved[0]

    def widen(header):
        metadata = json.loads(header["__metadata__"]["metadata"])
        metadata["model"]["g_width"] = 16
        header["__metadata__"]["metadata"] = json.dumps(metadata)

    rewrite_header(path, widen)
    assert_refused(path, "do not match the architecture")


def test_metadata_is_readable_without_weights(saved):
    metadata = read_metadata(saved[0])
    assert metadata["format"] == "inpaint-dcgan" and metadata["model"]["image_size"] == 32
    assert metadata["pixels"] == {"mean": 0.5, "std": 0.5}


def test_missing_paths(tmp_path, monkeypatch):
    assert_refused(tmp_path / "nothing-here", "no such checkpoint")
    (tmp_path / "empty-folder").mkdir()
    assert_refused(tmp_path / "empty-folder", "holds no checkpoint")
    monkeypatch.setattr(ckpt, "DEFAULT_CHECKPOINT", tmp_path / "no-default")
    with pytest.raises(UserError, match="no --checkpoint given"):
        ckpt.checkpoint_or_default(None)
    assert ckpt.checkpoint_or_default("given") == Path("given")
