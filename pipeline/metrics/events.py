"""Segment- and event-based metrics as sed_eval 0.2.1 computes them, one file at a time.

- segment: ``SegmentBasedMetrics`` (``time_resolution = segment_length``): a class is active in a
  segment ``[k L, (k+1) L)`` when any of its events overlaps it
  (``floor(onset / L) <= k < ceil(offset / L)``). Per segment, with FN and FP counted over classes,
  ``S = min(FN, FP)``, ``D = max(0, FN - FP)``, ``I = max(0, FP - FN)``;
  ``ER = (S + D + I) / N_ref``. Per class there are no substitutions: ``ER = (FN + FP) / N_ref``.
- event: ``EventBasedMetrics`` (``t_collar = collar``, ``percentage_of_length``, onsets and
  offsets both evaluated). A reference and a predicted event of the same label match when
  ``|onset diff| <= collar`` and ``|offset diff| <= max(collar, percentage_of_length * reference
  length)``, compared exactly as sed_eval compares them (no tolerance). Matching is one-to-one and
  maximum (as sed_eval's default ``event_matching_type='optimal'``).

The deliberate differences from sed_eval are listed in :mod:`pipeline.metrics`.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from ..labels import Segment
from .counts import EPS, _Counts, _check_positive, _checked, _class_index, _summary
from .frame import _frame_counts


# -- segment based (sed_eval SegmentBasedMetrics) -----------------------------------------------

def _roll(segments: Sequence[Segment], index: Mapping[str, int], n: int, step: float) -> np.ndarray:
    """Activity [shape=(n, n_classes), bool] at resolution ``step``, as sed_eval's event roll:
    cells ``floor(onset / step) .. ceil(offset / step) - 1`` of the event's class are on."""
    roll = np.zeros((n, len(index)), dtype=bool)
    for onset, offset, label in segments:
        first, stop = math.floor(onset / step + EPS), math.ceil(offset / step - EPS)
        roll[max(0, first):stop, index[label]] = True
    return roll


def _segment_counts(ref, pred, index, duration: float, segment_length: float) -> _Counts:
    n = math.ceil(duration / segment_length - EPS)  # activity past the end is cut, as sed_eval
    r, p = _roll(ref, index, n, segment_length), _roll(pred, index, n, segment_length)
    fn_k, fp_k = (r & ~p).sum(1), (p & ~r).sum(1)  # per segment, over classes
    counts = _frame_counts(r, p)
    counts.substitutions = int(np.minimum(fn_k, fp_k).sum())
    counts.deletions = int(np.maximum(0, fn_k - fp_k).sum())
    counts.insertions = int(np.maximum(0, fp_k - fn_k).sum())
    return counts


def segment_metrics(ref: Sequence[Segment], pred: Sequence[Segment], *, classes: Sequence[str],
                    duration: float | None = None, segment_length: float = 1.0) -> dict:
    """sed_eval segment-based metrics of one file.

    Parameters
    ----------
    ref, pred : sequence of Segment
    classes : sequence of str
    duration : float, optional
        Seconds evaluated (sed_eval's ``evaluated_length_seconds``): activity after it is cut.
        Defaults to the last offset.
    segment_length : float
        Segment length in seconds (sed_eval's ``time_resolution``).

    Returns
    -------
    metrics : dict
        As :func:`frame_metrics`, plus ``substitutions``, ``deletions``, ``insertions`` and
        ``error_rate`` overall and ``error_rate`` per class.
    """
    index = _class_index(classes)
    ref, pred = _checked(ref, index, "ref"), _checked(pred, index, "pred")
    _check_positive(segment_length=segment_length)
    if duration is None:
        duration = max([0.0] + [s.offset for s in ref] + [s.offset for s in pred])
    return _summary(_segment_counts(ref, pred, index, duration, segment_length), list(index),
                    error_rate=True)


# -- event based (sed_eval EventBasedMetrics) ---------------------------------------------------

def _hits(ref: Sequence[Segment], pred: Sequence[Segment], collar: float,
          percentage_of_length: float) -> np.ndarray:
    """[shape=(n_ref, n_pred), bool]: onsets within the collar and offsets within
    ``max(collar, percentage_of_length * reference length)``, compared in floating point exactly
    as sed_eval's ``validate_onset``/``validate_offset``; labels are not compared."""
    r = np.array([s[:2] for s in ref], dtype=float).reshape(-1, 2)
    p = np.array([s[:2] for s in pred], dtype=float).reshape(-1, 2)
    offset_collar = np.maximum(collar, percentage_of_length * (r[:, 1] - r[:, 0]))[:, None]
    return ((np.abs(r[:, None, 0] - p[None, :, 0]) <= collar)
            & (np.abs(r[:, None, 1] - p[None, :, 1]) <= offset_collar))


def _max_matching(hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum one-to-one matching of a bipartite graph: (rows matched, columns matched)."""
    rows = np.zeros(hits.shape[0], dtype=bool)
    cols = np.zeros(hits.shape[1], dtype=bool)
    if hits.any():
        match = maximum_bipartite_matching(scipy.sparse.csr_matrix(hits), perm_type="column")
        rows = match >= 0
        cols[match[rows]] = True
    return rows, cols


def _event_counts(ref, pred, index, collar: float, percentage_of_length: float) -> _Counts:
    counts = _Counts.zeros(len(index))
    ref_left, pred_left = [], []
    for label, c in index.items():
        r = [s for s in ref if s.label == label]
        p = [s for s in pred if s.label == label]
        r_ok, p_ok = _max_matching(_hits(r, p, collar, percentage_of_length))
        counts.tp[c], counts.fn[c], counts.fp[c] = r_ok.sum(), (~r_ok).sum(), (~p_ok).sum()
        ref_left += [s for s, ok in zip(r, r_ok) if not ok]
        pred_left += [s for s, ok in zip(p, p_ok) if not ok]
    # leftovers that match in time are of different labels (else the matching was not maximum)
    subs, _ = _max_matching(_hits(ref_left, pred_left, collar, percentage_of_length))
    counts.substitutions = int(subs.sum())
    counts.deletions = len(ref_left) - counts.substitutions
    counts.insertions = len(pred_left) - counts.substitutions
    return counts


def event_metrics(ref: Sequence[Segment], pred: Sequence[Segment], *, classes: Sequence[str],
                  collar: float = 0.2, percentage_of_length: float = 0.5) -> dict:
    """sed_eval event-based metrics of one file (onset and offset evaluated).

    Parameters
    ----------
    ref, pred : sequence of Segment
    classes : sequence of str
    collar : float
        Onset collar in seconds (sed_eval's ``t_collar``); also the least offset collar.
    percentage_of_length : float
        The offset collar is at least this fraction of the reference event's length.

    Returns
    -------
    metrics : dict
        As :func:`segment_metrics`.
    """
    index = _class_index(classes)
    ref, pred = _checked(ref, index, "ref"), _checked(pred, index, "pred")
    _check_positive(collar=collar, percentage_of_length=percentage_of_length, allow_zero=True)
    return _summary(_event_counts(ref, pred, index, collar, percentage_of_length), list(index),
                    error_rate=True)
