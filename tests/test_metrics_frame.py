"""pipeline.metrics.frame: frame P/R/F1 of rasterised activity, ROC AUC and average precision
(scikit-learn's)."""
import itertools

import numpy as np
import pytest

from pipeline.labels import Segment
from pipeline.metrics import average_precision, curves, evaluate_files, frame_metrics, roc_auc
from test_metrics_events import CLASSES


def test_frame_metrics_counts():
    ref = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=bool)
    pred = np.array([[1, 1], [0, 1], [0, 0], [1, 0]], dtype=bool)
    m = frame_metrics(ref, pred, classes=CLASSES)
    for label in CLASSES:
        assert [m["per_class"][label][k] for k in ("tp", "fp", "fn")] == [1, 1, 1]
    assert m["overall"]["precision"] == 0.5 and m["overall"]["f1"] == 0.5


def test_frames_rasterise_with_the_project_convention():
    # [0.03, 0.07) covers frames 3..6 at 100 fps; the prediction [0.035, 0.07) covers 4..6
    ref = {"f": [Segment(0.03, 0.07, "dog")]}
    pred = {"f": [Segment(0.035, 0.07, "dog")]}
    r = evaluate_files(ref, pred, classes=CLASSES, durations={"f": 0.1})
    assert (r["overall"]["frame"]["tp"], r["overall"]["frame"]["fn"]) == (3, 1)


def test_roc_auc_equals_brute_force_pair_count():
    rng = np.random.default_rng(0)
    targets = rng.random((60, 3)) < 0.3
    scores = np.round(rng.random((60, 3)) + 0.3 * targets, 1)  # rounding makes ties
    got = roc_auc(targets, scores)
    for c in range(3):
        pos, neg = scores[targets[:, c], c], scores[~targets[:, c], c]
        wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
        assert got[c] == pytest.approx(wins / (len(pos) * len(neg)))
    assert roc_auc(targets[:, 0], scores[:, 0]) == pytest.approx(got[0])


def test_roc_auc_is_nan_for_a_single_label():
    targets = np.array([[1, 0], [1, 1], [1, 0]])
    auc = roc_auc(targets, np.array([[0.1, 0.2], [0.3, 0.9], [0.5, 0.1]]))
    assert np.isnan(auc[0]) and auc[1] == 1.0


def test_average_precision_equals_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    targets = rng.random((300, 2)) < 0.3
    scores = np.round(rng.random((300, 2)) + 0.4 * targets, 2)  # ties
    ours = average_precision(targets, scores)
    for c in range(2):
        assert ours[c] == pytest.approx(metrics.average_precision_score(targets[:, c], scores[:, c]),
                                        abs=1e-12)
    assert np.isnan(average_precision(np.zeros(5, bool), np.arange(5.0)))


def test_curves_equal_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    targets = rng.random(300) < 0.3
    scores = np.round(rng.random(300) + 0.4 * targets, 2)  # ties
    c = curves(targets, scores)
    fpr, tpr, thresholds = metrics.roc_curve(targets, scores, drop_intermediate=False)
    assert c["fpr"] == pytest.approx(fpr.tolist(), abs=1e-12)
    assert c["tpr"] == pytest.approx(tpr.tolist(), abs=1e-12)
    assert c["thresholds"] == thresholds[1:].tolist()  # theirs starts at +inf, the (0, 0) point
    precision, recall, _ = metrics.precision_recall_curve(targets, scores)
    # theirs: lowest threshold first, then (1, 0) appended
    assert c["precision"] == pytest.approx(precision[:-1][::-1].tolist(), abs=1e-12)
    assert c["recall"] == pytest.approx(recall[:-1][::-1].tolist(), abs=1e-12)
    assert curves(np.zeros(4, bool), np.arange(4.0))["fpr"] == []  # one label only: no curve
