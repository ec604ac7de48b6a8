"""Metrics of predicted segments (and frame scores) against reference labels.

Three views, each summed over files before rates are taken (micro averages):

- frame: segments rasterised at ``fps`` (frame ``i`` active iff ``onset <= i / fps < offset``),
  precision / recall / F1 per class and overall, plus ROC AUC of the frame scores when given.
- segment: sed_eval's ``SegmentBasedMetrics`` (``time_resolution = segment_length``): a class is
  active in a segment ``[k L, (k+1) L)`` when any of its events overlaps it
  (``floor(onset / L) <= k < ceil(offset / L)``). Per segment, with FN and FP counted over classes,
  ``S = min(FN, FP)``, ``D = max(0, FN - FP)``, ``I = max(0, FP - FN)``;
  ``ER = (S + D + I) / N_ref``.
  Per class there are no substitutions: ``ER = (FN + FP) / N_ref``.
- event: sed_eval's ``EventBasedMetrics`` (``t_collar = collar``, ``percentage_of_length``,
  onsets and offsets both evaluated). A reference and a predicted event of the same label match
  when ``|onset diff| <= collar`` and ``|offset diff| <= max(collar, percentage_of_length *
  reference length)``. Matching is one-to-one and maximum (Hopcroft-Karp, as sed_eval's default
  ``event_matching_type='optimal'``). Unmatched reference and predicted events of different labels
  whose times match are then paired as substitutions, also by a maximum matching (sed_eval pairs
  these greedily in list order, which can find fewer, never more). ``D = FN - S``,
  ``I = FP - S``, ``ER = (S + D + I) / N_ref``; per class ``ER = (FN + FP) / N_ref``.

Differences from sed_eval: no ``eps`` in denominators, so a rate with a zero denominator is
undefined, reported as ``None`` (not 0, nor ``I / eps``); ``F1 = 2 TP / (2 TP + FP + FN)``, so a
class with references and no predictions scores 0 (sed_eval 0.2.1 gives NaN); time and boundary
comparisons allow 1 ns (a 3-decimal TSV's round-off does not flip a match). In the counts,
``fp`` and ``fn`` include substituted events or classes (sed_eval's event-based overall
``Nfp``/``Nfn`` exclude them; those are ``insertions`` and ``deletions`` here).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse
import scipy.stats
from scipy.sparse.csgraph import maximum_bipartite_matching

from .errors import AudioLoadError, ParameterError, PipelineError
from .labels import Segment, segments_to_frames

EPS = 1e-9  # seconds, and fractions of a frame or segment


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
    targets, scores = np.asarray(targets, dtype=bool), np.asarray(scores, dtype=float)
    if targets.shape != scores.shape or targets.ndim not in (1, 2):
        raise ParameterError(f"targets {targets.shape} and scores {scores.shape} must have the "
                             f"same (n,) or (n, n_classes) shape")
    if not np.isfinite(scores).all():
        raise ParameterError("scores contain non-finite values (NaN or inf)")
    ranks = scipy.stats.rankdata(scores, axis=0)  # ties get their average rank
    n_pos = targets.sum(axis=0)
    n_neg = targets.shape[0] - n_pos
    u = (ranks * targets).sum(axis=0) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return float(auc) if auc.ndim == 0 else auc


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
    ``max(collar, percentage_of_length * reference length)``; labels are not compared."""
    r = np.array([s[:2] for s in ref], dtype=float).reshape(-1, 2)
    p = np.array([s[:2] for s in pred], dtype=float).reshape(-1, 2)
    offset_collar = np.maximum(collar, percentage_of_length * (r[:, 1] - r[:, 0]))[:, None]
    return ((np.abs(r[:, None, 0] - p[None, :, 0]) <= collar + EPS)
            & (np.abs(r[:, None, 1] - p[None, :, 1]) <= offset_collar + EPS))


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
    return {"frame": {k: mean("frame", k) for k in ("precision", "recall", "f1", "auc")},
            "segment": {k: mean("segment", k) for k in ("f1", "error_rate")},
            "event": {k: mean("event", k) for k in ("f1", "error_rate")}}


