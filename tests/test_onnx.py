"""ONNX export and the ONNX Runtime engine: the graph equals torch at every batch and time shape,
both engines give the same scores and segments (the shipped models, streaming included), and
inference from ``model.onnx`` never imports torch, nor needs it installed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.config import ModelConfig, PredictConfig, build_config
from pipeline.engine import OnnxNetwork, TorchNetwork, as_network, stream_chunks
from pipeline.errors import ModelError, ParameterError
from pipeline.export import check_graph, export_onnx
from pipeline.modeldir import ONNX_FILE, read_model_config
from pipeline.nets import FrameModel, load_model, save_model
from pipeline.predict import score_files
from synth import cli_exit

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
SPEECH_V1 = ROOT.parent / "shared" / "benchmarks" / "speech-v1"
SHIPPED = ["vad", "vad-stream", "speech-music"]
N_FEATURES = 16
KINDS = {  # the graphs' traps: stack padding, conv context, look-ahead, LSTM's (h, c), forecast
    "bi-gru-conv-stack3": dict(bidirectional=True, conv_channels=4, stack=3),
    "bi-lstm": dict(bidirectional=True, cell="lstm"),
    "gru-conv-delay5": dict(conv_channels=4, delay=5),
    "lstm-conv": dict(cell="lstm", conv_channels=2),
    "rnn": dict(cell="rnn", layers=1),
    "forecast-conv": dict(task="forecast", conv_channels=2),
}


def _exported(directory: Path, seed: int = 0, **cfg) -> tuple[FrameModel, Path]:
    torch.manual_seed(seed)
    model = FrameModel(ModelConfig(hidden=12, layers=cfg.pop("layers", 2), **cfg), n_features=N_FEATURES,
                       n_outputs=2)
    rng = np.random.default_rng(seed)
    model.set_normalization(rng.normal(-40, 5, N_FEATURES), rng.uniform(5, 15, N_FEATURES))
    save_model(model, directory, {"classes": ["a", "b"]})
    export_onnx(directory)
    return model.eval(), directory


def _feats(lengths, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(-40, 10, (n, N_FEATURES)).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("kind", KINDS)
def test_graph_equals_torch_at_every_batch_and_time_shape(tmp_path, kind):
    model, d = _exported(tmp_path / kind, **KINDS[kind])
    # the example was (2, 37): one frame, a prime length, a 65-item batch (an unrolled front end
    # returned 64 rows), a length past the stack and past 1000
    worst = check_graph(model, d / ONNX_FILE, shapes=((1, 1), (1, 2), (5, 7), (65, 40), (2, 1001)))
    assert worst < 1e-4
    record = read_model_config(d)
    assert set(record["sha256"]) == {"model.safetensors", ONNX_FILE}


@pytest.mark.parametrize("kind", KINDS)
def test_engines_agree_stateful_and_overlapping(tmp_path, kind):
    model, d = _exported(tmp_path / kind, **KINDS[kind])
    cfg = ModelConfig(hidden=12, layers=KINDS[kind].get("layers", 2),
                      **{k: v for k, v in KINDS[kind].items() if k != "layers"})
    onnx = OnnxNetwork(d, read_model_config(d), cfg)
    feats = _feats([1, 37, 250, 1301])
    for stateful in (True, False):  # a bidirectional model always runs on overlapping chunks
        pcfg = PredictConfig(chunk_duration=0.5, chunk_step=0.2, stateful=stateful)
        want = score_files(model, feats, fps=100.0, pcfg=pcfg)
        got = score_files(onnx, feats, fps=100.0, pcfg=pcfg)
        for w, g, S in zip(want, got, feats):
            assert g.shape == w.shape == (len(S), 1 if cfg.task == "forecast" else 2)
            assert np.abs(g - w).max() < 1e-4


def test_a_65_chunk_call_returns_65_rows(tmp_path):
    model, d = _exported(tmp_path / "m", bidirectional=True, conv_channels=4, stack=3)
    onnx = OnnxNetwork(d, read_model_config(d), model.cfg)
    onnx.call_frames = 10**9  # one call, the whole batch through the front end at once
    x = _feats([50] * 65)
    got = onnx.whole(np.stack(x))
    with torch.no_grad():
        want = torch.sigmoid(model(torch.from_numpy(np.stack(x)))[0]).numpy()
    assert got.shape == want.shape == (65, 50, 2) and np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_step_graph_streams_in_any_chunk_length(tmp_path, chunk):
    model, d = _exported(tmp_path / "m", conv_channels=4, delay=5)
    onnx = OnnxNetwork(d, read_model_config(d), model.cfg)
    x = np.stack(_feats([303, 303]))
    got = np.concatenate(list(stream_chunks(onnx, (x[:, s: s + chunk] for s in range(0, 303, chunk)))), axis=1)
    want = TorchNetwork(model).whole(x)
    assert got.shape == want.shape == (2, 303, 2) and np.abs(got - want).max() < 1e-4


def test_export_leaves_the_model_in_its_mode_and_refuses_a_changed_graph(tmp_path):
    from pipeline.export import export_graph

    model, d = _exported(tmp_path / "m", conv_channels=2, dropout=0.5)
    model.train()
    export_graph(model, tmp_path / "again.onnx")
    assert model.training and model.rnn.training  # dropout stays on for a model being trained
    model.eval()
    assert check_graph(model, tmp_path / "again.onnx") < 1e-4  # and none in the graph
    graph = bytearray((d / ONNX_FILE).read_bytes())
    graph[len(graph) // 2] ^= 0xFF
    (d / ONNX_FILE).write_bytes(bytes(graph))
    with pytest.raises(ModelError, match="model.onnx: sha256 .* does not match"):
        OnnxNetwork(d, read_model_config(d), model.cfg)
    save_model(model, d, {"classes": ["a", "b"]})  # new weights: the old graph goes with its hash
    assert not (d / ONNX_FILE).exists() and ONNX_FILE not in read_model_config(d)["sha256"]


# ------------------------------------------------------------------ the shipped models


def _rows(segs) -> list[str]:
    return [f"{s.onset:.3f}\t{s.offset:.3f}\t{s.label}" for s in segs]


def _both_engines(model_dir: Path, files: list[Path], stream: bool) -> None:
    """Scores within 1e-4 and identical segments from both engines; for a streaming model also
    ``stream``'s segments (ONNX Runtime, blocks of 997 samples) equal to predict's."""
    import pipeline
    from pipeline.stream import open_streamer

    onnx, ref = pipeline.load_model(model_dir, engine="onnx"), pipeline.load_model(model_dir, engine="torch")
    assert isinstance(as_network(onnx._scoring.model), OnnxNetwork)
    assert isinstance(as_network(ref._scoring.model), TorchNetwork)
    streamer = open_streamer(model_dir, build_config(None, [])[0], engine="onnx") if stream else None
    n_segments = 0
    for path in files:
        got, want = onnx.file_scores(path), ref.file_scores(path)
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4, path
        segs = onnx.segments(path)
        assert segs == ref.segments(path), path
        n_segments += len(segs)
        if streamer is not None:
            y, sr = sf.read(path, dtype="float32", always_2d=True)
            y = y.mean(axis=1)
            streamed = streamer.segments((y[i: i + 997] for i in range(0, len(y), 997)), sr=sr)
            assert _rows(streamed) == _rows(segs), path
    assert n_segments > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_equal_on_the_samples(name):
    _both_engines(ROOT / "models" / name, sorted(SAMPLES.glob("*.flac")), stream=name == "vad-stream")


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_equal_on_speech_v1(name):
    if not SPEECH_V1.is_dir():
        pytest.skip(f"{SPEECH_V1} is not on this machine")
    files = sorted(SPEECH_V1.glob("*.flac"))
    assert len(files) >= 40
    _both_engines(ROOT / "models" / name, files, stream=name == "vad-stream")


# ------------------------------------------------------------------ without torch

_PROBE = """import io
import sys
{block}
from pipeline.cli import main
codes = []
for argv in {runs!r}:
    if argv and argv[0] == "stream":
        sys.stdin = io.TextIOWrapper(open({wav!r}, "rb"))
    try:
        main(argv)
        codes.append(0)
    except SystemExit as e:
        codes.append(e.code or 0)
