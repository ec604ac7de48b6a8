"""pipeline.metrics: frame, segment and event (sed_eval), detection error rate (pyannote),
boundaries, PSDS (sed_scores_eval), AUC/AP, bootstrap intervals; the dataset report."""
import itertools
import json

import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.labels import Segment
from pipeline.metrics import (PSDS1, PSDS2, average_precision, boundary_pairs, boundary_summary,
                              bootstrap_ci, detection_error, evaluate_files, event_metrics,
                              frame_metrics, psds, roc_auc, score_timestamps, segment_metrics)

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


# -- the event collar is compared as sed_eval compares it ---------------------------------------

def test_event_collar_has_no_tolerance_beyond_sed_eval():
    # 2.2 - 2.0 = 0.20000000000000018 > 0.2 in floating point: sed_eval finds no match, nor do we
    ref, pred = [Segment(2.0, 3.0, "dog")], [Segment(2.2, 3.0, "dog")]
    assert event_metrics(ref, pred, classes=CLASSES)["overall"]["tp"] == 0
    sed_eval = pytest.importorskip("sed_eval")
    m = sed_eval.sound_event.EventBasedMetrics(event_label_list=["dog"], t_collar=0.2,
                                               percentage_of_length=0.5)
    m.evaluate([{"event_onset": 2.0, "event_offset": 3.0, "event_label": "dog", "filename": "f"}],
               [{"event_onset": 2.2, "event_offset": 3.0, "event_label": "dog", "filename": "f"}])
    assert m.overall["Ntp"] == 0
    # 1.2 - 1.0 = 0.19999999999999996: a match for both
    assert event_metrics([Segment(1.0, 2.0, "dog")], [Segment(1.2, 2.0, "dog")],
                         classes=CLASSES)["overall"]["tp"] == 1


# -- detection error rate (pyannote.metrics) ----------------------------------------------------

DER_REF = [Segment(0.5, 2.0, "speech"), Segment(1.5, 3.0, "speech"), Segment(4.0, 6.5, "speech"),
           Segment(8.0, 8.4, "speech")]
DER_PRED = [Segment(0.7, 2.2, "speech"), Segment(2.5, 2.9, "speech"), Segment(4.3, 7.0, "speech"),
            Segment(9.0, 9.5, "speech")]


def test_detection_error_by_hand():
    # reference support [0.5, 3.0] + [4.0, 6.5] + [8.0, 8.4] = 2.5 + 2.5 + 0.4 = 5.4 s
    # hit: [0.7, 2.2] 1.5 + [2.5, 2.9] 0.4 + [4.3, 6.5] 2.2 = 4.1 -> miss 1.3
    # predicted 1.5 + 0.4 + 2.7 + 0.5 = 5.1 -> false alarm 1.0
    d = detection_error(DER_REF, DER_PRED, end=10.0)
    assert d["total"] == pytest.approx(5.4) and d["miss"] == pytest.approx(1.3)
    assert d["false_alarm"] == pytest.approx(1.0)
    # a UEM [1, 5]: reference [1, 3] + [4, 5] = 3; hit [1, 2.2] + [2.5, 2.9] + [4.3, 5] = 2.3
    d = detection_error(DER_REF, DER_PRED, start=1.0, end=5.0)
    assert (d["total"], d["miss"], d["false_alarm"]) == pytest.approx((3.0, 0.7, 0.0))


@pytest.mark.parametrize("uem", [(0.0, 10.0), (1.0, 5.0), (0.0, 8.2)])
def test_detection_error_rate_equals_pyannote(uem):
    pytest.importorskip("pyannote.metrics")
    from pyannote.core import Annotation, Segment as PSeg, Timeline
    from pyannote.metrics.detection import DetectionErrorRate

    def ann(segs):
        a = Annotation()
        for k, s in enumerate(segs):
            a[PSeg(s.onset, s.offset), k] = s.label
        return a
    metric = DetectionErrorRate()
    theirs = metric(ann(DER_REF), ann(DER_PRED), uem=Timeline([PSeg(*uem)]), detailed=True)
    ours = detection_error(DER_REF, DER_PRED, start=uem[0], end=uem[1])
    assert ours["miss"] == pytest.approx(theirs["miss"], abs=1e-12)
    assert ours["false_alarm"] == pytest.approx(theirs["false alarm"], abs=1e-12)
    assert ours["total"] == pytest.approx(theirs["total"], abs=1e-12)
    report = evaluate_files({"f": [Segment(max(s.onset, uem[0]), min(s.offset, uem[1]), s.label)
                                   for s in DER_REF if s.offset > uem[0] and s.onset < uem[1]]},
                            {"f": DER_PRED}, classes=["speech"], durations={"f": uem[1]})
    if uem[0] == 0.0:  # evaluate_files scores [0, duration]
        assert report["overall"]["detection"]["error_rate"] == pytest.approx(
            theirs["detection error rate"], abs=1e-12)


