"""Batch order derived from the step: deterministic, epoch-complete, split across ranks."""

from ldmkit.training.data_stream import StepBatchSampler, batch_indices


def test_batches_cover_each_epoch_once_and_repeat_exactly() -> None:
    n, batch = 10, 4
    stream = [i for step in range(5) for i in batch_indices(step, batch, n, seed=3)]
    assert sorted(stream[:10]) == list(range(10))
    assert sorted(stream[10:20]) == list(range(10))
    assert stream[:10] != stream[10:20]  # reshuffled per epoch
    assert batch_indices(2, batch, n, 3) == stream[8:12]
    assert batch_indices(2, batch, n, 4) != stream[8:12]


def test_ranks_split_the_global_batch() -> None:
    whole = list(StepBatchSampler(50, 8, 0, start=3, stop=6))
    halves = [list(StepBatchSampler(50, 8, 0, 3, 6, rank=r, world=2)) for r in (0, 1)]
    for step in range(3):
        assert halves[0][step] + halves[1][step] == whole[step]
    assert len(StepBatchSampler(50, 8, 0, start=3, stop=6)) == 3
