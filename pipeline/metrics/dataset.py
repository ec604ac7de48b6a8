"""Metrics of predicted segments and frame scores against reference labels: pure functions over
arrays and segments (no file system; :mod:`pipeline.evaluate` reads the folders).

Views, each summed over files before rates are taken (micro averages):

- frame: segments rasterised at ``fps`` (frame ``i`` active iff ``onset <= i / fps < offset``),
  precision / recall / F1 per class and overall; from the frame scores, ROC AUC and average
  precision (PR AUC).
- segment: sed_eval's ``SegmentBasedMetrics`` (``time_resolution = segment_length``): a class is
  active in a segment ``[k L, (k+1) L)`` when any of its events overlaps it
  (``floor(onset / L) <= k < ceil(offset / L)``). Per segment, with FN and FP counted over classes,
  ``S = min(FN, FP)``, ``D = max(0, FN - FP)``, ``I = max(0, FP - FN)``;
  ``ER = (S + D + I) / N_ref``. Per class there are no substitutions: ``ER = (FN + FP) / N_ref``.
- event: sed_eval's ``EventBasedMetrics`` (``t_collar = collar``, ``percentage_of_length``,
  onsets and offsets both evaluated). A reference and a predicted event of the same label match
  when ``|onset diff| <= collar`` and ``|offset diff| <= max(collar, percentage_of_length *
  reference length)``, compared exactly as sed_eval compares them (no tolerance). Matching is
  one-to-one and maximum (as sed_eval's default ``event_matching_type='optimal'``).
- detection error rate (pyannote.metrics' ``DetectionErrorRate``, no collar): per class,
  ``(false alarm + miss) / reference duration`` in seconds, overlapping events merged first.
- boundaries: onset and offset errors (predicted minus reference, seconds; positive = late) of
  each reference event and the predicted event of its class it overlaps most (one to one).
- PSDS (:func:`psds`): intersection-based, on every operating point, as ``sed_scores_eval``.

Deliberate differences from sed_eval 0.2.1, and what they do to the numbers:

- no ``eps`` in denominators: a rate with a zero denominator is ``None`` (sed_eval: 0 or
  ``I / eps``); ``F1 = 2 TP / (2 TP + FP + FN)``, so a class with references and no predictions
  scores 0 (sed_eval: NaN). Counts are unchanged.
- event substitutions (only with two or more classes) pair leftover reference and predicted
  events of different labels by a maximum matching; sed_eval pairs them greedily in list order,
  which can find fewer. Each extra substitution lowers the event ER by ``1 / N_ref`` (one
  substitution replaces one deletion and one insertion); TP, FP, FN and F1 are unchanged.
- segment rolls take ``floor(onset / L + 1e-9)`` and ``ceil(offset / L - 1e-9)``: at ``L = 1 s``
  and times on a millisecond grid this equals sed_eval's; at other ``L`` it avoids an extra
  segment from round-off (``0.3 * (1 / 0.1) = 3.0000000000000004``).
- counts: ``fp`` and ``fn`` include substituted events or classes (sed_eval's event-based overall
  ``Nfp``/``Nfn`` exclude them; those are ``insertions`` and ``deletions`` here).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse
import scipy.stats
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import maximum_bipartite_matching

from ..errors import ParameterError
from ..labels import Segment, segments_to_frames

EPS = 1e-9  # seconds, and fractions of a frame or segment

# DCASE 2023/2024 task 4 parameters (Bilen et al. 2020; the DCASE baselines)
PSDS1 = {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None, "alpha_ct": 0.0,
         "alpha_st": 1.0, "max_efpr": 100.0}
PSDS2 = {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3, "alpha_ct": 0.5,
         "alpha_st": 1.0, "max_efpr": 100.0}
HIST_EDGES = [-math.inf] + [round(-0.5 + 0.05 * k, 2) for k in range(21)] + [math.inf]


# -- counts and rates ---------------------------------------------------------------------------

@dataclass
class _Counts:
    """Per-class tp/fp/fn and overall substitutions/deletions/insertions, summable over files."""

    tp: np.ndarray  # [n_classes], int
    fp: np.ndarray
    fn: np.ndarray
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @classmethod
    def zeros(cls, n_classes: int) -> "_Counts":
        z = np.zeros(n_classes, dtype=np.int64)
        return cls(z, z.copy(), z.copy())

    def __add__(self, other: "_Counts") -> "_Counts":
        return _Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                       self.substitutions + other.substitutions,
                       self.deletions + other.deletions, self.insertions + other.insertions)


def _ratio(num, den) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _rates(tp: int, fp: int, fn: int) -> dict:
    tp, fp, fn = int(tp), int(fp), int(fn)
    return {"tp": tp, "fp": fp, "fn": fn, "n_ref": tp + fn, "n_sys": tp + fp,
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def _summary(counts: _Counts, classes: Sequence[str], *, error_rate: bool) -> dict:
    """``{"overall": {...}, "per_class": {label: {...}}}`` of counts and rates."""
    overall = _rates(counts.tp.sum(), counts.fp.sum(), counts.fn.sum())
    if error_rate:
        s, d, i = counts.substitutions, counts.deletions, counts.insertions
        overall.update(substitutions=s, deletions=d, insertions=i,
                       error_rate=_ratio(s + d + i, overall["n_ref"]))
    per_class = {}
    for c, label in enumerate(classes):
        r = _rates(counts.tp[c], counts.fp[c], counts.fn[c])
        if error_rate:
            r["error_rate"] = _ratio(r["fn"] + r["fp"], r["n_ref"])
        per_class[label] = r
    return {"overall": overall, "per_class": per_class}


# -- frame level --------------------------------------------------------------------------------

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


# -- many files ---------------------------------------------------------------------------------

def _class_index(classes: Sequence[str]) -> dict[str, int]:
    classes = list(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ParameterError(f"classes={classes} must be a non-empty list of distinct labels")
    return {label: c for c, label in enumerate(classes)}


def _check_positive(*, allow_zero: bool = False, **values) -> None:
    for name, value in values.items():
        if not (value >= 0 if allow_zero else value > 0):
            raise ParameterError(f"{name}={value} must be {'>= 0' if allow_zero else 'positive'}")


def _checked(segments, index: Mapping[str, int], where: str) -> list[Segment]:
    out = []
    for s in segments:
        onset, offset, label = float(s[0]), float(s[1]), s[2]
        if label not in index:
            raise ParameterError(f"{where}: label {label!r} is not one of the classes "
                                 f"{list(index)}")
        if not (0 <= onset <= offset < math.inf):
            raise ParameterError(f"{where}: segment ({onset}, {offset}, {label!r}) must have "
                                 f"0 <= onset <= offset")
        out.append(Segment(onset, offset, label))
    return out


def _rasterize(segments, index, n_frames: int, fps: float) -> np.ndarray:
    """Activity [shape=(n_frames, n_classes), bool] by the project's one rasteriser; activity past
    the end of the file is cut without the warning label files get."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return segments_to_frames(segments, classes=list(index), n_frames=n_frames, fps=fps) > 0.5


