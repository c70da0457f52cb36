"""The two-rank launcher the DDP tests use: a hang fails at once, with each rank's stack."""

import time
from collections.abc import Callable

import pytest


def _hangs(rank: int) -> None:
    time.sleep(600)


def test_a_hang_fails_the_test_and_prints_each_ranks_stack(
    run_two_ranks: Callable[..., None], capfd: pytest.CaptureFixture
) -> None:
    with pytest.raises(pytest.fail.Exception, match="the two ranks hung for 2 s"):
        run_two_ranks(_hangs, timeout=2.0)
    stacks = capfd.readouterr().err
    # The fault handler's traceback of each rank, one after the other.
    assert stacks.count(" in _hangs\n") == 2, stacks
