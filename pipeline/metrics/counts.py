"""Counts and rates every family shares: per-class tp/fp/fn (and substitutions, deletions,
insertions) summed over files before rates are taken, and the checks of classes, settings and
segments.

A rate with a zero denominator is ``None`` (no ``eps``); ``F1 = 2 TP / (2 TP + FP + FN)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import ParameterError
from ..labels import Segment

EPS = 1e-9  # seconds, and fractions of a frame or segment


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


# -- checks -------------------------------------------------------------------------------------

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
