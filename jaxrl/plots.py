"""``returns.png`` (mean ± std over seeds of each setting's returns, smoothed) and the live
learning curve of a notebook loop."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["LivePlot", "default_smoothing", "plot_returns", "returns_figure", "smooth"]


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
    figure = returns_figure(steps, returns, title, labels, ylabel, xlabel=xlabel,
                            training=training, window=window)
    figure.savefig(path, dpi=120)


def returns_figure(steps: np.ndarray, returns: np.ndarray, title: str,
                   labels: list[str] | None = None, ylabel: str = "episode return", *,
                   xlabel: str = "environment steps", training: np.ndarray | None = None,
                   window: int = 1):
    """The ``matplotlib.figure.Figure`` that ``plot_returns`` saves. Built without pyplot, so
    drawing it never switches the backend of a notebook's own plots."""
    from matplotlib.figure import Figure

    if returns.ndim == 2:
        returns = returns[None]
        training = None if training is None else training[None]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
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
    return fig


class LivePlot:
    """A learning curve that grows as a run's chunks arrive::

        plot = LivePlot()
        for chunk in runner.iterate("ppo", "CartPole-v1", config, seeds=8):
            plot.update(chunk)

    Mean ± std over the runs of ``metric`` (``eval_return`` where the chunks carry it, else
    ``episode_return``), smoothed over ``window`` updates. In Jupyter the cell's image is
    replaced in place; elsewhere ``update`` only collects, and ``figure()`` draws on demand.
    """

    def __init__(self, metric: str | None = None, window: int = 1, title: str = ""):
        self.metric, self.window, self.title = metric, window, title
        self.steps: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self._display = None

    def update(self, chunk) -> None:
        """Add a ``jaxrl.runner.Chunk`` and redraw in a notebook."""
        if self.metric is None:
            self.metric = "eval_return" if "eval_return" in chunk.metrics else "episode_return"
        self.steps.append(np.asarray(chunk.steps))
        self.values.append(np.asarray(chunk.metrics[self.metric]))
        try:
            from IPython import get_ipython
            from IPython.display import Image, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        import io

        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=100)
        image = Image(data=buffer.getvalue())
        if self._display is None:
            self._display = display(image, display_id=True)
        else:
            self._display.update(image)

    def figure(self):
        """The curve so far, as a ``matplotlib.figure.Figure``."""
        steps = np.concatenate(self.steps) if self.steps else np.zeros(0)
        values = (np.concatenate(self.values, axis=1) if self.values
                  else np.zeros((1, 0)))
        return returns_figure(steps, values, self.title, ylabel=(self.metric or "return")
                              .replace("_", " "), window=self.window)
