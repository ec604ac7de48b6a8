"""Training recurrent models on generated audio: they learn, resume, and run under torchrun."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import pytest
import torch

from pipeline.config import build_config
from pipeline.dataset import load_dataset
from pipeline.errors import ParameterError
from pipeline.nets import load_model
from pipeline.chunks import ensure_chunks
from pipeline.runner import Settings
from pipeline.train import fit
from synth import cli_exit, tone_dataset

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


@pytest.mark.slow
def test_torchrun_out_is_claimed_by_rank_0_alone(tones, tmp_path):
    ds_path, cache = tones
    out = tmp_path / "m"
    cmd, env = _cli("--set", "train.epochs=1", "train", str(ds_path), "--out", str(out), cache=cache, cwd=tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

    def run():
        return subprocess.run(torchrun + cmd[1:], env={**env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    first = run()
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    again = run()  # its own unchanged model: replaced, by one rank
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert (again.stdout + again.stderr).count("replacing the model in") == 1
    assert load_model(out)[1]["training_data"]["files"] == 12
    (out / "notes.txt").write_text("mine\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = run()  # every rank stops, none writes
    assert refused.returncode != 0
    assert "notes.txt was not written by the pipeline" in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


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


def test_random_gain_shifts_each_chunk_as_a_louder_or_quieter_recording():
    """train.gain_db: a chunk's logmel frames move as the features of the same audio g dB louder
    do (computed, not assumed); digital silence stays at the floor; per-chunk draws, seeded."""
    from pipeline.config import FeaturesConfig, TrainConfig
    from pipeline.features import spectrogram
    from pipeline.train import random_gain

    fc = FeaturesConfig(kind="logmel", n_mels=32)
    rng = np.random.default_rng(0)
    y = np.concatenate([np.zeros(3200), 0.05 * rng.standard_normal(16000)]).astype(np.float32)
    quiet = torch.from_numpy(spectrogram(y, sr=16000, cfg=fc))
    loud = torch.from_numpy(spectrogram(y * 10 ** (7.0 / 20), sr=16000, cfg=fc))
    floor = 10 * np.log10(fc.amin)
    audible = quiet > floor + 1e-3
    assert bool(audible.any()) and bool((~audible).any())  # the leading zeros sit at the floor
    assert torch.allclose(loud[audible], quiet[audible] + 7.0, atol=1e-3)
    x = quiet.expand(64, -1, -1).clone()
    torch.manual_seed(3)
    z = random_gain(x, 10.0, fc)
    shift = (z - x)[:, audible]  # (B, audible values)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-4)  # one gain per chunk
    g = shift[:, 0]
    assert float(g.abs().max()) <= 10.0 and len(set(g.round(decimals=3).tolist())) > 32
    assert float(g.min()) < -5 and float(g.max()) > 5
    assert torch.equal(z[:, ~audible], x[:, ~audible])  # silence is not moved by a gain
    assert float(z.min()) >= floor - 1e-4
    torch.manual_seed(3)
    assert torch.equal(random_gain(x, 10.0, fc), z)
    with pytest.raises(ParameterError, match="log features"):
        random_gain(x, 10.0, FeaturesConfig(kind="mel"))
    with pytest.raises(ParameterError, match="gain_db"):
        TrainConfig(gain_db=-1)


def test_training_with_random_gain_still_learns(tones, tmp_path):
    torch.set_num_threads(1)
    best, entry = train_small(tones, tmp_path, "train.gain_db=10")
    assert best["valid_f1"] > chance_f1(entry) + 0.1, best
    assert load_model(tmp_path / "model")[1]["train"]["gain_db"] == 10


def test_training_hears_each_file_at_the_runs_input_level(tones, tmp_path):
    """predict.level_db in a run: training hears every file at that level, as predict will, so a
    copy of the dataset played 12 dB louder trains the same model (the same losses, step by step)."""
    torch.set_num_threads(1)
    ds_path, cache = tones
    louder = tmp_path / "louder"
    louder.mkdir()
    for wav in sorted(ds_path.glob("*.wav")):
        y, sr = sf.read(wav, dtype="float32")
        sf.write(louder / wav.name, y * np.float32(10 ** (12 / 20)), sr, subtype="FLOAT")
        shutil.copy(wav.with_suffix(".tsv"), louder / wav.with_suffix(".tsv").name)
    as_is, _ = train_small(tones, tmp_path / "a", "predict.level_db=-20", "predict.level_range_db=40", epochs=3)
    loud, _ = train_small((louder, cache), tmp_path / "b", "predict.level_db=-20", "predict.level_range_db=40", epochs=3)
    plain, _ = train_small((louder, cache), tmp_path / "c", epochs=3)
    assert as_is["valid_loss"] == pytest.approx(loud["valid_loss"], rel=1e-3), (as_is, loud)
    assert abs(plain["valid_loss"] - loud["valid_loss"]) > 1e-3  # without it the level is heard
    assert load_model(tmp_path / "b" / "model")[1]["predict"]["level_db"] == -20


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


# ------------------------------------------------------------------ --out: what train may overwrite


_main = cli_exit  # python -m pipeline ARGS in this process -> exit code


def _train_cli(tones, out, *extra, epochs=1):
    ds_path, cache = tones
    sets = [a for s in SMALL + [f"train.epochs={epochs}"] for a in ("--set", s)]
    return _main("--cache-dir", cache, *sets, "train", ds_path, "--out", out, *extra)


def _digests(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_train_refuses_a_directory_it_did_not_write(tones, tmp_path, capsys):
    torch.set_num_threads(1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "own model"}\n')
    (mine / "history.csv").write_text("epoch,loss\n1,0.5\n")
    before = _digests(mine)
    capsys.readouterr()
    assert _train_cli(tones, mine) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"Error: --out {mine}: exists and config.json was not written")
    assert "choose another --out" in err[0]
    assert _digests(mine) == before  # not one byte written, not even the record
    # the library refuses too, before any epoch
    cfg, _, _ = build_config(None, SMALL)
    entry, _ = ensure_chunks(load_dataset(tones[0]), cfg, Settings(cache_dir=str(tones[1])))
    with pytest.raises(ParameterError, match="was not written by the pipeline"):
        fit(entry, cfg, mine, log=lambda m: None)
    assert _digests(mine) == before


def test_train_replaces_its_own_unchanged_model_and_nothing_else(tones, tmp_path, capsys):
    torch.set_num_threads(1)
    from pipeline.train import record_outputs

    out = tmp_path / "m"
    assert _train_cli(tones, out, epochs=2) == 0
    if not (out / "model.onnx").exists():  # what the export at the end of fit adds, recorded alike
        (out / "model.onnx").write_bytes(b"onnx")
        record_outputs(out)
    capsys.readouterr()
    assert _train_cli(tones, out, epochs=1) == 0  # unchanged and ours: replaced
    assert "replacing the model in" in capsys.readouterr().out
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1"]
    assert not (out / "model.onnx").exists() or (out / "model.onnx").read_bytes() != b"onnx"  # no stale file
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    # a file the user changed: refused, also when only the record says so
    with open(out / "config.json", "a") as fh:
        fh.write(" ")
    before = _digests(out)
    capsys.readouterr()
    assert _train_cli(tones, out, epochs=2) == 2
    err = capsys.readouterr().err
    assert "config.json changed since the pipeline wrote it" in err and "--resume" in err
    assert _digests(out) == before
    # --resume continues the checkpoint in place, whatever else is there
    assert _train_cli(tones, out, "--resume", epochs=2) == 0
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1", "2"]
    assert _train_cli(tones, out, epochs=1) == 0  # rewritten by the pipeline: its own again


def test_train_out_that_cannot_be_written_is_one_line_exit_2(tones, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    assert _train_cli(tones, tmp_path / "file" / "m") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: --out {tmp_path / 'file' / 'm'}: cannot write there (Not a directory)"]
    if os.geteuid() != 0:  # root writes whatever the mode
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert _train_cli(tones, ro / "m") == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "cannot write there (Permission denied)" in err[0]
        finally:
            ro.chmod(0o755)


# ------------------------------------------------------------------ fine-tuning (train --init)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small trained tone model (8 clips of 5 s), its chunk cache, and new tone recordings."""
    from synth import train_tone_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("source")
    _, model = train_tone_model(root, SMALL + ["train.epochs=6"])
    new = tone_dataset(root / "new", n=8, seconds=5.0, seed=7)
    return model, new, root / "cache"


