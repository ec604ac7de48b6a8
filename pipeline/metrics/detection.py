"""Detection error rate (pyannote.metrics' ``DetectionErrorRate``, no collar) and boundary
errors, per class of one file.

- detection error: ``(false alarm + miss) / reference duration`` in seconds, overlapping events
  merged first.
- boundaries: onset and offset errors (predicted minus reference, seconds; positive = late) of
  each reference event and the predicted event of its class it overlaps most (one to one).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..labels import Segment
from .counts import _ratio

HIST_EDGES = [-math.inf] + [round(-0.5 + 0.05 * k, 2) for k in range(21)] + [math.inf]


# -- detection error rate (pyannote.metrics DetectionErrorRate) ---------------------------------

def _support(intervals, lo: float, hi: float) -> np.ndarray:
    """Sorted, merged intervals [shape=(n, 2)] cropped to ``[lo, hi]``."""
    iv = np.array([tuple(s)[:2] for s in intervals], dtype=float).reshape(-1, 2)
    iv = np.clip(iv, lo, hi)
    iv = iv[iv[:, 1] > iv[:, 0]]
    if len(iv) == 0:
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="mergesort")]
    stops = np.maximum.accumulate(iv[:, 1])
    split = iv[1:, 0] > stops[:-1]
    return np.stack([iv[np.r_[True, split], 0], stops[np.r_[split, True]]], axis=1)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Total duration of the intersection of two merged interval sets."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
    return float(np.maximum(inter, 0.0).sum())


def detection_error(ref: Sequence, pred: Sequence, *, start: float = 0.0,
                    end: float) -> dict:
    """Detection error components of one class in one file, within ``[start, end]`` seconds.

    As pyannote.metrics' ``DetectionErrorRate()`` (no collar, overlap scored) with the UEM
    ``[start, end]``: events are merged, ``miss`` is reference time not predicted,
    ``false_alarm`` predicted time outside the reference, ``total`` the reference time.

    Returns
    -------
    components : dict
        ``{"false_alarm", "miss", "total"}`` in seconds.
    """
    r, p = _support(ref, start, end), _support(pred, start, end)
    total = float((r[:, 1] - r[:, 0]).sum())
    hit = _overlap(r, p)
    return {"false_alarm": float((p[:, 1] - p[:, 0]).sum()) - hit, "miss": total - hit,
            "total": total}


def _der_summary(c: Mapping[str, float]) -> dict:
    fa, miss, total = c["false_alarm"], c["miss"], c["total"]
    return {"false_alarm": fa, "miss": miss, "total": total,
            "false_alarm_rate": _ratio(fa, total), "miss_rate": _ratio(miss, total),
            "error_rate": _ratio(fa + miss, total)}


def _add_der(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0.0) + b[k] for k in ("false_alarm", "miss", "total")}


# -- boundaries ---------------------------------------------------------------------------------

def boundary_pairs(ref: Sequence[Segment], pred: Sequence[Segment]) -> np.ndarray:
    """Onset and offset errors [shape=(n, 2)] (predicted minus reference, seconds) of the
    reference events of one class, each paired one to one with the predicted event it overlaps
    most (a maximum-overlap assignment); reference events no prediction overlaps are left out."""
    r = np.array([s[:2] for s in ref], dtype=float).reshape(-1, 2)
    p = np.array([s[:2] for s in pred], dtype=float).reshape(-1, 2)
    if len(r) == 0 or len(p) == 0:
        return np.zeros((0, 2))
    inter = np.minimum(r[:, None, 1], p[None, :, 1]) - np.maximum(r[:, None, 0], p[None, :, 0])
    inter = np.maximum(inter, 0.0)
    rows, cols = linear_sum_assignment(-inter)
    keep = inter[rows, cols] > 0
    rows, cols = rows[keep], cols[keep]
    return np.stack([p[cols, 0] - r[rows, 0], p[cols, 1] - r[rows, 1]], axis=1)


def boundary_summary(errors: np.ndarray) -> dict:
    """Median, 10th and 90th percentile, mean absolute error and a histogram (fixed 50 ms bins
    from -0.5 to 0.5 s, with open end bins; edges in ``HIST_EDGES``) of signed errors."""
    e = np.asarray(errors, dtype=float)
    counts = np.histogram(np.clip(e, -1e9, 1e9), bins=np.clip(HIST_EDGES, -1e10, 1e10))[0]
    out = {"n": int(len(e)), "histogram": counts.astype(int).tolist()}
    for key, value in (("median", 50), ("p10", 10), ("p90", 90)):
        out[key] = float(np.percentile(e, value)) if len(e) else None
    out["mean_abs"] = float(np.mean(np.abs(e))) if len(e) else None
    return out
