"""Shards read in sequence (data.stream): every image once a pass, streams that split the shards
between processes and workers, batches that resume exactly, shards read through a pipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.data.shards import ShardDataset
from ldmkit.data.stream import ShardStream, shuffled, stream_groups
from ldmkit.training.data_stream import train_loader


def _data(shards: Path, **settings: object) -> DataConfig:
    base = dict(kind="shards", path=str(shards), resolution=8, stream=True, random_crop=True)
    return DataConfig(**{**base, **settings})  # type: ignore[arg-type]


def _train(data: DataConfig) -> ShardDataset:
    dataset = build_dataset(data, "train")
    assert isinstance(dataset, ShardDataset)  # streamed: no image cache
    return dataset


def _indices(loader: object) -> list[list[int]]:
    return [batch["index"].tolist() for batch in loader]  # type: ignore[attr-defined]


def test_a_pass_reads_every_image_once_in_a_new_order_each_epoch(stream_shards: Path) -> None:
    dataset = _train(_data(stream_shards, shuffle_buffer=4, interleave=2))
    n = len(dataset)
    stream = ShardStream(dataset, 1, seed=3, start=0, stop=1, shuffle_buffer=4, interleave=2)
    items = stream.items(0, 0)
    first = [next(items)[0] for _ in range(n)]
    second = [next(items)[0] for _ in range(n)]
    assert sorted(first) == sorted(second) == list(range(n))
    assert first != list(range(n)) and first != second
    again = ShardStream(dataset, 1, seed=3, start=0, stop=1, shuffle_buffer=4, interleave=2)
    assert [next(again.items(0, 0))[0]] == first[:1]  # a pure function of the seed


def test_the_shuffle_buffer_keeps_every_item() -> None:
    rng = np.random.default_rng(0)
    out = list(shuffled(iter(range(50)), 8, rng))
    assert sorted(out) == list(range(50)) and out != list(range(50))
    assert list(shuffled(iter(range(5)), 1, rng)) == list(range(5))  # no buffer: in order


def test_streams_split_the_shards_between_processes_and_workers(stream_shards: Path) -> None:
    dataset = _train(_data(stream_shards))
    shard_count = len({sample["shard"] for sample in dataset.samples})
    seen: list[int] = []
    for stream in range(4):  # 2 processes x 2 workers
        groups = stream_groups(shard_count, 4, stream, 2, seed=0, epoch=0)
        mine = {f"train-{k:05d}.tar" for group in groups for k in group}
        seen += [i for i, sample in enumerate(dataset.samples) if sample["shard"] in mine]
    assert sorted(seen) == list(range(len(dataset)))  # each shard in exactly one stream
    with pytest.raises(ValueError, match=r"fewer than the 20 streams .* --per-shard"):
        ShardStream(dataset, 2, 0, 0, 4, rank=0, world=4, streams_per_process=5)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_resume_exactly(stream_shards: Path, workers: int) -> None:
    data = _data(stream_shards, shuffle_buffer=5, interleave=2, crops_per_image=2)
    dataset = _train(data)
    for rank in (0, 1):  # each process's share, world 2
        straight = _indices(train_loader(dataset, data, 6, 1, 0, 13, workers, rank, 2))
        resumed = _indices(train_loader(dataset, data, 6, 1, 0, 5, workers, rank, 2))
        resumed += _indices(train_loader(dataset, data, 6, 1, 5, 13, workers, rank, 2))
        assert len(straight) == 13 and all(len(batch) == 3 for batch in straight)
        assert resumed == straight


def test_items_are_the_index_reads_items(stream_shards: Path) -> None:
    data = _data(stream_shards)
    dataset = _train(data)
    batch = next(iter(train_loader(dataset, data, 4, 0, 0, 1)))
    for k, index in enumerate(batch["index"].tolist()):
        assert torch.equal(batch["image"][k], dataset[index]["image"])  # same crop, same flip
        assert batch["label"][k] == dataset[index]["label"]


def test_shards_read_through_a_pipe(stream_shards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("webdataset")
    local = _train(_data(stream_shards))
    piped = _data(stream_shards, shard_url=f"pipe:cat {stream_shards}/{{shard}}")
    remote = _train(piped)
    assert remote.reader.remote
    a = next(iter(train_loader(local, _data(stream_shards), 4, 0, 0, 2)))
    b = next(iter(train_loader(remote, piped, 4, 0, 0, 2)))
    assert torch.equal(a["image"], b["image"])
    heldout = build_dataset(piped, "heldout")  # read forward; an earlier item reopens the shard
    by_seek = build_dataset(_data(stream_shards), "heldout")
    for index in (1, 0, 2):
        assert torch.equal(heldout[index]["image"], by_seek[index]["image"])
    # A stream reads each shard of a pass straight through: one opening each, however the
    # buffer shuffles (reading after the shuffle would reopen a pipe for most images).
    remote.reader.close()  # what the loader above left open
    opened: list[str] = []
    open_shard = remote.reader._open_shard
    monkeypatch.setattr(remote.reader, "_open_shard", lambda s: opened.append(s) or open_shard(s))
    stream = ShardStream(remote, 1, seed=0, start=0, stop=1, shuffle_buffer=8, interleave=3)
    items = stream.items(0, 0)
    for _ in range(len(remote)):
        next(items)
    assert sorted(opened) == sorted({sample["shard"] for sample in remote.samples})
    broken = _train(_data(stream_shards, shard_url="pipe:cat /nonexistent/{shard}"))
    with pytest.raises(OSError, match=r"/nonexistent/train-0000\d\.tar.*exit 1"):
        broken[0]


def test_stream_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.stream reads shards, not data\.kind='folder'"):
        DataConfig(kind="folder", path="x", stream=True)
    with pytest.raises(ValueError, match=r"is read in sequence.*data\.stream=true"):
        DataConfig(kind="shards", path="x", shard_url="pipe:cat {shard}")
    with pytest.raises(ValueError, match=r"has no \{shard\}"):
        DataConfig(kind="shards", path="x", shard_url="https://host/set", stream=True)
    with pytest.raises(ValueError, match=r"data\.fit=bucket.*data\.stream=false"):
        DataConfig(kind="shards", path="x", stream=True, fit="bucket")
    with pytest.raises(ValueError, match=r"data\.shuffle_buffer must be >= 1"):
        DataConfig(kind="shards", path="x", stream=True, shuffle_buffer=0)
