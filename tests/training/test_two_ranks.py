"""The two-rank launcher the DDP tests use: a hang fails at once, with each rank's stack."""

import time
from collections.abc import Callable

import pytest


def _hangs(rank: int) -> None:
    time.sleep(600)


def test_a_hang_fails_the_test_and_prints_each_ranks_stack(
    run_two_ranks: Callable[..., None], capfd: pytest.CaptureFixture
) -> None:
    # 8 s: both ranks must be in `_hangs` when the timeout strikes, and a spawned rank takes a
    # few seconds to import torch on a busy 2-core machine (2 s failed now and then).
    with pytest.raises(pytest.fail.Exception, match="the two ranks hung for 8 s"):
        run_two_ranks(_hangs, timeout=8.0)
    stacks = capfd.readouterr().err
    # The fault handler's traceback of each rank, one after the other.
    assert stacks.count(" in _hangs\n") == 2, stacks