def _class_average(per_class: dict) -> dict:
    """Mean over classes of the defined (non-None) values of each view's rates."""
    def mean(view, key):
        vals = [m[view][key] for m in per_class.values() if m[view].get(key) is not None]
        return float(np.mean(vals)) if vals else None
    return {"frame": {k: mean("frame", k) for k in ("precision", "recall", "f1", "auc", "ap")},
            "segment": {k: mean("segment", k) for k in ("f1", "error_rate")},
            "event": {k: mean("event", k) for k in ("f1", "error_rate")},
            "detection": {"error_rate": mean("detection", "error_rate")},
            "boundary": {side: {"median": _mean_defined(m["boundary"][side]["median"]
                                                        for m in per_class.values())}
                         for side in ("onset", "offset")}}


def _mean_defined(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _file_scores(name, s, n_classes: int):
    if s is None:
        return None
    s = np.asarray(s, dtype=float)
    if s.ndim != 2 or s.shape[1] != n_classes:
        raise ParameterError(f"{name}: scores of shape {s.shape} must be (n_frames, {n_classes})")
    return s


def _file_counts(r, p, index, *, duration, n_frames, fps, opts) -> tuple[dict, dict, np.ndarray]:
    """One file's counts of every view, its detection error components per class and its
    rasterised reference [shape=(n_frames, n_classes)]."""
    rr, pr = _rasterize(r, index, n_frames, fps), _rasterize(p, index, n_frames, fps)
    counts = {"frame": _frame_counts(rr, pr),
              "segment": _segment_counts(r, p, index, duration, opts["segment_length"]),
              "event": _event_counts(r, p, index, opts["collar"], opts["percentage_of_length"])}
    der = {label: detection_error([s for s in r if s.label == label],
                                  [s for s in p if s.label == label], end=duration)
           for label in index}
    return counts, der, rr


def _add_der(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0.0) + b[k] for k in ("false_alarm", "miss", "total")}


