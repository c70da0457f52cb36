"""Aspect-ratio buckets: a few image shapes of about the training area, so wide and tall images
train near their own shape instead of cropped to a square. A batch holds one bucket's images
(`training.data_stream`), so it stacks."""

from __future__ import annotations

import math

MAX_RATIO = 4.0  # the widest bucket is four times as wide as tall (and the tallest the reverse)


def bucket_sizes(resolution: int, step: int, max_ratio: float = MAX_RATIO) -> list[tuple[int, int]]:
    """(width, height) pairs: sides multiples of `step`, area at most resolution², aspect ratio
    within [1 / max_ratio, max_ratio]; the square (resolution, resolution) is always one."""
    if step < 1 or resolution % step:
        raise ValueError(
            f"data.bucket_step={step} must divide data.resolution={resolution}; try "
            f"{math.gcd(resolution, 64)}"
        )
    sizes = {(resolution, resolution)}
    width = step
    while width <= resolution * max_ratio:
        height = (resolution * resolution // width) // step * step
        if height >= step and 1 / max_ratio <= width / height <= max_ratio:
            sizes.update({(width, height), (height, width)})  # wide and tall alike
        width += step
    return sorted(sizes)


def nearest_bucket(width: int, height: int, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to width / height (in log space); ties go to
    the larger area."""
    aspect = math.log(width / height)
    return min(sizes, key=lambda s: (abs(math.log(s[0] / s[1]) - aspect), -s[0] * s[1]))
