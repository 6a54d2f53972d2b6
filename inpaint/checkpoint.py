"""The checkpoint format: G and D weights in safetensors, with JSON metadata in its header.

A checkpoint is one `.safetensors` file, or a directory that holds one: a shipped checkpoint
folder (`model.safetensors` beside its model card) or a training run (its newest snapshot in
`checkpoints/`). Loading never unpickles anything: safetensors holds only tensors, and everything
needed to rebuild the networks (format version, architecture, latent prior, pixel normalisation)
is in the metadata. Training summary facts ride along for model cards and the app.

A face model may also carry its face framing (`framing`: where its training faces' landmarks sit,
see inpaint.locate) and a framer (`framer.*` tensors, settings under `framer`; see
inpaint.framer); a checkpoint without them is framed the older way. Format version 2 adds the
inpainting encoder (`encoder.*` tensors, settings under `encoder`; see inpaint.encoder), which
starts the latent search; version-1 files (no encoder) load as before and search from random
latents.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import inpaint
from inpaint.assets import default_checkpoint
from inpaint.encoder import Encoder, EncoderConfig, EncoderNet
from inpaint.errors import UserError
from inpaint.fileio import atomic_path
from inpaint.framer import Framer, FramerConfig, FramerNet
from inpaint.latent import LatentPrior
from inpaint.models import Discriminator, Generator, ModelConfig
from inpaint.validate import check_number

FORMAT_NAME = "inpaint-dcgan"
# The newest version read and written. 3: G may resize (model.upsample); 2: the optional inpainting
# encoder; older files still load. A file is written at the lowest version that holds it, so a
# transposed G stays readable by releases that know only version 2.
FORMAT_VERSION = 3


def format_version(config: ModelConfig) -> int:
    """The checkpoint format version a model with this configuration is written in."""
    return 3 if config.upsample != "transpose" else 2


WEIGHTS_FILE = "model.safetensors"
SNAPSHOT_DIR = "checkpoints"
BEST_FILE = "best.safetensors"  # a run's best-scoring snapshot, beside the step-* ones
SNAPSHOT_PATTERN = re.compile(r"^step-(\d+)\.safetensors$")

# Pixels are stored as x = (v / 255 - mean) / std, i.e. [-1, 1] for the tanh generator.
DEFAULT_PIXELS = {"mean": 0.5, "std": 0.5}


def unit_to_model(v: torch.Tensor, pixels: dict[str, float] = DEFAULT_PIXELS) -> torch.Tensor:
    """[0, 1] floats → model space, by a checkpoint's pixel normalisation."""
    return (v - pixels["mean"]) / pixels["std"]


def model_to_unit(x: torch.Tensor, pixels: dict[str, float] = DEFAULT_PIXELS) -> torch.Tensor:
    """Model space → [0, 1] floats, by a checkpoint's pixel normalisation."""
    return (x.float() * pixels["std"] + pixels["mean"]).clamp(0, 1)


def uint8_to_model(v: torch.Tensor) -> torch.Tensor:
    """0…255 pixels → model space, with the normalisation every trained checkpoint records."""
    return unit_to_model(v.float() / 255)


@dataclass
class Checkpoint:
    """A loaded checkpoint: ready-built networks (eval mode, on the CPU) plus their metadata."""

    path: Path
    config: ModelConfig
    prior: LatentPrior
    generator: Generator
    discriminator: Discriminator | None
    metadata: dict[str, Any] = field(default_factory=dict)
    framer: Framer | None = None
    encoder: Encoder | None = None

    @property
    def training(self) -> dict[str, Any]:
        return self.metadata.get("training", {})

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Model space → [0, 1] floats."""
        return model_to_unit(x, self.metadata.get("pixels", DEFAULT_PIXELS))

    def from_pixels(self, v: torch.Tensor) -> torch.Tensor:
        """[0, 1] floats → model space."""
        return unit_to_model(v, self.metadata.get("pixels", DEFAULT_PIXELS))


def snapshot_name(step: int) -> str:
    return f"step-{step:09d}.safetensors"


def list_snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every weights snapshot in a training run, oldest first."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = SNAPSHOT_PATTERN.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_checkpoint_path(path: str | Path) -> Path:
    """The weights file a user-given checkpoint path stands for."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / WEIGHTS_FILE).is_file():
            return path / WEIGHTS_FILE
        snapshots = list_snapshots(path)
        if snapshots:
            return snapshots[-1][1]
        raise UserError(
            f"{path}: holds no checkpoint (expected {WEIGHTS_FILE} or a training run's "
            f"{SNAPSHOT_DIR}/step-*.safetensors)"
        )
    raise UserError(f"{path}: no such checkpoint file or directory")


