"""pipeline.metrics.psds_roc: PSDS1 and PSDS2 equal sed_scores_eval's."""
import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.labels import Segment
from pipeline.metrics import PSDS1, PSDS2, psds, score_timestamps


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
