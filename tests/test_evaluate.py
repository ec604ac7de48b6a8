"""Frame, segment (sed_eval) and event (sed_eval) metrics, and the dataset report."""
import itertools
import json

import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.evaluate import (evaluate_files, event_metrics, format_table, frame_metrics,
                               roc_auc, segment_metrics)
from pipeline.labels import Segment

CLASSES = ["dog", "cat"]


@pytest.fixture
def dataset():
    ref = {"a.wav": [Segment(0.0, 1.5, "dog"), Segment(2.2, 3.0, "cat")],
           "b.wav": [Segment(0.5, 2.5, "cat"), Segment(1.0, 1.8, "dog")]}
    return ref, {"a.wav": 4.0, "b.wav": 3.0}


# -- perfect and empty --------------------------------------------------------------------------

def test_perfect_prediction_scores_one_everywhere(dataset):
    ref, durations = dataset
    scores = {}
    for name, segs in ref.items():
        n = int(durations[name] * 100)
        s = np.zeros((n, 2))
        for onset, offset, label in segs:
            s[int(round(onset * 100)):int(round(offset * 100)), CLASSES.index(label)] = 0.9
        scores[name] = s
    report = evaluate_files(ref, ref, classes=CLASSES, durations=durations, scores=scores)
    json.dumps(report, allow_nan=False)  # strictly JSON-serialisable
    for metrics in [report["overall"], report["class_average"], *report["per_class"].values()]:
        for view in ("frame", "segment", "event"):
            for key in ("precision", "recall", "f1") if view == "frame" else ("f1",):
                assert metrics[view][key] == 1.0, (view, key)
        assert metrics["frame"]["auc"] == 1.0
        assert metrics["segment"]["error_rate"] == 0.0
        assert metrics["event"]["error_rate"] == 0.0
    assert report["missing"] == []


def test_empty_prediction_has_zero_recall_and_error_rate_one(dataset):
    ref, durations = dataset
    report = evaluate_files(ref, {name: [] for name in ref}, classes=CLASSES, durations=durations)
    for metrics in [report["overall"], *report["per_class"].values()]:
        for view in ("frame", "segment", "event"):
            assert metrics[view]["recall"] == 0.0
            assert metrics[view]["precision"] is None  # nothing predicted: undefined
            assert metrics[view]["f1"] == 0.0
        assert metrics["segment"]["error_rate"] == 1.0
        assert metrics["event"]["error_rate"] == 1.0
    assert report["overall"]["event"]["deletions"] == 4
    assert report["overall"]["frame"]["auc"] is None  # no scores given


# -- event collar -------------------------------------------------------------------------------

def test_onset_shift_of_300_ms_fails_200_ms_collar_and_passes_500_ms():
    ref = [Segment(1.0, 2.0, "dog")]
    pred = [Segment(1.3, 2.3, "dog")]  # offset within max(collar, 0.5 * 1 s) either way
    strict = event_metrics(ref, pred, classes=CLASSES, collar=0.2)["overall"]
    loose = event_metrics(ref, pred, classes=CLASSES, collar=0.5)["overall"]
    assert (strict["tp"], strict["f1"], strict["error_rate"]) == (0, 0.0, 2.0)  # 1 D + 1 I
    assert (loose["tp"], loose["f1"], loose["error_rate"]) == (1, 1.0, 0.0)


def test_offset_collar_is_half_the_reference_length():
    ref = [Segment(0.0, 2.0, "dog")]
    assert event_metrics(ref, [Segment(0.1, 2.9, "dog")], classes=CLASSES)["overall"]["tp"] == 1
    assert event_metrics(ref, [Segment(0.1, 3.1, "dog")], classes=CLASSES)["overall"]["tp"] == 0


def test_event_matching_is_maximum_not_greedy():
    # greedy in list order pairs ref 0 with pred 0 and leaves ref 1 unmatched;
    # the maximum matching pairs ref 0 - pred 1 and ref 1 - pred 0
    ref = [Segment(0.0, 1.0, "dog"), Segment(0.3, 1.3, "dog")]
    pred = [Segment(0.15, 1.15, "dog"), Segment(0.0, 1.0, "dog")]
    m = event_metrics(ref, pred, classes=CLASSES)["overall"]
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)


# -- a small example computed by hand -----------------------------------------------------------

HAND_REF = [Segment(0.0, 1.5, "dog"), Segment(2.2, 3.0, "cat"), Segment(3.1, 3.9, "dog")]
HAND_PRED = [Segment(0.1, 1.6, "dog"), Segment(2.3, 3.0, "dog"), Segment(0.5, 0.9, "cat")]


