"""The public Python API: the README's example runs as written, and the API gives the CLI's numbers."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import pipeline
from pipeline.cli import main
from pipeline.labels import read_labels

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "data" / "samples").glob("*.flac"))


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = readme_example().replace('".pipeline-cache"', repr(str(tmp_path / "cache")))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert rows and all(len(row) == 3 and row[2] == "speech" and float(row[0]) < float(row[1]) for row in rows)


@pytest.fixture(scope="module")
def cli_predictions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    try:
        main(["--cache-dir", str(tmp / "c"), "predict", str(ROOT / "data" / "samples"), "--model",
              str(ROOT / "models" / "vad"), "--out", str(tmp / "out"), "--format", "npy"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return tmp


@pytest.mark.parametrize("cached", [False, True])
def test_api_equals_the_cli(cli_predictions, cached):
    vad = pipeline.load_model(ROOT / "models" / "vad", cache_dir=cli_predictions / "c" if cached else None)
    assert vad.classes == ["speech"] and vad.fps == 50.0
    for path in SAMPLES:
        want = read_labels(cli_predictions / "out" / f"{path.stem}.tsv", default_name="x")["x"]
        got = [(round(s.onset, 3), round(s.offset, 3), s.label) for s in vad.segments(path)]
        assert got == [tuple(s) for s in want], path.name
        cli_scores = np.load(cli_predictions / "out" / f"{path.stem}.scores.npy")
        np.testing.assert_allclose(vad.file_scores(path), cli_scores, atol=1e-6)
        y, sr = sf.read(path, dtype="float32")
        np.testing.assert_allclose(vad.scores(y, sr), cli_scores, atol=1e-6)  # arrays: the same numbers


def test_predict_keywords_are_the_clis_set(cli_predictions, capsys):
    path = SAMPLES[0]
    strict = pipeline.load_model(ROOT / "models" / "vad", threshold=0.9)
    try:
        main(["--cache-dir", str(cli_predictions / "c"), "--set", "predict.threshold=0.9", "predict", str(path),
              "--model", str(ROOT / "models" / "vad"), "--out", str(cli_predictions / "strict")])
    except SystemExit as exc:
        assert exc.code in (0, None)
    want = read_labels(cli_predictions / "strict" / f"{path.stem}.tsv", default_name="x")["x"]
    assert [(round(s.onset, 3), round(s.offset, 3), s.label) for s in strict.segments(path)] == [tuple(s) for s in want]
    with pytest.raises(pipeline.ParameterError, match="predict.threshold=2"):
        pipeline.load_model(ROOT / "models" / "vad", threshold=2.0)


def test_keyword_features_equal_the_stage():
    from pipeline.config import FeaturesConfig
    from pipeline.features import spectrogram

    y = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    for kind in ("stft", "power", "mel", "logmel", "mfcc", "fbank"):
        got = getattr(pipeline, kind)(y, sr=16000, hop_length=320, n_mels=40)
        np.testing.assert_array_equal(got, spectrogram(y, sr=16000, cfg=FeaturesConfig(kind=kind, hop_length=320,
                                                                                       n_mels=40)))
    with pytest.raises(pipeline.ParameterError, match="features.hop_length=0"):
        pipeline.logmel(y, sr=16000, hop_length=0)


def test_importing_the_package_stays_cheap():
    r = subprocess.run([sys.executable, "-c", "import sys, pipeline; "
                        "print(sorted(m for m in ('numpy', 'torch', 'librosa') if m in sys.modules))"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "[]"
