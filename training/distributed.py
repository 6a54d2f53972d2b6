"""Process-group set-up for runs launched by `torchrun`; a plain run is a world of one."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from inpaint.errors import UserError
from inpaint.ranks import local_rank_from_env, local_world_size_from_env


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    backend: str = ""  # "gloo" or "nccl"; empty for a world of one

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def choose_backend(device_type: str, local_size: int, cuda_devices: int) -> str:
    """nccl only when every process on this machine has a GPU of its own; gloo on the CPU and when
    processes must share a GPU: NCCL refuses two ranks on one device (most likely why the children
    of `torchrun --nproc_per_node 2` failed on a one-GPU machine), while gloo reduces
    CUDA tensors through host memory. The decision uses only what every rank of a machine sees alike
    (the device kind, the process and GPU counts), so all ranks pick the same backend."""
    if device_type != "cuda" or local_size > cuda_devices:
        return "gloo"
    return "nccl"


def rank_device(local_rank: int, cuda_devices: int) -> torch.device:
    """The GPU of a process: ranks take the visible GPUs in turn (cuda:{LOCAL_RANK % count})."""
    return torch.device("cuda", local_rank % max(1, cuda_devices))


def init_world(device: torch.device | str) -> World:
    """Join the process group torchrun describes in the environment, on the backend choose_backend
    picks for `device` (as select_device chose it for this rank)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    device = torch.device(device)
    local_rank, local_size = local_rank_from_env(), local_world_size_from_env()
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    backend = choose_backend(device.type, local_size, count)
    if device.type == "cuda":
        expected = rank_device(local_rank, count)
        if backend == "nccl" and local_size > 1 and device.index is not None and device != expected:
            raise UserError(
                f"under torchrun each process takes its own GPU ({expected} for local rank {local_rank}); "
                f"use --device cuda or auto rather than {device}"
            )
        # Collectives run on the current device; without this every rank would work on cuda:0.
        torch.cuda.set_device(expected if device.index is None else device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return World(rank=dist.get_rank(), local_rank=local_rank, size=size, backend=backend)


def all_reduce_(tensor: torch.Tensor, world: World, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (no-op for a world of one)."""
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def all_gather_floats(values: list[float], world: World, device: torch.device) -> list[list[float]]:
    """Every rank's list of floats, in rank order."""
    local = torch.tensor(values, dtype=torch.float64, device=device)
    if not world.distributed:
        return [local.tolist()]
    gathered = [torch.empty_like(local) for _ in range(world.size)]
    dist.all_gather(gathered, local)
    return [t.tolist() for t in gathered]


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
