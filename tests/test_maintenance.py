"""cache ls / status / verify / gc walk the same graph as the runner."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.cache import Cache
from pipeline.cli import main
from pipeline.config import Config, FeaturesConfig
from pipeline.inputs import expand_inputs
from pipeline.maintenance import gc, listing, status, unreachable, verify_all
from pipeline.runner import Settings, run_files

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *args):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().out


def folder(tmp_path: Path, n: int = 2) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for i in range(n):
        sf.write(d / f"f{i}.wav", np.random.default_rng(i).standard_normal(8000).astype(np.float32) * 0.1, 16000)
    return d


def test_status_says_what_and_why(tmp_path):
    d = folder(tmp_path)
    sources, _ = expand_inputs([str(d)])
    cache = Cache(tmp_path / "c")
    assert "load      0 cached, 2 to compute" in status(cache, Config(), sources, upto="load")
    run_files(sources, Config(), Settings(cache_dir=str(cache.root)), upto="load")
    run_files(sources, Config(), Settings(cache_dir=str(cache.root)), upto="features")
    assert "load      2 cached, 0 to compute" in status(cache, Config(), sources, upto="load")
    text = status(cache, Config().replace(features=FeaturesConfig(n_mels=40)), sources)
    assert "features  0 cached, 2 to compute" in text
    assert "features.n_mels: 64 -> 40" in text
    sf.write(d / "f0.wav", np.zeros(8000, np.float32), 16000)
    assert "source bytes changed since it was cached" in status(cache, Config(), sources, upto="load")
    streamed = Cache(tmp_path / "s")  # features read straight from the file name it too
    run_files(sources, Config(), Settings(cache_dir=str(streamed.root)), upto="features")
    sf.write(d / "f1.wav", np.full(8000, 0.01, np.float32), 16000)
    st = (d / "f1.wav").stat()
    os.utime(d / "f1.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later write, on any clock
    assert "f1.wav: source bytes changed since it was cached" in status(streamed, Config(), sources)


def test_after_the_main_job_status_with_the_model_finds_everything(capsys, tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text(f'[run]\ninputs = "{ROOT / "data" / "samples"}"\nmodel = "{ROOT / "models" / "vad"}"\n'
                    f'out = "{tmp_path / "out"}"\nref = "{ROOT / "data" / "samples"}"\n')
    code, out = _run(capsys, "--config", conf, "--cache-dir", tmp_path / "c", "run")
    assert code == 0
    code, out = _run(capsys, "--cache-dir", tmp_path / "c", "cache", "status", ROOT / "data" / "samples",
                     "--model", ROOT / "models" / "vad")
    assert code == 0
    assert out.splitlines() == [f"checked: the settings of model {ROOT / 'models' / 'vad'} (--model), up to predict",
                                "features  4 cached, 0 to compute", "predict   4 cached, 0 to compute"]
    code, out = _run(capsys, "--config", conf, "--cache-dir", tmp_path / "c", "cache", "status",
                     ROOT / "data" / "samples")  # no --model: the [run] table's
    assert code == 0
    assert out.splitlines() == [f"checked: the settings of model {ROOT / 'models' / 'vad'} (the [run] table of "
                                f"{conf}), up to predict",
                                "features  4 cached, 0 to compute", "predict   4 cached, 0 to compute"]
    # run --to features builds the model's features (hop 320), so nothing new appears
    before = sorted((tmp_path / "c" / "features").glob("*/*"))
    code, out = _run(capsys, "--config", conf, "--cache-dir", tmp_path / "c", "run", "--to", "features")
    assert code == 0 and sorted((tmp_path / "c" / "features").glob("*/*")) == before


def test_status_right_after_the_default_run_checks_its_model(capsys, tmp_path, monkeypatch):
    """`make run` (run with no --config) and then `cache status INPUTS`: everything is cached, and
    the first line names the model checked; a --set of features is judged without it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "samples").symlink_to(ROOT / "data" / "samples")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vad").symlink_to(ROOT / "models" / "vad")
    monkeypatch.chdir(tmp_path)  # a checkout's layout, without writing into this one
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "c"))
    code, _ = _run(capsys, "run")
    assert code == 0
    code, out = _run(capsys, "cache", "status", "data/samples")
    assert code == 0
    assert out.splitlines() == ["checked: the settings of model models/vad (the model `run` uses by default, as "
                                "`make run` does), up to predict",
                                "features  4 cached, 0 to compute", "predict   4 cached, 0 to compute"]
    code, out = _run(capsys, "--set", "features.n_mels=32", "cache", "status", "data/samples")
    assert out.splitlines()[:2] == ["checked: the settings of the defaults (no --config) with --set "
                                    "features.n_mels, up to features; --model DIR judges by a model's",
                                    "features  0 cached, 4 to compute"]


def test_listing_verify_and_gc_reach_downstream_entries(tmp_path):
    d = folder(tmp_path, n=3)
    sources, _ = expand_inputs([str(d)])
    cache = Cache(tmp_path / "c")
    run_files(sources, Config(), Settings(cache_dir=str(cache.root)), upto="load")
    report = run_files(sources, Config(), Settings(cache_dir=str(cache.root)), upto="features")
    # a dataset-level entry built on the features of all three files
    cache.store("chunk", "ab" * 32, {"X": np.zeros(3, np.float32)}, {"inputs": [r.keys["features"] for r in report.results]})
    text = listing(cache)
    assert "load" in text and "features" in text and "chunk" in text
    assert verify_all(cache) == ([], 7)
    (d / "f1.wav").unlink()
    gone = unreachable(cache)
    assert {s for s, _ in gone} == {"load", "features", "chunk"} and len(gone) == 3
    out = gc(cache)
    assert out.count("unreachable") == 3
    assert len(list(cache.keys("load"))) == 2 and list(cache.keys("chunk")) == []
