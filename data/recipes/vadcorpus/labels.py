"""The label rule: 10 ms frames of a clean utterance above a threshold relative to its peak."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# Labels, per clean utterance: 10 ms frames, active if 10*log10(mean(x^2)) > peak + threshold,
# threshold = min(max(-40 dB, floor - peak + 6 dB), -20 dB) with floor the quietest 30 ms;
# runs closer than 150 ms are joined, then runs shorter than 50 ms (clicks) are dropped.
LABEL_RULE = {"frame_s": 0.010, "rel_threshold_db": -40.0, "floor_margin_db": 6.0,
              "max_threshold_db": -20.0, "merge_gap_s": 0.150, "min_segment_s": 0.050,
              "trim_margin_frames": 2}


@dataclass
class Utterance:
    y: np.ndarray            # trimmed clean signal at the corpus rate, frame-aligned start
    segments: list           # [(first_frame, end_frame)] active runs after gap merging
    active_rms: float        # RMS over active frames (before merging)
    threshold_db: float      # threshold relative to the peak frame


def frame_energy_db(y: np.ndarray, hop: int) -> np.ndarray:
    n = -(-len(y) // hop)
    padded = np.zeros(n * hop)
    padded[:len(y)] = y
    return 10.0 * np.log10((padded.reshape(n, hop) ** 2).mean(axis=1) + 1e-20)


def rms_over(y: np.ndarray, frames: np.ndarray, hop: int) -> float:
    """RMS of ``y`` over the ``hop``-sample frames where ``frames`` is true (the level of the
    labelled speech: every recipe sets speech levels and SNRs with it)."""
    return float(np.sqrt(np.mean(y.reshape(-1, hop)[frames] ** 2)))


def label_runs(y: np.ndarray, sr: int) -> tuple[list, np.ndarray, float] | None:
    """LABEL_RULE on an untrimmed signal: ([(first_frame, end_frame)] runs, the active frames
    before merging, the threshold re the peak), or None when nothing is active."""
    hop = sr // 100
    e = frame_energy_db(y, hop)
    peak = float(e.max())
    if peak < -100:
        return None
    # noise floor: quietest 30 ms stretch; raises the threshold for noisy recordings only
    k = min(3, len(e))
    floor = float(np.convolve(e, np.ones(k) / k, mode="valid").min())
    rel = max(LABEL_RULE["rel_threshold_db"], floor - peak + LABEL_RULE["floor_margin_db"])
    rel = min(rel, LABEL_RULE["max_threshold_db"])
    active = e > peak + rel
    runs = [(a, b) for a, b in merge_runs(active, int(round(LABEL_RULE["merge_gap_s"] * 100)))
            if b - a >= int(round(LABEL_RULE["min_segment_s"] * 100))]
    return (runs, active, rel) if runs else None


def analyse(y: np.ndarray, sr: int) -> Utterance | None:
    """Trim an utterance to its active frames (+ margin) and label it (see LABEL_RULE)."""
    hop = sr // 100
    found = label_runs(y, sr)
    if found is None:
        return None
    runs, active, rel = found
    m = LABEL_RULE["trim_margin_frames"]
    first, last = max(runs[0][0] - m, 0), min(runs[-1][1] + m, len(active))
    y = y[first * hop:last * hop]
    if len(y) < (last - first) * hop:
        y = np.concatenate([y, np.zeros((last - first) * hop - len(y))])
    kept = np.zeros(len(active), dtype=bool)
    for a, b in runs:
        kept[a:b] = True
    level = rms_over(y, (active & kept)[first:last], hop)
    return Utterance(y=y, segments=[(a - first, b - first) for a, b in runs],
                     active_rms=level, threshold_db=round(rel, 2))


def merge_runs(active: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Runs of True as [start, end) frame pairs, joining runs separated by < min_gap frames."""
    d = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    runs: list[list[int]] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        if runs and s - runs[-1][1] < min_gap:
            runs[-1][1] = e
        else:
            runs.append([s, e])
    return [(s, e) for s, e in runs]