def evaluate_files(ref: Mapping[str, Sequence[Segment]], pred: Mapping[str, Sequence[Segment]], *,
                   classes: Sequence[str], durations: Mapping[str, float] | None = None,
                   fps: float = 100, scores: Mapping[str, np.ndarray] | None = None,
                   score_classes: Sequence[str] | None = None, collar: float = 0.2, segment_length: float = 1.0,
                   percentage_of_length: float = 0.5, threshold_free: bool = True,
                   ci: bool = False, n_boot: int = 1000, seed: int = 0,
                   with_curves: bool = False) -> dict:
    """Frame, segment, event, detection-error and boundary metrics of a dataset, overall, per
    class and per file; ROC AUC, average precision and PSDS from the frame scores.

    Every file of ``ref`` is evaluated; a file missing from ``pred`` counts as nothing predicted
    and is listed under ``"missing"``. Files only in ``pred`` are listed under ``"extra"`` and
    not scored.

    Parameters
    ----------
    ref, pred : mapping of str to sequence of Segment
        Reference and predicted segments per file (any hashable file key, reported as ``str``).
    classes : sequence of str
        Labels evaluated; a segment with another label is an error.
    durations : mapping of str to float, optional
        Seconds per file; activity after the end is not evaluated. Without one a file lasts
        its scores' length, else its last offset.
    fps : float or mapping of str to float
        Frame rate of the frame-level view (and of ``scores``), one for all files or per file.
    scores : mapping of str to np.ndarray [shape=(n_frames, n_classes)], optional
        Frame scores for ROC AUC, average precision and PSDS, pooled over the files that have
        them (PSDS only when every file has them); they fix the file's frame count.
    score_classes : sequence of str, optional
        The classes of the scores' columns, a subset of ``classes`` in its order (default: all).
        The others (reference labels the model does not know) have no AUC, AP or PSDS (``None``);
        PSDS is taken over ``score_classes`` alone.
    collar, percentage_of_length : float
        Event-based matching tolerances (see :func:`event_metrics`).
    segment_length : float
        Segment-based resolution in seconds.
    threshold_free : bool
        Compute AUC, AP and PSDS from ``scores`` (the slow part; ``tune`` turns it off);
        ``with_curves`` adds each class's ROC and PR curves (:func:`curves`, at most 400 points)
        under ``"curves"``.
    ci : bool
        Add 95% per-file bootstrap confidence intervals (``n_boot`` resamplings, ``seed``) of the
        frame F1 and the detection error rate under ``"ci"``.

    Returns
    -------
    report : dict
        JSON-serialisable: ``"overall"`` and ``"per_class"`` (``{label: ...}``), each with
        ``"frame"`` (plus ``"auc"`` and ``"ap"``, overall the mean over classes), ``"segment"``,
        ``"event"`` (as :func:`segment_metrics`), ``"detection"`` (:func:`detection_error` summed,
        with rates) and ``"boundary"`` (``{"onset": ..., "offset": ...}``, :func:`boundary_summary`);
        ``"psds"`` (PSDS1 and PSDS2, overall and per class) when every file has scores;
        ``"class_average"``, ``"per_file"``, ``"missing"``, ``"extra"``, ``"settings"``.
        Undefined values are ``None``.
    """
    index = _class_index(classes)
    classes = list(index)
    score_classes = classes if score_classes is None else list(score_classes)
    if any(c not in index for c in score_classes) or sorted(score_classes, key=classes.index) != score_classes:
        raise ParameterError(f"score_classes={score_classes} must be some of classes={classes}, in order")
    columns = [index[c] for c in score_classes]
    rates = fps if isinstance(fps, Mapping) else {name: fps for name in ref}
    _check_positive(segment_length=segment_length, **{"fps": min(rates.values(), default=1)})
    _check_positive(collar=collar, percentage_of_length=percentage_of_length, allow_zero=True)
    durations, scores = durations or {}, scores or {}
    opts = {"collar": collar, "segment_length": segment_length,
            "percentage_of_length": percentage_of_length}

    totals = {view: _Counts.zeros(len(classes)) for view in ("frame", "segment", "event")}
    der_totals = {label: {} for label in classes}
    bounds = {label: [] for label in classes}
    per_file, targets, scored, used_durations, refs = {}, {}, {}, {}, {}
    for name in sorted(ref, key=str):
        r = _checked(ref[name], index, f"{name} (reference)")
        p = _checked(pred.get(name, ()), index, f"{name} (prediction)")
        s = _file_scores(name, scores.get(name), len(score_classes))
        f = float(rates.get(name, 100.0))
        last = max([0.0] + [x.offset for x in r] + [x.offset for x in p])
        duration = float(durations.get(name, s.shape[0] / f if s is not None else last))
        n_frames = s.shape[0] if s is not None else math.ceil(duration * f - EPS)
        counts, der, rr = _file_counts(r, p, index, duration=duration, n_frames=n_frames,
                                       fps=f, opts=opts)
        for label in classes:
            der_totals[label] = _add_der(der_totals[label], der[label])
            bounds[label].append(boundary_pairs([x for x in r if x.label == label],
                                                [x for x in p if x.label == label]))
        if s is not None:
            targets[name], scored[name] = rr[:, columns], s
        per_file[str(name)] = _file_report(counts, der, classes, missing=name not in pred)
        totals = {view: totals[view] + c for view, c in counts.items()}
        used_durations[name], refs[name] = duration, r

    report = _dataset_report(totals, der_totals, bounds, classes)
    if threshold_free:
        _add_threshold_free(report, targets, scored, refs, used_durations, score_classes, rates,
                            all_scored=len(scored) == len(ref) > 0 and bool(score_classes),
                            with_curves=with_curves)
    report["class_average"] = _class_average(report["per_class"])
    if ci:
        report["ci"] = bootstrap_ci(per_file, n_boot=n_boot, seed=seed)
    report.update(
        per_file=per_file,
        missing=sorted(str(f) for f in ref if f not in pred),
        extra=sorted(str(f) for f in pred if f not in ref),
        settings={"classes": classes, "fps": sorted(set(rates.values())), "collar": collar,
                  "percentage_of_length": percentage_of_length, "segment_length": segment_length,
                  "n_files": len(ref), "n_files_with_scores": len(scored),
                  "seconds": float(sum(used_durations.values()))})
    return report


