"""A dataset's report: every family over many files, per file, per class, overall and
averaged over classes, with per-file bootstrap intervals (:func:`evaluate_files`)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import ParameterError
from ..labels import Segment
from .counts import EPS, _Counts, _check_positive, _checked, _class_index, _summary
from .detection import (HIST_EDGES, _add_der, _der_summary, boundary_pairs, boundary_summary,
                        detection_error)
from .events import _event_counts, _segment_counts
from .frame import _frame_counts, _rasterize, average_precision, curves, roc_auc
from .psds_roc import PSDS1, PSDS2, psds


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
