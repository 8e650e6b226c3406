"""Small PNG figures logged as MLflow artifacts (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path


def _pyplot():  # type: ignore[no-untyped-def]
    # Imported on first use, with a backend that needs no display (servers, CI, Ray workers).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lr_range_png(
    path: Path, lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float], min_loss_lr: float,
    suggestion: float, title: str,
) -> Path:
    """Loss against LR on a log axis, raw and smoothed, with the minimum and the suggestion marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.plot(lrs, losses, color="0.75", linewidth=1, label="loss")
    ax.plot(lrs, smoothed, color="C0", linewidth=2, label="smoothed loss")
    ax.axvline(min_loss_lr, color="C3", linestyle=":", label=f"minimum at {min_loss_lr:.3g}")
    ax.axvline(suggestion, color="C2", linestyle="--", label=f"suggested LR {suggestion:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    # Keep the divergence at the end from flattening the interesting part of the curve.
    top = max(smoothed[: max(1, len(smoothed) // 2)] + [min(smoothed) * 2.0])
    ax.set_ylim(min(min(losses), min(smoothed)) * 0.9, top * 1.2)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def histogram_png(path: Path, edges: Sequence[float], counts: Sequence[float], title: str) -> Path:
    """A bar histogram with a log-count axis, so that a spike at zero (L1) and the tails both show."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    widths = [b - a for a, b in pairwise(edges)]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="C0", edgecolor="white", linewidth=0.5)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
