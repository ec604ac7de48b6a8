"""Prediction: exact streaming, overlap-add, batching, caching, output formats, bad files, tune."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import ModelConfig, PredictConfig
from pipeline.labels import read_labels
from pipeline.nets import FrameModel, load_model
from pipeline.predict import chunk_plan, score_files
from synth import train_tone_model

SMALL = ["chunk.frames=100", "chunk.hop=50", "model.hidden=16", "train.batch_size=8", "train.lr=0.01",
         "train.epochs=4", "features.n_mels=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pred")
    ds, model = train_tone_model(root, SMALL)
    return root, ds, model


def random_feats(lengths, n_bins=8, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, n_bins)).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stateful_streaming_equals_whole_file(cell):
    torch.manual_seed(0)
    model = FrameModel(ModelConfig(cell=cell, hidden=12, layers=2), n_features=8, n_outputs=2).eval()
    feats = random_feats([250, 97, 1])
    pcfg = PredictConfig(chunk_duration=0.37, chunk_step=0.2, stateful=True)  # 37-frame steps
    streamed = score_files(model, feats, fps=100.0, pcfg=pcfg)
    for S, got in zip(feats, streamed):
        with torch.no_grad():
            whole = torch.sigmoid(model(torch.from_numpy(S)[None])[0])[0].numpy()
        np.testing.assert_allclose(got, whole, atol=1e-5)


def test_overlap_add_of_constant_model_is_constant_everywhere():
    model = FrameModel(ModelConfig(cell="gru", hidden=8, layers=1, bidirectional=True), n_features=8,
                       n_outputs=1).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(0.3)
    const = 1 / (1 + np.exp(-0.3))
    for lengths, dur, step in [([250], 1.0, 0.3), ([101, 100, 99, 37, 130], 1.0, 0.45), ([1000], 0.8, 0.8)]:
        for window in ("hamming", "triangular"):
            pcfg = PredictConfig(chunk_duration=dur, chunk_step=step, window=window, stateful=False)
            for S, got in zip(random_feats(lengths), score_files(model, random_feats(lengths), fps=100.0, pcfg=pcfg)):
                assert got.shape == (len(S), 1)
                np.testing.assert_allclose(got, const, atol=1e-6)
    assert chunk_plan(250, frames=100, hop=30)[-1] == 150  # the last chunk ends at the last frame
    assert chunk_plan(120, frames=100, hop=30).tolist() == [0]  # barely longer than a chunk: one pass


@pytest.mark.parametrize("bidirectional", [False, True])
def test_batch_of_files_equals_each_alone(bidirectional):
    torch.manual_seed(1)
    model = FrameModel(ModelConfig(hidden=10, bidirectional=bidirectional), n_features=8, n_outputs=3).eval()
    feats = random_feats([300, 120, 45, 45, 260, 99], seed=2)  # two short ones of one length share a call
    pcfg = PredictConfig(chunk_duration=1.0, chunk_step=0.5, stateful=not bidirectional, batch_size=5)
    together = score_files(model, feats, fps=100.0, pcfg=pcfg)
    for S, got in zip(feats, together):
        alone = score_files(model, [S], fps=100.0, pcfg=pcfg)[0]
        np.testing.assert_allclose(got, alone, atol=1e-5)


def _wall(output: str, stage="predict") -> tuple[int, int, float]:
    m = re.search(stage + r": \d+ files: (\d+) computed, (\d+) cached, \d+ failed; .* in ([\d.]+) s", output)
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def test_rethreshold_reuses_cached_scores_and_formats_load(trained, tmp_path):
    root, ds, model = trained
    cache = str(tmp_path / "c")
    run = CliRunner()
    r1 = run.invoke(cli, ["--cache-dir", cache, "predict", str(ds), "--model", str(model), "--out", str(tmp_path / "o1"),
                          "--format", "rttm,audacity,json,npy"], catch_exceptions=False)
    assert r1.exit_code == 0, r1.output
    r2 = run.invoke(cli, ["--cache-dir", cache, "--set", "predict.threshold=0.8", "predict", str(ds), "--model",
                          str(model), "--out", str(tmp_path / "o2")], catch_exceptions=False)
    computed1, cached1, wall1 = _wall(r1.output)
    computed2, cached2, wall2 = _wall(r2.output)
    assert (computed1, cached1) == (8, 0) and (computed2, cached2) == (0, 8)
    assert len(list((tmp_path / "c" / "predict").glob("*/*"))) == 8  # the rethreshold stored nothing new
    # the formats in their usual readers' shapes
    tsv = (tmp_path / "o1" / "clip00.tsv").read_text().splitlines()
    assert tsv[0] == "onset\toffset\tevent_label"
    for line in (tmp_path / "o1" / "clip00.rttm").read_text().splitlines():
        f = line.split()
        assert len(f) == 10 and f[0] == "SPEAKER" and f[1] == "clip00" and float(f[4]) > 0 and f[7] == "tone"
    for line in (tmp_path / "o1" / "clip00.txt").read_text().splitlines():
        a, b, label = line.split("\t")
        assert float(a) < float(b) and label == "tone"
    assert read_labels(tmp_path / "o1" / "clip00.json") == read_labels(tmp_path / "o1" / "clip00.tsv", default_name="clip00")
    side = json.loads((tmp_path / "o1" / "clip00.scores.json").read_text())
    scores = np.load(tmp_path / "o1" / "clip00.scores.npy")
    assert side["fps"] == 100.0 and scores.shape == (side["n_frames"], 1) and scores.dtype == np.float32
    assert sum(1 for _ in (tmp_path / "o2").glob("*.tsv")) == 8


def test_folder_with_corrupt_file_and_mirrored_layout(trained, tmp_path):
    root, ds, model = trained
    inp = tmp_path / "in"
    shutil.copytree(ds, inp / "a" / "b")
    (inp / "a" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    r = CliRunner().invoke(cli, ["--cache-dir", str(tmp_path / "c"), "predict", str(inp), "--model", str(model),
                                 "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert r.exit_code == 1
    assert "broken.wav" in r.output and "8 computed" in r.output and "1 failed" in r.output
    assert len(list((tmp_path / "out" / "a" / "b").glob("*.tsv"))) == 8
    assert not (tmp_path / "out" / "a" / "broken.tsv").exists()


def test_contradicting_feature_setting_is_an_error(trained, tmp_path):
    root, ds, model = trained
    r = CliRunner().invoke(cli, ["--cache-dir", str(tmp_path / "c"), "--set", "features.n_mels=80", "predict", str(ds),
                                 "--model", str(model), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "features.n_mels=32" in str(r.exception or r.output)


def test_evaluate_perfect_and_missing(trained, tmp_path):
    root, ds, model = trained
    pred = tmp_path / "pred"
    pred.mkdir()
    for tsv in sorted(ds.glob("*.tsv"))[:-1]:  # the last clip gets no prediction
        shutil.copy(tsv, pred / tsv.name)
    r = CliRunner().invoke(cli, ["evaluate", "--pred", str(pred), "--ref", str(ds), "--json"], catch_exceptions=False)
    assert r.exit_code == 1  # a missing prediction is a failed input
    report = json.loads(r.output.split("\nFAILED missing")[0])
    assert report["missing"] == ["clip07.wav"]
    for name, per in report["per_file"].items():
        if name != "clip07.wav":
            assert per["frame"]["f1"] == 1.0 or per["overall"]["frame"]["f1"] == 1.0
    assert report["overall"]["frame"]["recall"] < 1.0  # the missing file's events count as missed


def test_tune_improves_or_keeps_and_records_history(trained, tmp_path):
    root, ds, model = trained
    m = tmp_path / "m"
    shutil.copytree(model, m)
    before = json.loads((m / "config.json").read_text())["predict"]
    r = CliRunner().invoke(cli, ["--cache-dir", str(tmp_path / "c"), "tune", str(ds), "--model", str(m), "--in-place"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    a, b = map(float, re.search(r"frame_f1: ([\d.]+) -> ([\d.]+)", r.output).groups())
    # the claimed F1 is what predict + evaluate measure with the written settings
    r = CliRunner().invoke(cli, ["--cache-dir", str(tmp_path / "c"), "predict", str(ds), "--model", str(m),
                                 "--out", str(tmp_path / "o")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    from pipeline.evaluate import evaluate_dir

    assert evaluate_dir(tmp_path / "o", ds)["overall"]["frame"]["f1"] == pytest.approx(b, abs=1e-3)
    conf = json.loads((m / "config.json").read_text())
    assert conf["predict_history"][-1]["predict"] == before
    _, mconf = load_model(m)
    assert mconf["metrics"]["tuned_frame_f1"] == pytest.approx(b, abs=1e-4)


def test_length_batches_bound_padding_and_count():
    from pipeline.predict import length_batches as _length_batches

    lengths = [10, 500, 12, 11, 480, 9, 1000]
    groups = list(_length_batches(list(range(7)), lengths, max_files=3, max_frames=1000))
    assert sorted(i for g in groups for i in g) == list(range(7))  # every file once
    for g in groups:
        assert len(g) <= 3 and len(g) * max(lengths[i] for i in g) <= max(1000, max(lengths[i] for i in g))
    assert groups[0] == [5, 0, 3]  # the shortest together
