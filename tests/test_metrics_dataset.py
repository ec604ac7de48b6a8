"""pipeline.metrics.dataset: evaluate_files' report (every family over many files, per class,
overall, class average, per file), missing and extra files, bootstrap intervals."""
import json
import re

import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.labels import Segment
from pipeline.metrics import PSDS1, PSDS2, bootstrap_ci, evaluate_files
from test_metrics_events import CLASSES, HAND_PRED


@pytest.fixture
def dataset():
    ref = {"a.wav": [Segment(0.0, 1.5, "dog"), Segment(2.2, 3.0, "cat")],
           "b.wav": [Segment(0.5, 2.5, "cat"), Segment(1.0, 1.8, "dog")]}
    return ref, {"a.wav": 4.0, "b.wav": 3.0}


# -- the package ---------------------------------------------------------------------------------

def test_each_name_is_the_function_not_a_module():
    """After every family's module is imported, each public name is still the function or
    constant (a submodule named like a function, ``psds``, would replace it on the package)."""
    import subprocess
    import sys

    code = ("import importlib, sys, types\n"
            "import pipeline.metrics as m\n"
            "for family in ('counts', 'frame', 'events', 'detection', 'psds_roc', 'dataset'):\n"
            "    importlib.import_module('pipeline.metrics.' + family)\n"
            "print([n for n in m.__all__ if isinstance(getattr(m, n), types.ModuleType)])\n"
            "print(set(m.__all__) <= set(dir(m)), callable(m.psds), callable(m.evaluate_files))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["[]", "True True True"]


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



def test_report_curves_are_each_class_thinned_to_400_points_with_both_ends():
    from pipeline.metrics import curves

    rng = np.random.default_rng(5)
    ref = {"f": [Segment(1.0, 9.0, "dog"), Segment(12.0, 30.0, "cat")]}
    scores = {"f": np.round(rng.random((4000, 2)), 3)}  # 40 s at 100 fps, ~1000 distinct scores
    r = evaluate_files(ref, {"f": []}, classes=CLASSES, durations={"f": 40.0}, scores=scores,
                       with_curves=True)
    assert "curves" not in evaluate_files(ref, {"f": []}, classes=CLASSES, scores=scores)
    targets = np.zeros((4000, 2), bool)
    targets[100:900, 0], targets[1200:3000, 1] = True, True
    for c, label in enumerate(CLASSES):
        full, thin = curves(targets[:, c], scores["f"][:, c]), r["curves"][label]
        assert len(full["recall"]) > 900 and len(thin["recall"]) == 400 and len(thin["fpr"]) == 401
        # points of the full curve, in order, both ends kept (fpr and tpr also keep their (0, 0))
        at = {x: i for i, x in enumerate(full["thresholds"])}
        pick = [at[x] for x in thin["thresholds"]]
        assert pick[0] == 0 and pick[-1] == len(full["recall"]) - 1 and np.all(np.diff(pick) > 0)
        for key in ("precision", "recall"):
            assert thin[key] == [full[key][i] for i in pick], (label, key)
        for key in ("fpr", "tpr"):
            assert thin[key] == [0.0] + [full[key][i + 1] for i in pick], (label, key)


# -- two classes (speech and music) end to end --------------------------------------------------

TWO_FPS, TWO_SECONDS = 25.0, 300.0


def _two_class_folders(root):
    """``ref/`` and ``pred/`` as ``predict --out`` writes them for a speech + music model: three
    5-minute clips, music in long stretches (none in ``c``), speech in phrases over it or alone;
    scores that follow the references (columns in the model's order, speech first) with two kinds
    of mistake, music heard where there is none and speech taken for music; the segments above 0.5
    after a median filter. Returns the references and the scores."""
    import scipy.ndimage

    from pipeline.postprocess import scores_to_segments

    model_classes, n = ["speech", "music"], int(TWO_SECONDS * TWO_FPS)
    rng = np.random.default_rng(7)
    (root / "ref").mkdir()
    (root / "pred").mkdir()
    refs, scores = {}, {}
    for name in ("a", "b", "c"):
        segs, t = [], float(rng.uniform(0, 20)) + (TWO_SECONDS if name == "c" else 0.0)
        while t < TWO_SECONDS - 30:  # music stretches of 20-60 s
            off = round(min(TWO_SECONDS, t + float(rng.uniform(20, 60))), 2)
            segs.append(Segment(round(t, 2), off, "music"))
            t = off + float(rng.uniform(10, 40))
        t = float(rng.uniform(0, 5))
        while t < TWO_SECONDS - 8:  # phrases of 0.5-6 s
            off = round(t + float(rng.uniform(0.5, 6)), 2)
            segs.append(Segment(round(t, 2), off, "speech"))
            t = off + float(rng.uniform(1, 15))
        s = rng.random((n, 2)) * 0.7
        for onset, offset, label in segs:
            rows = slice(int(onset * TWO_FPS), int(offset * TWO_FPS))
            s[rows, model_classes.index(label)] += 0.45
            if label == "speech" and rng.random() < 0.2:  # taken for music
                s[rows] += [-0.45, 0.45]
        for onset in rng.uniform(0, TWO_SECONDS - 3, 6):  # music heard where there is none
            s[int(onset * TWO_FPS):int((onset + 2) * TWO_FPS), 1] += 0.3
        s = np.round(scipy.ndimage.uniform_filter1d(s, 5, axis=0), 2).astype(np.float32)
        refs[name], scores[name] = segs, s
        np.save(root / "pred" / f"{name}.scores.npy", s)
        (root / "pred" / f"{name}.scores.json").write_text(json.dumps(
            {"fps": TWO_FPS, "classes": model_classes, "n_frames": n, "source": name,
             "duration": TWO_SECONDS, "median_filter": None}))
        pred = scores_to_segments(s, classes=model_classes, fps=TWO_FPS, threshold=0.5,
                                  median_filter=0.5, min_duration_off=0.3)
        for folder, rows in (("ref", segs), ("pred", pred)):
            (root / folder / f"{name}.tsv").write_text("onset\toffset\tevent_label\n" + "".join(
                f"{x.onset:.3f}\t{x.offset:.3f}\t{x.label}\n" for x in rows))
    return refs, scores


def _tsv(path):
    lines = path.read_text().splitlines()[1:]
    return [Segment(float(on), float(off), label) for on, off, label in (x.split("\t") for x in lines)]


def test_two_classes_end_to_end_equal_sed_eval_pyannote_and_sed_scores_eval(tmp_path):
    """``python -m pipeline evaluate`` on a folder of speech + music TSVs and their scores: both
    classes in --json, each figure, per class, overall and averaged over the classes, equal to
    sed_eval's, pyannote.metrics', scikit-learn's and sed_scores_eval's on the same files; the
    table has a row per class, the overall row and the class average."""
    import subprocess
    import sys

    from click.testing import CliRunner

    from pipeline.cli import cli
    from test_metrics_psds import sed_scores_eval_psds

    sed_eval = pytest.importorskip("sed_eval")
    pytest.importorskip("pyannote.metrics")
    sk = pytest.importorskip("sklearn.metrics")
    from pyannote.core import Annotation, Segment as PSeg, Timeline
    from pyannote.metrics.detection import DetectionErrorRate

    refs, scores = _two_class_folders(tmp_path)
    preds = {name: _tsv(tmp_path / "pred" / f"{name}.tsv") for name in refs}
    run = subprocess.run([sys.executable, "-m", "pipeline", "evaluate", "--pred", str(tmp_path / "pred"),
                          "--ref", str(tmp_path / "ref"), "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

    def no_nan(value):
        raise ValueError(f"{value} in the JSON")
    report = json.loads(run.stdout, parse_constant=no_nan)
    classes = ["music", "speech"]  # the labels, sorted; the scores' columns are the model's order
    assert report["settings"]["classes"] == classes and sorted(report["per_class"]) == classes
    assert report["warnings"] == [] and report["missing"] == [] and report["settings"]["n_files_with_scores"] == 3
    overall, per_class = report["overall"], report["per_class"]

    # frame: rasterised here (frame i active iff onset <= i / fps < offset), counts summed over files
    t = np.arange(int(TWO_SECONDS * TWO_FPS)) / TWO_FPS
    def raster(segs):
        return np.stack([np.any([(s.onset <= t) & (t < s.offset) for s in segs if s.label == c] or
                                [np.zeros(len(t), bool)], axis=0) for c in classes], axis=1)
    r = np.concatenate([raster(refs[n]) for n in refs])
    p = np.concatenate([raster(preds[n]) for n in refs])
    s = np.concatenate([scores[n][:, [1, 0]] for n in refs])  # (frames, [music, speech])
    for c, label in enumerate(classes):
        f = per_class[label]["frame"]
        want = (r[:, c] & p[:, c]).sum(), (~r[:, c] & p[:, c]).sum(), (r[:, c] & ~p[:, c]).sum()
        assert (f["tp"], f["fp"], f["fn"]) == want, label
        assert f["auc"] == pytest.approx(sk.roc_auc_score(r[:, c], s[:, c]), abs=1e-12)
        assert f["ap"] == pytest.approx(sk.average_precision_score(r[:, c], s[:, c]), abs=1e-12)
    assert overall["frame"]["tp"] == (r & p).sum() and overall["frame"]["fn"] == (r & ~p).sum()
    assert overall["frame"]["f1"] == pytest.approx(sk.f1_score(r.ravel(), p.ravel()), abs=1e-12)

    # segment and event based: sed_eval, file by file into one metric
    def rows(name, segs):
        return [{"event_onset": x.onset, "event_offset": x.offset, "event_label": x.label,
                 "filename": name} for x in segs]
    seg = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=classes, time_resolution=1.0)
    ev = sed_eval.sound_event.EventBasedMetrics(event_label_list=classes, t_collar=0.2,
                                                percentage_of_length=0.5)
    for name in refs:
        seg.evaluate(rows(name, refs[name]), rows(name, preds[name]), evaluated_length_seconds=TWO_SECONDS)
        ev.evaluate(rows(name, refs[name]), rows(name, preds[name]))
    # (sed_eval's event-based overall S, D, I are its Nsubs, Nfn, Nfp)
    for view, theirs, sdi in (("segment", seg, ("S", "D", "I")), ("event", ev, ("Nsubs", "Nfn", "Nfp"))):
        ours, res = overall[view], theirs.results()
        assert ours["tp"] == theirs.overall["Ntp"] and ours["n_ref"] == theirs.overall["Nref"]
        assert (ours["substitutions"], ours["deletions"], ours["insertions"]) == tuple(
            theirs.overall[k] for k in sdi), view
        assert ours["f1"] == pytest.approx(res["overall"]["f_measure"]["f_measure"], abs=1e-12)
        assert ours["error_rate"] == pytest.approx(res["overall"]["error_rate"]["error_rate"], abs=1e-12)
        assert ours["substitutions"] > 0 and ours["insertions"] > 0  # both kinds of mistake show
        for label in classes:
            mine, want = per_class[label][view], theirs.class_wise[label]
            assert (mine["tp"], mine["fp"], mine["fn"]) == (want["Ntp"], want["Nfp"], want["Nfn"]), (view, label)
            assert mine["f1"] == pytest.approx(res["class_wise"][label]["f_measure"]["f_measure"], abs=1e-12)
            assert mine["error_rate"] == pytest.approx(res["class_wise"][label]["error_rate"]["error_rate"],
                                                       abs=1e-12)

    # detection error: pyannote per class and file; overall sums the classes' components
    metric, total = DetectionErrorRate(), {}
    for label in classes:
        for name in refs:
            ann = []
            for segs in (refs[name], preds[name]):
                a = Annotation()
                for k, x in enumerate(x for x in segs if x.label == label):
                    a[PSeg(x.onset, x.offset), k] = label
                ann.append(a)
            d = metric(*ann, uem=Timeline([PSeg(0.0, TWO_SECONDS)]), detailed=True)
            for key, theirs in (("false_alarm", "false alarm"), ("miss", "miss"), ("total", "total")):
                total.setdefault(label, {}).setdefault(key, 0.0)
                total[label][key] += d[theirs]
        for key in ("false_alarm", "miss", "total"):
            assert per_class[label]["detection"][key] == pytest.approx(total[label][key], abs=1e-9)
    fa, miss, ref_time = (sum(total[c][k] for c in classes) for k in ("false_alarm", "miss", "total"))
    assert overall["detection"]["error_rate"] == pytest.approx((fa + miss) / ref_time, abs=1e-12)

    # PSDS1 and PSDS2 (two classes: PSDS2's cross triggers count) as sed_scores_eval
    durations = {name: TWO_SECONDS for name in refs}
    for key, params in (("psds1", PSDS1), ("psds2", PSDS2)):
        theirs, theirs_per_class = sed_scores_eval_psds({n: scores[n][:, [1, 0]] for n in refs}, refs,
                                                        durations, classes, TWO_FPS, params)
        assert report["psds"][key]["overall"] == pytest.approx(theirs, abs=1e-12)
        for label in classes:
            assert report["psds"][key]["per_class"][label] == pytest.approx(theirs_per_class[label], abs=1e-12)
    assert 0.05 < report["psds"]["psds1"]["overall"] < 0.95

    # the class average is the mean of the two classes
    for view, key in (("frame", "f1"), ("frame", "auc"), ("segment", "error_rate"), ("event", "f1"),
                      ("detection", "error_rate")):
        assert report["class_average"][view][key] == pytest.approx(
            np.mean([per_class[c][view][key] for c in classes]), abs=1e-12), (view, key)

    # the table: a row per class, then overall and the class average, the same figures
    res = CliRunner().invoke(cli, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    rows_text = [x for x in lines[1:8] if x.strip("-")]  # without the rules
    table = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", x.strip()) for x in rows_text[:4])}
    assert list(table) == ["music", "speech", "overall", "class average"]
    columns = [h.strip() for h in re.split(r"\s{2,}", lines[0].strip())][1:]
    rows_json = {**per_class, "overall": overall, "class average": report["class_average"]}
    for row, cells in table.items():
        got = dict(zip(columns, cells))
        assert got["frame F1"] == f"{rows_json[row]['frame']['f1']:.3f}", row
        assert got["AUC"] == f"{rows_json[row]['frame']['auc']:.3f}", row
        assert got["event F1"] == f"{rows_json[row]['event']['f1']:.3f}", row
        assert got["DER"] == f"{rows_json[row]['detection']['error_rate']:.3f}", row
