"""Data-parallel training through `torchrun` (gloo on CPU); a single process is the world-of-one case.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `setup()` reads them, so the same trainer runs alone
or as one of N replicas. Only rank 0 logs and writes checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (in place); a no-op alone."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP when distributed. Unused parameters are allowed: a batch may lack a modality."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, find_unused_parameters=True)


def setup(backend: str = "gloo") -> DistContext:
    """Join the process group torchrun prepared, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size())


def teardown(context: DistContext) -> None:
    if context.enabled and dist.is_initialized():
        # every rank arrives before any tears the group down: a rank that destroys it while gloo's
        # threads of another still talk to it can abort that rank at exit ("terminate called
        # without an active exception", seen once in the suite's two-rank alignment test)
        dist.barrier()
        dist.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model
