"""Post-processing: per-frame scores of a class -> labelled segments.

Frame ``i`` is centred at ``i / fps`` seconds, and a run of active frames ``a .. b-1`` is the
segment ``[a / fps, b / fps)``; with no post-processing the segments rasterise back onto exactly
the frames that were active.

:func:`scores_to_segments` applies the steps in this order (the order of pyannote.audio's
``Binarize`` for gaps and short segments)::

    median filter (scores) -> hysteresis threshold -> frames to segments
    -> fill gaps shorter than min_duration_off -> remove segments shorter than min_duration_on
    -> pad onsets/offsets (clipped to the file, overlaps merged) -> split segments > max_duration

Splitting comes last so that every segment returned is at most ``max_duration`` long, padding
included. Every segment ends inside the file: the last frame's segment would end at
``n_frames / fps``, past the audio's end (``n_frames = 1 + n_samples // hop_length``, so a 30.000 s
file at 50 fps has 1501 frames and its last segment would end at 30.020 s); given the file's
``duration`` (``n_samples / sr``), segments are cut at it and any that start at or after it are
dropped. Without it the file is taken to last ``n_frames / fps``. Between steps a class's segments are an ``intervals`` array
``[shape=(n, 2)]`` of sorted, disjoint ``(onset, offset)`` pairs in seconds. Durations are
compared with a 1 ns tolerance, so that a gap of exactly ``min_duration_off`` built from frame
counts (``0.3 - 0.2 = 0.0999...``) is not decided by float round-off.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import ParameterError
from .labels import Segment, frames_to_intervals  # runs of frames -> seconds: one owner, labels

EPS = 1e-9  # seconds; tolerance for duration comparisons


def binarize(scores: np.ndarray, *, onset, offset=None) -> np.ndarray:
    """Hysteresis thresholding: on at ``score >= onset``, stays on while ``score >= offset``.

    A frame is active when its score is at least ``offset`` and, going back through frames
    that are all at least ``offset``, some frame reached ``onset``.

    Parameters
    ----------
    scores : np.ndarray [shape=(n_frames,) or (n_frames, n_classes)]
        Scores along the first axis; columns are independent.
    onset : float or np.ndarray [shape=(n_classes,)]
        Threshold that switches a frame on.
    offset : float or np.ndarray [shape=(n_classes,)], optional
        Threshold below which an active run switches off; defaults to ``onset``.

    Returns
    -------
    active : np.ndarray [shape=scores.shape, dtype=bool]

    Raises
    ------
    ParameterError
        when ``offset > onset``.
    """
    scores = np.asarray(scores, dtype=float)
    onset = np.asarray(onset, dtype=float)
    offset = onset if offset is None else np.asarray(offset, dtype=float)
    if np.any(offset > onset):
        raise ParameterError(f"offset threshold {offset.tolist()} must be <= onset threshold "
                             f"{onset.tolist()}")
    start = scores >= onset
    keep = scores >= offset  # start implies keep, since offset <= onset
    if scores.shape[0] == 0:
        return keep
    idx = np.arange(scores.shape[0]).reshape((-1,) + (1,) * (scores.ndim - 1))
    # index of the last frame that reached `onset`, and of the last frame below `offset`
    last_start = np.maximum.accumulate(np.where(start, idx, -1), axis=0)
    last_break = np.maximum.accumulate(np.where(keep, -1, idx), axis=0)
    return keep & (last_start > last_break)


def median_width(seconds: float, fps: float) -> int:
    """Frames of a median filter of ``seconds``: rounded to frames, then up to an odd count (0 or 1:
    no filter). The one rule, used by :func:`scores_to_segments` and the stream's look-ahead."""
    width = int(round(seconds * fps))
    return width + 1 - width % 2 if width > 1 else 0


