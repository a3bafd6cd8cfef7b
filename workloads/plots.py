"""Plots that several workloads draw the same way."""

from __future__ import annotations

import os

import numpy as np


def plot_losses(path: str | os.PathLike, losses: dict[str, list[float]], title: str = "", log: bool = False) -> None:
    """Training loss against the step, one line per model, as a moving mean over about 1/30 of each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, vals in losses.items():
        k = max(1, len(vals) // 30)
        ax.plot(np.convolve(vals, np.ones(k) / k, "valid"), label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (moving mean)")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
