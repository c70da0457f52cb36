"""torch.distributed set-up for runs launched by `torchrun` (gloo on CPU, NCCL on CUDA)."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job; world 1 means a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, pictures and logs."""
        return self.rank == 0


def is_main_process() -> bool:
    """Whether this process is rank 0 (torchrun sets RANK; a plain run is rank 0), known
    before the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op when single-process)."""
    if context.world > 1:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    """Leave the process group."""
    if context.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def all_ranks_finite(value: float, device: torch.device, context: DistributedContext) -> bool:
    """True only if `value` is finite on every rank (so all ranks skip a bad step together)."""
    flag = torch.tensor([0.0 if torch.isfinite(torch.tensor(value)) else 1.0], device=device)
    if context.world > 1:
        dist.all_reduce(flag)
    return bool(flag.item() == 0.0)


@torch.no_grad()
def rank_checksums(module: torch.nn.Module, context: DistributedContext) -> list[float]:
    """Sum of all parameters on every rank (equal lists mean the replicas agree)."""
    first = next(module.parameters())
    total = torch.zeros(1, dtype=torch.float64, device=first.device)
    for p in module.parameters():
        total += p.detach().double().sum()
    if context.world == 1:
        return [float(total)]
    gathered = [torch.zeros_like(total) for _ in range(context.world)]
    dist.all_gather(gathered, total)
    return [float(g) for g in gathered]


def average_gradients(module: torch.nn.Module, context: DistributedContext) -> None:
    """Average `module`'s gradients over the ranks in one flat all-reduce (for trainable parts
    outside the DDP-wrapped UNet, e.g. the text encoder)."""
    if context.world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= context.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