def median_filter(scores: np.ndarray, *, width_frames: int) -> np.ndarray:
    """Running median over ``width_frames`` frames (edges repeat the end frames).

    Parameters
    ----------
    scores : np.ndarray [shape=(n_frames,) or (n_frames, n_classes)]
        Filtered along the first axis only; a boolean array stays boolean.
    width_frames : int
        Odd window length; 0 or 1 returns ``scores`` unchanged.

    Returns
    -------
    filtered : np.ndarray [shape=scores.shape]

    Raises
    ------
    ParameterError
        when the width is negative or even (and > 0).
    """
    if width_frames < 0 or (width_frames > 1 and width_frames % 2 == 0):
        raise ParameterError(f"width_frames={width_frames} must be 0, 1 or an odd positive integer")
    scores = np.asarray(scores)
    if width_frames <= 1 or scores.shape[0] == 0:
        return scores
    x = scores.astype(np.uint8) if scores.dtype == bool else scores
    out = _running_median(x, int(width_frames))
    return out.astype(bool) if scores.dtype == bool else out


MEDIAN_BLOCK = 1 << 20  # values per temporary window block (bounds memory on hours of frames)


def _running_median(x: np.ndarray, width: int) -> np.ndarray:
    """``scipy.ndimage.median_filter(x, size=(width, 1, ...), mode="nearest")`` for an odd width,
    in numpy (scipy.ndimage costs 0.2 s of import on every start-up): the ends are extended with
    copies of the end frames, and blocks of frames bound the temporary window array."""
    h = width // 2
    padded = np.concatenate([np.repeat(x[:1], h, axis=0), x, np.repeat(x[-1:], h, axis=0)])
    out = np.empty_like(x)
    step = max(1, MEDIAN_BLOCK // (width * max(1, int(np.prod(x.shape[1:])))))
    for s in range(0, len(x), step):
        win = np.lib.stride_tricks.sliding_window_view(padded[s: s + step + 2 * h], width, axis=0)
        # odd width: the median is the middle order statistic, an element (no averaging)
        out[s: s + len(win)] = np.partition(win, h, axis=-1)[..., h]
    return out


_median_filter = median_filter  # scores_to_segments has a parameter of the same name


def _as_intervals(intervals) -> np.ndarray:
    """(n, 2) float array from an array or a sequence of pairs (``Segment`` labels dropped)."""
    if isinstance(intervals, np.ndarray):
        return intervals.astype(float).reshape(-1, 2)
    return np.array([tuple(s)[:2] for s in intervals], dtype=float).reshape(-1, 2)


def fill_gaps(intervals, *, min_duration_off: float) -> np.ndarray:
    """Merge neighbouring intervals separated by a gap shorter than ``min_duration_off``.

    Applied before :func:`remove_short`, so two short bursts with a short pause between them
    survive as one segment.

    Parameters
    ----------
    intervals : array-like [shape=(n, 2)]
        Sorted, disjoint ``(onset, offset)`` pairs in seconds, one class.
    min_duration_off : float
        Seconds; gaps strictly shorter are filled, 0 fills nothing.

    Returns
    -------
    intervals : np.ndarray [shape=(m, 2)], m <= n
    """
    iv = _as_intervals(intervals)
    if len(iv) < 2 or min_duration_off <= 0:
        return iv
    split = iv[1:, 0] - iv[:-1, 1] >= min_duration_off - EPS  # gaps that stay
    starts = iv[np.concatenate([[True], split]), 0]
    stops = iv[np.concatenate([split, [True]]), 1]
    return np.stack([starts, stops], axis=1)


def remove_short(intervals, *, min_duration_on: float) -> np.ndarray:
    """Drop intervals shorter than ``min_duration_on`` seconds (0 keeps all).

    Parameters
    ----------
    intervals : array-like [shape=(n, 2)]
    min_duration_on : float

    Returns
    -------
    intervals : np.ndarray [shape=(m, 2)], m <= n
    """
    iv = _as_intervals(intervals)
    if min_duration_on <= 0:
        return iv
    return iv[iv[:, 1] - iv[:, 0] >= min_duration_on - EPS]


def pad(intervals, *, pad_onset: float = 0.0, pad_offset: float = 0.0,
        duration: float) -> np.ndarray:
    """Widen intervals, clip them to ``[0, duration]``, and merge those that now overlap or touch.

    Parameters
    ----------
    intervals : array-like [shape=(n, 2)]
    pad_onset, pad_offset : float
        Seconds added before each onset and after each offset (>= 0).
    duration : float
        Length of the file in seconds.

    Returns
    -------
    intervals : np.ndarray [shape=(m, 2)], m <= n
    """
    if pad_onset < 0 or pad_offset < 0:
        raise ParameterError(f"pad_onset={pad_onset}, pad_offset={pad_offset} must be >= 0")
    iv = _as_intervals(intervals)
    if len(iv) == 0:
        return iv
    iv = np.stack([np.maximum(iv[:, 0] - pad_onset, 0.0),
                   np.minimum(iv[:, 1] + pad_offset, duration)], axis=1)
    # intervals stay sorted by onset (same pad for all); merge while the next onset <= max offset
    stops = np.maximum.accumulate(iv[:, 1])
    split = iv[1:, 0] > stops[:-1] + EPS
    starts = iv[np.concatenate([[True], split]), 0]
    ends = stops[np.concatenate([split, [True]])]
    return np.stack([starts, ends], axis=1)


def split_long(intervals, scores: np.ndarray, *, fps: float, max_duration: float) -> np.ndarray:
    """Split intervals longer than ``max_duration`` at their lowest-score frame, recursively.

    An interval is cut at ``k / fps``, the time of the frame ``k`` with the lowest score among the
    frames strictly inside it (the first such frame on ties); both pieces are split again until
    none is longer than ``max_duration``.

    Parameters
    ----------
    intervals : array-like [shape=(n, 2)]
    scores : np.ndarray [shape=(n_frames,)]
        The class's (filtered) frame scores.
    fps : float
    max_duration : float
        Seconds, at least one frame (``1 / fps``); 0 disables splitting.

    Returns
    -------
    intervals : np.ndarray [shape=(m, 2)], m >= n
    """
    iv = _as_intervals(intervals)
    if max_duration <= 0:
        return iv
    if max_duration < 1.0 / fps - EPS:
        raise ParameterError(f"max_duration={max_duration} must be 0 or at least one frame "
                             f"(1/fps = {1.0 / fps:g} s)")
    scores = np.asarray(scores, dtype=float)
    out = []
    todo = [tuple(x) for x in iv[::-1]]  # a stack; reversed so pieces come out in order
    while todo:
        a, b = todo.pop()
        if b - a <= max_duration + EPS:
            out.append((a, b))
            continue
        ks = np.arange(int(np.floor(a * fps)), int(np.ceil(b * fps)) + 1)
        ks = ks[(ks / fps > a + EPS) & (ks / fps < b - EPS) & (ks < len(scores))]
        k = int(ks[np.argmin(scores[ks])])  # exists: b - a > 1/fps
        todo += [(k / fps, b), (a, k / fps)]
    return np.array(out, dtype=float).reshape(-1, 2)


def clip(intervals, *, duration: float) -> np.ndarray:
    """Cut intervals at ``duration`` seconds; those that start at or after it are dropped.

    Parameters
    ----------
    intervals : array-like [shape=(n, 2)]
    duration : float
        The file's length in seconds (``n_samples / sr``).

    Returns
    -------
    intervals : np.ndarray [shape=(m, 2)], m <= n
    """
    iv = _as_intervals(intervals)
    iv = iv[iv[:, 0] < duration - EPS]
    return np.stack([iv[:, 0], np.minimum(iv[:, 1], duration)], axis=1)


def _per_class(value, n: int, name: str) -> np.ndarray:
    """A setting given once or per class -> [shape=(n,)] float."""
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        v = np.full(n, float(v))
    if v.shape != (n,):
        raise ParameterError(f"{name}={np.asarray(value).tolist()} must be one value or one per "
                             f"class ({n})")
    if not np.all(v >= 0):
        raise ParameterError(f"{name}={v.tolist()} must be >= 0 seconds")
    return v


def filter_scores(scores: np.ndarray, *, median_filter, fps: float) -> np.ndarray:
    """Each class's scores through its median filter: the scores the thresholds see, and the
    ones ``evaluate`` and ``tune`` compute PSDS, AUC and AP on (one definition for both).

    Parameters
    ----------
    scores : np.ndarray [shape=(n_frames, n_classes)]
    median_filter : float or sequence of float [shape=(n_classes,)]
        Seconds per class, as :func:`scores_to_segments` takes it; 0 leaves a class unfiltered.
    fps : float

    Returns
    -------
    filtered : np.ndarray [shape=scores.shape, dtype=float64]
    """
    scores = np.asarray(scores, dtype=float)
    filtered = np.empty_like(scores)
    for c, seconds in enumerate(_per_class(median_filter, scores.shape[1], "median_filter")):
        filtered[:, c] = _median_filter(scores[:, c], width_frames=median_width(seconds, fps))
    return filtered


def scores_to_segments(scores: np.ndarray, *, classes: Sequence[str], fps: float,
                       threshold=0.5, offset_threshold=None, median_filter=0.0,
                       min_duration_on: float = 0.0, min_duration_off: float = 0.0,
                       pad_onset: float = 0.0, pad_offset: float = 0.0,
                       max_duration: float = 0.0, duration: float | None = None) -> list[Segment]:
    """Frame scores -> labelled segments, with the steps in the order of the module docstring.

    Parameters
    ----------
    scores : np.ndarray [shape=(n_frames, n_classes)]
        Per-frame scores (probabilities), frame ``i`` centred at ``i / fps``.
    classes : sequence of str [shape=(n_classes,)]
        Label of each column.
    fps : float
        Frames per second; the file lasts ``n_frames / fps`` seconds.
    threshold : float or sequence of float [shape=(n_classes,)]
        Onset threshold of the hysteresis.
    offset_threshold : float or sequence of float, optional
        Offset threshold (<= threshold); defaults to ``threshold``.
    median_filter : float or sequence of float [shape=(n_classes,)]
        Median filter length in seconds, applied to the scores before thresholding; rounded to
        the nearest frame count and up to an odd one. 0 disables.
    min_duration_on, min_duration_off : float
        Seconds; segments / gaps strictly shorter are removed / filled (gaps first).
    pad_onset, pad_offset : float
        Seconds added around each segment, clipped to the file; overlaps merge.
    max_duration : float
        Seconds; longer segments are split at their lowest-score frame. 0 disables.
    duration : float, optional
        The file's length in seconds (``n_samples / sr``); segments are cut at it (see the module
        docstring). Default ``n_frames / fps``.

    Returns
    -------
    segments : list of Segment
        Sorted by onset (then offset, label).

    Raises
    ------
    ParameterError
        on a bad shape, non-finite scores or an out-of-range setting.
    """
    scores = np.asarray(scores, dtype=float)
    classes = list(classes)
    if scores.ndim == 1 and len(classes) == 1:
        scores = scores[:, None]
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise ParameterError(f"scores of shape {scores.shape} must be (n_frames, {len(classes)}) "
                             f"for classes {classes}")
    if not fps > 0:
        raise ParameterError(f"fps={fps} must be positive")
    if not np.isfinite(scores).all():
        raise ParameterError(f"scores contain {np.count_nonzero(~np.isfinite(scores))} "
                             f"non-finite values (NaN or inf)")
    for name, value in [("min_duration_on", min_duration_on),
                        ("min_duration_off", min_duration_off), ("max_duration", max_duration)]:
        if not value >= 0:
            raise ParameterError(f"{name}={value} must be >= 0 seconds")
    medians = _per_class(median_filter, len(classes), "median_filter")
    if duration is None:
        duration = scores.shape[0] / fps
    elif not (np.isfinite(duration) and duration >= 0):
        raise ParameterError(f"duration={duration} must be a finite number of seconds >= 0")

    filtered = filter_scores(scores, median_filter=medians, fps=fps)
    active = binarize(filtered, onset=threshold, offset=offset_threshold)  # (n_frames, n_classes)

    segments = []
    for c, label in enumerate(classes):
        iv = frames_to_intervals(active[:, c], fps=fps)
        iv = fill_gaps(iv, min_duration_off=min_duration_off)
        iv = remove_short(iv, min_duration_on=min_duration_on)
        iv = pad(iv, pad_onset=pad_onset, pad_offset=pad_offset, duration=duration)
        iv = split_long(iv, filtered[:, c], fps=fps, max_duration=max_duration)
        iv = clip(iv, duration=duration)
        segments += [Segment(float(a), float(b), label) for a, b in iv]
    return sorted(segments)
