"""``tune``: a threshold and a median-filter length per class, searched on a labelled dev set as
the DCASE baselines do, written into a new model directory (or, ``--in-place``, the model's).

The network runs once per file (its scores are the cached ``predict`` stage); each candidate only
re-runs the post-processing (:func:`pipeline.postprocess.scores_to_segments`), with the model's
other settings (minimum durations, padding, ...) as they are. Each class is searched on its own
over :data:`THRESHOLDS` x :data:`MEDIAN_FILTERS`, maximising its objective summed over all files
(micro): ``frame_f1``, ``event_f1`` (sed_eval collar 200 ms), ``segment_f1`` (1 s),
``detection_error_rate`` (minimised) or ``psds1``. PSDS1 is threshold-free: it chooses the median
filter only and keeps the model's threshold; it is computed on the scores after the median filter
(:func:`pipeline.postprocess.filter_scores`), as ``evaluate`` computes it on ``predict --format
npy``'s output, so the value tune reports is the one evaluate gives the tuned model.

The model directory gets ``predict.threshold``/``predict.median_filter`` (one class) or, with
several classes, ``predict_per_class`` (``{class: {"threshold", "median_filter"}}``, read by
:func:`pipeline.predict.class_settings`); the settings replaced go to ``predict_history``. Tuning sets under
:data:`MIN_TUNE_SECONDS` or with fewer than :data:`MIN_TUNE_EVENTS` events of a class are warned
about: settings found there overfit.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .config import Config, PredictConfig
from .errors import ParameterError
from .labels import Segment
from .metrics import PSDS1, evaluate_files, psds
from .postprocess import filter_scores
from .predict import segments

THRESHOLDS = [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)]
MEDIAN_FILTERS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]  # seconds
METRICS = ("frame_f1", "event_f1", "segment_f1", "detection_error_rate", "psds1")
MIN_TUNE_SECONDS = 180.0  # below this, or with fewer events per class, tuned settings overfit
MIN_TUNE_EVENTS = 5


# ---------------------------------------------------------------------------- settings per class


def segments_for(scores: np.ndarray, *, classes: list[str], fps: float, pcfg: PredictConfig,
                 threshold, median_filter, duration: float | None = None) -> list[Segment]:
    """``pcfg``'s post-processing with candidate threshold(s) and median filter(s)."""
    return segments(scores, classes=classes, fps=fps, pcfg=pcfg, threshold=threshold,
                    median_filter=median_filter, duration=duration)


# ---------------------------------------------------------------------------- objectives


def objective(metric: str, refs: dict, preds: dict, *, classes: list[str], fps: float,
              durations: dict, scores: dict | None = None, median_filter=0.0) -> float:
    """The value to maximise (the detection error rate negated), pooled over files; an undefined
    value counts as the worst (0, or -1 for the error rate)."""
    if metric == "psds1":
        # PSDS on the scores after the median filter, as evaluate computes it on predict's output
        filtered = {n: filter_scores(s, median_filter=median_filter, fps=fps) for n, s in scores.items()}
        value, _ = psds(filtered, refs, durations, classes=classes, fps=fps, **PSDS1)
        return value
    report = evaluate_files(refs, preds, classes=classes, durations=durations, fps=fps,
                            threshold_free=False)
    if metric == "detection_error_rate":
        der = report["overall"]["detection"]["error_rate"]
        return -1.0 if der is None else -der
    view = {"frame_f1": "frame", "event_f1": "event", "segment_f1": "segment"}[metric]
    return report["overall"][view]["f1"] or 0.0


# ---------------------------------------------------------------------------- the search


def search_class(label: str, c: int, scores: dict, refs: dict, *, fps: float, durations: dict,
                 start: PredictConfig, metric: str) -> tuple[float, float, float]:
    """Best ``(threshold, median_filter, value)`` of one class over the grid."""
    col = {n: s[:, [c]] for n, s in scores.items()}
    ref = {n: [x for x in refs[n] if x.label == label] for n in scores}
    best = (start.threshold, start.median_filter, -np.inf)
    for m in MEDIAN_FILTERS:
        thresholds = [start.threshold] if metric == "psds1" else THRESHOLDS
        for t in thresholds:
            preds = {n: segments_for(s, classes=[label], fps=fps, pcfg=start, threshold=t,
                                     median_filter=m, duration=durations[n]) for n, s in col.items()}
            v = objective(metric, ref, preds, classes=[label], fps=fps, durations=durations,
                          scores=col, median_filter=m)
            if v > best[2] + 1e-12:
                best = (t, m, v)
    return best