def test_segment_based_by_hand():
    # 1 s segments 0..3, floor(onset) .. ceil(offset) - 1:
    #   ref : s0 {dog}      s1 {dog}  s2 {cat}  s3 {dog}
    #   pred: s0 {dog, cat} s1 {dog}  s2 {dog}  s3 {}
    # per segment (tp, fp, fn) -> S, D, I:
    #   s0 (1, 1, 0) -> 0, 0, 1;  s1 (1, 0, 0);  s2 (0, 1, 1) -> 1, 0, 0;  s3 (0, 0, 1) -> 0, 1, 0
    # TP 2, FP 2, FN 2, N 4: P = R = F1 = 0.5, ER = (1 + 1 + 1) / 4 = 0.75
    # dog: ref {0,1,3} pred {0,1,2}: tp 2 fp 1 fn 1, F1 = 4/6, ER = (1 + 1) / 3
    # cat: ref {2} pred {0}: tp 0 fp 1 fn 1, F1 = 0, ER = 2 / 1
    m = segment_metrics(HAND_REF, HAND_PRED, classes=CLASSES, duration=4.0)
    o = m["overall"]
    assert (o["tp"], o["fp"], o["fn"], o["n_ref"]) == (2, 2, 2, 4)
    assert (o["substitutions"], o["deletions"], o["insertions"]) == (1, 1, 1)
    assert o["f1"] == pytest.approx(0.5) and o["error_rate"] == pytest.approx(0.75)
    assert m["per_class"]["dog"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["dog"]["error_rate"] == pytest.approx(2 / 3)
    assert m["per_class"]["cat"]["f1"] == 0.0
    assert m["per_class"]["cat"]["error_rate"] == pytest.approx(2.0)


def test_event_based_by_hand():
    # dog: ref (0-1.5) ~ pred (0.1-1.6): onset 0.1 <= 0.2, offset 0.1 <= max(0.2, 0.75) -> hit;
    #      ref (3.1-3.9) vs pred (2.3-3.0): onset 0.8 -> no.  tp 1, fp 1, fn 1
    # cat: ref (2.2-3.0) vs pred (0.5-0.9): no.  tp 0, fp 1, fn 1
    # leftovers: ref cat (2.2-3.0) and pred dog (2.3-3.0) match in time -> 1 substitution;
    #   D = 2 - 1 = 1 (ref dog 3.1-3.9), I = 2 - 1 = 1 (pred cat 0.5-0.9)
    # overall: P = R = F1 = 1/3, ER = (1 + 1 + 1) / 3 = 1.0
    # dog: F1 = 2 / 4 = 0.5, ER = (1 + 1) / 2 = 1.0;  cat: F1 = 0, ER = (1 + 1) / 1 = 2.0
    m = event_metrics(HAND_REF, HAND_PRED, classes=CLASSES)
    o = m["overall"]
    assert (o["tp"], o["fp"], o["fn"], o["n_ref"], o["n_sys"]) == (1, 2, 2, 3, 3)
    assert (o["substitutions"], o["deletions"], o["insertions"]) == (1, 1, 1)
    assert o["f1"] == pytest.approx(1 / 3) and o["error_rate"] == pytest.approx(1.0)
    assert m["per_class"]["dog"]["f1"] == pytest.approx(0.5)
    assert m["per_class"]["dog"]["error_rate"] == pytest.approx(1.0)
    assert m["per_class"]["cat"]["f1"] == 0.0
    assert m["per_class"]["cat"]["error_rate"] == pytest.approx(2.0)


# -- frame level and AUC ------------------------------------------------------------------------

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


# -- the dataset report -------------------------------------------------------------------------

def test_missing_file_is_listed_and_counted_as_nothing_predicted(dataset):
    ref, durations = dataset
    report = evaluate_files(ref, {"a.wav": ref["a.wav"], "z.wav": []}, classes=CLASSES,
                            durations=durations)
    assert report["missing"] == ["b.wav"] and report["extra"] == ["z.wav"]
    assert report["per_file"]["b.wav"]["missing"] is True
    assert report["per_file"]["b.wav"]["event"]["recall"] == 0.0
    # a.wav's 2 events found, b.wav's 2 missed
    assert report["overall"]["event"]["tp"] == 2 and report["overall"]["event"]["fn"] == 2
    assert report["overall"]["event"]["recall"] == 0.5
    assert "missing predictions: 1 of 2 files (b.wav)" in format_table(report)


def test_files_add_up_to_the_dataset(dataset):
    ref, durations = dataset
    pred = {"a.wav": HAND_PRED, "b.wav": [Segment(0.6, 2.4, "cat")]}
    report = evaluate_files(ref, pred, classes=CLASSES, durations=durations)
    for view in ("frame", "segment", "event"):
        for key in ("tp", "fp", "fn"):
            files = report["per_file"].values()
            assert report["overall"][view][key] == sum(f[view][key] for f in files)


def test_format_table_has_class_and_overall_rows(dataset):
    ref, durations = dataset
    table = format_table(evaluate_files(ref, ref, classes=CLASSES, durations=durations))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["class", "frame"]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line[:1].isalpha()}
    assert rows["dog"][:3] == ["1.000", "1.000", "1.000"] and rows["dog"][3] == "-"  # no AUC
    assert rows["overall"][4:6] == ["1.000", "0.000"]
    assert len({len(line) for line in lines if not line.startswith("-")}) == 1  # aligned


def test_unknown_label_is_an_error():
    with pytest.raises(ParameterError, match="'bird' is not one of the classes"):
        evaluate_files({"f": [Segment(0, 1, "bird")]}, {}, classes=CLASSES)