def save_checkpoint(
    path: str | Path,
    generator: Generator,
    discriminator: Discriminator | None,
    prior: LatentPrior,
    training: dict[str, Any] | None = None,
    weights_dtype: torch.dtype = torch.float32,
    content: str | None = None,
    framing: dict[str, Any] | None = None,
    framer: FramerNet | None = None,
    encoder: EncoderNet | None = None,
) -> Path:
    """Write G (and D) with full metadata, atomically. Floating weights are stored as
    `weights_dtype` (float32 by default) and always loaded back as float32. `content` says what
    the model draws ("faces" makes the engine look for faces to frame the crop); `framing` is a
    face model's measured framing (inpaint.locate.FaceTemplate.to_metadata) and `framer` its
    framer network; `encoder` its inpainting encoder."""
    config = generator.config
    metadata = {
        "format": FORMAT_NAME,
        "format_version": format_version(config),
        "inpaint_version": inpaint.__version__,
        "model": config.to_dict(),
        "latent_prior": prior.to_dict(),
        "pixels": DEFAULT_PIXELS,
        "has_discriminator": discriminator is not None,
        "training": training or {},
    }
    if content:
        metadata["content"] = content
    if framing:
        metadata["framing"] = framing
    tensors = _prefixed_state("generator.", generator, weights_dtype)
    if discriminator is not None:
        tensors.update(_prefixed_state("discriminator.", discriminator, weights_dtype))
    if framer is not None:
        metadata["framer"] = framer.config.to_dict()
        tensors.update(_prefixed_state("framer.", framer, weights_dtype))
    if encoder is not None:
        metadata["encoder"] = encoder.config.to_dict()
        tensors.update(_prefixed_state("encoder.", encoder, weights_dtype))
    header = {
        "format": FORMAT_NAME,
        "format_version": str(format_version(config)),
        "metadata": json.dumps(metadata, sort_keys=True),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def _prefixed_state(prefix: str, module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    state = {}
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        # safetensors needs a dense, standard-layout buffer (channels_last weights are not).
        state[prefix + name] = tensor.contiguous()
    return state


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Validate a checkpoint's header and return its metadata, without reading the weights."""
    weights = resolve_checkpoint_path(path)
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        _refuse_pickles(weights)
        raise UserError(
            f"{weights}: not a readable checkpoint: truncated, corrupt or not safetensors ({error})"
        ) from None
    return _check_header(weights, header)


def training_command(metadata: dict[str, Any]) -> str | None:
    """The `inpaint train` command line that rebuilds a checkpoint's networks, as its training
    recorded it (None: not recorded). Commands recorded before G resized, a held-out split was
    scored and the precision was chosen by the machine by default lack the flags that keep those
    defaults off; they are added."""
    command = metadata.get("training", {}).get("training_command")
    if not isinstance(command, str):
        return None
    if metadata.get("model", {}).get("upsample", "transpose") == "transpose" and "--g-upsample" not in command:
        command += " --g-upsample transpose"
    if "--val-count" in command and "--eval-every" not in command:
        command += " --eval-every 0"
    if "--precision" not in command:
        command += " --precision fp32"
    return command


def load_checkpoint(
    path: str | Path,
    with_discriminator: bool = True,
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """Load a checkpoint and build its networks from the metadata alone (eval mode, frozen)."""
    weights = resolve_checkpoint_path(path)
    metadata = read_metadata(weights)
    try:
        config = ModelConfig.from_dict(metadata["model"])
        prior = LatentPrior.from_dict(metadata.get("latent_prior", {}))
        metadata["pixels"] = _pixel_normalisation(metadata.get("pixels", DEFAULT_PIXELS))
    except (UserError, KeyError, TypeError, ValueError) as error:
        raise UserError(f"{weights}: invalid model metadata ({error})") from None
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{weights}: weights are unreadable (truncated or corrupt: {error})") from None
    generator = _build(weights, Generator(config), tensors, "generator.")
    discriminator = None
    if with_discriminator and metadata.get("has_discriminator", True):
        discriminator = _build(weights, Discriminator(config), tensors, "discriminator.")
    framer = None
    if "framer" in metadata and any(key.startswith("framer.") for key in tensors):
        framer = Framer(_build(weights, FramerNet(FramerConfig.from_dict(metadata["framer"])), tensors, "framer."))
    encoder = None
    if "encoder" in metadata and any(key.startswith("encoder.") for key in tensors):
        net = EncoderNet(config, prior, EncoderConfig.from_dict(metadata["encoder"]))
        encoder = Encoder(_build(weights, net, tensors, "encoder.").to(device))
    return Checkpoint(
        path=weights,
        config=config,
        prior=prior,
        # channels_last: faster for these convolutions on the CPU in either precision (search_speed.py)
        generator=generator.to(device, memory_format=torch.channels_last),
        discriminator=discriminator.to(device, memory_format=torch.channels_last)
        if discriminator is not None
        else None,
        metadata=metadata,
        framer=framer,
        encoder=encoder,
    )


def resave_checkpoint(
    checkpoint: Checkpoint,
    path: str | Path,
    training: dict[str, Any] | None = None,
    framing: dict[str, Any] | None = None,
    framer: FramerNet | None = None,
    encoder: EncoderNet | None = None,
) -> Path:
    """Write a loaded checkpoint again, in its stored precision, with a part added or replaced (a
    new training summary, framing, framer or encoder); every part not given is kept."""
    return save_checkpoint(
        path,
        checkpoint.generator,
        checkpoint.discriminator,
        checkpoint.prior,
        training if training is not None else checkpoint.training,
        stored_dtype(checkpoint.path),
        checkpoint.metadata.get("content"),
        framing if framing is not None else checkpoint.metadata.get("framing"),
        framer if framer is not None else (checkpoint.framer.net if checkpoint.framer else None),
        encoder if encoder is not None else (checkpoint.encoder.net if checkpoint.encoder else None),
    )


def stored_dtype(path: str | Path) -> torch.dtype:
    """The precision a checkpoint's generator weights are stored in."""
    with safe_open(str(resolve_checkpoint_path(path)), framework="pt", device="cpu") as handle:
        key = next(k for k in handle.keys() if k.startswith("generator.") and k.endswith("weight"))
        return handle.get_tensor(key).dtype


def _pixel_normalisation(pixels: Any) -> dict[str, float]:
    """The stored pixel normalisation x = (v - mean) / std, checked: numbers, std not zero."""
    if not isinstance(pixels, dict):
        raise UserError(f"pixels must be a mapping of mean and std, not {pixels!r}")
    return {
        "mean": check_number(pixels.get("mean"), "pixels.mean", -10, 10),
        "std": check_number(pixels.get("std"), "pixels.std", 1e-6, 10),
    }


def _build(weights: Path, module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str):
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    for name, tensor in state.items():
        # Whole-number tensors are BatchNorm's step counters; weights must be stored as floats
        # (int8 or bool weights would load as a different network) and finite.
        if tensor.is_floating_point():
            if not torch.isfinite(tensor).all():
                raise UserError(f"{weights}: {prefix}{name} holds NaN or infinite values; the checkpoint is damaged")
        elif not name.endswith("num_batches_tracked"):
            raise UserError(f"{weights}: {prefix}{name} is stored as {tensor.dtype}, not floating point")
    expected = module.state_dict()
    state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise UserError(
            f"{weights}: {prefix.rstrip('.')} weights do not match the architecture in its metadata ({first_line})"
        ) from None
    module.eval()
    module.requires_grad_(False)
    return module


def _refuse_pickles(path: Path) -> None:
    """Name the likely cause when a file that failed to parse as safetensors is a torch pickle."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head == b"PK\x03\x04":
        raise UserError(
            f"{path}: is a pickled PyTorch file; inpaint loads only safetensors checkpoints, which cannot run code"
        )


def _check_header(path: Path, header: dict[str, str]) -> dict[str, Any]:
    if header.get("format") != FORMAT_NAME:
        raise UserError(
            f"{path}: is a safetensors file but not an inpaint checkpoint (no '{FORMAT_NAME}' format marker)"
        )
    try:
        version = int(header.get("format_version", ""))
        metadata = json.loads(header["metadata"])
    except (KeyError, ValueError):
        raise UserError(f"{path}: inpaint checkpoint with a damaged header") from None
    if version > FORMAT_VERSION:
        raise UserError(
            f"{path}: written in checkpoint format version {version}; this inpaint "
            f"{inpaint.__version__} reads up to version {FORMAT_VERSION}; upgrade inpaint"
        )
    if version < 1:
        raise UserError(f"{path}: unknown checkpoint format version {version}")
    return metadata


# The shipped default face checkpoint, used whenever no --checkpoint is given.
DEFAULT_CHECKPOINT = default_checkpoint()


def checkpoint_or_default(path: str | Path | None) -> Path:
    """The user's checkpoint path, or the shipped default when none was given."""
    if path is not None:
        return Path(path)
    if not (DEFAULT_CHECKPOINT / WEIGHTS_FILE).is_file():
        raise UserError(
            f"no checkpoint given and the default checkpoint {DEFAULT_CHECKPOINT} is not present; "
            "train one with `inpaint train` and pass its run folder"
        )
    return DEFAULT_CHECKPOINT
