"""Frame-level metrics: precision, recall and F1 of rasterised activity; ROC AUC, average
precision and the curves from frame scores.

Segments are rasterised at ``fps`` (frame ``i`` active iff ``onset <= i / fps < offset``) by the
project's one rasteriser, :func:`pipeline.labels.segments_to_frames`.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import scipy.stats

from ..errors import ParameterError
from ..labels import segments_to_frames
from .counts import _Counts, _summary


def _frame_counts(ref: np.ndarray, pred: np.ndarray) -> _Counts:
    return _Counts((ref & pred).sum(0), (~ref & pred).sum(0), (ref & ~pred).sum(0))


def frame_metrics(ref: np.ndarray, pred: np.ndarray, *,
                  classes: Sequence[str] | None = None) -> dict:
    """Frame-level precision, recall and F1 per class and overall (micro).

    Parameters
    ----------
    ref, pred : np.ndarray [shape=(n_frames, n_classes), dtype=bool]
        Reference and predicted activity.
    classes : sequence of str, optional
        Column names; ``"0", "1", ...`` by default.

    Returns
    -------
    metrics : dict
        ``{"overall": {tp, fp, fn, n_ref, n_sys, precision, recall, f1}, "per_class": {label:
        {...}}}``; an undefined rate (zero denominator) is ``None``.
    """
    ref, pred = np.asarray(ref, dtype=bool), np.asarray(pred, dtype=bool)
    if ref.ndim != 2 or ref.shape != pred.shape:
        raise ParameterError(f"ref {ref.shape} and pred {pred.shape} must be the same "
                             f"(n_frames, n_classes) shape")
    classes = [str(c) for c in range(ref.shape[1])] if classes is None else list(classes)
    return _summary(_frame_counts(ref, pred), classes, error_rate=False)


def _check_scores(targets, scores) -> tuple[np.ndarray, np.ndarray]:
    targets, scores = np.asarray(targets, dtype=bool), np.asarray(scores, dtype=float)
    if targets.shape != scores.shape or targets.ndim not in (1, 2):
        raise ParameterError(f"targets {targets.shape} and scores {scores.shape} must have the "
                             f"same (n,) or (n, n_classes) shape")
    if not np.isfinite(scores).all():
        raise ParameterError("scores contain non-finite values (NaN or inf)")
    return targets, scores


def roc_auc(targets: np.ndarray, scores: np.ndarray):
    """Exact ROC AUC: the Mann-Whitney U statistic with average ranks for tied scores.

    Equals the fraction of (positive, negative) pairs the scores order correctly, ties
    counting one half.

    Parameters
    ----------
    targets : np.ndarray [shape=(n,) or (n, n_classes)], bool or 0/1
    scores : np.ndarray [shape=targets.shape]

    Returns
    -------
    auc : float or np.ndarray [shape=(n_classes,)]
        NaN for a class whose targets are all positive or all negative.
    """
    targets, scores = _check_scores(targets, scores)
    ranks = scipy.stats.rankdata(scores, axis=0)  # ties get their average rank
    n_pos = targets.sum(axis=0)
    n_neg = targets.shape[0] - n_pos
    u = (ranks * targets).sum(axis=0) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return float(auc) if auc.ndim == 0 else auc


def _curve_points(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (tp, fp) counts and thresholds at each distinct score, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], targets[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(t)[last]
    return tp, (last + 1) - tp, s[last]


def curves(targets: np.ndarray, scores: np.ndarray) -> dict:
    """ROC and precision-recall curves of one class at every distinct score.

    Parameters
    ----------
    targets, scores : np.ndarray [shape=(n,)]

    Returns
    -------
    curves : dict
        ``fpr``, ``tpr`` (starting at 0, 0), ``precision``, ``recall`` and ``thresholds``
        (highest first), lists of float; empty lists when a label is absent.
    """
    targets, scores = _check_scores(targets, scores)
    n_pos, n_neg = int(targets.sum()), int((~targets).sum())
    if len(scores) == 0 or n_pos == 0 or n_neg == 0:
        return {"fpr": [], "tpr": [], "precision": [], "recall": [], "thresholds": []}
    tp, fp, thr = _curve_points(targets, scores)
    return {"fpr": np.r_[0.0, fp / n_neg].tolist(), "tpr": np.r_[0.0, tp / n_pos].tolist(),
            "precision": (tp / (tp + fp)).tolist(), "recall": (tp / n_pos).tolist(),
            "thresholds": thr.tolist()}


def average_precision(targets: np.ndarray, scores: np.ndarray):
    """Area under the precision-recall curve as scikit-learn's ``average_precision_score``:
    ``sum_k (R_k - R_(k-1)) P_k`` over the distinct scores, highest first (no interpolation).

    Parameters
    ----------
    targets : np.ndarray [shape=(n,) or (n, n_classes)], bool or 0/1
    scores : np.ndarray [shape=targets.shape]

    Returns
    -------
    ap : float or np.ndarray [shape=(n_classes,)]
        NaN for a class without positives.
    """
    targets, scores = _check_scores(targets, scores)
    if targets.ndim == 2:
        return np.array([average_precision(targets[:, c], scores[:, c])
                         for c in range(targets.shape[1])], dtype=float)
    n_pos = int(targets.sum())
    if n_pos == 0:
        return float("nan")
    tp, fp, _ = _curve_points(targets, scores)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * tp / (tp + fp)))


def _rasterize(segments, index, n_frames: int, fps: float) -> np.ndarray:
    """Activity [shape=(n_frames, n_classes), bool] by the project's one rasteriser; activity past
    the end of the file is cut without the warning label files get."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return segments_to_frames(segments, classes=list(index), n_frames=n_frames, fps=fps) > 0.5
