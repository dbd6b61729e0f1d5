"""torch.distributed for the captioner's training: joined from torchrun's environment, or one process.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/MASTER_PORT); `current()` joins the
process group with NCCL when there is a GPU and gloo otherwise. Without those variables (a notebook, a
plain `python`), or with WORLD_SIZE=1, it is one process and every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.world > 1


def current() -> Ranks:
    """The run's ranks; joins the process group on first use under torchrun."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), local)


def device(ranks: Ranks) -> torch.device:
    """The device this rank trains on: its own GPU (LOCAL_RANK), or the CPU."""
    return torch.device("cuda", ranks.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if ranks.active:
        dist.barrier()


def sum_all(ranks: Ranks, values: list[float], on: torch.device) -> list[float]:
    """Element-wise sum of `values` over the ranks (float64; NCCL needs the tensor on the GPU)."""
    if not ranks.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(tensor)
    return tensor.tolist()
