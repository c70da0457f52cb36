"""Training curves: the logged losses against step, as a PNG."""

from pathlib import Path
from typing import Any


def save_loss_curve(
    history: list[dict[str, Any]],
    path: Path,
    keys: tuple[str, ...],
    log_keys: tuple[str, ...] = (),
) -> None:
    """Plot the logged `keys` against step into a PNG; `log_keys` get a log-scale y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k in keys if any(k in row for row in history)]
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3), squeeze=False)
    for ax, key in zip(axes[0], present, strict=True):
        rows = [r for r in history if key in r]
        steps, values = [r["step"] for r in rows], [r[key] for r in rows]
        ax.plot(steps, values, lw=1)
        if key in log_keys and all(v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