def _file_report(counts: dict, der: dict, classes, *, missing: bool) -> dict:
    out = {view: _summary(c, classes, error_rate=view != "frame")["overall"]
           for view, c in counts.items()}
    total: dict = {}
    for d in der.values():
        total = _add_der(total, d)
    out["detection"] = _der_summary(total)
    out["missing"] = missing
    return out


def _dataset_report(totals: dict, der_totals: dict, bounds: dict, classes: list[str]) -> dict:
    summaries = {view: _summary(c, classes, error_rate=view != "frame")
                 for view, c in totals.items()}
    per_class = {label: {view: summaries[view]["per_class"][label] for view in summaries}
                 for label in classes}
    overall = {view: summaries[view]["overall"] for view in summaries}
    der_all: dict = {}
    for label in classes:
        der_all = _add_der(der_all, der_totals[label])
        per_class[label]["detection"] = _der_summary(der_totals[label])
        errors = np.concatenate(bounds[label]) if bounds[label] else np.zeros((0, 2))
        per_class[label]["boundary"] = {"onset": boundary_summary(errors[:, 0]),
                                        "offset": boundary_summary(errors[:, 1])}
    overall["detection"] = _der_summary(der_all)
    everything = np.concatenate([np.concatenate(b) for b in bounds.values() if b] or [np.zeros((0, 2))])
    overall["boundary"] = {"onset": boundary_summary(everything[:, 0]),
                           "offset": boundary_summary(everything[:, 1]),
                           "edges": HIST_EDGES[1:-1]}
    return {"overall": overall, "per_class": per_class}


