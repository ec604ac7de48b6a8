"""One PNG per file: spectrogram, frame scores with each class's threshold, predicted and reference
segments on a shared time axis. Needs matplotlib (the ``plot`` extra).

A long file is drawn as an audio editor draws it: the frames are first reduced to one column per
pixel of the axes (:func:`envelope`: the scores' min and max, the spectrogram's max per bin), so
the arrays handed to matplotlib, and the memory plotting takes, do not grow with the file's length.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import PipelineError
from .labels import Segment

DPI = 90
TIME_AXIS_KEY = "pipeline-time-axis"  # PNG text chunk: where the time axis lies (the report aligns to it)
BLOCK_ROWS = 1 << 16  # frames reduced at a time: a block of a cached (memory-mapped) array, not all of it


def _figure_class():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PipelineError("plots need matplotlib: pip install 'audio-seq-pipeline[plot]'") from None
    return Figure, FigureCanvasAgg


def column_edges(n: int, n_columns: int) -> np.ndarray:
    """Frame boundaries of ``n_columns`` near-equal spans of ``n`` frames (one frame each when
    ``n <= n_columns``).

    Returns
    -------
    edges : np.ndarray [shape=(min(n, n_columns) + 1,)] int, from 0 to n
    """
    k = min(n, max(1, n_columns))
    return (np.arange(k + 1, dtype=np.int64) * n) // max(k, 1)


def envelope(x: np.ndarray, edges: np.ndarray, *, block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of ``x``'s rows within each span ``edges[j]:edges[j + 1]`` (the pixel columns).

    Read a block of rows at a time, so a long ``x`` is never held whole.

    Parameters
    ----------
    x : np.ndarray [shape=(n, ...)] or a reader of contiguous row slices (:class:`pipeline.cache.Rows`)
    edges : np.ndarray [shape=(m + 1,)] increasing frame indices from 0 to n (:func:`column_edges`)

    Returns
    -------
    lo, hi : np.ndarray [shape=(m, ...)] float32
    """
    m = len(edges) - 1
    lo = np.empty((m,) + x.shape[1:], dtype=np.float32)
    hi = np.empty_like(lo)
    j = 0
    while j < m:
        # as many whole columns as fit in a block (at least one)
        k = max(j + 1, int(np.searchsorted(edges, edges[j] + block_rows, side="right")) - 1)
        k = min(k, m)
        rows = np.asarray(x[edges[j]:edges[k]], dtype=np.float32)
        starts = edges[j:k] - edges[j]
        lo[j:k] = np.minimum.reduceat(rows, starts, axis=0)
        hi[j:k] = np.maximum.reduceat(rows, starts, axis=0)
        j = k
    return lo, hi


LANE_COLOURS = {"reference": "#2ca02c", "predicted": "#ff7f0e"}  # tab:green, tab:orange (CSS too)


def lane_rows(classes: Sequence[str], *, reference: bool) -> list[tuple[str, str]]:
    """The segment lanes top to bottom, ``(source, class)``: the reference's classes, then the
    predicted ones. The plot and the report's timeline strip both draw them in this order."""
    return [(what, cls) for what in (("reference", "predicted") if reference else ("predicted",))
            for cls in classes]


def _lanes(ax, segs: dict[str, Sequence[Segment]], classes: list[str], duration: float) -> None:
    """Segments as bars, one lane per (source, class), in :func:`lane_rows` order from the top."""
    rows = lane_rows(classes, reference="reference" in segs)
    for y, (what, cls) in enumerate(rows):
        bars = [(s.onset, s.offset - s.onset) for s in segs[what] if s.label == cls]
        ax.broken_barh(bars, (y + 0.15, 0.7), facecolors=LANE_COLOURS[what])
    ax.set_yticks(np.arange(len(rows)) + 0.5)
    ax.set_yticklabels([f"{what}: {cls}" if len(classes) > 1 else what for what, cls in rows], fontsize=8)
    ax.set_ylim(len(rows), 0)  # the first row on top
    ax.set_xlim(0, duration)


def _score_limits(scores: np.ndarray) -> tuple[float, float]:
    if not scores.size or not np.isfinite(scores).any():
        return -0.02, 1.02
    lo, hi = float(np.nanmin(scores)), float(np.nanmax(scores))
    if lo >= 0.0 and hi <= 1.0:
        return -0.02, 1.02
    pad = 0.02 * max(hi - lo, 1e-6)
    return lo - pad, hi + pad


