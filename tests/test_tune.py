"""tune: a threshold and median filter per class, new model directory by default, warnings."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import PredictConfig
from pipeline.errors import ParameterError
from pipeline.labels import Segment
from pipeline.predict import class_settings
from pipeline.tune import search, small_set_warnings, write_tuned

ROOT = Path(__file__).resolve().parents[1]


def test_small_set_warnings():
    scores = {"a": np.zeros((100 * 60, 1)), "b": np.zeros((100 * 60, 1))}
    refs = {"a": [Segment(0, 1, "speech")] * 3, "b": []}
    warnings = small_set_warnings(scores, refs, classes=["speech"], fps=100.0)
    assert len(warnings) == 2
    assert "120 s of audio in 2 file(s)" in warnings[0] and "3 reference event(s) of class 'speech'" in warnings[1]
    big = {"a": np.zeros((100 * 600, 1))}
    assert small_set_warnings(big, {"a": [Segment(i, i + 1, "speech") for i in range(10)]},
                              classes=["speech"], fps=100.0) == []


def _two_classes():
    """Class 'low' scores 0.3 inside its events and 0.1 outside, with one-frame dropouts inside
    its events that only a median filter bridges; class 'high' scores 0.8 inside and 0.5 outside."""
    rng = np.random.default_rng(0)
    scores, refs = {}, {}
    for f in range(3):
        s = np.array([0.1, 0.5]) + 0.02 * rng.random((1000, 2))
        segs = []
        for k in range(4):
            a, b = 100 + 220 * k, 100 + 220 * k + 120
            s[a:b, 0] = 0.3
            s[a + 30:b:30, 0] = 0.1  # dropouts
            s[a + 50:b + 50, 1] = 0.8
            segs += [Segment(a / 100, b / 100, "low"), Segment((a + 50) / 100, (b + 50) / 100, "high")]
        scores[f"f{f}"], refs[f"f{f}"] = s, segs
    return scores, refs


@pytest.mark.parametrize("metric", ["frame_f1", "event_f1", "detection_error_rate"])
def test_each_class_gets_its_own_threshold_and_median_filter(metric):
    scores, refs = _two_classes()
    found, after, before = search(scores, refs, classes=["low", "high"], fps=100.0,
                                  start=PredictConfig(threshold=0.5), metric=metric, log=lambda m: None)
    assert 0.12 < found["low"]["threshold"] <= 0.3 and 0.52 < found["high"]["threshold"] <= 0.8
    assert found["low"]["median_filter"] >= 0.03  # bridges the one-frame dropouts
    assert after > before
    if metric != "detection_error_rate":
        assert after == pytest.approx(1.0)


def test_psds1_objective_chooses_the_median_filter_only():
    scores, refs = _two_classes()
    found, after, before = search(scores, refs, classes=["low", "high"], fps=100.0,
                                  start=PredictConfig(threshold=0.5), metric="psds1", log=lambda m: None)
    assert found["low"]["threshold"] == found["high"]["threshold"] == 0.5
    assert after >= before and 0 < after <= 1


def test_per_class_settings_written_and_read_back(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"classes": ["a", "b"], "predict": {"threshold": 0.5}}))
    found = {"a": {"threshold": 0.3, "median_filter": 0.1}, "b": {"threshold": 0.7, "median_filter": 0.0}}
    path = write_tuned(model, found, "test", value=0.9, metric="event_f1")
    assert path == tmp_path / "m-tuned" / "config.json"
    record = json.loads(path.read_text())
    assert record["predict_per_class"] == found and record["tuned_from"] == str(model)
    assert record["predict_history"][-1]["predict"] == {"threshold": 0.5}
    assert class_settings(record["predict_per_class"], ["a", "b"], PredictConfig()) == {"threshold": [0.3, 0.7],
                                                                   "median_filter": [0.1, 0.0]}
    assert json.loads((model / "config.json").read_text())["predict"] == {"threshold": 0.5}  # untouched
    with pytest.raises(ParameterError, match="m-tuned: exists; tune writes a new model directory"):
        write_tuned(model, found, "again", value=0.9, metric="event_f1")


def test_tune_on_the_samples_writes_a_new_model_and_warns(tmp_path):
    model = tmp_path / "vad"
    shutil.copytree(ROOT / "models" / "vad", model)
    before = json.loads((model / "config.json").read_text())
    args = ["--cache-dir", str(tmp_path / "c"), "tune", str(ROOT / "data" / "samples"), "--model", str(model)]
    r = CliRunner().invoke(cli, args + ["--metric", "detection_error_rate"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "WARNING" in r.output and "may not generalise" in r.output
    assert json.loads((model / "config.json").read_text()) == before  # the model is untouched
    tuned = json.loads((tmp_path / "vad-tuned" / "config.json").read_text())
    assert tuned["predict_history"][-1]["predict"] == before["predict"]
    assert set(tuned["predict"]) == set(before["predict"]) and "tuned_detection_error_rate" in tuned["metrics"]
    assert (tmp_path / "vad-tuned" / "model.safetensors").is_file()
    r = CliRunner().invoke(cli, args + ["--in-place"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((model / "config.json").read_text())["predict_history"][-1]["predict"] == before["predict"]
    r = CliRunner().invoke(cli, args + ["--in-place", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--out and --in-place exclude each other" in r.output


def test_tuned_psds1_is_what_evaluate_gives_the_tuned_models_predictions(tmp_path):
    """One PSDS for both: tune's before and after values equal evaluate's on predict's output of
    the model and of the tuned model (PSDS after each model's median filter)."""
    from pipeline.evaluate import evaluate_dir

    samples = ROOT / "data" / "samples"
    cache = ["--cache-dir", str(tmp_path / "c")]
    r = CliRunner().invoke(cli, cache + ["tune", str(samples), "--model", str(ROOT / "models" / "vad"),
                                         "--metric", "psds1", "--out", str(tmp_path / "tuned")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("psds1: "))
    before, after = (float(v) for v in line.split()[1:4:2])
    tuned = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert tuned["metrics"]["tuned_psds1"] == pytest.approx(after, abs=5e-5)
    for model, want in ((ROOT / "models" / "vad", before), (tmp_path / "tuned", tuned["metrics"]["tuned_psds1"])):
        out = tmp_path / f"out-{model.name}"
        r = CliRunner().invoke(cli, cache + ["-q", "predict", str(samples), "--model", str(model), "--out", str(out),
                                             "--format", "npy"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        got = evaluate_dir(out, samples)["psds"]["psds1"]["overall"]
        assert got == pytest.approx(want, abs=5e-5 if want == before else 1e-6), model


def test_a_shipped_model_named_is_tuned_into_the_working_directory(tmp_path, monkeypatch):
    """`tune --model vad` (a name) never writes inside the package: the copy goes to ./vad-tuned,
    and --in-place on a name is refused in one line."""
    monkeypatch.chdir(tmp_path)
    shipped = ROOT / "pipeline" / "models" / "vad" / "config.json"
    before = shipped.read_bytes()
    args = ["--cache-dir", str(tmp_path / "c"), "tune", str(ROOT / "data" / "samples"), "--model", "vad"]
    r = CliRunner().invoke(cli, args + ["--in-place"])
    assert isinstance(r.exception, ParameterError) and "vad is a shipped model" in str(r.exception)  # exit 2
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "vad-tuned" / "config.json").is_file()
    assert not (ROOT / "pipeline" / "models" / "vad-tuned").exists() and shipped.read_bytes() == before