def _thin(curve: dict, n: int = 400) -> dict:
    """At most ``n`` points of a curve, evenly spaced along it, the last kept."""
    k = len(curve["recall"])
    if k <= n:
        return curve
    pick = np.unique(np.r_[np.linspace(0, k - 1, n).astype(int), k - 1])
    roc = np.r_[0, pick + 1]  # fpr/tpr start with (0, 0)
    return {"fpr": [curve["fpr"][i] for i in roc], "tpr": [curve["tpr"][i] for i in roc],
            **{key: [curve[key][i] for i in pick] for key in ("precision", "recall", "thresholds")}}


def _add_threshold_free(report: dict, targets: dict, scored: dict, refs: dict, durations: dict,
                        classes: list[str], fps: Mapping[str, float], *, all_scored: bool,
                        with_curves: bool = False) -> None:
    """AUC and AP per class of ``classes`` (those with scores; the others' are None; pooled
    frames), and PSDS over them when every file has scores."""
    per_class, overall = report["per_class"], report["overall"]
    for label in per_class:
        per_class[label]["frame"]["auc"] = per_class[label]["frame"]["ap"] = None
    if scored and classes:
        t = np.concatenate([targets[n] for n in scored])
        s = np.concatenate([scored[n] for n in scored])
        auc, ap = np.atleast_1d(roc_auc(t, s)), np.atleast_1d(average_precision(t, s))
    else:
        auc = ap = np.full(len(classes), np.nan)
    for label, a, b in zip(classes, auc, ap):
        per_class[label]["frame"]["auc"] = None if np.isnan(a) else float(a)
        per_class[label]["frame"]["ap"] = None if np.isnan(b) else float(b)
    overall["frame"]["auc"] = None if np.isnan(auc).all() else float(np.nanmean(auc))
    overall["frame"]["ap"] = None if np.isnan(ap).all() else float(np.nanmean(ap))
    if with_curves and scored and classes:
        report["curves"] = {label: _thin(curves(t[:, c], s[:, c])) for c, label in enumerate(classes)}
    if all_scored:
        report["psds"] = {}
        for name, params in (("psds1", PSDS1), ("psds2", PSDS2)):
            value, per = psds(scored, refs, durations, classes=classes, fps=fps, **params)
            report["psds"][name] = {"overall": value,
                                    "per_class": {label: per.get(label) for label in per_class}}


