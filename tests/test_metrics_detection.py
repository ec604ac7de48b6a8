"""pipeline.metrics.detection: the detection error rate (pyannote.metrics') and boundary errors."""
import pytest

from pipeline.labels import Segment
from pipeline.metrics import boundary_pairs, boundary_summary, detection_error, evaluate_files


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