def search(scores: dict[str, np.ndarray], refs: dict[str, list], *, classes: list[str], fps: float,
           start: PredictConfig, metric: str = "frame_f1", durations: dict | None = None,
           log: Callable[[str], None] = print) -> tuple[dict, float, float]:
    """Per-class search; returns ``({class: {"threshold", "median_filter"}}, value after, value
    before)``, the values over all classes together."""
    if metric not in METRICS:
        raise ParameterError(f"--metric {metric!r} must be one of {', '.join(METRICS)}")
    durations = durations or {n: len(s) / fps for n, s in scores.items()}
    found = {}
    for c, label in enumerate(classes):
        t, m, v = search_class(label, c, scores, refs, fps=fps, durations=durations, start=start,
                               metric=metric)
        found[label] = {"threshold": t, "median_filter": m}
        log(f"tune {label}: threshold {t}, median filter {m} s ({metric} {abs(v):.4f})")

    def overall(thr, med):
        preds = {n: segments_for(s, classes=classes, fps=fps, pcfg=start, threshold=thr,
                                 median_filter=med, duration=durations[n]) for n, s in scores.items()}
        return objective(metric, refs, preds, classes=classes, fps=fps, durations=durations,
                         scores=scores, median_filter=med)
    before = overall(start.threshold, start.median_filter)
    after = overall([found[c]["threshold"] for c in classes], [found[c]["median_filter"] for c in classes])
    return found, after, before


def small_set_warnings(scores: dict[str, np.ndarray], refs: dict[str, list], *, classes: list[str],
                       fps: float) -> list[str]:
    """Why a tuning set is too small to trust: under a few minutes, or a handful of events per class."""
    seconds = sum(len(s) for s in scores.values()) / fps
    out = []
    if seconds < MIN_TUNE_SECONDS:
        out.append(f"only {seconds:.0f} s of audio in {len(scores)} file(s) to tune on (under "
                   f"{MIN_TUNE_SECONDS:.0f} s): the settings found may not generalise")
    for c in classes:
        n = sum(seg.label == c for segs in refs.values() for seg in segs)
        if n < MIN_TUNE_EVENTS:
            out.append(f"only {n} reference event(s) of class {c!r} (under {MIN_TUNE_EVENTS}): "
                       f"the settings found may not generalise")
    return out


# ---------------------------------------------------------------------------- the model directory


def _target(model_dir: Path, out_dir, in_place: bool) -> Path:
    """The directory to write: the model's (``in_place``), else a new one (refused if it exists)."""
    from .modeldir import check_writable, is_shipped

    shipped = is_shipped(model_dir)  # named by its shipped name: never write inside the package
    if in_place:
        check_writable(model_dir, "--in-place", f"tune writes a copy (--out, default ./{model_dir.name}-tuned)")
        return model_dir
    default = Path(model_dir.name + "-tuned") if shipped else model_dir.with_name(model_dir.name + "-tuned")
    target = Path(out_dir) if out_dir else default
    if target.exists():
        raise ParameterError(f"--out {target}: exists; tune writes a new model directory "
                             f"(choose another --out, remove it, or use --in-place)")
    return target


def write_tuned(model_dir: str | Path, found: dict, record_note: str, *, value: float,
                metric: str, out_dir=None, in_place: bool = False) -> Path:
    """Write the tuned settings into ``config.json`` of a copy of the model directory (or of
    the model itself with ``in_place``), the replaced settings appended to ``predict_history``.
    Returns the ``config.json`` written."""
    from .modeldir import CONFIG_FILE, writing_model_dir

    model_dir = Path(model_dir)
    target = _target(model_dir, out_dir, in_place)
    if not in_place:  # copy beside, then rename: no half model directory under the final name
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        try:
            try:
                shutil.copytree(model_dir, tmp)
            except OSError as exc:
                raise ParameterError(f"--out {target}: cannot write there ({exc.strerror or exc})") from None
            with writing_model_dir(tmp, "--out"):  # a copy of a trained directory: its record goes on
                _update_config(tmp / CONFIG_FILE, found, record_note, value=value, metric=metric,
                               source=str(model_dir))
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    else:
        with writing_model_dir(target, "--in-place"):
            _update_config(target / CONFIG_FILE, found, record_note, value=value, metric=metric,
                           source=None)
    return target / CONFIG_FILE


