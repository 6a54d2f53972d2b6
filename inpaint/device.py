"""Choosing where and in what precision the networks run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from inpaint.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")


def select_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; anything else must be usable as asked."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UserError(f"unknown device {requested!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for, but this torch sees no CUDA GPU")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for, but MPS is not available here")
    return device


def search_precision(device: torch.device, requested: str = "auto") -> str:
    """The precision the latent search runs in. 'auto' is bf16 on a CPU with native bf16 matrix
    instructions (there the search runs about 3× faster than in fp32; benchmarks/search_speed.py)
    and fp32 everywhere else."""
    if requested != "auto":
        return check_precision(device, requested)
    native_bf16 = device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return "bf16" if native_bf16 else "fp32"


def check_precision(device: torch.device, precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise UserError("fp16 is not supported on the CPU; use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"this GPU ({torch.cuda.get_device_name(device)}) does not support bf16; use fp16 or fp32")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for the forward passes; a no-op for fp32."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
