"""Deterministic batch order derived from the step alone, so resuming needs only the step:
by index (`batch_loader`), or read in sequence from shards (`train_loader` with data.stream)."""

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ldmkit.data.cached import item_sizes
from ldmkit.data.collate import collate
from ldmkit.data.config import DataConfig


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


def bucket_batches(groups: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of the `epoch`-th pass when items come in groups (aspect-ratio buckets):
    each batch holds one group; a group's last batch is filled with its first items of the
    pass; the batches' order is shuffled. Their number is the same in every pass."""
    by_group: dict[int, list[int]] = {}
    for index in epoch_permutation(len(groups), seed, epoch).tolist():
        by_group.setdefault(groups[index], []).append(index)
    batches: list[list[int]] = []
    for group in sorted(by_group):
        members = by_group[group]
        count = math.ceil(len(members) / batch_size)
        filled = (members * math.ceil(count * batch_size / len(members)))[: count * batch_size]
        batches.extend(filled[k * batch_size : (k + 1) * batch_size] for k in range(count))
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_919)
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


def batches_per_pass(groups: list[int], batch_size: int) -> int:
    """How many batches `bucket_batches` makes of one pass."""
    return sum(math.ceil(groups.count(g) / batch_size) for g in set(groups))


def size_groups(sizes: list[tuple[int, int]] | None) -> list[int] | None:
    """A group id per item by image size, or None when all items have one size."""
    if sizes is None or len(set(sizes)) <= 1:
        return None
    ids = {size: k for k, size in enumerate(sorted(set(sizes)))}
    return [ids[size] for size in sizes]


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
        groups: list[int] | None = None,
    ):
        if batch_size % world != 0:
            raise ValueError(f"batch_size {batch_size} must be divisible by world size {world}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.groups = groups
        self._pass: tuple[int, list[list[int]]] | None = None

    def batch(self, step: int) -> list[int]:
        """The whole (all ranks') batch of `step`."""
        if self.groups is None:
            return batch_indices(step, self.batch_size, self.n, self.seed)
        epoch, k = divmod(step, batches_per_pass(self.groups, self.batch_size))
        if self._pass is None or self._pass[0] != epoch:
            self._pass = (epoch, bucket_batches(self.groups, self.batch_size, self.seed, epoch))
        return self._pass[1][k]

    def __iter__(self) -> Iterator[list[int]]:
        share = self.batch_size // self.world
        for step in range(self.start, self.stop):
            batch = self.batch(step)
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
    """A DataLoader over this rank's share of the deterministic batches of steps [start, stop);
    items of different image sizes (aspect-ratio buckets) are batched by size."""
    n = len(dataset)  # type: ignore[arg-type]
    groups = size_groups(item_sizes(dataset))
    sampler = StepBatchSampler(n, batch_size, seed, start, stop, rank, world, groups)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        # Its own generator: DataLoader draws a base seed when iterated, which would otherwise
        # advance the global RNG and break bitwise-exact resume.
        generator=torch.Generator().manual_seed(seed),
    )


def train_loader(
    dataset: Dataset[dict[str, Any]],
    data: DataConfig,
    batch_size: int,
    seed: int,
    start: int,
    stop: int,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
) -> DataLoader[dict[str, Any]]:
    """The training batches of steps [start, stop) for this rank: with `data.stream`, shards
    read in sequence (`data.stream.ShardStream`); anything else (a folder, latents encoded
    from the shards) by index (`batch_loader`)."""
    from ldmkit.data.shards import ShardDataset

    if not (data.stream and isinstance(dataset, ShardDataset)):
        return batch_loader(dataset, batch_size, seed, start, stop, num_workers, rank, world)
    from ldmkit.data.stream import ShardStream

    if batch_size % world != 0:
        raise ValueError(f"batch_size {batch_size} must be divisible by world size {world}")
    stream = ShardStream(
        dataset,
        batch_size // world,
        seed,
        start,
        stop,
        rank,
        world,
        streams_per_process=max(1, num_workers),
        shuffle_buffer=data.shuffle_buffer,
        interleave=data.interleave,
    )
    return DataLoader(
        stream,
        batch_size=None,  # the stream yields whole batches
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),  # see batch_loader
    )
