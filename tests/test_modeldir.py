"""The model directory's files without torch: reading, updating and writing beside."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ModelError
from pipeline.modeldir import CONFIG_FILE, read_model_config, update_model_config, write_beside

ROOT = Path(__file__).resolve().parents[1]


def test_read_update_and_errors(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"classes": ["a"], "predict": {"threshold": 0.5}}))
    assert read_model_config(tmp_path)["classes"] == ["a"]
    old = os.umask(0o022)
    try:
        update_model_config(tmp_path, {"predict": {"threshold": 0.7}, "note": "x"})
    finally:
        os.umask(old)
    assert read_model_config(tmp_path) == {"classes": ["a"], "predict": {"threshold": 0.7}, "note": "x"}
    assert (tmp_path / CONFIG_FILE).stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [CONFIG_FILE]  # no temporary left
    with pytest.raises(ModelError, match="model config not found"):
        read_model_config(tmp_path / "nowhere")
    (tmp_path / CONFIG_FILE).write_text("[1, 2")
    with pytest.raises(ModelError, match="not a readable JSON model config"):
        read_model_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(ModelError, match="must be a JSON object"):
        read_model_config(tmp_path)


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(p):
        Path(p).write_text("half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        write_beside(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_reading_a_model_directory_needs_no_torch():
    r = subprocess.run([sys.executable, "-c", "import sys; from pipeline.modeldir import read_model_config; "
                        f"read_model_config({str(ROOT / 'models' / 'vad')!r}); print('torch' in sys.modules)"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr
