"""Processes under `torchrun`: rank and world size, the gloo process group, which rank writes.

Every training stage runs unchanged under `torchrun --nproc_per_node N`: the group is started on
first use (`rank_and_world`), each rank trains on its shard, and only rank 0 (`is_main_process`) writes
files or prints.
"""

from __future__ import annotations

import os

import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless a torch.distributed process group is running.

    Under `torchrun` (WORLD_SIZE > 1 in the environment) the group is started here, once, with
    the gloo backend (the loops run on the CPU).
    """
    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shutdown_distributed() -> None:
    """End the process group `rank_and_world` started (without this, gloo can abort at interpreter exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed): the process that writes files and prints."""
    return rank_and_world()[0] == 0
