"""Progress in seconds of audio: block by block for a long file, a plain line in logs."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.progress import AudioProgress, advance

ROOT = Path(__file__).resolve().parents[1]


def test_lines_for_logs_and_advance_reaches_the_current_step():
    out = io.StringIO()
    with AudioProgress("features", total_seconds=100.0, files=2, every=0.0, stream=out) as p:
        advance(30.0)
        p.file_done(50.0, 30.0)
        p.file_done(50.0, 0.0)
    advance(10.0)  # outside a step: nothing happens
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("features: 30 of 100 s of audio (30%), 0/2 files")
    assert lines[-1].startswith("features: 100 of 100 s of audio (100%), 2/2 files")


def test_a_long_file_advances_block_by_block_in_a_log(tmp_path):
    sf.write(tmp_path / "long.flac", (0.1 * np.random.default_rng(0).standard_normal(16000 * 150)).astype(np.float32),
             16000)
    env = {**os.environ, "PIPELINE_PROGRESS_EVERY": "0"}
    r = subprocess.run([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "c"), "features",
                        str(tmp_path / "long.flac")], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("features: ") and "s of audio" in x]
    assert len(lines) >= 4  # 150 s in 30 s blocks, before the file is done
    assert lines[0].split(" of ")[0] != lines[-1].split(" of ")[0] and "0/1 file," in lines[0]
    assert lines[-1].startswith("features: 150 of 150 s of audio (100%), 1/1 file,")
