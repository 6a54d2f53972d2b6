"""Choosing where, in what precision and on how many CPU threads the networks run."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

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
            raise UserError("device cuda was asked for, but this torch sees no CUDA GPU")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("device mps was asked for, but MPS is not available here")
    return device


def search_precision(device: torch.device, requested: str = "auto") -> str:
    """The precision the networks run in, for the search and for training alike. 'auto' is bf16 on a
    CPU with native bf16 matrix instructions (there the search runs about 3× faster than in fp32,
    benchmarks/search_speed.py, and training with channels_last about 3× faster,
    benchmarks/train_speed.py) and fp32 everywhere else."""
    if requested != "auto":
        return check_precision(device, requested)
    native_bf16 = (
        device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    return "bf16" if native_bf16 else "fp32"


def check_precision(device: torch.device, precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise UserError("fp16 is not supported on the CPU; use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"this GPU ({torch.cuda.get_device_name(device)}) does not support bf16; use fp16 or fp32")
    return precision


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor copied to `device`. On CUDA a plain copy from pageable memory waits until the GPU
    has finished all queued work (a sync); from pinned memory it is queued like a kernel (torch's
    pinned-memory pool keeps the page until the copy is done). The values are the same either way."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str, cache: bool = True) -> Iterator[None]:
    """Mixed precision for the forward passes; a no-op for fp32. `cache=False` for code recorded as a
    CUDA graph: autocast's cache of cast weights lives only as long as its region, and a replay would
    read freed memory."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache):
        yield


def available_cores() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (containers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_cores(samples: int = 5, interval: float = 0.01) -> float:
    """How many cores other processes keep busy now: on Linux the runnable tasks of /proc/loadavg
    (this one excluded), averaged over a few samples; elsewhere the one-minute load average."""
    try:
        counts = []
        for i in range(samples):
            if i:
                time.sleep(interval)
            running = Path("/proc/loadavg").read_text().split()[3].split("/")[0]
            counts.append(int(running) - 1)
        return max(0.0, sum(counts) / len(counts))
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def cpu_threads(concurrent: int = 1) -> int:
    """Threads for CPU work that should not oversubscribe: the cores other processes are not
    keeping busy, shared among `concurrent` jobs of this process; at least one. OpenMP threads
    wait for each other at every operation, so one thread that loses its core to another process
    stalls them all (benchmarks/threads.py measures it)."""
    free = max(1, available_cores() - int(busy_cores() + 0.5))
    return max(1, free // max(1, concurrent))


def limit_cpu_threads(concurrent: int = 1, processes: int = 1) -> int:
    """Set torch's CPU threads by cpu_threads unless the user chose them (OMP_NUM_THREADS or
    INPAINT_THREADS); returns the number in use. `processes` > 1: this is one of that many processes
    torchrun started on this machine; each takes an equal share of the cores (the others' load is
    its siblings', not a stranger's), and OMP_NUM_THREADS is not taken as the user's choice: torchrun
    sets it to 1 for every process unless told otherwise (INPAINT_THREADS still chooses)."""
    chosen = os.environ.get("INPAINT_THREADS")
    if chosen is None and processes <= 1 and "OMP_NUM_THREADS" in os.environ:
        chosen = ""  # torch has read OMP_NUM_THREADS already
    if chosen:
        try:
            torch.set_num_threads(max(1, int(chosen)))
        except ValueError:
            raise UserError(f"INPAINT_THREADS must be a whole number, not {chosen!r}") from None
    elif chosen is None:
        shared = available_cores() // processes // max(1, concurrent)
        torch.set_num_threads(max(1, shared) if processes > 1 else cpu_threads(concurrent))
    return torch.get_num_threads()


def batch_invariant_rows(rows: int, device: torch.device) -> int:
    """The rows to run a batch of `rows` as (the extra ones padding) so that every row comes out as
    the same bits whatever the batch and the thread count. On the CPU, oneDNN's convolutions split
    a batch whose size is a multiple of the thread count by images, each image computed as a
    single thread computes it, but split other sizes inside an image, which sums in another order
    (tests/test_default_checkpoint.py checks the search for it): a multiple of the threads. Other
    devices: as it is."""
    if device.type != "cpu":
        return rows
    threads = torch.get_num_threads()
    return -(-rows // threads) * threads


def pad_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """`tensor` with copies of its first row appended up to `rows` rows (see batch_invariant_rows)."""
    extra = rows - len(tensor)
    return torch.cat([tensor, tensor[:1].detach().expand(extra, *tensor.shape[1:])]) if extra > 0 else tensor


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model (from /proc/cpuinfo on Linux)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"
