"""``tune``: search the post-processing settings on a labelled dev set and store them in the model.

The network runs once per file (its scores are the cached ``predict`` stage); every candidate
setting only re-runs :func:`pipeline.predict.segments`, which is cheap. The search is coordinate
descent over a grid (threshold first, then each other setting in turn, two rounds), maximising
the chosen metric summed over all files (micro average). The winner is written into the model's
``config.json`` under ``predict``; the settings it replaces go to ``predict_history``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .config import Config, PredictConfig
from .errors import ParameterError
from .evaluate import evaluate_files, frame_metrics
from .labels import segments_to_frames
from .predict import segments

GRID = {
    "threshold": [round(x, 2) for x in np.arange(0.1, 0.91, 0.05)],
    "offset_threshold": [-1.0],  # filled relative to the threshold below
    "median_filter": [0.0, 0.05, 0.1, 0.2, 0.3],
    "min_duration_on": [0.0, 0.05, 0.1, 0.2, 0.3],
    "min_duration_off": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5],
    "pad_onset": [0.0, 0.02, 0.05, 0.1],
    "pad_offset": [0.0, 0.02, 0.05, 0.1, 0.2],
}
METRICS = ("frame_f1", "segment_f1", "event_f1")


def _score(metric: str, refs, preds, targets, *, classes, fps, durations) -> float:
    if metric == "frame_f1":  # pooled over files (micro)
        names = list(preds)
        ref = np.concatenate([targets[n] for n in names])
        pred = np.concatenate([segments_to_frames(preds[n], classes=classes, n_frames=len(targets[n]), fps=fps) > 0.5
                               for n in names])
        f1 = frame_metrics(ref, pred)["overall"]["f1"]
        return 1.0 if f1 is None else f1
    report = evaluate_files(refs, preds, classes=classes, durations=durations, fps=fps)
    view = {"segment_f1": "segment", "event_f1": "event"}[metric]
    return report["overall"][view]["f1"] or 0.0


def search(scores: dict[str, np.ndarray], refs: dict[str, list], *, classes: list[str], fps: float,
           start: PredictConfig, metric: str = "frame_f1", log: Callable[[str], None] = print
           ) -> tuple[PredictConfig, float, float]:
    """Coordinate search; returns the best settings, its metric and the starting metric."""
    if metric not in METRICS:
        raise ParameterError(f"--metric {metric!r} must be one of {', '.join(METRICS)}")
    durations = {n: len(s) / fps for n, s in scores.items()}
    targets = {n: segments_to_frames(refs[n], classes=classes, n_frames=len(s), fps=fps) > 0.5
               for n, s in scores.items()}

    def evaluate(p: PredictConfig) -> float:
        preds = {n: segments(s, classes=classes, fps=fps, pcfg=p) for n, s in scores.items()}
        return _score(metric, refs, preds, targets, classes=classes, fps=fps, durations=durations)

    best, best_value = start, evaluate(start)
    first = best_value
    for round_ in range(2):
        for name, values in GRID.items():
            if name == "offset_threshold":
                values = [-1.0] + [round(best.threshold - d, 2) for d in (0.1, 0.2, 0.3) if best.threshold - d > 0]
            for v in values:
                try:
                    cand = dataclasses.replace(best, **{name: v})
                except ParameterError:  # e.g. a threshold below the current offset threshold
                    continue
                value = evaluate(cand)
                if value > best_value + 1e-9:
                    best, best_value = cand, value
        log(f"tune round {round_ + 1}: {metric} {best_value:.4f} with threshold {best.threshold}, "
            f"offset {best.offset_threshold}, median {best.median_filter}, min on {best.min_duration_on}, "
            f"min off {best.min_duration_off}, pad {best.pad_onset}/{best.pad_offset}")
    return best, best_value, first


MIN_TUNE_SECONDS = 180.0  # below this, or with fewer events per class, tuned settings overfit
MIN_TUNE_EVENTS = 5


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


def tune_model(model_dir: str | Path, dataset_spec: str, cfg: Config, settings, *, metric: str = "frame_f1",
               overrides=(), log: Callable[[str], None] = print) -> dict:
    """Score the dataset with the model (cached), search, and update ``config.json``."""
    from .dataset import load_dataset
    from .nets import CONFIG_FILE, WEIGHTS_FILE, load_model
    from .predict import config_for_model
    from .jobs import predict_files

    model, mconf = load_model(model_dir)
    cfg = config_for_model(mconf, cfg, overrides, where=f"{model_dir}/config.json")
    classes = list(mconf["classes"])
    ds = load_dataset(dataset_spec, classes=classes)
    cache = settings.cache()
    digest = cache.fingerprint(Path(model_dir) / WEIGHTS_FILE)
    report = predict_files([i.source for i in ds.items], model, digest, cfg, settings)
    for r in report.failed:
        log(f"FAILED {r.error} (left out of tuning)")
    by_path = {r.path: r for r in report.results if r.status != "failed"}
    scores, refs, fps = {}, {}, None
    for item in ds.items:
        r = by_path.get(str(item.source.path))
        if r is None:
            continue
        entry = cache.load("predict", r.keys["predict"])
        fps = float(entry.meta["fps"])
        scores[item.name] = np.asarray(entry["scores"])
        refs[item.name] = list(item.segments)
    if not scores:
        raise ParameterError(f"{dataset_spec}: no file could be scored")
    for warning in small_set_warnings(scores, refs, classes=classes, fps=fps):
        log(f"WARNING: {dataset_spec}: {warning}")
    best, value, before = search(scores, refs, classes=classes, fps=fps, start=cfg.predict, metric=metric, log=log)
    path = Path(model_dir) / CONFIG_FILE
    record = json.loads(path.read_text())
    record.setdefault("predict_history", []).append(
        {"predict": record.get("predict"), "replaced": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
         "by": f"tune on {dataset_spec} ({metric} {before:.4f} -> {value:.4f})"})
    record["predict"] = dataclasses.asdict(best)
    record.setdefault("metrics", {})[f"tuned_{metric}"] = round(value, 6)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return {"metric": metric, "before": before, "after": value, "predict": dataclasses.asdict(best),
            "files": len(scores)}
