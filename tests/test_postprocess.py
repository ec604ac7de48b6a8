"""Frame scores -> segments: hysteresis, median filter, gaps, short segments, padding, splits."""
import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.labels import Segment
from pipeline.postprocess import (binarize, fill_gaps, frames_to_intervals, median_filter, pad,
                                  remove_short, scores_to_segments, split_long)

FPS = 100


def _col(values):
    return np.asarray(values, dtype=float)[:, None]


# -- hysteresis ---------------------------------------------------------------------------------

def test_binarize_single_threshold():
    s = np.array([0.1, 0.5, 0.49, 0.9, 0.5, 0.2])
    assert binarize(s, onset=0.5).tolist() == [False, True, False, True, True, False]


def test_binarize_hysteresis_stays_on_between_thresholds():
    s = np.array([0.4, 0.6, 0.8, 0.5, 0.35, 0.2, 0.5, 0.7, 0.3])
    # the leading 0.4 is above offset but was never switched on; 0.5 at index 6 has to wait
    # for 0.7 to switch on again
    got = binarize(s, onset=0.7, offset=0.3)
    assert got.tolist() == [False, False, True, True, True, False, False, True, True]


def test_binarize_never_reaching_onset_stays_off():
    s = np.array([0.6, 0.65, 0.6])
    assert not binarize(s, onset=0.7, offset=0.5).any()


def test_binarize_columns_are_independent_and_thresholds_per_class():
    s = np.array([[0.6, 0.6], [0.4, 0.4], [0.2, 0.2]])
    got = binarize(s, onset=np.array([0.5, 0.7]), offset=np.array([0.3, 0.3]))
    assert got.tolist() == [[True, False], [True, False], [False, False]]
    np.testing.assert_array_equal(binarize(s, onset=0.5, offset=0.3)[:, 0],
                                  binarize(s[:, 0], onset=0.5, offset=0.3))


def test_binarize_offset_above_onset_is_an_error():
    with pytest.raises(ParameterError, match="offset threshold"):
        binarize(np.zeros(3), onset=0.3, offset=0.5)


# -- median filter ------------------------------------------------------------------------------

def test_median_filter_removes_one_frame_spikes_and_holes():
    s = np.zeros(20)
    s[5] = 1.0          # a spike
    s[10:17] = 1.0
    s[13] = 0.0         # a hole
    got = median_filter(s, width_frames=3)
    expected = np.zeros(20)
    expected[10:17] = 1.0
    np.testing.assert_array_equal(got, expected)


def test_median_filter_identity_and_bad_width():
    s = np.random.default_rng(0).random((30, 2))
    np.testing.assert_array_equal(median_filter(s, width_frames=1), s)
    np.testing.assert_array_equal(median_filter(s, width_frames=0), s)
    with pytest.raises(ParameterError, match="width_frames=4"):
        median_filter(s, width_frames=4)


def test_median_filter_works_per_column():
    s = np.zeros((9, 2))
    s[4, 0] = 1.0
    s[3:6, 1] = 1.0
    got = median_filter(s, width_frames=3)
    assert not got[:, 0].any()
    np.testing.assert_array_equal(got[:, 1], s[:, 1])


def test_scores_to_segments_median_filter_in_seconds():
    s = np.zeros(100)
    s[20] = 1.0
    s[50:70] = 1.0
    assert scores_to_segments(_col(s), classes=["a"], fps=FPS) == [
        Segment(0.2, 0.21, "a"), Segment(0.5, 0.7, "a")]
    assert scores_to_segments(_col(s), classes=["a"], fps=FPS, median_filter=0.05) == [
        Segment(0.5, 0.7, "a")]


# -- gaps, short segments -----------------------------------------------------------------------

def test_fill_gaps_exact():
    iv = np.array([[0.0, 1.0], [1.2, 2.0], [2.5, 3.0], [3.29, 4.0]])
    got = fill_gaps(iv, min_duration_off=0.3)
    np.testing.assert_allclose(got, [[0.0, 2.0], [2.5, 4.0]])  # 0.2 and 0.29 filled, 0.5 kept


def test_fill_gaps_equal_gap_stays_despite_round_off():
    active = np.zeros(50, dtype=bool)
    active[10:20] = active[30:40] = True        # gap of exactly 10 frames = 0.1 s
    iv = frames_to_intervals(active, fps=FPS)
    assert len(fill_gaps(iv, min_duration_off=0.1)) == 2
    assert len(fill_gaps(iv, min_duration_off=0.11)) == 1


