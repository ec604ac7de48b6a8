"""tune: the search writes the model's post-processing and warns about small tuning sets."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.labels import Segment
from pipeline.tune import small_set_warnings

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


def test_tune_on_the_samples_warns_and_keeps_history(tmp_path):
    model = tmp_path / "vad"
    shutil.copytree(ROOT / "models" / "vad", model)
    before = json.loads((model / "config.json").read_text())
    r = CliRunner().invoke(cli, ["--cache-dir", str(tmp_path / "c"), "tune", str(ROOT / "data" / "samples"),
                                 "--model", str(model)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "WARNING" in r.output and "may not generalise" in r.output
    after = json.loads((model / "config.json").read_text())
    assert after["predict_history"][-1]["predict"] == before["predict"]