import pipeline
import soundfile
m = pipeline.load_model({model!r})
y, sr = soundfile.read({sample!r}, dtype="float32")
print("api", len(m.segments({sample!r})), m.scores(y, sr).shape)
print("codes", codes)
print("torch", "torch" in sys.modules and sys.modules["torch"] is not None)
"""


def _probe(tmp_path, runs, *, block_torch: bool):
    sample = sorted(SAMPLES.glob("*.flac"))[1]
    y, sr = sf.read(sample, dtype="float32")
    wav = tmp_path / "a.wav"
    sf.write(wav, y, sr)
    code = _PROBE.format(block='sys.modules["torch"] = None  # as if not installed' if block_torch else "",
                         runs=runs, wav=str(wav), model=str(ROOT / "models" / "vad"), sample=str(sample))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_inference_from_model_onnx_never_imports_torch(tmp_path):
    c = ["--cache-dir", str(tmp_path / "c")]
    (tmp_path / "run.toml").write_text(
        f'[run]\ninputs = "{SAMPLES}"\nmodel = "{ROOT / "models" / "vad"}"\nout = "{tmp_path / "run"}"\n'
        f'ref = "{SAMPLES}"\nplot = false\n')
    runs = [[*c, "predict", str(SAMPLES), "--model", str(ROOT / "models" / "vad"), "--out", str(tmp_path / "o")],
            [*c, "predict", str(SAMPLES), "--model", str(ROOT / "models" / "vad-stream"), "--out",
             str(tmp_path / "o2")],
            [*c, "evaluate", "--pred", str(tmp_path / "o"), "--ref", str(SAMPLES)],
            [*c, "plot", str(SAMPLES / "music_clip_00012.flac"), "--model", "vad", "--out", str(tmp_path / "p")],
            [*c, "tune", str(SAMPLES), "--model", str(ROOT / "models" / "vad-stream"), "--out", str(tmp_path / "t")],
            ["stream", "--model", str(ROOT / "models" / "vad-stream")],
            [*c, "--config", str(tmp_path / "run.toml"), "run"]]
    r = _probe(tmp_path, runs, block_torch=False)
    assert r.returncode == 0, r.stderr
    assert "codes [0, 0, 0, 0, 0, 0, 0]" in r.stdout and "torch False" in r.stdout, r.stdout + r.stderr
    assert any((tmp_path / "o").glob("*.tsv")) and (tmp_path / "t" / ONNX_FILE).is_file()
    assert (tmp_path / "p" / "music_clip_00012.png").is_file()


def test_without_torch_inference_works_and_torch_commands_name_the_extra(tmp_path):
    c = ["--cache-dir", str(tmp_path / "c")]
    bare = tmp_path / "bare"  # a model without model.onnx
    import shutil

    shutil.copytree(ROOT / "models" / "vad", bare)
    (bare / ONNX_FILE).unlink()
    out = [*c, "predict", str(SAMPLES), "--out", str(tmp_path / "o"), "--model"]
    runs = [[*out, str(ROOT / "models" / "vad")],
            ["--engine", "torch", *out, str(ROOT / "models" / "vad")],
            ["--device", "cuda", *out, str(ROOT / "models" / "vad")],
            [*out, str(bare)],
            [*c, "train", str(SAMPLES), "--out", str(tmp_path / "m")],
            [*c, "export", str(bare)]]
    r = _probe(tmp_path, runs, block_torch=True)
    assert r.returncode == 0, r.stderr
    assert "codes [0, 2, 2, 2, 2, 2]" in r.stdout and "torch False" in r.stdout, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 5 and all("pip install 'audio-seq-pipeline[train]'" in e for e in errors), r.stderr
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------ bench/gpu.py without a GPU


def test_gpu_bench_without_a_gpu_measures_nothing_and_compares_scores(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "bench"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu.main(["--hours", "0.01", "--files", "1"])
    assert "no CUDA device here: nothing measured" in capsys.readouterr().out
    for name, shift in (("a", 0.0), ("b", 3e-6)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "x.scores.npy", np.full((5, 1), 0.5 + shift, dtype=np.float32))
        np.save(tmp_path / name / "y.scores.npy", np.zeros((0, 1), dtype=np.float32))
    assert gpu.largest_difference(tmp_path / "a", tmp_path / "b", ["x", "y"]) == pytest.approx(3e-6, rel=1e-2)
    np.save(tmp_path / "b" / "x.scores.npy", np.zeros((4, 1), dtype=np.float32))
    with pytest.raises(SystemExit, match="shape"):
        gpu.largest_difference(tmp_path / "a", tmp_path / "b", ["x"])


def test_engine_choice(tmp_path):
    from pipeline.engine import choose_engine

    vad = ROOT / "models" / "vad"
    assert choose_engine(vad) == "onnx" and choose_engine(vad, "torch") == "torch"
    assert choose_engine(vad, device="cuda") == "torch"  # a GPU runs torch unless --engine onnx
    (tmp_path / "config.json").write_text("{}")
    assert choose_engine(tmp_path) == "torch"  # no model.onnx
    with pytest.raises(ModelError, match="--engine onnx needs model.onnx .*pipeline export"):
        choose_engine(tmp_path, "onnx")
    with pytest.raises(ParameterError, match="--engine 'tf' must be one of auto, onnx, torch"):
        choose_engine(vad, "tf")


_main = cli_exit  # python -m pipeline ARGS in this process -> exit code


def test_export_of_a_legacy_model_pt_directory_loads_on_both_engines(tmp_path):
    """A directory from before safetensors (model.pt, no hashes) is exported into one that loads:
    model.safetensors written from the same tensors, both it and model.onnx hashed."""
    torch.manual_seed(3)
    model = FrameModel(ModelConfig(hidden=12, layers=1, delay=2), n_features=N_FEATURES, n_outputs=2)
    rng = np.random.default_rng(3)
    model.set_normalization(rng.normal(-40, 5, N_FEATURES), rng.uniform(5, 15, N_FEATURES))
    save_model(model, tmp_path, {"classes": ["a", "b"]})
    config = json.loads((tmp_path / "config.json").read_text())
    del config["sha256"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").unlink()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "model.pt")
    export_onnx(tmp_path)
    assert set(read_model_config(tmp_path)["sha256"]) == {"model.safetensors", "model.onnx"}
    loaded, config = load_model(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    onnx = OnnxNetwork(tmp_path, config, loaded.cfg)
    assert np.array_equal(onnx.mean, model.mean.numpy()) and np.array_equal(onnx.std, model.std.numpy())
    x = _feats([60])[0][None]
    assert np.abs(onnx.whole(x) - TorchNetwork(model).whole(x)).max() < 1e-4


def test_export_refuses_a_shipped_name_and_an_unwritable_dir_in_one_line(tmp_path, capsys):
    shipped = ROOT / "pipeline" / "models" / "vad"
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    assert _main("export", "vad") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: export: vad is a shipped model"), err
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    _, d = _exported(tmp_path / "m")
    (d / "model.onnx").unlink()
    (d / "model.onnx").mkdir()  # a write that fails with an OS error, for root too
    assert _main("export", d) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: export {d}: cannot write there (Is a directory)"], err


def test_export_keeps_a_trained_directory_trains_own(tmp_path):
    """export rewrites config.json and model.onnx and records them, so train --out still takes
    the directory as the pipeline's (replace its model) instead of refusing it."""
    from pipeline.outputs import OutputDir
    from pipeline.train import claim_model_dir, record_outputs

    _, d = _exported(tmp_path / "m")
    record_outputs(d)
    export_onnx(d)
    assert OutputDir(d).foreign() is None
    claim_model_dir(d, resume=False, replace=False, log=lambda m: None)  # no error: still ours


def test_device_auto_is_resolved_for_the_api_on_either_engine():
    import pipeline
    from pipeline.engine import resolve_device

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == want and resolve_device("cpu") == "cpu"
    with pytest.raises(ParameterError, match="--device 'gpu' must be one of auto, cpu, cuda"):
        resolve_device("gpu")
    y = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    cpu = pipeline.load_model("vad").scores(y, 16000)
    for engine in ("auto", "onnx", "torch"):
        if engine == "onnx" and want == "cuda":
            continue  # onnxruntime without the CUDA provider: refused, as on the command line
        m = pipeline.load_model("vad", device="auto", engine=engine)
        assert m.settings.device == want
        assert np.abs(m.scores(y, 16000) - cpu).max() < 1e-4