def test_remove_short_exact():
    iv = np.array([[0.0, 0.05], [0.1, 0.2], [0.5, 0.59], [1.0, 2.0]])
    np.testing.assert_allclose(remove_short(iv, min_duration_on=0.1), [[0.1, 0.2], [1.0, 2.0]])


def test_gaps_are_filled_before_short_segments_are_removed():
    # two 50 ms bursts 30 ms apart: filled first they make one 130 ms segment that survives
    s = np.zeros(100)
    s[10:15] = s[18:23] = 1.0
    s[60:63] = 1.0   # alone and short: removed
    got = scores_to_segments(_col(s), classes=["a"], fps=FPS, min_duration_off=0.05,
                             min_duration_on=0.1)
    assert got == [Segment(0.1, 0.23, "a")]


# -- padding ------------------------------------------------------------------------------------

def test_pad_clips_and_merges():
    iv = np.array([[0.05, 0.3], [0.5, 0.7], [0.9, 0.98]])
    got = pad(iv, pad_onset=0.1, pad_offset=0.1, duration=1.0)
    # [0, 0.4) and [0.4, 0.8) touch and merge; [0.8, 1.0) touches as well
    np.testing.assert_allclose(got, [[0.0, 1.0]])
    got = pad(iv, pad_onset=0.05, pad_offset=0.05, duration=1.0)
    np.testing.assert_allclose(got, [[0.0, 0.35], [0.45, 0.75], [0.85, 1.0]])


def test_scores_to_segments_padding_merges_neighbours():
    s = np.zeros(100)
    s[10:20] = s[30:40] = 1.0
    got = scores_to_segments(_col(s), classes=["a"], fps=FPS, pad_onset=0.05, pad_offset=0.06)
    assert len(got) == 1
    assert got[0].onset == pytest.approx(0.05) and got[0].offset == pytest.approx(0.46)


def test_negative_padding_is_an_error():
    with pytest.raises(ParameterError, match="pad_onset=-0.1"):
        pad(np.array([[0.0, 1.0]]), pad_onset=-0.1, duration=2.0)


# -- max duration -------------------------------------------------------------------------------

def test_max_duration_splits_at_the_lowest_score():
    s = np.full(100, 0.9)
    s[37] = 0.6  # still active, the lowest inside the segment
    got = scores_to_segments(_col(s), classes=["a"], fps=FPS, max_duration=0.7)
    assert got == [Segment(0.0, 0.37, "a"), Segment(0.37, 1.0, "a")]


def test_max_duration_splits_recursively_until_all_fit():
    rng = np.random.default_rng(1)
    s = 0.6 + 0.4 * rng.random(500)
    iv = split_long(np.array([[0.0, 5.0]]), s, fps=FPS, max_duration=0.8)
    assert np.all(iv[:, 1] - iv[:, 0] <= 0.8 + 1e-9)
    assert iv[0, 0] == 0.0 and iv[-1, 1] == 5.0
    np.testing.assert_allclose(iv[1:, 0], iv[:-1, 1])  # contiguous pieces
    # the first cut is at the global minimum of the interior frames
    cut = np.argmin(s[1:]) + 1
    assert np.any(np.isclose(iv[:, 0], cut / FPS))


def test_max_duration_below_one_frame_is_an_error():
    with pytest.raises(ParameterError, match="max_duration=0.005"):
        split_long(np.array([[0.0, 1.0]]), np.ones(100), fps=FPS, max_duration=0.005)


# -- the whole function -------------------------------------------------------------------------

def _rasterize(segments, label, n_frames):
    out = np.zeros(n_frames, dtype=bool)
    for onset, offset, lab in segments:
        if lab == label:
            i = np.arange(n_frames)
            out |= (onset <= i / FPS) & (i / FPS < offset)
    return out


def test_frame_aligned_identity_without_post_processing():
    rng = np.random.default_rng(2)
    scores = rng.random((400, 3))
    got = scores_to_segments(scores, classes=["x", "y", "z"], fps=FPS)
    for c, label in enumerate(["x", "y", "z"]):
        np.testing.assert_array_equal(_rasterize(got, label, 400), scores[:, c] >= 0.5)
    assert got == sorted(got)
    assert all(a.onset <= b.onset for a, b in zip(got, got[1:]))


