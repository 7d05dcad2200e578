"""``returns.png``: mean ± std over seeds of each setting's returns, smoothed."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["default_smoothing", "plot_returns", "smooth"]


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` entries of the last axis, NaNs skipped (NaN where
    the window holds none); ``window`` 1 returns ``values``."""
    if window <= 1:
        return values
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0), axis=-1)
    counts = np.cumsum(finite, axis=-1)
    sums[..., window:] = sums[..., window:] - sums[..., :-window]
    counts[..., window:] = counts[..., window:] - counts[..., :-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def default_smoothing(num_updates: int) -> int:
    """The ``returns.png`` smoothing window: about a twentieth of the run (1 for short runs)."""
    return max(1, num_updates // 20)


def plot_returns(steps: np.ndarray, returns: np.ndarray, path: Path, title: str,
                 labels: list[str] | None = None, ylabel: str = "episode return", *,
                 xlabel: str = "environment steps", training: np.ndarray | None = None,
                 window: int = 1) -> None:
    """Mean ± std over seeds of ``returns [groups, seeds, updates]`` (or ``[seeds, updates]``),
    each seed smoothed over ``window`` updates; ``training`` (same shape; the training-episode
    returns where ``returns`` are evaluations) is drawn as lighter dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if returns.ndim == 2:
        returns = returns[None]
        training = None if training is None else training[None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, group in enumerate(returns):
        with warnings.catch_warnings():  # all-NaN columns before the first finished episode
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(smooth(group, window), axis=0)
            std = np.nanstd(smooth(group, window), axis=0)
            train_mean = (None if training is None
                          else np.nanmean(smooth(training[i], window), axis=0))
        label = labels[i] if labels else f"mean ± std over {group.shape[0]} seed(s)"
        (line,) = ax.plot(steps, mean, label=label)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25, color=line.get_color())
        if train_mean is not None:
            ax.plot(steps, train_mean, color=line.get_color(), alpha=0.4, linestyle="--",
                    label="training episodes" if i == 0 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (f" (smoothed over {window} logs)" if window > 1 else ""))
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
