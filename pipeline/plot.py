"""One PNG per file: spectrogram, frame scores with the threshold, predicted and reference
segments on a shared time axis. Needs matplotlib (the ``plot`` extra)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import PipelineError
from .labels import Segment


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PipelineError("plots need matplotlib: pip install 'audio-seq-pipeline[plot]'") from None
    return plt


def _lanes(ax, segs_by_row: list[tuple[str, Sequence[Segment], str]], classes: list[str], duration: float) -> None:
    """Segments as bars, one lane per (source, class)."""
    labels = []
    for row, (what, segs, color) in enumerate(segs_by_row):
        for cls_i, cls in enumerate(classes):
            y = row * len(classes) + cls_i
            bars = [(s.onset, s.offset - s.onset) for s in segs if s.label == cls]
            ax.broken_barh(bars, (y + 0.15, 0.7), facecolors=color)
            labels.append(f"{what}: {cls}" if len(classes) > 1 else what)
    ax.set_yticks(np.arange(len(labels)) + 0.5)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(0, len(labels))
    ax.set_xlim(0, duration)


def plot_file(path: str | Path, *, S: np.ndarray, fps: float, scores: np.ndarray, classes: list[str],
              segments: Sequence[Segment], reference: Sequence[Segment] | None = None,
              threshold: float | None = None, title: str = "", kind: str = "logmel") -> Path:
    """Write the figure for one file.

    Parameters
    ----------
    S : np.ndarray [shape=(n_frames, n_bins)] the features (shown in dB-like units as stored)
    scores : np.ndarray [shape=(n_frames, n_classes)]
    segments, reference : predicted and (optional) reference segments
    """
    plt = _pyplot()
    n = len(S)
    duration = n / fps
    rows = [("predicted", segments, "tab:orange")]
    if reference is not None:
        rows.insert(0, ("reference", reference, "tab:green"))
    fig, axes = plt.subplots(3, 1, figsize=(min(24, max(8, duration / 2)), 6), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2, 0.5 + 0.4 * len(rows) * len(classes)]})
    img = np.asarray(S, dtype=np.float32).T
    if kind in ("stft", "power", "mel"):
        img = 10 * np.log10(np.maximum(img, 1e-10))
    lo, hi = np.percentile(img, [2, 99.5]) if img.size else (0, 1)
    axes[0].imshow(img, origin="lower", aspect="auto", extent=(0, duration, 0, img.shape[0]), vmin=lo, vmax=hi,
                   cmap="magma", interpolation="nearest")
    axes[0].set_ylabel(f"{kind} bin")
    axes[0].set_title(title, fontsize=10, loc="left")
    t = np.arange(n) / fps
    for i, cls in enumerate(classes):
        axes[1].plot(t, scores[:, i], lw=0.9, label=cls)
    if threshold is not None:
        axes[1].axhline(threshold, color="k", ls="--", lw=0.7, label=f"threshold {threshold:g}")
    if scores.size and np.nanmax(scores) <= 1.0 and np.nanmin(scores) >= 0.0:
        axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_ylabel("score")
    axes[1].legend(loc="upper right", fontsize=8)
    _lanes(axes[2], rows, classes, duration)
    axes[2].set_xlabel("time (s)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