def figure(*, S: np.ndarray, fps: float, scores: np.ndarray, classes: list[str],
           segments: Sequence[Segment], reference: Sequence[Segment] | None = None,
           threshold: float | Sequence[float] | None = None, title: str = "", kind: str = "logmel"):
    """The figure for one file (a matplotlib ``Figure`` on the Agg canvas, not pyplot's).

    Parameters
    ----------
    S : np.ndarray [shape=(n_frames, n_bins)] the features (shown in dB-like units as stored),
        or a reader of its rows (:class:`pipeline.cache.Rows`): read a block at a time
    scores : np.ndarray [shape=(n_frames, n_classes)]
    segments, reference : predicted and (optional) reference segments
    threshold : one value, or one per class (a tuned model's ``predict_per_class``): drawn as a
        dashed line per class, or one black line when they are all equal
    """
    Figure, FigureCanvas = _figure_class()
    n = len(S)
    duration = n / fps
    C = len(classes)
    scores = np.asarray(scores, dtype=np.float32).reshape(len(scores), C)
    lanes = {"predicted": segments} if reference is None else {"reference": reference, "predicted": segments}
    # one score lane per class (a speech-and-music model's two probabilities cross and overlap)
    fig = Figure(figsize=(min(24, max(8, duration / 2)), 6 + 1.2 * max(0, C - 1)), dpi=DPI)
    FigureCanvas(fig)
    axes = fig.subplots(2 + C, 1, sharex=True, gridspec_kw={"height_ratios": [3] + [2 if C == 1 else 1.3] * C
                                                            + [0.5 + 0.4 * len(lanes) * C]})
    score_axes, seg_ax = axes[1:1 + C], axes[-1]
    # everything that sizes the margins first, then the layout, then the data at the axes' width
    n_bins = S.shape[1] if len(S.shape) == 2 else 0
    axes[0].set_ylim(0, max(n_bins, 1))
    axes[0].set_ylabel(f"{kind} bin")
    axes[0].set_title(title, fontsize=10, loc="left")
    for i, (ax, cls) in enumerate(zip(score_axes, classes)):
        ax.set_ylim(*_score_limits(scores[:, i]))
        ax.set_ylabel("score" if C == 1 else f"{cls}\nscore")
    _lanes(seg_ax, lanes, classes, duration)
    seg_ax.set_xlabel("time (s)")
    fig.tight_layout()
    width_px = int(axes[0].get_position().width * fig.get_figwidth() * fig.dpi)
    edges = column_edges(n, width_px)

    if n and n_bins:
        img = envelope(S, edges)[1].T  # (n_bins, columns): the loudest frame of each column per bin
        if kind in ("stft", "power", "mel"):
            img = 10 * np.log10(np.maximum(img, 1e-10))
        lo, hi = np.percentile(img, [2, 99.5])  # of what is drawn: the frames, or the column maxima
        axes[0].imshow(img, origin="lower", aspect="auto", extent=(0, duration, 0, n_bins), vmin=lo, vmax=hi,
                       cmap="magma", interpolation="nearest")
    sc_edges = column_edges(len(scores), width_px)  # the scores' own frames (as many as S's, for a model)
    s_lo, s_hi = envelope(scores, sc_edges)
    t = (sc_edges[:-1] + sc_edges[1:] - 1) / 2 / fps  # each column's centre (frame i at i / fps)
    thr = None if threshold is None else np.broadcast_to(np.asarray(threshold, dtype=float), (C,))
    for i, (ax, cls) in enumerate(zip(score_axes, classes)):
        colour = f"C{i}"
        if len(scores) > len(t):  # each column's min..max joined to the next, as audio editors draw a waveform
            ax.fill_between(t, s_lo[:, i], s_hi[:, i], color=colour, lw=0.9, label=cls)
        else:
            ax.plot(t, s_hi[:, i], color=colour, lw=0.9, label=cls)
        if thr is not None:  # the threshold this class's segments were cut at
            ax.axhline(thr[i], color="k", ls="--", lw=0.7, label=f"threshold {thr[i]:g}")
        ax.legend(loc="upper right", fontsize=8)
    seg_ax.set_xlim(0, duration)
    return fig


def time_axis(fig) -> dict:
    """Where a figure's shared time axis lies: ``left``/``right`` as fractions of the image's
    width, ``start``/``end`` in seconds."""
    pos, (start, end) = fig.axes[0].get_position(), fig.axes[0].get_xlim()
    return {"left": round(float(pos.x0), 5), "right": round(float(pos.x1), 5),
            "start": float(start), "end": float(end)}


def plot_file(path: str | Path, **kwargs) -> Path:
    """Write :func:`figure` of one file (its keyword arguments) as a PNG at ``path``, with its
    :func:`time_axis` in the PNG text chunk ``TIME_AXIS_KEY`` (JSON)."""
    fig = figure(**kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={TIME_AXIS_KEY: json.dumps(time_axis(fig))})
    return path
