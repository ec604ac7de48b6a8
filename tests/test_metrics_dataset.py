"""pipeline.metrics.dataset: evaluate_files' report (every family over many files, per class,
overall, class average, per file), missing and extra files, bootstrap intervals."""
import json

import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.labels import Segment
from pipeline.metrics import bootstrap_ci, evaluate_files
from test_metrics_events import CLASSES, HAND_PRED


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


def test_files_add_up_to_the_dataset(dataset):
    ref, durations = dataset
    pred = {"a.wav": HAND_PRED, "b.wav": [Segment(0.6, 2.4, "cat")]}
    report = evaluate_files(ref, pred, classes=CLASSES, durations=durations)
    for view in ("frame", "segment", "event"):
        for key in ("tp", "fp", "fn"):
            files = report["per_file"].values()
            assert report["overall"][view][key] == sum(f[view][key] for f in files)


def test_unknown_label_is_an_error():
    with pytest.raises(ParameterError, match="'bird' is not one of the classes"):
        evaluate_files({"f": [Segment(0, 1, "bird")]}, {}, classes=CLASSES)


# -- boundaries and detection error, per class and overall --------------------------------------

def test_evaluate_files_reports_boundaries_and_detection(dataset):
    ref, durations = dataset
    late = {n: [Segment(s.onset + 0.1, s.offset + 0.1, s.label) for s in segs] for n, segs in ref.items()}
    r = evaluate_files(ref, late, classes=CLASSES, durations=durations)
    for label in CLASSES:
        assert r["per_class"][label]["boundary"]["onset"]["median"] == pytest.approx(0.1)
        assert r["per_class"][label]["boundary"]["offset"]["median"] == pytest.approx(0.1)
    # every event shifted 0.1 s: 0.1 s missed and 0.1 s false alarm per event (none overlap)
    assert r["per_class"]["dog"]["detection"]["miss"] == pytest.approx(0.2)
    assert r["overall"]["detection"]["false_alarm"] == pytest.approx(0.4)


# -- bootstrap ----------------------------------------------------------------------------------

def test_bootstrap_interval_holds_the_estimate_and_is_reproducible(dataset):
    ref, durations = dataset
    pred = {"a.wav": HAND_PRED, "b.wav": [Segment(0.6, 2.4, "cat")]}
    r = evaluate_files(ref, pred, classes=CLASSES, durations=durations, ci=True, n_boot=500)
    lo, hi = r["ci"]["frame_f1"]
    assert lo <= r["overall"]["frame"]["f1"] <= hi and lo < hi
    dlo, dhi = r["ci"]["detection_error_rate"]
    assert dlo <= r["overall"]["detection"]["error_rate"] <= dhi
    assert bootstrap_ci(r["per_file"], n_boot=500) == r["ci"]  # same seed, same draws
    same = {"a": r["per_file"]["a.wav"], "b": r["per_file"]["a.wav"]}
    assert bootstrap_ci(same)["frame_f1"][0] == pytest.approx(bootstrap_ci(same)["frame_f1"][1])


# -- files at different frame rates -------------------------------------------------------------

def test_files_at_different_frame_rates():
    ref = {"a": [Segment(0.0, 1.0, "dog")], "b": [Segment(0.0, 1.0, "dog")]}
    pred = {"a": [Segment(0.0, 0.5, "dog")], "b": [Segment(0.0, 0.5, "dog")]}
    scores = {"a": np.r_[np.ones(50), np.zeros(150)][:, None] * 0.9,  # 100 fps, 2 s
              "b": np.r_[np.ones(25), np.zeros(75)][:, None] * 0.9}  # 50 fps, 2 s
    r = evaluate_files(ref, pred, classes=["dog"], fps={"a": 100.0, "b": 50.0}, scores=scores)
    assert r["per_file"]["a"]["frame"]["tp"] == 50 and r["per_file"]["b"]["frame"]["tp"] == 25
    assert r["overall"]["frame"]["recall"] == pytest.approx(0.5)
    assert r["settings"]["fps"] == [50.0, 100.0]
    assert r["psds"]["psds1"]["overall"] is not None


def test_classes_without_scores_get_no_threshold_free_metrics_and_leave_the_others_alone():
    """``score_classes``: a reference label the scores have no column for is counted (all missed)
    but has no AUC, AP or PSDS; the scored class's equal those computed without that label."""
    rng = np.random.default_rng(1)
    scores = {f: rng.random((500, 1)) for f in ("a", "b")}
    speech = {"a": [Segment(0.5, 2.0, "speech")], "b": [Segment(1.0, 1.5, "speech"), Segment(3.0, 4.0, "speech")]}
    pred = {"a": [Segment(0.6, 2.0, "speech")], "b": [Segment(1.0, 1.4, "speech")]}
    with_dog = {**speech, "b": speech["b"] + [Segment(2.0, 2.5, "dog")]}
    plain = evaluate_files(speech, pred, classes=["speech"], durations={"a": 5.0, "b": 5.0}, scores=scores)
    both = evaluate_files(with_dog, pred, classes=["dog", "speech"], durations={"a": 5.0, "b": 5.0},
                          scores=scores, score_classes=["speech"])
    assert both["per_class"]["dog"]["frame"]["fn"] == 50 and both["per_class"]["dog"]["frame"]["tp"] == 0
    assert both["per_class"]["dog"]["frame"]["auc"] is None and both["psds"]["psds1"]["per_class"]["dog"] is None
    for key in ("auc", "ap"):
        assert both["per_class"]["speech"]["frame"][key] == plain["per_class"]["speech"]["frame"][key] is not None
        assert both["overall"]["frame"][key] == plain["overall"]["frame"][key]
    for key in ("psds1", "psds2"):
        assert both["psds"][key]["overall"] == plain["psds"][key]["overall"]
    with pytest.raises(ParameterError, match="score_classes"):
        evaluate_files(with_dog, pred, classes=["dog", "speech"], scores=scores, score_classes=["cat"])
