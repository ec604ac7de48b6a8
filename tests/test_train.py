"""Training recurrent models on generated audio: they learn, resume, and run under torchrun."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import build_config
from pipeline.dataset import load_dataset
from pipeline.errors import ParameterError
from pipeline.nets import load_model
from pipeline.chunks import ensure_chunks
from pipeline.runner import Settings
from pipeline.train import fit
from synth import tone_dataset

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["chunk.frames=100", "chunk.hop=50", "chunk.valid_fraction=0.25", "model.hidden=24",
         "train.batch_size=8", "train.lr=0.01", "train.patience=20", "features.n_mels=32"]


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    return tone_dataset(root / "ds", n=12, seconds=6.0), root / "cache"


def train_small(tones, tmp_path, *extra, epochs=8):
    ds_path, cache = tones
    cfg, _, _ = build_config(None, SMALL + [f"train.epochs={epochs}", *extra])
    entry, _ = ensure_chunks(load_dataset(ds_path), cfg, Settings(cache_dir=str(cache)))
    best = fit(entry, cfg, tmp_path / "model", log=lambda m: None)
    return best, entry


def chance_f1(entry) -> float:
    """F1 of the best constant guess: predict 'tone' everywhere on the validation frames."""
    valid = np.asarray(entry["split"]) == 1
    y = np.asarray(entry["Y"])[valid][np.asarray(entry["mask"])[valid]]
    p = y.mean()
    return 2 * p / (1 + p)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_classifier_learns_well_above_chance(tones, tmp_path, cell):
    torch.set_num_threads(1)
    best, entry = train_small(tones, tmp_path, f"model.cell={cell}")
    chance = chance_f1(entry)
    assert best["valid_f1"] > chance + 0.1, (best, chance)
    assert best["valid_f1"] > 0.85
    model, config = load_model(tmp_path / "model")
    assert config["classes"] == ["tone"] and config["model"]["cell"] == cell
    assert set(config["sha256"]) == {"model.safetensors", "model.onnx"}  # train exports the graph
    assert config["features"]["n_mels"] == 32 and config["training_data"]["files"] == 12
    hist = list(csv.DictReader(open(tmp_path / "model" / "history.csv")))
    assert len(hist) == 8 and float(hist[-1]["train_loss"]) < float(hist[0]["train_loss"])
    assert (tmp_path / "model" / "loss.png").stat().st_size > 1000


def test_forecast_beats_repeat_last_frame(tones, tmp_path):
    torch.set_num_threads(1)
    best, _ = train_small(tones, tmp_path, "model.task=forecast", "train.lr=0.005", epochs=10)
    assert best["valid_loss"] < best["valid_baseline_l1"], best


def test_same_seed_same_model(tones, tmp_path):
    torch.set_num_threads(1)
    train_small(tones, tmp_path / "a", epochs=2)
    train_small(tones, tmp_path / "b", epochs=2)
    ma, _ = load_model(tmp_path / "a" / "model")
    mb, _ = load_model(tmp_path / "b" / "model")
    for (k, va), vb in zip(ma.state_dict().items(), mb.state_dict().values()):
        assert torch.equal(va, vb), k


def test_errors_before_training(tmp_path):
    from synth import tone_dataset as make
    root = make(tmp_path / "ds", n=3, seconds=2.0)
    for f in root.glob("*.tsv"):
        f.write_text("onset\toffset\tevent_label\n")  # no events at all
    cfg, _, _ = build_config(None, SMALL)
    entry, _ = ensure_chunks(load_dataset(root), cfg, Settings(cache_dir=str(tmp_path / "c")))
    with pytest.raises(ParameterError, match="needs labels"):
        fit(entry, cfg, tmp_path / "m", log=lambda m: None)
    # a class whose only events sit in the validation file
    root2 = make(tmp_path / "ds2", n=3, seconds=2.0)
    entry2, _ = ensure_chunks(load_dataset(root2), cfg, Settings(cache_dir=str(tmp_path / "c")))
    valid_file = next(f["name"] for f in entry2.meta["files"] if f["split"] == "valid")
    (root2 / valid_file.replace(".wav", ".tsv")).write_text("onset\toffset\tevent_label\n0.1\t0.5\trare\n")
    entry3, _ = ensure_chunks(load_dataset(root2), cfg, Settings(cache_dir=str(tmp_path / "c")))
    with pytest.raises(ParameterError, match="class 'rare' has no positive frame"):
        fit(entry3, cfg, tmp_path / "m", log=lambda m: None)


def _cli(*args, cache, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sets = [a for s in SMALL for a in ("--set", s)]
    return [sys.executable, "-m", "pipeline", "--cache-dir", str(cache), *sets, *args], env


@pytest.mark.slow
def test_sigkill_after_an_epoch_then_resume(tones, tmp_path):
    ds_path, cache = tones
    cmd, env = _cli("--set", "train.epochs=6", "train", str(ds_path), "--out", str(tmp_path / "m"),
                    cache=cache, cwd=tmp_path)
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt = tmp_path / "m" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "no epoch finished before the kill"
    done = torch.load(ckpt, weights_only=True)["epoch"]
    assert done < 6
    out = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"resuming from {ckpt} after epoch {done}" in out.stdout + out.stderr
    hist = list(csv.DictReader(open(tmp_path / "m" / "history.csv")))
    assert [int(h["epoch"]) for h in hist] == list(range(1, 7))
    model, config = load_model(tmp_path / "m")
    assert config["classes"] == ["tone"]


@pytest.mark.slow
def test_torchrun_two_processes(tones, tmp_path):
    ds_path, cache = tones
    cmd, env = _cli("--set", "train.epochs=2", "train", str(ds_path), "--out", str(tmp_path / "m"),
                    cache=cache, cwd=tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    out = subprocess.run(torchrun + cmd[1:], env={**env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "2 process(es)" in out.stdout + out.stderr
    model, config = load_model(tmp_path / "m")
    x = torch.randn(1, 50, 32)
    assert model(x)[0].shape == (1, 50, 1)
    rows = list(csv.DictReader(open(tmp_path / "m" / "history.csv")))
    best = min(rows, key=lambda r: float(r["valid_loss"]))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["metrics"]["epoch"] == int(best["epoch"])


def test_spec_augment_masks_whole_bands_and_spans_to_the_mean():
    from pipeline.config import TrainConfig
    from pipeline.train import spec_augment

    torch.manual_seed(0)
    x = torch.randn(16, 120, 32) + 3.0
    mean = torch.linspace(-1.0, 1.0, 32)
    tc = TrainConfig(freq_masks=2, freq_mask_width=6, time_masks=2, time_mask_width=10)
    torch.manual_seed(1)
    z = spec_augment(x, mean, tc)
    assert z.shape == x.shape and not torch.equal(z, x)
    changed = z != x
    at_mean = z == mean  # (B, T, F)
    assert bool((at_mean | ~changed).all())  # every changed value is the feature's mean
    bands = at_mean.all(dim=1).sum(dim=1)  # bins masked over a whole chunk, per chunk
    spans = at_mean.all(dim=2).sum(dim=1)  # frames masked over every bin, per chunk
    assert int(bands.max()) <= 2 * 6 and int(spans.max()) <= 2 * 10
    assert len(set(bands.tolist())) > 1 and len(set(spans.tolist())) > 1  # drawn per chunk
    # a value that is neither in a masked band nor in a masked span is untouched
    keep = ~at_mean.all(dim=1, keepdim=True) & ~at_mean.all(dim=2, keepdim=True)
    assert torch.equal(z[keep], x[keep])
    torch.manual_seed(1)
    assert torch.equal(spec_augment(x, mean, tc), z)  # torch's seed fixes the masks
    off = TrainConfig()
    assert off.freq_masks == 0 and off.time_masks == 0
    with pytest.raises(ParameterError, match="freq_masks"):
        TrainConfig(freq_masks=-1)


def test_training_with_spec_augment_still_learns(tones, tmp_path):
    torch.set_num_threads(1)
    best, entry = train_small(tones, tmp_path, "train.freq_masks=2", "train.time_masks=2",
                              "train.freq_mask_width=4", "train.time_mask_width=5")
    assert best["valid_f1"] > chance_f1(entry) + 0.1, best
    _, config = load_model(tmp_path / "model")
    assert config["train"]["freq_masks"] == 2 and config["train"]["time_mask_width"] == 5


def test_stacked_bidirectional_classifier_learns(tones, tmp_path):
    torch.set_num_threads(1)
    best, entry = train_small(tones, tmp_path, "model.bidirectional=true", "model.stack=2")
    assert best["valid_f1"] > chance_f1(entry) + 0.1 and best["valid_f1"] > 0.85, best
    model, config = load_model(tmp_path / "model")
    assert config["model"]["stack"] == 2 and model.rnn.input_size == 2 * 32