def _update_config(path: Path, found: dict, note: str, *, value: float, metric: str, source) -> None:
    from .modeldir import read_model_config, update_model_config

    record = read_model_config(path.parent)
    old = {"predict": record.get("predict"), "predict_per_class": record.get("predict_per_class")}
    history = record.get("predict_history", []) + [
        {**{k: v for k, v in old.items() if v is not None},
         "replaced": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "by": note}]
    changes = {"predict_history": history,
               "metrics": {**record.get("metrics", {}), f"tuned_{metric}": round(value, 6)}}
    if len(found) == 1:
        (settings,) = found.values()
        changes["predict"] = {**record.get("predict", {}), **settings}
        changes["predict_per_class"] = None
    else:
        changes["predict_per_class"] = found
    if source:
        changes["tuned_from"] = source
    update_model_config(path.parent, changes)


def _scores_of(ds, model_dir, cfg: Config, settings, overrides, log):
    """Cached frame scores, reference segments and durations of the dataset's files."""
    from .jobs import open_model, predict_files

    scoring, cfg = open_model(model_dir, cfg, settings, overrides)
    cache = settings.cache()
    report = predict_files([i.source for i in ds.items], scoring.model, scoring.digest, cfg,
                           settings, cache=cache)
    for r in report.failed:
        log(f"FAILED {r.error} (left out of tuning)")
    by_path = {r.path: r for r in report.results if r.status != "failed"}
    scores, refs, durations, fps = {}, {}, {}, None
    for item in ds.items:
        r = by_path.get(str(item.source.path))
        if r is None:
            continue
        entry = cache.load("predict", r.keys["predict"])
        fps = float(entry.meta["fps"])
        scores[item.name] = np.asarray(entry["scores"])
        durations[item.name] = float(entry.meta.get("duration", len(scores[item.name]) / fps))
        refs[item.name] = list(item.segments)
    return scores, refs, durations, fps, cfg, scoring


def tune_model(model_dir: str | Path, dataset_spec: str, cfg: Config, settings, *, metric: str = "frame_f1",
               overrides=(), log: Callable[[str], None] = print, out_dir=None,
               in_place: bool = False) -> dict:
    """Score the dataset with the model (cached), search per class, write the model directory."""
    from .dataset import load_dataset
    from .modeldir import read_model_config

    if metric not in METRICS:
        raise ParameterError(f"--metric {metric!r} must be one of {', '.join(METRICS)}")
    _target(Path(model_dir), out_dir, in_place)  # refuse before any work
    mconf = read_model_config(model_dir)  # the weights: verified and opened by _scores_of's open_model
    classes = list(mconf["classes"])
    ds = load_dataset(dataset_spec, classes=classes)
    scores, refs, durations, fps, cfg, _ = _scores_of(ds, model_dir, cfg, settings, overrides, log)
    if not scores:
        raise ParameterError(f"{dataset_spec}: no file could be scored")
    for warning in small_set_warnings(scores, refs, classes=classes, fps=fps):
        log(f"WARNING: {dataset_spec}: {warning}")
    found, value, before = search(scores, refs, classes=classes, fps=fps, start=cfg.predict,
                                  metric=metric, durations=durations, log=log)
    note = f"tune on {dataset_spec} ({metric} {abs(before):.4f} -> {abs(value):.4f})"
    path = write_tuned(model_dir, found, note, value=abs(value), metric=metric, out_dir=out_dir,
                       in_place=in_place)
    return {"metric": metric, "before": abs(before), "after": abs(value), "per_class": found,
            "files": len(scores), "config": str(path)}