def test_segments_are_frame_times():
    s = np.zeros(10)
    s[3:7] = 1.0
    assert scores_to_segments(_col(s), classes=["a"], fps=FPS) == [Segment(0.03, 0.07, "a")]
    s[:] = 1.0
    assert scores_to_segments(_col(s), classes=["a"], fps=FPS) == [Segment(0.0, 0.1, "a")]
    assert scores_to_segments(np.zeros((0, 1)), classes=["a"], fps=FPS) == []


def test_bad_inputs():
    with pytest.raises(ParameterError, match="must be \\(n_frames, 2\\)"):
        scores_to_segments(np.zeros((10, 3)), classes=["a", "b"], fps=FPS)
    with pytest.raises(ParameterError, match="non-finite"):
        scores_to_segments(np.full((10, 1), np.nan), classes=["a"], fps=FPS)
    with pytest.raises(ParameterError, match="min_duration_on=-1"):
        scores_to_segments(np.zeros((10, 1)), classes=["a"], fps=FPS, min_duration_on=-1)


# -- the end of the file ------------------------------------------------------------------------

def test_segments_end_inside_the_file():
    # 30.000 s at 16 kHz with hop 320 (50 fps): 1 + 480000 // 320 = 1501 frames; the last frame's
    # segment would end at 1501 / 50 = 30.020 s
    scores = np.zeros((1501, 1))
    scores[1400:] = 0.9
    unclipped = scores_to_segments(scores, classes=["s"], fps=50.0, pad_offset=0.1)
    assert unclipped[-1].offset == pytest.approx(30.02)
    segs = scores_to_segments(scores, classes=["s"], fps=50.0, pad_offset=0.1, duration=30.0)
    assert segs == [Segment(28.0, 30.0, "s")]
    # a segment starting at or after the end disappears
    late = np.zeros((1501, 1))
    late[1500] = 0.9
    assert scores_to_segments(late, classes=["s"], fps=50.0, duration=30.0) == []
    with pytest.raises(ParameterError, match="duration=nan must be a finite number"):
        scores_to_segments(late, classes=["s"], fps=50.0, duration=float("nan"))


def test_median_filter_and_threshold_per_class():
    s = np.zeros((100, 2))
    s[40:60] = 0.9
    s[50] = 0.0  # a one-frame hole in both classes
    segs = scores_to_segments(s, classes=["a", "b"], fps=FPS, threshold=[0.5, 0.95],
                              median_filter=[0.03, 0.0])
    assert segs == [Segment(0.4, 0.6, "a")]  # a: hole filled; b: never reaches 0.95
    segs = scores_to_segments(s, classes=["a", "b"], fps=FPS, median_filter=[0.03, 0.0])
    assert [x for x in segs if x.label == "b"] == [Segment(0.4, 0.5, "b"), Segment(0.51, 0.6, "b")]
    with pytest.raises(ParameterError, match=r"median_filter=\[0.1, 0.1, 0.1\] must be one value or one per class \(2\)"):
        scores_to_segments(s, classes=["a", "b"], fps=FPS, median_filter=[0.1] * 3)


@pytest.mark.parametrize("block", [50, 1 << 20])
def test_median_filter_equals_scipy_ndimage(block, monkeypatch):
    """The numpy running median (no scipy.ndimage import at start-up) gives scipy's
    ``median_filter(mode="nearest")`` exactly, for any length, width, dtype and block size."""
    import scipy.ndimage

    import pipeline.postprocess as pp

    monkeypatch.setattr(pp, "MEDIAN_BLOCK", block)
    rng = np.random.default_rng(0)
    for shape in [(1,), (2,), (5,), (37,), (1003, 3), (20000,)]:
        for width in (3, 5, 11, 201):
            for dtype in (np.float32, np.float64, bool):
                x = rng.random(shape) > 0.5 if dtype is bool else rng.random(shape).astype(dtype)
                got = pp.median_filter(x, width_frames=width)
                ref = scipy.ndimage.median_filter(x.astype(np.uint8) if dtype is bool else x,
                                                  size=(width,) + (1,) * (x.ndim - 1), mode="nearest")
                assert got.dtype == x.dtype
                np.testing.assert_array_equal(got, ref.astype(bool) if dtype is bool else ref)
