"""The model directory's files without torch: reading, updating and writing beside."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ModelError
from pipeline.modeldir import (CONFIG_FILE, HASHES, ONNX_FILE, WEIGHTS_FILE, check_weights, read_model_config,
                               record_hashes, update_model_config, write_beside)

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


def _flip_bytes(path: Path, n: int = 100) -> None:
    """Invert ``n`` bytes in the middle of the tensor data (past the safetensors header), so the
    file still parses and only the numbers change."""
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    start = header + (len(data) - header) // 2
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_weights_bytes_are_refused_with_exit_2(tmp_path):
    import shutil

    model = tmp_path / "vad"
    shutil.copytree(ROOT / "models" / "vad", model)
    check_weights(model, WEIGHTS_FILE)  # the shipped model matches its recorded hash
    _flip_bytes(model / WEIGHTS_FILE)
    with pytest.raises(ModelError, match="model.safetensors: sha256 .* does not match"):
        check_weights(model, WEIGHTS_FILE)
    r = subprocess.run([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "cache"), "predict",
                        str(ROOT / "data" / "samples" / "music_clip_00012.flac"), "--model", str(model),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(model / WEIGHTS_FILE) in lines[0] and "does not match" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.tsv"))


def test_hashes_are_recorded_and_checked(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"classes": ["a"]}))
    (tmp_path / WEIGHTS_FILE).write_bytes(b"weights")
    assert check_weights(tmp_path, WEIGHTS_FILE) == tmp_path / WEIGHTS_FILE  # no table yet: unchecked
    table = record_hashes(tmp_path)
    assert table == {WEIGHTS_FILE: hashlib.sha256(b"weights").hexdigest()}
    assert read_model_config(tmp_path)[HASHES] == table
    check_weights(tmp_path, WEIGHTS_FILE)
    (tmp_path / ONNX_FILE).write_bytes(b"graph")  # a file the table does not name is refused
    with pytest.raises(ModelError, match="model.onnx: config.json records no sha256"):
        check_weights(tmp_path, ONNX_FILE)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"weightz")
    with pytest.raises(ModelError, match="does not match"):
        check_weights(tmp_path, WEIGHTS_FILE)


def test_shipped_models_by_name_and_a_path_wins(tmp_path, monkeypatch):
    from pipeline.modeldir import resolve_model_dir, shipped_models

    assert {"vad", "vad-stream"} <= set(shipped_models())
    monkeypatch.chdir(tmp_path)
    assert (resolve_model_dir("vad") / CONFIG_FILE).read_bytes() == (ROOT / "models" / "vad" / CONFIG_FILE).read_bytes()
    assert resolve_model_dir("nosuch") == Path("nosuch")
    assert resolve_model_dir("models/vad") == Path("models/vad")  # a path is never a name
    (tmp_path / "vad").mkdir()
    assert resolve_model_dir("vad") == Path("vad")  # an existing folder of that name wins


def test_cli_and_api_take_a_shipped_models_name(tmp_path):
    sample = str(ROOT / "data" / "samples" / "music_clip_00012.flac")
    code = ("import sys, pipeline\nfrom pipeline.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nm = pipeline.load_model('vad-stream')\n"
            "print(m.directory.name, len(m.segments(sys.argv[-5])))\n")
    r = subprocess.run([sys.executable, "-c", code, "--cache-dir", "c", "predict", sample, "--model", "vad",
                        "--out", "o"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.split()[-2] == "vad-stream", r.stderr
    assert (tmp_path / "o" / "music_clip_00012.tsv").is_file()
    r = subprocess.run([sys.executable, "-m", "pipeline", "predict", sample, "--model", "vad2", "--out", "o"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "'vad2' is neither a model directory nor a shipped model (speech-music, vad, vad-stream" in r.stderr