def _config(d: Path) -> dict:
    return json.loads((d / "config.json").read_text())


def _bare(src: Path, dst: Path) -> Path:
    """A folder of ``src``'s WAVs without their labels."""
    import shutil

    dst.mkdir()
    for wav in sorted(src.glob("*.wav")):
        shutil.copy(wav, dst / wav.name)
    return dst


def _before_first_step(model: Path, data: Path, cache: Path, sets: tuple[str, ...] = ()):
    """A fine-tune of ``model`` on ``data`` set up as ``train --init`` sets it up, before any step:
    ``(its network, the model's network, whether the output layer was kept, the dataset)``."""
    from pipeline.train import Dist, classifier_from_pretrained, match_classes, set_up, start_from

    explicit = {s.split("=", 1)[0]: "--set" for s in sets}
    start = start_from(model, build_config(None, list(sets))[0], explicit=explicit, log=lambda m: None)
    start = classifier_from_pretrained(start, load_dataset(data), explicit, log=lambda m: None)
    ds, kept = match_classes(load_dataset(data), start, log=lambda m: None)
    entry, _ = ensure_chunks(ds, start.cfg, Settings(cache_dir=str(cache)))
    t = set_up(entry, start.cfg, Dist(), lambda m: None, start)
    src, _ = load_model(model)
    return t.model, src, kept, ds


