"""PSDS, the Polyphonic Sound Detection Score (Bilen et al. 2020): intersection-based, on every
operating point, as ``sed_scores_eval.intersection_based.psds`` computes it (Ebbers et al. 2022).

(Not ``psds.py``: a submodule of that name would shadow the function :func:`psds` on the
package.)
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import ParameterError
from ..labels import Segment
from .counts import EPS, _class_index

# DCASE 2023/2024 task 4 parameters (Bilen et al. 2020; the DCASE baselines)
PSDS1 = {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None, "alpha_ct": 0.0,
         "alpha_st": 1.0, "max_efpr": 100.0}
PSDS2 = {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3, "alpha_ct": 0.5,
         "alpha_st": 1.0, "max_efpr": 100.0}

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