# -- boundaries ---------------------------------------------------------------------------------

def test_boundary_pairs_follow_the_largest_overlap_one_to_one():
    ref = [Segment(1.0, 2.0, "s"), Segment(3.0, 5.0, "s"), Segment(8.0, 9.0, "s")]
    pred = [Segment(1.04, 2.05, "s"), Segment(2.9, 3.6, "s"), Segment(3.7, 5.4, "s")]
    errors = boundary_pairs(ref, pred)  # 8-9 has no overlapping prediction: left out
    # ref 3-5 overlaps 2.9-3.6 by 0.6 and 3.7-5.4 by 1.3: paired with the latter
    assert errors.ravel().tolist() == pytest.approx([0.04, 0.05, 0.7, 0.4])
    s = boundary_summary(errors[:, 0])
    assert s["n"] == 2 and s["median"] == pytest.approx(0.37) and sum(s["histogram"]) == 2
    assert s["histogram"][-1] == 1  # 0.7 s late: the open bin above 0.5 s


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


# -- average precision, curves ------------------------------------------------------------------

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


# -- PSDS (sed_scores_eval) ---------------------------------------------------------------------

def _psds_example():
    """Three classes, five files of about 4 min at 10 fps, scores that follow the events."""
    import scipy.ndimage

    rng = np.random.default_rng(1)
    classes, fps = ["dog", "cat", "bird"], 10.0
    scores, ref, durations = {}, {}, {}
    for f in range(5):
        n = 2400 + 37 * f
        d = (n - 1) / fps + 0.013 * f
        segs = []
        for c in classes:
            t = float(rng.uniform(0, 20))
            while t < d - 0.5:
                on = round(t, 3)
                off = round(min(d, on + float(rng.uniform(0.5, 8))), 3)
                segs.append(Segment(on, off, c))
                t = off + float(rng.uniform(20, 150))
        s = rng.random((n, 3)) * 0.7
        for on, off, c in segs:
            s[int(on * fps):int(off * fps), classes.index(c)] += 0.5 * rng.random()
        scores[f"f{f}"] = np.round(scipy.ndimage.uniform_filter1d(s, 5, axis=0), 2)
        ref[f"f{f}"], durations[f"f{f}"] = segs, d
    return scores, ref, durations, classes, fps


def sed_scores_eval_psds(scores, ref, durations, classes, fps, params):
    """sed_scores_eval's PSDS of our scores (frame i spans [i / fps, (i + 1) / fps))."""
    pytest.importorskip("sed_scores_eval")
    import sed_scores_eval.base_modules.statistics as sst
    from sed_scores_eval import intersection_based
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    # sed_scores_eval 0.0.4's Cython wants writeable arrays; pandas 3 hands out read-only views
    original = sst.onset_offset_curves
    sst.onset_offset_curves = lambda s, t, c=None: original(np.array(s), np.array(t),
                                                            None if c is None else np.array(c))
    try:
        frames = {}
        for name, s in scores.items():
            t = score_timestamps(len(s), fps, durations[name])
            frames[name] = create_score_dataframe(np.asarray(s, float)[:len(t) - 1], t, classes)
        gt = {n: [tuple(x) for x in segs] for n, segs in ref.items()}
        value, per_class, *_ = intersection_based.psds(frames, gt, durations, **params)
    finally:
        sst.onset_offset_curves = original
    return value, per_class


@pytest.mark.parametrize("params", [PSDS1, PSDS2], ids=["psds1", "psds2"])
def test_psds_equals_sed_scores_eval(params):
    scores, ref, durations, classes, fps = _psds_example()
    ours, ours_per_class = psds(scores, ref, durations, classes=classes, fps=fps, **params)
    theirs, theirs_per_class = sed_scores_eval_psds(scores, ref, durations, classes, fps, params)
    assert 0.1 < ours < 0.9  # a discriminating example, not a corner
    assert ours == pytest.approx(theirs, abs=1e-12)
    for c in classes:
        assert ours_per_class[c] == pytest.approx(theirs_per_class[c], abs=1e-12)


def test_psds_parameters_must_come_in_pairs():
    scores, ref, durations, classes, fps = _psds_example()
    with pytest.raises(ParameterError, match="alpha_ct=0.5 and cttc_threshold=None"):
        psds(scores, ref, durations, classes=classes, fps=fps, dtc_threshold=0.1,
             gtc_threshold=0.1, alpha_ct=0.5)


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