def test_fine_tune_starts_from_the_model_and_records_where(source, tmp_path, capsys):
    import hashlib

    torch.set_num_threads(1)
    model, new, cache = source
    capsys.readouterr()
    # the model's own settings: nothing repeated but the length of this run
    assert _main("--cache-dir", cache, "--set", "train.epochs=2", "train", new, "--init", model,
                 "--out", tmp_path / "ft") == 0
    out = capsys.readouterr().out
    assert "fine-tuning" in out and "learning rate 0.001 (its 0.01 x 0.1" in out and "epoch   0" in out
    sets = [a for s in SMALL + ["train.epochs=2"] for a in ("--set", s)]
    assert _main("--cache-dir", cache, *sets, "train", new, "--out", tmp_path / "scratch") == 0
    ft, scratch = (list(csv.DictReader(open(tmp_path / d / "history.csv"))) for d in ("ft", "scratch"))
    assert float(ft[0]["train_loss"]) < 0.5 * float(scratch[0]["train_loss"]), (ft[0], scratch[0])
    assert float(ft[0]["valid_loss"]) < float(scratch[0]["valid_loss"])
    src, got = _config(model), _config(tmp_path / "ft")
    for table in ("load", "features", "chunk", "model", "predict"):
        assert got[table] == src[table], table
    assert got["features"]["n_mels"] == 32 and got["train"]["lr"] == pytest.approx(src["train"]["lr"] / 10)
    assert got["init"] == {"directory": str(model), "weights": "model.safetensors",
                           "sha256": hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest(),
                           "classes": ["tone"], "output_layer": "kept", "lr": pytest.approx(0.001)}
    assert got["metrics"]["epoch"] in (1, 2) and got["dataset"] == str(new)
    # tune works on it as on any model, and keeps the origin
    assert _main("--cache-dir", cache, "tune", new, "--model", tmp_path / "ft", "--out", tmp_path / "tuned") == 0
    tuned = _config(tmp_path / "tuned")
    assert tuned["init"] == got["init"] and tuned["tuned_from"] == str(tmp_path / "ft")


def test_fine_tune_on_other_classes_replaces_the_output_layer(source, tmp_path):
    import pipeline
    from pipeline.train import match_classes, start_from

    torch.set_num_threads(1)
    model, _, cache = source
    beeps = tone_dataset(tmp_path / "beeps", n=6, seconds=5.0, seed=11, label="beep")
    lines: list[str] = []
    best = pipeline.fine_tune(beeps, model, tmp_path / "ft", sets=["train.epochs=1"], cache_dir=cache,
                              log=lines.append)
    warned = [m for m in lines if "output layer is replaced" in m]
    assert len(warned) == 1 and warned[0].startswith("WARNING:") and "['beep']" in warned[0] and "['tone']" in warned[0]
    got = _config(tmp_path / "ft")
    assert got["classes"] == ["beep"] and got["init"]["output_layer"] == "replaced" and best["epoch"] in (0, 1)
    # before any step: every weight and the normalisation from the model, the output layer new
    net, src, kept, _ = _before_first_step(model, beeps, cache)
    assert not kept
    for k, v in src.state_dict().items():
        same = torch.equal(net.state_dict()[k], v)
        assert same != k.startswith("head."), k
    # the same classes in the model's order keep it
    start = start_from(model, build_config(None)[0], log=lambda m: None)
    tones_ds, kept = match_classes(load_dataset(source[1]), start, log=lambda m: None)
    assert kept and tones_ds.classes == ("tone",)


