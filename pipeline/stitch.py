"""Overlapping chunks and their weighted overlap-add back into one score track (numpy, pure).

Bidirectional models cannot carry a state, so a long file is cut into chunks of ``frames``
frames every ``hop`` frames (:func:`chunk_starts`), each chunk is scored on its own, and the
chunk scores are averaged frame by frame with a window that trusts chunk centres more than
chunk edges (:func:`overlap_add`), as pyannote.audio's ``Inference`` does.
"""
from __future__ import annotations


import numpy as np

from .config import WINDOWS, require_positive_int  # the window names live with the setting
from .errors import ParameterError
WINDOW_FLOOR = 1e-3  # relative to the window's peak


def chunk_starts(n_frames: int, *, frames: int, hop: int) -> np.ndarray:
    """Start frames ``0, hop, 2 * hop, ...`` of chunks that together cover ``n_frames`` frames.

    The last chunk is the first one that reaches the end; it may run past ``n_frames`` (the
    caller pads it). A file no longer than one chunk gets one chunk; an empty one gets none.

    Parameters
    ----------
    n_frames : int >= 0
    frames : int > 0
        Chunk length.
    hop : int, 0 < hop <= frames
        Step between chunk starts.

    Returns
    -------
    np.ndarray [shape=(n_chunks,)], int64
        ``n_chunks = 1 + ceil(max(n_frames - frames, 0) / hop)`` (0 when ``n_frames == 0``).

    Raises
    ------
    ParameterError
        Negative ``n_frames``, non-positive ``frames`` / ``hop``, or ``hop > frames`` (gaps).
    """
    require_positive_int(frames=frames, hop=hop)
    if hop > frames:
        raise ParameterError(f"hop={hop} must be <= frames={frames} (chunks would leave gaps)")
    if not isinstance(n_frames, (int, np.integer)) or isinstance(n_frames, bool) or n_frames < 0:
        raise ParameterError(f"n_frames={n_frames!r} must be an integer >= 0")
    if n_frames == 0:
        return np.zeros(0, dtype=np.int64)
    n_chunks = 1 + -(-max(n_frames - frames, 0) // hop)  # ceil division
    return np.arange(n_chunks, dtype=np.int64) * hop


def window_weights(frames: int, kind: str) -> np.ndarray:
    """Per-frame weights of one chunk for :func:`overlap_add`, peak 1.

    Symmetric ``hamming``, ``hann``, ``triangular`` (Bartlett) or ``boxcar``, floored at
    ``WINDOW_FLOOR`` (1e-3) of the peak: edges are down-weighted but never zero, so a frame
    seen only by a chunk edge (the first and last frames of a file) still gets a score.

    Parameters
    ----------
    frames : int > 0
    kind : {"hamming", "triangular", "hann", "boxcar"}

    Returns
    -------
    np.ndarray [shape=(frames,)], float64, all > 0
    """
    require_positive_int(frames=frames)
    if kind == "hamming":
        w = np.hamming(frames)
    elif kind == "hann":
        w = np.hanning(frames)
    elif kind == "triangular":
        w = np.bartlett(frames)
    elif kind == "boxcar":
        w = np.ones(frames)
    else:
        raise ParameterError(f"window={kind!r} must be one of {', '.join(WINDOWS)}")
    w = np.asarray(w, dtype=np.float64)
    if not w.max() > 0:  # np.hanning(2), np.bartlett(2): all zeros, so equal weights
        w = np.ones(frames)
    return np.maximum(w / w.max(), WINDOW_FLOOR)


def overlap_add(chunk_scores: np.ndarray, starts: np.ndarray, *, n_frames: int,
                window: str | np.ndarray = "hamming") -> np.ndarray:
    """Weighted average of overlapping chunk scores, frame by frame.

    ``out[t] = sum_i w[t - s_i] * S_i[t - s_i] / sum_i w[t - s_i]`` over the chunks ``i`` that
    cover frame ``t``. Chunk frames at or past ``n_frames`` (padding) and NaN scores are left out
    of both sums; a frame that no chunk covers with a finite score is NaN.

    Parameters
    ----------
    chunk_scores : np.ndarray [shape=(n_chunks, frames, C)] or [shape=(n_chunks, frames)]
    starts : np.ndarray [shape=(n_chunks,)]
        Start frame of each chunk, e.g. from :func:`chunk_starts`; any step works.
    n_frames : int >= 0
        Length of the output.
    window : str or np.ndarray [shape=(frames,)]
        A :func:`window_weights` kind, or explicit positive weights.

    Returns
    -------
    np.ndarray [shape=(n_frames, C)] or [shape=(n_frames,)]
        float64, or the floating dtype of ``chunk_scores``.
    """
    scores = np.asarray(chunk_scores)
    squeeze = scores.ndim == 2
    if squeeze:
        scores = scores[..., None]  # (n_chunks, frames, 1)
    if scores.ndim != 3:
        raise ParameterError(f"chunk_scores has shape {scores.shape}, expected (n_chunks, frames, C)")
    n_chunks, frames, n_classes = scores.shape
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if starts.shape[0] != n_chunks:
        raise ParameterError(f"{starts.shape[0]} starts for {n_chunks} chunks")
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ParameterError(f"n_frames={n_frames!r} must be an integer >= 0")
    w = window_weights(frames, window) if isinstance(window, str) else np.asarray(window, np.float64)
    if w.shape != (frames,) or not (w > 0).all():
        raise ParameterError(f"window must be {frames} positive weights, got shape {w.shape}")

    total = np.zeros((n_frames, n_classes))  # (n_frames, C) weighted score sums
    weight = np.zeros((n_frames, n_classes))  # (n_frames, C) weight sums
    for chunk, start in zip(scores, starts):  # chunk (frames, C)
        lo, hi = max(start, 0), min(start + frames, n_frames)  # output frames this chunk covers
        if lo >= hi:
            continue
        part = chunk[lo - start:hi - start].astype(np.float64)  # (hi - lo, C)
        wk = np.where(np.isnan(part), 0.0, w[lo - start:hi - start, None])  # (hi - lo, C)
        total[lo:hi] += wk * np.where(np.isnan(part), 0.0, part)
        weight[lo:hi] += wk
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)
    if np.issubdtype(scores.dtype, np.floating):
        out = out.astype(scores.dtype, copy=False)
    return out[:, 0] if squeeze else out
