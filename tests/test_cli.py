"""The command line end to end: CliRunner for behaviour, one real subprocess, --help speed."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def folder(tmp_path: Path, bad: bool = True) -> Path:
    d = tmp_path / "audio" / "sub"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(d / "good1.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    sf.write(d.parent / "good2.flac", (0.1 * rng.standard_normal(22050)).astype(np.float32), 22050)
    if bad:
        (d / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")  # truncated header
    return d.parent


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_features_folder_with_bad_file_exits_1_and_caches_the_good(tmp_path):
    d = folder(tmp_path)
    cache = str(tmp_path / "c")
    r = invoke("--cache-dir", cache, "features", str(d))
    assert r.exit_code == 1
    assert "bad.wav" in r.output and "2 computed" in r.output and "1 failed" in r.output
    r2 = invoke("--cache-dir", cache, "features", str(d / "sub" / "good1.wav"), str(d / "good2.flac"))
    assert r2.exit_code == 0 and "2 cached" in r2.output


def test_inputs_globs_and_manifests(tmp_path):
    d = folder(tmp_path, bad=False)
    cache = str(tmp_path / "c")
    r = invoke("--cache-dir", cache, "load", str(d / "**" / "*.wav"))
    assert r.exit_code == 0 and "1 computed" in r.output
    (tmp_path / "m.csv").write_text("path,labels\naudio/sub/good1.wav,\naudio/good2.flac,\n")
    (tmp_path / "m.txt").write_text("audio/good2.flac\n# comment\n")
    r = invoke("--cache-dir", cache, "load", str(tmp_path / "m.csv"))
    assert r.exit_code == 0 and "1 computed, 1 cached" in r.output
    r = invoke("--cache-dir", cache, "load", str(tmp_path / "m.txt"))
    assert r.exit_code == 0 and "1 cached" in r.output
    r = invoke("--cache-dir", cache, "load", str(tmp_path / "nothing*.wav"))
    assert r.exit_code == 1 and "glob matches no files" in r.output


def test_usage_errors_exit_2(tmp_path):
    r = CliRunner().invoke(cli, ["--set", "features.n_mel=3", "features", "x.wav"])
    assert r.exit_code == 2 and "unknown key 'features.n_mel'" in r.output
    r = CliRunner().invoke(cli, ["features"])
    assert r.exit_code == 2


def test_cache_commands(tmp_path):
    d = folder(tmp_path, bad=False)
    cache = str(tmp_path / "c")
    invoke("--cache-dir", cache, "features", str(d))
    r = invoke("--cache-dir", cache, "cache", "ls")
    assert "features" in r.output and "2 entries" in r.output
    r = invoke("--cache-dir", cache, "--set", "features.n_mels=32", "cache", "status", str(d))
    assert "features  0 cached, 2 to compute" in r.output and "features.n_mels: 64 -> 32" in r.output
    assert "load " not in r.output  # features read the files themselves: no waveform is stored
    r = invoke("--cache-dir", cache, "cache", "verify")
    assert r.exit_code == 0 and "verified 2 entries: 0 problems" in r.output
    (d / "good2.flac").unlink()
    r = invoke("--cache-dir", cache, "cache", "gc")
    assert r.output.count("unreachable") == 1  # its features entry
    r = invoke("--cache-dir", cache, "cache", "clear", "--yes")
    assert "removed 1 entry from" in r.output


def test_counts_of_one_are_singular(tmp_path):
    d = folder(tmp_path, bad=False)
    r = invoke("--cache-dir", str(tmp_path / "c"), "features", str(d / "good2.flac"))
    assert r.exit_code == 0 and "features: 1 file: 1 computed, 0 cached, 0 failed;" in r.output
    r = invoke("--cache-dir", str(tmp_path / "c"), "cache", "verify")
    assert "verified 1 entry: 0 problems" in r.output
    r = invoke("--cache-dir", str(tmp_path / "c"), "cache", "ls")
    assert re.search(r"features +1 entry  ", r.output), r.output


def test_subprocess_entry_points_and_fast_help(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0 and "features" in out.stdout  # its speed: bench/features.py
    check = subprocess.run([sys.executable, "-c", "import sys, pipeline.cli; "
                            "print(sorted(m for m in ('torch','librosa','numpy') if m in sys.modules))"],
                           capture_output=True, text=True, env=env)
    assert check.stdout.strip() == "[]"  # nothing heavy on the --help path
    d = folder(tmp_path, bad=True)
    out = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--cache-dir", str(tmp_path / "c"), "features",
                          str(d)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 1 and "FAILED" in out.stderr and "bad.wav" in out.stderr


@pytest.mark.slow
def test_main_job_on_the_samples(tmp_path):
    """`python -m pipeline run` (what `make run` calls): shipped model on data/samples, table + plots."""
    conf = tmp_path / "run.toml"
    conf.write_text(f'[run]\nout = "{tmp_path / "out"}"\n')
    cmd = [sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "c"), "--config", str(conf), "run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "4 computed" in first.stdout and "overall" in first.stdout and "frame F1" in first.stdout
    f1 = float(re.search(r"^overall\s+[\d.]+\s+[\d.]+\s+([\d.]+)", first.stdout, re.M).group(1))
    assert f1 > 0.8  # the shipped model finds the speech in held-out clips
    samples = sorted((ROOT / "data" / "samples").glob("*.flac"))
    for s in samples:
        assert (tmp_path / "out" / (s.stem + ".tsv")).is_file()
        assert (tmp_path / "out" / (s.stem + ".png")).stat().st_size > 10_000
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "4 cached" in second.stdout