def test_fine_tune_with_a_new_class_keeps_the_shared_class_outputs(source, tmp_path):
    """A speech model grown into speech + music: the shared class's outputs start as the model's
    own (the same scores before any step), the new class's are new, and config.json says which."""
    import pipeline

    torch.set_num_threads(1)
    model, _, cache = source
    both = tone_dataset(tmp_path / "both", n=6, seconds=5.0, seed=12)
    for i, tsv in enumerate(sorted(both.glob("*.tsv"))):  # a second class over half the clips, listed first
        head, *rows = tsv.read_text().splitlines()
        hum = ["0.000\t5.000\thum"] if i % 2 else []
        tsv.write_text("\n".join([head] + hum + rows) + "\n")
    lines: list[str] = []
    pipeline.fine_tune(both, model, tmp_path / "ft", sets=["train.epochs=1"], cache_dir=cache, log=lines.append)
    warned = [m for m in lines if "output layer is replaced" in m]
    assert len(warned) == 1 and "['tone'] keep their weights, ['hum'] start new" in warned[0], warned
    got = _config(tmp_path / "ft")
    assert got["classes"] == ["tone", "hum"], got["classes"]
    assert got["init"]["output_layer"] == "replaced" and got["init"]["outputs_kept"] == ["tone"]
    # before any step: the tone output is the model's (to float rounding)
    net, src, kept, ds = _before_first_step(model, both, cache)
    assert not kept and ds.classes == ("tone", "hum")
    x = torch.randn(2, 48, src.n_features) * 3
    net.eval(), src.eval()
    with torch.no_grad():
        new_out, old_out = net(x)[0], src(x)[0]
    assert new_out.shape[-1] == 2 and old_out.shape[-1] == 1
    torch.testing.assert_close(new_out[..., 0], old_out[..., 0], rtol=1e-5, atol=1e-5)  # one matmul wider
    assert not torch.allclose(new_out[..., 1], old_out[..., 0], atol=1e-3)


def test_fine_tune_widens_the_network_and_starts_from_what_it_computed(source, tmp_path):
    """--set model.hidden=40 on a 24-unit model: the wider network computes the model's scores
    before any step (the new units' outgoing weights are zero), trains, and config.json says so."""
    import pipeline

    torch.set_num_threads(1)
    model, new, cache = source
    lines: list[str] = []
    pipeline.fine_tune(new, model, tmp_path / "ft", sets=["train.epochs=1", "model.hidden=40"], cache_dir=cache,
                       log=lines.append)
    got = _config(tmp_path / "ft")
    assert got["model"]["hidden"] == 40 and got["init"]["widened"] == {"hidden": [24, 40]}
    assert got["init"]["output_layer"] == "kept"
    wide, _ = load_model(tmp_path / "ft")
    assert wide.rnn.hidden_size == 40
    # before any step: the same scores as the 24-unit model, though the new units are active
    net, src, kept, _ = _before_first_step(model, new, cache, ("model.hidden=40",))
    assert kept
    x = torch.randn(2, 48, src.n_features) * 3
    net.eval(), src.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], src(x)[0], rtol=1e-5, atol=1e-5)
        h, _ = net.rnn(net.normalize(x))
    assert h[..., 24:40].abs().mean() > 1e-3  # the new units run (and so get gradients) from the start
    assert torch.count_nonzero(net.head.weight[:, 24:40]) == 0


@pytest.mark.parametrize("setting", ["features.n_mels=64", "features.hop_length=320", "model.hidden=16",
                                     "model.cell=lstm", "model.conv_channels=4"])
def test_fine_tune_refuses_settings_the_network_cannot_take(source, tmp_path, capsys, setting):
    model, new, cache = source
    capsys.readouterr()
    assert _main("--cache-dir", cache, "--set", setting, "train", new, "--init", model, "--out", tmp_path / "ft") == 2
    err = capsys.readouterr().err.strip().splitlines()
    name = setting.split("=")[0]
    assert len(err) == 1 and err[0].startswith(f"Error: --set {name}=") and f"was trained with {name}=" in err[0], err
    assert not (tmp_path / "ft").exists()  # nothing trained, nothing written


