"""Deterministic batch order derived from the step alone, so resuming needs only the step."""

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ldmkit.data.collate import collate


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the `epoch`-th pass over `n` items."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Dataset indices of the batch at `step` (epochs are reshuffled, batches may straddle them)."""
    out: list[int] = []
    start = step * batch_size
    perm, perm_epoch = None, -1
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, n)
        if epoch != perm_epoch:
            perm, perm_epoch = epoch_permutation(n, seed, epoch), epoch
        assert perm is not None
        out.append(int(perm[offset]))
    return out


class StepBatchSampler(Sampler[list[int]]):
    """Yields the batches of steps `start, start + 1, ..., stop - 1` (one rank's share)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world: int = 1,
    ):
        if batch_size % world != 0:
            raise ValueError(f"batch_size {batch_size} must be divisible by world size {world}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        share = self.batch_size // self.world
        for step in range(self.start, self.stop):
            batch = batch_indices(step, self.batch_size, self.n, self.seed)
            yield batch[self.rank * share : (self.rank + 1) * share]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def batch_loader(
    dataset: Dataset[dict[str, Any]],
    batch_size: int,
    seed: int,
    start: int,
    stop: int,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
) -> DataLoader[dict[str, Any]]:
    """A DataLoader over this rank's share of the deterministic batches of steps [start, stop)."""
    n = len(dataset)  # type: ignore[arg-type]
    sampler = StepBatchSampler(n, batch_size, seed, start, stop, rank, world)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        # Its own generator: DataLoader draws a base seed when iterated, which would otherwise
        # advance the global RNG and break bitwise-exact resume.
        generator=torch.Generator().manual_seed(seed),
    )
