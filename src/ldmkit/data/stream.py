"""Shards read in sequence, shuffled on the way (WebDataset's way), resumable to the image.

Each process reads `streams_per_process` streams (one per DataLoader worker). Stream `s` of
`S` in all takes, in epoch `e`, the shards at positions s, s + S, ... of that epoch's seeded
shard order, in groups of `interleave`. A group's shards are read together, one sample from
each in turn, through a shuffle buffer that starts empty at each group; every draw is seeded
by (seed, epoch, stream, group). A stream runs from epoch to epoch without end, and the batch
of step t comes from stream `t mod streams_per_process` of its process.

So the items a stream has given before any step follow from the step alone, and the index
gives every group's length: a resumed run skips whole groups without reading them and replays
only the group it stopped in (its reads and the buffer's draws, not the decoding). Unlike
reads by index, the batches depend on the number of processes and workers, and a stream whose
shards hold fewer images comes round again sooner. The buffer holds image files undecoded:
`shuffle_buffer` times the files' mean size in memory per stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ldmkit.data.collate import collate
from ldmkit.data.shards import ShardDataset

Sample = tuple[int, str, tuple[int, int]]  # sample number, shard, (offset, size) of its image


def shard_order(shards: int, seed: int, epoch: int) -> list[int]:
    """The order of the shards in `epoch` (the same in every process)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 104_729)
    return torch.randperm(shards, generator=generator).tolist()


def stream_groups(
    shards: int, streams: int, stream: int, interleave: int, seed: int, epoch: int
) -> list[list[int]]:
    """The groups of shard numbers stream `stream` of `streams` reads in `epoch`."""
    mine = shard_order(shards, seed, epoch)[stream::streams]
    return [mine[k : k + interleave] for k in range(0, len(mine), interleave)]


def interleaved(columns: list[list[Sample]]) -> Iterator[Sample]:
    """One sample of each shard in turn until all are read."""
    for row in range(max(len(c) for c in columns)):
        for column in columns:
            if row < len(column):
                yield column[row]


def shuffled(samples: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """`samples` through a shuffle buffer of `size`: once it is full, each new sample swaps in
    for a random one, which comes out; the rest come out in random order at the end."""
    buffer: list[Any] = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= size:
            k = int(rng.integers(len(buffer)))
            buffer[k], buffer[-1] = buffer[-1], buffer[k]
            yield buffer.pop()
    while buffer:
        k = int(rng.integers(len(buffer)))
        buffer[k], buffer[-1] = buffer[-1], buffer[k]
        yield buffer.pop()


class ShardStream(IterableDataset[dict[str, Any]]):
    """The batches (collated, `batch_size` items: one process's share) of steps [start, stop)
    for process `rank` of `world`, read in sequence from the shards of `dataset`."""

    def __init__(
        self,
        dataset: ShardDataset,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world: int = 1,
        streams_per_process: int = 1,
        shuffle_buffer: int = 1000,
        interleave: int = 4,
    ) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.start, self.stop, self.rank = start, stop, rank
        self.per_process = streams_per_process
        self.streams = world * streams_per_process
        self.shuffle_buffer, self.interleave = shuffle_buffer, interleave
        by_shard: dict[str, list[Sample]] = {}
        for number, entry in enumerate(dataset.samples):
            offset, size = entry["image"]
            by_shard.setdefault(entry["shard"], []).append((number, entry["shard"], (offset, size)))
        self.shards = [by_shard[name] for name in sorted(by_shard)]
        if len(self.shards) < self.streams:
            raise ValueError(
                f"data.stream: the training split has {len(self.shards)} shard(s), fewer than "
                f"the {self.streams} streams that read it ({world} process(es) x "
                f"{streams_per_process} loader worker(s)); write more, smaller shards "
                "(`ldmkit data shards --per-shard N`) or use fewer workers (run.num_workers)"
            )

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def items(self, stream: int, skip: int) -> Iterator[tuple[int, bytes]]:
        """(item number, image file) of `stream`, without end, after its first `skip` items.
        Files are read in the shards' order, before the shuffle (so a pipe is read straight
        through); the buffer holds them undecoded."""
        crops = self.dataset.crops_per_image
        epoch = 0
        while True:
            groups = stream_groups(
                len(self.shards), self.streams, stream, self.interleave, self.seed, epoch
            )
            for g, group in enumerate(groups):
                columns = [self.shards[shard] for shard in group]
                length = sum(len(c) for c in columns) * crops
                if skip >= length:  # read before the resume: not read again
                    skip -= length
                    continue
                rng = np.random.default_rng([self.seed, epoch, stream, g])
                items = (
                    (number * crops + c, data)
                    for number, data in self._read(interleaved(columns))
                    for c in range(crops)
                )
                for item in shuffled(items, self.shuffle_buffer, rng):
                    if skip:
                        skip -= 1
                        continue
                    yield item
            epoch += 1

    def _read(self, samples: Iterator[Sample]) -> Iterator[tuple[int, bytes]]:
        for number, shard, (offset, size) in samples:
            yield number, self.dataset.reader.read(shard, offset, size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if (info.num_workers if info is not None else 1) != self.per_process:
            raise RuntimeError(f"planned {self.per_process} loader workers, got {info}")
        # The loader takes batch k from worker k mod W: this worker gives steps start + worker,
        # + W, ... Which stream gives step t depends on t mod W alone, so not on the start.
        n = self.per_process
        steps = range(self.start + worker, self.stop, n)
        slot = (self.start + worker) % n
        done = len(range(slot, self.start, n))  # steps of this stream before the start
        items = self.items(self.rank * n + slot, done * self.batch_size)
        try:
            for _ in steps:
                yield collate([self.dataset.item(*next(items)) for _ in range(self.batch_size)])
        finally:  # also when the loop stops early (max_minutes): pipes are not left running
            self.dataset.reader.close()