def test_fine_tune_keeps_the_start_when_no_epoch_improves(source, tmp_path):
    import pipeline
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    model, new, cache = source
    lines: list[str] = []
    best = pipeline.fine_tune(new, model, tmp_path / "ft", sets=["train.lr=1e-12", "train.epochs=2",
                                                                 "train.patience=1"], cache_dir=cache, log=lines.append)
    assert best["epoch"] == 0 and any("no epoch improved" in m for m in lines), lines
    a, b = load_file(model / "model.safetensors"), load_file(tmp_path / "ft" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _config(tmp_path / "ft")["metrics"]["epoch"] == 0


def test_fine_tune_into_the_starting_model_is_refused(source, capsys):
    model, new, cache = source
    before = _digests(model)
    capsys.readouterr()
    assert _main("--cache-dir", cache, "train", new, "--init", model, "--out", model) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the --init model itself" in err[0]
    assert _digests(model) == before


def test_a_failed_export_keeps_the_trained_model(tones, tmp_path, capsys, monkeypatch):
    """The export at the end of training refused (here: the graph check made impossible to pass):
    a warning naming the way out, the torch model kept and recorded, exit 0."""
    torch.set_num_threads(1)
    import pipeline.export

    monkeypatch.setattr(pipeline.export, "TOLERANCE", -1.0)
    out = tmp_path / "m"
    capsys.readouterr()
    assert _train_cli(tones, out, epochs=1) == 0
    text = "".join(capsys.readouterr())
    warning = [line for line in text.splitlines() if "model.onnx not written" in line]
    assert len(warning) == 1 and warning[0].endswith(f"run python -m pipeline export {out}"), text
    assert "differs from torch" in warning[0]
    assert not (out / "model.onnx").exists()
    _, config = load_model(out)
    assert set(config["sha256"]) == {"model.safetensors"}
    monkeypatch.undo()
    assert _train_cli(tones, out, epochs=1) == 0  # recorded as the pipeline's: replaced, now exported
    assert (out / "model.onnx").is_file()


# ------------------------------------------------------------------ distillation (train --teacher)


def _relabelled(src: Path, dst: Path, shift: float = 1.0) -> Path:
    """The same recordings as ``src`` with every event moved ``shift`` s later: other labels."""
    import shutil

    dst.mkdir()
    for wav in sorted(src.glob("*.wav")):
        shutil.copy(wav, dst / wav.name)
        rows = (src / f"{wav.stem}.tsv").read_text().splitlines()
        moved = [f"{float(a) + shift:.3f}\t{float(b) + shift:.3f}\t{c}" for a, b, c in (r.split("\t") for r in rows[1:])]
        (dst / f"{wav.stem}.tsv").write_text("\n".join(rows[:1] + moved) + "\n")
    return dst


def test_distillation_targets_mix_the_teachers_probabilities(source):
    from pipeline.train import _tensors, teacher_from

    model, new, cache = source
    cfg, _, _ = build_config(None, SMALL)
    entry, _ = ensure_chunks(load_dataset(new), cfg, Settings(cache_dir=str(cache)))
    teacher = teacher_from(model, cfg, ["tone"])
    assert teacher.rows == [0] and not teacher.model.training
    assert not any(p.requires_grad for p in teacher.model.parameters())
    x, y, m = _tensors(entry.arrays, np.arange(4), teacher.model, "cpu")
    with torch.no_grad():
        p = torch.sigmoid(teacher.model(x)[0])
    assert torch.equal(teacher.targets(x, y, m, 0.0), y)
    assert torch.allclose(teacher.targets(x, y, m, 1.0), p)
    assert torch.allclose(teacher.targets(x, y, m, 0.25), 0.75 * y + 0.25 * p)
    # the teacher knows the tones: its probabilities are far from 0.5 and mostly agree with the labels
    agree = ((p > 0.5) == (y > 0.5))[m].float().mean().item()
    assert agree > 0.9, agree


def test_training_with_a_teacher_learns_from_it_and_records_it(source, tmp_path, capsys):
    import hashlib

    torch.set_num_threads(1)
    model, new, cache = source
    other = _relabelled(new, tmp_path / "moved")
    sets = [a for s in SMALL + ["train.epochs=1"] for a in ("--set", s)]

    def run(data, out, *extra):
        assert _main("--cache-dir", cache, *sets, *extra, "train", data, "--out", tmp_path / out,
                     "--teacher", model) == 0
        return {k: v for k, v in load_model(tmp_path / out)[0].state_dict().items()}

    capsys.readouterr()
    # with the teacher's weight 1 the labels do not matter: other labels, the same network
    a = run(new, "a", "--set", "train.distill=1.0")
    assert "targets 0 x labels + 1 x" in capsys.readouterr().out
    b = run(other, "b", "--set", "train.distill=1.0")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # with half the weight they do
    c = run(new, "c")
    d = run(other, "d")
    assert not all(torch.equal(c[k], d[k]) for k in c)
    got = _config(tmp_path / "c")
    assert got["teacher"] == {"directory": str(model), "classes": ["tone"], "distill": 0.5, "validation": "labels",
                              "sha256": hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()}
    assert got["train"]["distill"] == 0.5
    # the Python API passes it on: a fine-tune of the model taught by itself
    import pipeline

    pipeline.fine_tune(new, model, tmp_path / "self", sets=["train.epochs=1", "train.distill=0.2"],
                       cache_dir=cache, log=lambda m: None, teacher=model)
    assert _config(tmp_path / "self")["teacher"]["distill"] == 0.2
    assert _config(tmp_path / "self")["init"]["directory"] == str(model)
    # a run without a teacher records neither
    assert _main("--cache-dir", cache, *sets, "train", new, "--out", tmp_path / "plain") == 0
    plain = _config(tmp_path / "plain")
    assert "teacher" not in plain and "distill" not in plain["train"]


@pytest.mark.parametrize("case", ["features", "class", "no_teacher", "weight", "out_is_teacher"])
def test_distillation_refuses_what_cannot_teach(source, tmp_path, capsys, case):
    model, new, cache = source
    before = _digests(model)
    data, out, args = new, tmp_path / "st", ["--teacher", model]
    sets = [a for s in SMALL + ["train.epochs=1"] for a in ("--set", s)]
    if case == "features":
        sets += ["--set", "features.n_mels=40"]
        want = "it reads other features than this run (features.n_mels=32 against 40)"
    elif case == "class":
        data = tone_dataset(tmp_path / "beeps", n=4, seconds=3.0, label="beep")
        want = "it has no output for class(es) ['beep']"
    elif case == "no_teacher":
        sets += ["--set", "train.distill=0.3"]
        args = []
        want = "train.distill is the teacher's weight in the targets: it needs --teacher DIR"
    elif case == "weight":
        sets += ["--set", "train.distill=1.5"]
        want = "train.distill=1.5 must be in [0, 1]"
    else:
        out = model
        want = "is the --teacher model itself"
    capsys.readouterr()
    assert _main("--cache-dir", cache, *sets, "train", data, "--out", out, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and want in err[0], err
    assert _digests(model) == before
    if out != model:
        assert not out.exists()  # nothing trained, nothing written


def test_a_teacher_alone_trains_on_unlabelled_audio_and_validates_against_itself(source, tmp_path, capsys):
    """A folder of audio without labels: with train.distill=1 the teacher gives every target, the
    classes are its own (or the --init model's), and early stopping follows the student's distance
    to the teacher. The student learns the tones from the teacher alone."""
    torch.set_num_threads(1)
    model, new, cache = source
    bare = _bare(new, tmp_path / "bare")
    sets = [a for s in SMALL + ["train.epochs=6"] for a in ("--set", s)]
    capsys.readouterr()
    # the labels' weight must be 0: nothing else is asked of unlabelled audio
    assert _main("--cache-dir", cache, *sets, "train", bare, "--out", tmp_path / "half", "--teacher", model) == 2
    err = capsys.readouterr().err
    assert "no labelled events; with --teacher, --set train.distill=1" in err and not (tmp_path / "half").exists()
    assert _main("--cache-dir", cache, *sets, "train", bare, "--out", tmp_path / "none") == 2
    assert "--teacher MODEL_DIR --set train.distill=1" in capsys.readouterr().err
    # from scratch, taught alone
    assert _main("--cache-dir", cache, *sets, "--set", "train.distill=1", "train", bare,
                 "--out", tmp_path / "st", "--teacher", model) == 0
    got = _config(tmp_path / "st")
    assert got["classes"] == ["tone"] and got["teacher"]["validation"] == "teacher"
    hist = list(csv.DictReader(open(tmp_path / "st" / "history.csv")))
    assert float(hist[-1]["valid_loss"]) < float(hist[0]["valid_loss"])
    # it learned the tones: scored on the labelled copy of the same audio, as any model is
    cfg, _, _ = build_config(None, SMALL)
    entry, _ = ensure_chunks(load_dataset(new), cfg, Settings(cache_dir=str(cache)))
    student, _ = load_model(tmp_path / "st")
    from pipeline.train import evaluate_chunks

    f1 = evaluate_chunks(student, entry.arrays, np.arange(len(entry.arrays["split"])), batch_size=8,
                         device="cpu")["valid_f1"]
    assert f1 > 0.8, f1
    # a labelled run keeps validating on the labels
    assert _main("--cache-dir", cache, *sets[:-2], "--set", "train.epochs=1", "train", new,
                 "--out", tmp_path / "lab", "--teacher", model) == 0
    assert _config(tmp_path / "lab")["teacher"]["validation"] == "labels"


# ------------------------------------------------------------------ masked-frame pretraining


def test_hidden_spans_cover_about_the_fraction_in_whole_spans():
    from pipeline.config import ModelConfig
    from pipeline.nets import FrameModel, hide_spans
    from pipeline.train import hidden_frames

    valid = torch.ones(64, 400, dtype=torch.bool)
    valid[:8, 300:] = False  # padded chunks
    g = torch.Generator().manual_seed(1)
    hidden = hide_spans(valid, 0.3, 10, g)
    assert not (hidden & ~valid).any()
    share = float(hidden.sum() / valid.sum())
    assert 0.2 < share <= 0.31, share
    for row, ok in zip(hidden.numpy(), valid.numpy()):  # every run of hidden frames is whole spans
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            assert b - a >= 10 or b == ok.sum(), (a, b)
    again = hide_spans(valid, 0.3, 10, torch.Generator().manual_seed(1))
    assert torch.equal(hidden, again)  # the same seed, the same spans
    assert not hide_spans(torch.zeros(2, 50, dtype=torch.bool), 0.3, 10).any()
    # a network that steps over 3 frames has whole steps hidden
    cfg = ModelConfig(task="masked", bidirectional=True, stack=3, hidden=8)
    model = FrameModel(cfg, n_features=16, n_outputs=1)
    m = torch.ones(4, 301, dtype=torch.bool)
    h = hidden_frames(model, m, (0.3, 10), torch.Generator().manual_seed(0))
    steps = torch.cat([h, h.new_zeros(4, 2)], 1).reshape(4, -1, 3)
    assert (steps.all(-1) | ~steps.any(-1))[:, :-1].all() and 0.15 < float(h.float().mean()) < 0.32


def test_masked_loss_counts_only_the_hidden_frames():
    from pipeline.config import ModelConfig
    from pipeline.nets import FrameModel

    model = FrameModel(ModelConfig(task="masked", bidirectional=True, hidden=8), n_features=6, n_outputs=3)
    assert model.n_outputs == 6 and model.head.out_features == 6
    model.set_normalization(np.full(6, 1.0), np.full(6, 2.0))
    x = torch.randn(2, 20, 6)
    hidden = torch.zeros(2, 20, dtype=torch.bool)
    hidden[:, 5:9] = True
    exact = model.normalize(x)
    assert float(model.loss(exact, x, hidden)) == 0.0
    off = exact.clone()
    off[:, 12:] += 5.0  # wrong where nothing was hidden: not counted
    assert float(model.loss(off, x, hidden)) == 0.0
    off[:, 6] += 1.0  # wrong by 1 on 1 of the 4 hidden frames
    assert float(model.loss(off, x, hidden)) == pytest.approx(0.25)
    with pytest.raises(ParameterError, match="model.delay=2 needs"):
        ModelConfig(task="masked", delay=2)
    for bad in ("train.mask_fraction=1.0", "train.mask_fraction=0", "train.mask_span=0"):
        with pytest.raises(ParameterError, match=bad.split("=")[0]):
            build_config(None, [bad])


PRE = ["model.bidirectional=true", "model.stack=3", "model.conv_channels=4"]


def test_masked_pretraining_on_bare_audio_then_a_classifier_from_it(source, tmp_path, capsys):
    """Pretraining on audio without labels (model.task=masked) rebuilds hidden frames better than
    the mean frame; it scores nothing itself and says so; train --init on labelled audio makes
    it a classifier whose body starts from the pretrained weights."""
    from pipeline.train import start_from

    torch.set_num_threads(1)
    _, new, cache = source
    bare = _bare(new, tmp_path / "bare")
    sets = [a for s in SMALL + PRE + ["train.epochs=6", "model.task=masked", "train.mask_span=6"]
            for a in ("--set", s)]
    capsys.readouterr()
    assert _main("--cache-dir", cache, *sets, "train", bare, "--out", tmp_path / "pre") == 0
    out = capsys.readouterr().out
    assert "masked-frame (pretraining) model" in out and "mean frame" in out
    got = _config(tmp_path / "pre")
    assert got["model"]["task"] == "masked" and got["n_outputs"] == 32
    assert got["train"]["mask_fraction"] == 0.3 and got["train"]["mask_span"] == 6
    assert not (tmp_path / "pre" / "model.onnx").exists()
    hist = list(csv.DictReader(open(tmp_path / "pre" / "history.csv")))
    # white noise between the tones cannot be rebuilt, the tones can: below the mean frame's loss
    assert float(hist[-1]["valid_loss"]) < float(hist[-1]["valid_mean_frame_l1"]) - 0.01, hist[-1]
    assert float(hist[-1]["valid_loss"]) < float(hist[0]["valid_loss"])
    # it scores nothing: predict says what to do instead, and writes nothing
    assert _main("--cache-dir", cache, "predict", bare, "--model", tmp_path / "pre", "--out", tmp_path / "p") == 2
    err = capsys.readouterr().err
    assert "masked-frame (pretraining) model" in err and "--init" in err and not (tmp_path / "p").exists()
    assert _main("export", tmp_path / "pre") == 2
    assert "has no ONNX graph" in capsys.readouterr().err and not (tmp_path / "pre" / "model.onnx").exists()
    # a classifier from it: the body's weights as pretrained, a new head, the pretraining's learning rate
    start = start_from(tmp_path / "pre", build_config(None, [])[0], explicit={}, log=lambda m: None)
    assert start.cfg.train.lr == pytest.approx(0.01)
    net, pre, kept, _ = _before_first_step(tmp_path / "pre", new, cache)
    assert net.cfg.task == "classify" and not kept
    body = {k: v for k, v in pre.state_dict().items() if not k.startswith("head.")}
    assert body and all(torch.equal(net.state_dict()[k], v) for k, v in body.items())
    assert net.head.out_features == 3  # one class, three frames per step
    assert _main("--cache-dir", cache, "--set", "train.epochs=6", "train", new, "--init", tmp_path / "pre",
                 "--out", tmp_path / "cls") == 0
    out = capsys.readouterr().out
    assert "training a classifier of ['tone'] from it" in out
    got = _config(tmp_path / "cls")
    assert got["model"]["task"] == "classify" and got["init"]["task"] == "masked"
    assert got["init"]["output_layer"] == "replaced" and "mask_span" not in got["train"]
    assert got["metrics"]["valid_f1"] > 0.85, got["metrics"]
    assert (tmp_path / "cls" / "model.onnx").is_file()
    # on bare audio the pretraining goes on; a teacher cannot teach a masked run; a classifier
    # never becomes a masked-frame model
    assert _main("--cache-dir", cache, "--set", "train.epochs=1", "train", bare, "--init", tmp_path / "pre",
                 "--out", tmp_path / "more") == 0
    assert _config(tmp_path / "more")["model"]["task"] == "masked"
    assert _main("--cache-dir", cache, *sets, "--set", "train.distill=1", "train", bare, "--out", tmp_path / "t",
                 "--teacher", tmp_path / "cls") == 2
    assert "this run's model.task is 'masked'" in capsys.readouterr().err
    assert _main("--cache-dir", cache, "--set", "model.task=masked", "train", bare, "--init", tmp_path / "cls",
                 "--out", tmp_path / "back") == 2
    assert "model.task='masked'" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in ("t", "back"))
