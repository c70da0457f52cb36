"""Threads, seeding and RNG state: the run's physical setting (the device is
`ldmkit.hardware.select_device`, precision `ldmkit.precision`)."""

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int) -> None:
    """Set torch's intra-op thread count when `threads` > 0."""
    if threads > 0:
        torch.set_num_threads(threads)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The generator states a bitwise resume needs."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def tune_allocator() -> bool:
    """Keep glibc from returning large activation buffers to the OS after every step.

    Training allocates and frees tens of megabytes per activation; above glibc's mmap threshold
    each one is a fresh mmap + page faults, which measured here cost ~45% of a CPU training step.
    Raising M_MMAP_THRESHOLD and M_TRIM_THRESHOLD keeps those pages in the heap. No-op off glibc.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(
            libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31)
        )
    except (OSError, AttributeError):
        return False