def evaluate_files(ref: Mapping[str, Sequence[Segment]], pred: Mapping[str, Sequence[Segment]], *,
                   classes: Sequence[str], durations: Mapping[str, float] | None = None,
                   fps: float = 100, scores: Mapping[str, np.ndarray] | None = None,
                   collar: float = 0.2, segment_length: float = 1.0,
                   percentage_of_length: float = 0.5) -> dict:
    """Frame, segment and event metrics of a dataset, overall, per class and per file.

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
    fps : float
        Frame rate of the frame-level view (and of ``scores``).
    scores : mapping of str to np.ndarray [shape=(n_frames, n_classes)], optional
        Frame scores for ROC AUC, pooled over the files that have them; they fix the file's
        frame count.
    collar, percentage_of_length : float
        Event-based matching tolerances (see :func:`event_metrics`).
    segment_length : float
        Segment-based resolution in seconds.

    Returns
    -------
    report : dict
        JSON-serialisable: ``"overall"`` and ``"per_class"`` (``{label: ...}``), each with
        ``"frame"`` (plus ``"auc"``, overall the mean of the per-class AUCs), ``"segment"`` and
        ``"event"`` metrics as :func:`segment_metrics`; ``"class_average"`` (sed_eval's
        class-wise average), ``"per_file"`` (overall metrics of each file), ``"missing"``,
        ``"extra"`` and ``"settings"``. Undefined values are ``None``.
    """
    index = _class_index(classes)
    classes = list(index)
    _check_positive(fps=fps, segment_length=segment_length)
    _check_positive(collar=collar, percentage_of_length=percentage_of_length, allow_zero=True)
    durations, scores = durations or {}, scores or {}

    totals = {view: _Counts.zeros(len(classes)) for view in ("frame", "segment", "event")}
    per_file, auc_targets, auc_scores = {}, [], []
    for name in sorted(ref, key=str):
        r = _checked(ref[name], index, f"{name} (reference)")
        p = _checked(pred.get(name, ()), index, f"{name} (prediction)")
        s = scores.get(name)
        if s is not None:
            s = np.asarray(s, dtype=float)
            if s.ndim != 2 or s.shape[1] != len(classes):
                raise ParameterError(f"{name}: scores of shape {s.shape} must be (n_frames, "
                                     f"{len(classes)})")
        last = max([0.0] + [x.offset for x in r] + [x.offset for x in p])
        duration = durations.get(name, s.shape[0] / fps if s is not None else last)
        n_frames = s.shape[0] if s is not None else math.ceil(duration * fps - EPS)

        rr, pr = _rasterize(r, index, n_frames, fps), _rasterize(p, index, n_frames, fps)
        counts = {"frame": _frame_counts(rr, pr),
                  "segment": _segment_counts(r, p, index, duration, segment_length),
                  "event": _event_counts(r, p, index, collar, percentage_of_length)}
        if s is not None:
            auc_targets.append(rr)
            auc_scores.append(s)
        per_file[str(name)] = {view: _summary(c, classes, error_rate=view != "frame")["overall"]
                               for view, c in counts.items()}
        per_file[str(name)]["missing"] = name not in pred
        totals = {view: totals[view] + c for view, c in counts.items()}

    summaries = {view: _summary(c, classes, error_rate=view != "frame")
                 for view, c in totals.items()}
    auc = (roc_auc(np.concatenate(auc_targets), np.concatenate(auc_scores)) if auc_scores
           else np.full(len(classes), np.nan))
    per_class = {label: {view: summaries[view]["per_class"][label] for view in summaries}
                 for label in classes}
    for label, a in zip(classes, auc):
        per_class[label]["frame"]["auc"] = None if np.isnan(a) else float(a)
    overall = {view: summaries[view]["overall"] for view in summaries}
    overall["frame"]["auc"] = None if np.isnan(auc).all() else float(np.nanmean(auc))
    return {
        "overall": overall,
        "per_class": per_class,
        "class_average": _class_average(per_class),
        "per_file": per_file,
        "missing": sorted(str(f) for f in ref if f not in pred),
        "extra": sorted(str(f) for f in pred if f not in ref),
        "settings": {"classes": classes, "fps": fps, "collar": collar,
                     "percentage_of_length": percentage_of_length,
                     "segment_length": segment_length, "n_files": len(ref),
                     "n_files_with_scores": len(auc_scores)},
    }


def format_table(report: dict) -> str:
    """A plain-text table of a :func:`evaluate_files` report: one row per class, then the
    overall (micro) and class-average rows; ``-`` marks an undefined value."""
    columns = [("frame P", "frame", "precision"), ("frame R", "frame", "recall"),
               ("frame F1", "frame", "f1"), ("AUC", "frame", "auc"),
               ("seg F1", "segment", "f1"), ("seg ER", "segment", "error_rate"),
               ("event F1", "event", "f1"), ("event ER", "event", "error_rate")]
    rows = list(report["per_class"].items())
    rows += [("overall", report["overall"]), ("class average", report["class_average"])]
    width = max(len(str(name)) for name, _ in rows)
    cells = [[str(name).ljust(width)] + [
        "-" if metrics[view].get(key) is None else f"{metrics[view][key]:.3f}"
        for _, view, key in columns] for name, metrics in rows]
    head = ["class".ljust(width)] + [title for title, _, _ in columns]
    widths = [max(len(r[i]) for r in cells + [head]) for i in range(len(head))]

    def line(r):
        return "  ".join([r[0].ljust(widths[0])] + [x.rjust(w) for x, w in zip(r[1:], widths[1:])])
    out = [line(head), "-" * len(line(head))] + [line(r) for r in cells[:-2]]
    out += ["-" * len(line(head))] + [line(r) for r in cells[-2:]]
    missing = report["missing"]
    if missing:
        names = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        out.append(f"missing predictions: {len(missing)} of {report['settings']['n_files']} "
                   f"files ({names})")
    return "\n".join(out)