def bootstrap_ci(per_file: Mapping[str, dict], *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """Per-file bootstrap confidence intervals of the frame F1 (micro) and the detection error
    rate: files drawn with replacement ``n_boot`` times (a fixed ``seed``), the metric
    recomputed from the drawn files' summed counts, the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` percentiles taken.

    Parameters
    ----------
    per_file : mapping of str to dict
        :func:`evaluate_files`'s ``"per_file"`` (``frame`` tp/fp/fn, ``detection`` seconds).

    Returns
    -------
    ci : dict
        ``{"frame_f1": [low, high], "detection_error_rate": [low, high], "level", "n_boot"}``;
        ``None`` for an interval whose resamplings are all undefined.
    """
    files = list(per_file.values())
    if not files:
        return {"frame_f1": None, "detection_error_rate": None, "level": level, "n_boot": n_boot}
    frame = np.array([[f["frame"][k] for k in ("tp", "fp", "fn")] for f in files], dtype=float)
    det = np.array([[f["detection"][k] for k in ("false_alarm", "miss", "total")] for f in files])
    draws = np.random.default_rng(seed).integers(0, len(files), size=(n_boot, len(files)))
    tp, fp, fn = frame[draws].sum(1).T  # (n_boot,) each
    fa, miss, total = det[draws].sum(1).T
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        der = np.where(total > 0, (fa + miss) / total, np.nan)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def interval(x):
        x = x[~np.isnan(x)]
        return [float(v) for v in np.percentile(x, q)] if len(x) else None
    return {"frame_f1": interval(f1), "detection_error_rate": interval(der), "level": level,
            "n_boot": n_boot}


# -- PSDS (intersection-based, every operating point, as sed_scores_eval) ----------------------

PSDS_CELLS = 2 ** 24  # (thresholds x events x references) cells held at once, about 128 MB


def score_timestamps(n_frames: int, fps: float, duration: float) -> np.ndarray:
    """Boundaries [shape=(n + 1,)] of the frames that start before ``duration``: frame ``i`` spans
    ``[i / fps, (i + 1) / fps)``, the last one cut at ``duration`` (sed_scores_eval's
    ``timestamps`` of a score DataFrame)."""
    n = int(min(n_frames, max(1, math.ceil(duration * fps - EPS))))
    t = np.arange(n + 1, dtype=float) / fps
    t[-1] = min(t[-1], duration) if duration > t[-2] else t[-1]
    return t


def _detections(s: np.ndarray, t: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and offsets [shape=(len(thr), M)] of the runs ``s >= thr`` (padding: on == off)."""
    on = s[None, :] >= thr[:, None]  # (b, n)
    d = np.diff(np.pad(on.astype(np.int8), ((0, 0), (1, 1))), axis=1)  # (b, n + 1)
    r_on, c_on = np.nonzero(d == 1)
    r_off, c_off = np.nonzero(d == -1)
    counts = np.bincount(r_on, minlength=len(thr))
    m = int(counts.max()) if len(counts) else 0
    rank = np.arange(len(r_on)) - np.r_[0, np.cumsum(counts)][r_on]
    onsets, offsets = np.zeros((len(thr), m)), np.zeros((len(thr), m))
    onsets[r_on, rank], offsets[r_off, rank] = t[c_on], t[c_off]
    return onsets, offsets


def _intersections(on, off, gt: np.ndarray) -> np.ndarray:
    """[shape=(b, M, G)] overlap of each detection with each reference interval."""
    return np.maximum(np.minimum(off[..., None], gt[:, 1]) - np.maximum(on[..., None], gt[:, 0]), 0.0)


def _intersection_stats(on, off, gt, others: dict, p: dict, dec: int = 6) -> np.ndarray:
    """sed_scores_eval's intersection ``statistics_fn``: [shape=(b, 2 + n_others)] of true
    positives, false positives and cross triggers with each other class."""
    det = off > on
    gi = _intersections(on, off, gt)
    length = off - on
    dtc = (np.round(gi.sum(-1), dec) >= np.round(p["dtc_threshold"] * length, dec)) & det
    fps = det.sum(-1) - dtc.sum(-1)
    rel = np.round((dtc[..., None] * gi).sum(-2), dec)  # (b, G)
    tps = (rel >= np.round(p["gtc_threshold"] * (gt[:, 1] - gt[:, 0]), dec)).sum(-1)
    cols = [tps, fps]
    for other in others.values():
        if p["cttc_threshold"] is None or len(other) == 0:
            cols.append(np.zeros_like(tps))
            continue
        oi = np.round(((~dtc)[..., None] * _intersections(on, off, other)).sum(-1), dec)
        cols.append(((oi >= np.round(p["cttc_threshold"] * length, dec)) & det).sum(-1))
    return np.stack(cols, axis=1).astype(float)


def _file_deltas(s, t, gt, others, p) -> tuple[np.ndarray, np.ndarray]:
    """Scores at which one file's statistics change as the threshold falls below them, and the
    changes [shape=(k, 2 + n_others)]."""
    thr = np.unique(s)
    if len(thr) == 0:
        return thr, np.zeros((0, 2 + len(others)))
    refs = max([len(gt)] + [len(o) for o in others.values()] + [1])
    block = int(np.clip(PSDS_CELLS // ((len(s) + 1) // 2 * refs + 1), 1, 256))
    stats = np.concatenate([_intersection_stats(*_detections(s, t, thr[i:i + block]), gt, others, p)
                            for i in range(0, len(thr), block)])
    deltas = stats - np.concatenate([stats[1:], np.zeros_like(stats[:1])])
    change = np.abs(deltas).sum(1) > 0
    return thr[change], deltas[change]


def _accumulate(cp_scores: list, deltas: list) -> tuple[np.ndarray, np.ndarray]:
    """Statistics summed over files at every change-point score (then +inf with zeros)."""
    scores, inverse = np.unique(np.concatenate(cp_scores), return_inverse=True)
    d = np.concatenate(deltas)
    summed = np.zeros((len(scores), d.shape[1]))
    np.add.at(summed, inverse, d)
    stats = np.concatenate([np.cumsum(summed[::-1], axis=0)[::-1], np.zeros_like(summed[:1])])
    return np.r_[scores, np.inf], stats


def _unique_cummax(tpr: np.ndarray, efpr: np.ndarray, max_efpr: float):
    """sed_scores_eval's ``_unique_cummax_sort``: sort by (eFPR, TPR), keep the running maximum
    of the TPR, one point per eFPR (the last), drop eFPRs above ``max_efpr``."""
    order = np.lexsort((tpr, efpr))
    tpr, efpr = tpr[order], efpr[order]
    cm = np.maximum.accumulate(tpr)
    idx = np.r_[0, np.arange(1, len(tpr))[cm[1:] > cm[:-1]]]
    tpr, efpr = tpr[idx], efpr[idx]
    efpr, first = np.unique(efpr[::-1], return_index=True)
    tpr = tpr[-1 - first]
    keep = np.searchsorted(efpr, max_efpr, side="right")
    return tpr[:keep], efpr[:keep]


def _staircase_auc(y: np.ndarray, x: np.ndarray, max_x: float) -> float:
    order = np.argsort(x, kind="mergesort")
    x, y = x[order], y[order]
    cut = np.searchsorted(x, max_x, side="right")
    x = np.r_[x[:cut], max_x]
    return float(np.sum(y[:cut] * np.diff(x)))


def psds(scores: Mapping[str, np.ndarray], ref: Mapping[str, Sequence[Segment]],
         durations: Mapping[str, float], *, classes: Sequence[str], fps,
         dtc_threshold: float, gtc_threshold: float, cttc_threshold: float | None = None,
         alpha_ct: float = 0.0, alpha_st: float = 0.0, max_efpr: float = 100.0
         ) -> tuple[float, dict]:
    """Polyphonic Sound Detection Score (Bilen et al. 2020) on every operating point, computed
    as ``sed_scores_eval.intersection_based.psds`` computes it (Ebbers et al. 2022).

    Every distinct score of a file and class is a threshold (detections are runs of frames with
    ``score >= threshold``; frame ``i`` spans ``[i / fps, (i + 1) / fps)``, cut at the file's
    duration); intersections are rounded to 1 us as sed_scores_eval rounds them. The eFPR is
    per hour. With one class, the cross-trigger term is 0 (sed_scores_eval averages over no other
    class and returns NaN).

    Parameters
    ----------
    scores : mapping of str to np.ndarray [shape=(n_frames, n_classes)]
    ref : mapping of str to sequence of Segment
    durations : mapping of str to float, seconds of each file
    classes : sequence of str
    fps : float or mapping of str to float (per file)
    dtc_threshold, gtc_threshold, cttc_threshold, alpha_ct, alpha_st, max_efpr : float
        The PSDS parameters; :data:`PSDS1` and :data:`PSDS2` hold DCASE 2023/2024's.

    Returns
    -------
    psds : float
    per_class : dict of str to float
        Each class's PSDS (its own PSD-ROC, no ``alpha_st``).
    """
    index = _class_index(classes)
    if (alpha_ct == 0) != (cttc_threshold is None):
        raise ParameterError(f"alpha_ct={alpha_ct} and cttc_threshold={cttc_threshold}: give both or neither")
    p = {"dtc_threshold": dtc_threshold, "gtc_threshold": gtc_threshold,
         "cttc_threshold": cttc_threshold}
    names = sorted(scores, key=str)
    gts = {n: {c: np.array([s[:2] for s in ref.get(n, ()) if s[2] == c], dtype=float).reshape(-1, 2)
               for c in index} for n in names}
    hours = sum(float(durations[n]) for n in names) / 3600.0
    rocs = {}
    for label, c in index.items():
        cps, deltas = [], []
        for n in names:
            s = np.asarray(scores[n], dtype=float)
            f = float(fps[n]) if isinstance(fps, Mapping) else float(fps)
            t = score_timestamps(len(s), f, float(durations[n]))
            others = {o: gts[n][o] for o in index if o != label}
            cp, d = _file_deltas(s[:len(t) - 1, c], t, gts[n][label], others, p)
            cps.append(cp)
            deltas.append(d.reshape(-1, 1 + len(index)))
        _, stats = _accumulate(cps, deltas)
        rocs[label] = _class_roc(stats, label, gts, hours, alpha_ct, max_efpr)
    per_class = {label: _staircase_auc(tpr, efpr, max_efpr) / max_efpr
                 for label, (tpr, efpr) in rocs.items()}
    return _multi_class_psds(list(rocs.values()), alpha_st, max_efpr), per_class


def _class_roc(stats, label, gts, hours, alpha_ct, max_efpr):
    n_ref = sum(len(g[label]) for g in gts.values())
    tpr = stats[:, 0] / max(n_ref, 1)
    efpr = stats[:, 1] / hours
    others = [o for o in next(iter(gts.values())) if o != label]
    if alpha_ct and others:
        t_other = [sum(float((g[o][:, 1] - g[o][:, 0]).sum()) for g in gts.values()) / 3600.0
                   for o in others]
        ct = [stats[:, 2 + k] / max(t, 1e-12 / 3600.0) for k, t in enumerate(t_other)]
        efpr = efpr + alpha_ct * np.mean(ct, axis=0)
    return _unique_cummax(tpr, efpr, max_efpr)


def _multi_class_psds(rocs: list, alpha_st: float, max_efpr: float) -> float:
    """Mean minus ``alpha_st`` standard deviations of the classes' TPRs on the union of their
    eFPRs (each a step function, 0 before its first point), area up to ``max_efpr``."""
    grid = np.unique(np.concatenate([efpr for _, efpr in rocs]))
    tprs = []
    for tpr, efpr in rocs:
        k = np.searchsorted(efpr, grid, side="right") - 1
        tprs.append(np.where(k >= 0, tpr[np.maximum(k, 0)], 0.0))
    etpr = np.maximum(np.mean(tprs, axis=0) - alpha_st * np.std(tprs, axis=0), 0.0)
    etpr, grid = np.r_[etpr, etpr[-1]], np.r_[grid, max_efpr]
    return _staircase_auc(etpr, grid, max_efpr) / max_efpr
