"""Whole jobs: cached predict scores equal recomputed ones; a model's settings are the run's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cache import Cache
from pipeline.config import Config, build_config
from pipeline.errors import ParameterError
from pipeline.inputs import expand_inputs
from pipeline.jobs import open_model, predict_files, predict_to_dir
from pipeline.runner import Settings

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "vad"
SAMPLES = ROOT / "data" / "samples"


def test_cached_scores_equal_recomputed_ones(tmp_path):
    settings = Settings(cache_dir=str(tmp_path / "c"))
    scoring, cfg = open_model(MODEL, Config(), settings)
    sources, _ = expand_inputs([str(SAMPLES)])
    first = predict_files(sources, scoring.model, scoring.digest, cfg, settings)
    assert first.count("computed") == 4
    cache = Cache(tmp_path / "c")
    stored = {r.path: np.array(cache.load("predict", r.keys["predict"])["scores"]) for r in first.results}
    assert predict_files(sources, scoring.model, scoring.digest, cfg, settings).count("cached") == 4
    cache.clear("predict")
    again = predict_files(sources, scoring.model, scoring.digest, cfg, settings)
    assert again.count("computed") == 4 and again.count("cached") == 0
    for r in again.results:
        np.testing.assert_array_equal(np.asarray(cache.load("predict", r.keys["predict"])["scores"]), stored[r.path])
    # one file alone gives the same scores as in a batch of four
    alone = predict_files(sources[:1], scoring.model, scoring.digest, cfg, Settings(cache_dir=str(tmp_path / "d")))
    np.testing.assert_allclose(Cache(tmp_path / "d").load("predict", alone.results[0].keys["predict"])["scores"],
                               stored[alone.results[0].path], atol=1e-6)


def test_the_model_settings_become_the_runs(tmp_path):
    settings = Settings(cache_dir=str(tmp_path / "c"))
    scoring, cfg = open_model(MODEL, Config(), settings)
    assert cfg.features.hop_length == scoring.config["features"]["hop_length"] == 320
    assert cfg.predict.threshold == scoring.config["predict"]["threshold"]
    cli_cfg, _, given = build_config(None, ["predict.threshold=0.3", "features.batch_size=4"])
    _, cfg = open_model(MODEL, cli_cfg, settings, given)
    assert cfg.predict.threshold == 0.3 and cfg.features.hop_length == 320 and cfg.features.batch_size == 4
    bad_cfg, _, given = build_config(None, ["features.n_mels=80"])
    with pytest.raises(ParameterError, match=r"--set features.n_mels=80: the model was trained with features.n_mels=64"):
        open_model(MODEL, bad_cfg, settings, given)


def test_predict_to_dir_mirrors_inputs_and_reports_per_file(tmp_path):
    settings = Settings(cache_dir=str(tmp_path / "c"))
    report, cfg = predict_to_dir([str(SAMPLES)], MODEL, tmp_path / "o", Config(), settings, formats=["rttm"])
    assert report.count("computed") == 4 and not report.failed
    names = sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith("."))
    assert len(names) == 8 and all(n.endswith((".tsv", ".rttm")) for n in names)


def test_two_shards_fill_the_cache_and_outputs_of_one_run(tmp_path, capsys):
    """--shard 1/2 and 2/2 (two machines, or a SLURM array) together: the same cache entries and
    the same output files as one unsharded run."""
    from pipeline.cli import main

    def run(*args):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            assert exc.code in (0, None), capsys.readouterr().err
    for shard in ("1/2", "2/2"):
        run("--cache-dir", tmp_path / "sharded", "--shard", shard, "predict", SAMPLES, "--model", MODEL,
            "--out", tmp_path / "o-sharded")
    run("--cache-dir", tmp_path / "whole", "predict", SAMPLES, "--model", MODEL, "--out", tmp_path / "o-whole")
    out = capsys.readouterr()
    assert "predict: 4 files" in out.out + out.err
    for stage in ("features", "predict"):
        assert sorted(Cache(tmp_path / "sharded").keys(stage)) == sorted(Cache(tmp_path / "whole").keys(stage))

    def files(d):
        return {p.name: p.read_bytes() for p in d.iterdir() if not p.name.startswith(".")}
    assert files(tmp_path / "o-sharded") == files(tmp_path / "o-whole") and len(files(tmp_path / "o-whole")) == 4
    from pipeline.inputs import expand_inputs, parse_shard

    parts = [expand_inputs([str(SAMPLES)], shard=parse_shard(f"{i}/3"))[0] for i in (1, 2, 3)]
    assert sorted(s.path for p in parts for s in p) == sorted(s.path for s in expand_inputs([str(SAMPLES)])[0])


def test_no_written_segment_ends_after_its_file_in_any_format(tmp_path):
    import soundfile as sf

    from pipeline.labels import read_labels

    settings = Settings(cache_dir=str(tmp_path / "c"))
    report, _ = predict_to_dir([str(SAMPLES)], MODEL, tmp_path / "o", Config(), settings,
                               formats=["rttm", "audacity", "json", "textgrid", "npy"])
    assert not report.failed
    written = 0
    for audio in sorted(SAMPLES.glob("*.flac")):
        duration = sf.info(str(audio)).duration
        for suffix in (".tsv", ".rttm", ".txt", ".json", ".TextGrid"):
            segs = [s for v in read_labels(tmp_path / "o" / (audio.stem + suffix), default_name="x").values() for s in v]
            assert all(s.offset <= duration + 1e-9 for s in segs), (audio.name, suffix)
            written += len(segs)
        info = __import__("json").loads((tmp_path / "o" / f"{audio.stem}.scores.json").read_text())
        assert info["duration"] == pytest.approx(duration)
    assert written > 3 * 5 * 5  # speech in three samples (the fourth is music only), five formats


def test_a_run_whose_scores_are_all_cached_never_imports_torch(tmp_path):
    """The network loads on first use: with every score cached (a rethreshold), predict reads
    config.json and the cache only, and finishes without importing torch."""
    import subprocess
    import sys

    args = ["--cache-dir", str(tmp_path / "c"), "predict", str(SAMPLES), "--model", str(MODEL), "--out",
            str(tmp_path / "o")]
    code = ("import sys\nfrom pipeline.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nprint('torch' in sys.modules)\n")
    first = subprocess.run([sys.executable, "-c", code, "--engine", "torch", *args], capture_output=True, text=True,
                           cwd=ROOT)
    assert first.returncode == 0 and first.stdout.strip().endswith("True"), first.stderr  # the probe sees torch
    again = subprocess.run([sys.executable, "-c", code, "--engine", "torch", "--set", "predict.threshold=0.8", *args],
                           capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and again.stdout.strip().endswith("False"), again.stderr
    assert "0 computed, 4 cached" in again.stdout + again.stderr