def format_per_file(report: dict) -> str:
    """One line per file: frame P/R/F1, segment and event F1 (3 decimals, ``-`` when undefined,
    e.g. F1 of a file with no reference and no predicted events), ``missing`` when it had no
    prediction."""
    def num(v):
        return "-" if v is None else f"{v:.3f}"
    names = list(report["per_file"])
    width = max([len("file")] + [len(n) for n in names])
    out = [f"{'file'.ljust(width)}  frame P  frame R  frame F1  seg F1  event F1"]
    for name in names:
        r = report["per_file"][name]
        f = r["frame"]
        out.append(f"{name.ljust(width)}  {num(f.get('precision')):>7}  {num(f.get('recall')):>7}  "
                   f"{num(f.get('f1')):>8}  {num(r['segment'].get('f1')):>6}  {num(r['event'].get('f1')):>8}"
                   + ("  missing" if r.get("missing") else ""))
    return "\n".join(out)


# ---------------------------------------------------------------------------- folders


def _duration(path: Path) -> float:
    """Seconds of a reference audio file, from its header (soundfile), else by decoding."""
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception as exc:  # noqa: BLE001 - libsndfile cannot read it: try the decoder chain
        first = exc
    from .audio import decode

    try:
        y, sr = decode(path)
    except PipelineError as exc:
        raise AudioLoadError(f"{path}: cannot read the reference audio's duration ({first}; {exc})") from None
    return len(y) / sr


def _index_predictions(pred_dir: Path) -> dict[str, Path]:
    """Prediction TSVs by their path relative to ``pred_dir`` without suffix, e.g. ``a/b/clip``."""
    out = {}
    for tsv in sorted(pred_dir.rglob("*.tsv")):
        out[tsv.relative_to(pred_dir).with_suffix("").as_posix()] = tsv
    return out


def _match(name: str, index: dict[str, Path], by_stem: dict[str, list[str]]) -> Path | None:
    """A reference clip's prediction: same relative path, else the one prediction with its stem."""
    rel = Path(name).with_suffix("").as_posix()
    for key in (rel, Path(name).as_posix()):  # rec.tsv, or rec.wav.tsv when stems clashed
        if key in index:
            return index[key]
    for k in index:  # a reference path may have an extra leading folder (dev/clip.wav vs clip.tsv)
        if rel.endswith("/" + k):
            return index[k]
    cands = by_stem.get(Path(name).stem, [])
    return index[cands[0]] if len(cands) == 1 else None


def evaluate_dir(pred_dir: str | Path, ref_spec: str | Path, *, collar: float = 0.2,
                 segment_length: float = 1.0) -> dict:
    """Evaluate a ``predict --out`` folder against a reference DATASET (see ``pipeline.dataset``).

    Frame scores come from ``.scores.npy`` (+ ``.scores.json``) beside a prediction when present;
    durations from the reference audio. A reference clip without a prediction counts as nothing
    predicted and is listed under ``"missing"``.
    """
    import json

    from .dataset import load_dataset
    from .labels import read_dcase

    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise ParameterError(f"--pred {pred_dir}: not a directory of predictions")
    ref_ds = load_dataset(ref_spec)
    index = _index_predictions(pred_dir)
    by_stem: dict[str, list[str]] = {}
    for k in index:
        by_stem.setdefault(Path(k).name, []).append(k)
    ref, pred, durations, scores = {}, {}, {}, {}
    fps = 100.0
    classes = set(ref_ds.classes)
    for item in ref_ds.items:
        ref[item.name] = list(item.segments)
        durations[item.name] = _duration(item.source.path)
        path = _match(item.name, index, by_stem)
        if path is None:
            continue
        pred[item.name] = [s for v in read_dcase(path, default_name=item.name).values() for s in v]
        classes.update(s.label for s in pred[item.name])
        side = path.with_name(path.stem + ".scores.json")
        npy = path.with_name(path.stem + ".scores.npy")
        if side.is_file() and npy.is_file():
            try:
                info = json.loads(side.read_text())
                fps = float(info["fps"])
                sc = np.load(npy, allow_pickle=False)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise PipelineError(f"{npy}: unreadable scores beside {path} ({exc})") from None
            cols = [info["classes"].index(c) for c in sorted(classes) if c in info["classes"]]
            if len(cols) == len(classes):
                scores[item.name] = sc[:, cols]
    report = evaluate_files(ref, pred, classes=sorted(classes), durations=durations, fps=fps,
                            scores=scores or None, collar=collar, segment_length=segment_length)
    report["settings"] = {**report.get("settings", {}), "pred": str(pred_dir), "ref": str(ref_spec)}
    return report
