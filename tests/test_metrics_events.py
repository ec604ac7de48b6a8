"""pipeline.metrics.events: sed_eval's segment-based and event-based metrics (collars,
maximum matching, substitutions)."""
import pytest

from pipeline.labels import Segment
from pipeline.metrics import event_metrics, segment_metrics

CLASSES = ["dog", "cat"]


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
