"""FrameModel: shapes, streaming == one pass, causality, masked losses, safe save / load."""
from __future__ import annotations

import hashlib
import json
import os
import pickle

import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.errors import ParameterError, PipelineError
from pipeline.engine import TorchNetwork, frame_error, stream_chunks
from pipeline.nets import FrameModel, load_model, save_model

torch.set_num_threads(2)

N_FEATURES = 12
N_CLASSES = 3


def make_model(seed: int = 0, n_outputs: int = N_CLASSES, **cfg) -> FrameModel:
    torch.manual_seed(seed)
    cfg.setdefault("hidden", 8)
    model = FrameModel(ModelConfig(**cfg), n_features=N_FEATURES, n_outputs=n_outputs)
    # non-trivial statistics, so tests also cover where normalisation happens
    g = torch.Generator().manual_seed(seed + 1)
    model.set_normalization(torch.randn(N_FEATURES, generator=g),
                            torch.rand(N_FEATURES, generator=g) + 0.5)
    return model.eval()


def stream(model: FrameModel, x: torch.Tensor, *, chunk_frames: int) -> torch.Tensor:
    """The model's outputs chunk by chunk, the state carried, as predict and stream run it (the
    torch engine's loop; test_onnx runs ONNX Runtime's)."""
    net = TorchNetwork(model)
    x = x.numpy()
    out = np.concatenate(list(stream_chunks(net, (x[:, s: s + chunk_frames]
                                                  for s in range(0, x.shape[1], chunk_frames)))), axis=1)
    return torch.from_numpy(out)


def whole_scores(model: FrameModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.scores(model(x)[0])


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 37, N_FEATURES, generator=torch.Generator().manual_seed(7))  # (B, T, F)


@pytest.mark.parametrize("conv", [0, 4])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shapes(cell, bidirectional, conv, x):
    model = make_model(cell=cell, bidirectional=bidirectional, conv_channels=conv)
    out, state = model(x)
    assert out.shape == (2, 37, N_CLASSES)
    if bidirectional:
        assert state is None
    else:
        hidden = state["rnn"][0] if cell == "lstm" else state["rnn"]
        assert hidden.shape == (2, 2, 8)  # (layers, B, hidden)
        assert (state["context"] is None) == (conv == 0)
        if conv:
            assert state["context"].shape == (2, 4, N_FEATURES)
    assert torch.isfinite(out).all()


def test_forecast_head_predicts_frames(x):
    model = make_model(task="forecast", n_outputs=1, conv_channels=4)
    assert model.n_outputs == N_FEATURES
    assert model(x)[0].shape == x.shape


def test_bidirectional_forecast_is_rejected():
    with pytest.raises(ParameterError, match="bidirectional"):
        FrameModel(ModelConfig(task="forecast", bidirectional=True), n_features=8, n_outputs=8)


def test_conv_front_needs_four_bins():
    with pytest.raises(ParameterError, match="n_features=3"):
        FrameModel(ModelConfig(conv_channels=2), n_features=3, n_outputs=2)


@pytest.mark.parametrize("cell,conv", [("gru", 0), ("lstm", 0), ("rnn", 0), ("gru", 4), ("lstm", 3)])
@pytest.mark.parametrize("chunk", [1, 5, 8, 37, 100])  # 5 and 8 do not divide T = 37
def test_stream_equals_one_pass(cell, conv, chunk, x):
    model = make_model(cell=cell, conv_channels=conv, layers=2, dropout=0.3)
    whole = whole_scores(model, x)
    streamed = stream(model, x, chunk_frames=chunk)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("conv", [0, 4])
@pytest.mark.parametrize("chunk", [1, 5, 37, 100])
@pytest.mark.parametrize("delay", [1, 6, 50])  # 50 > T: every output comes after the last chunk
def test_lookahead_stream_equals_one_pass(delay, chunk, conv, x):
    model = make_model(conv_channels=conv, delay=delay)
    with torch.no_grad():
        whole, state = model(x)
        raw = model.step(torch.cat([x, model.mean.expand(2, delay, N_FEATURES)], 1))[0]
    assert state is None and whole.shape == (2, 37, N_CLASSES)
    torch.testing.assert_close(whole, raw[:, delay:])  # frame t's output after frame t + delay
    torch.testing.assert_close(stream(model, x, chunk_frames=chunk), whole_scores(model, x), atol=1e-5, rtol=0)


def test_lookahead_reads_exactly_delay_frames_ahead(x):
    model = make_model(conv_channels=4, delay=5)
    changed = x.clone()
    changed[:, 20:] += 5.0
    with torch.no_grad():
        a, b = model(x)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :15], b[:, :15], atol=1e-6, rtol=0)  # frames < 20 - 5: unchanged
    assert (a[:, 15] - b[:, 15]).abs().max() > 1e-4  # frame 15 reads frame 20
    with pytest.raises(ParameterError, match="stream_chunks"):
        model(x, {"context": None, "rnn": None})


def test_lookahead_batch_padding_reads_as_the_end_of_each_file(x):
    """predict steps files of several lengths together: each file's scores equal its own pass."""
    from pipeline.predict import score_stateful

    model = make_model(conv_channels=4, delay=6)
    feats = [x[0].numpy(), x[1, :20].numpy(), x[1, :3].numpy()]
    scores = score_stateful(model, feats, chunk_frames=8, device="cpu")
    for f, sc in zip(feats, scores):
        with torch.no_grad():
            alone = model.probabilities(model(torch.from_numpy(f)[None])[0])[0].numpy()
        assert sc.shape == alone.shape
        np.testing.assert_allclose(sc, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", [dict(delay=-1), dict(delay=2, bidirectional=True),
                                 dict(delay=2, task="forecast"), dict(delay=1.5)])
def test_lookahead_settings_are_checked(cfg):
    with pytest.raises(ParameterError, match="model.delay"):
        ModelConfig(**cfg)


def test_state_continues_across_calls(x):
    model = make_model(cell="lstm", conv_channels=4)
    with torch.no_grad():
        whole = model(x)[0]
        first, state = model(x[:, :20])
        second, _ = model(x[:, 20:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("conv", [0, 4])
def test_unidirectional_is_causal(conv, x):
    model = make_model(conv_channels=conv)
    changed = x.clone()
    changed[:, 20:] += 5.0
    with torch.no_grad():
        a, b = model(x)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :20], b[:, :20], atol=1e-6, rtol=0)
    assert (a[:, 20:] - b[:, 20:]).abs().max() > 1e-3


def test_bidirectional_sees_the_future(x):
    model = make_model(bidirectional=True, conv_channels=4)
    changed = x.clone()
    changed[:, 30:] += 5.0
    with torch.no_grad():
        assert (model(x)[0][:, :20] - model(changed)[0][:, :20]).abs().max() > 1e-4


def test_bidirectional_state_raises(x):
    model = make_model(bidirectional=True)
    uni_state = make_model()(x)[1]
    with pytest.raises(ParameterError, match="bidirectional"):
        model(x, uni_state)
    with pytest.raises(ParameterError, match="bidirectional"):
        stream(model, x, chunk_frames=10)


def test_batch_equals_item_by_item(x):
    model = make_model(cell="gru", conv_channels=4, bidirectional=True)
    with torch.no_grad():
        batch = model(x)[0]
        items = torch.cat([model(x[i:i + 1])[0] for i in range(len(x))])
    torch.testing.assert_close(batch, items, atol=1e-5, rtol=0)


def test_normalization_is_applied_first(x):
    model = make_model(conv_channels=2)
    plain = make_model(conv_channels=2)
    plain.set_normalization(np.zeros(N_FEATURES), np.ones(N_FEATURES))
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], plain((x - model.mean) / model.std)[0],
                                   atol=1e-5, rtol=0)
    assert "mean" in model.state_dict() and "std" in model.state_dict()


@pytest.mark.parametrize("mean,std,match", [
    (np.zeros(3), np.ones(3), "shape"),
    (np.zeros(N_FEATURES), np.zeros(N_FEATURES), "> 0"),
    (np.full(N_FEATURES, np.nan), np.ones(N_FEATURES), "finite"),
])
def test_bad_normalization_raises(mean, std, match):
    with pytest.raises(ParameterError, match=match):
        make_model().set_normalization(mean, std)


def test_wrong_input_width_raises():
    with pytest.raises(ParameterError, match="expected"):
        make_model()(torch.zeros(1, 5, N_FEATURES + 1))


def test_probabilities():
    logits = torch.randn(2, 5, N_CLASSES)
    soft = make_model(multi_label=False).probabilities(logits)
    torch.testing.assert_close(soft.sum(-1), torch.ones(2, 5))
    torch.testing.assert_close(make_model().probabilities(logits), torch.sigmoid(logits))
    with pytest.raises(ParameterError, match="classify"):
        make_model(task="forecast").probabilities(logits)


def test_n_parameters():
    model = make_model(cell="lstm", conv_channels=2)
    assert model.n_parameters() == sum(p.numel() for p in model.parameters())
    assert make_model(cell="lstm").n_parameters() > make_model(cell="rnn").n_parameters()


# -- losses -----------------------------------------------------------------------------------
def _padding_mask(lengths, T):
    return torch.arange(T)[None] < torch.tensor(lengths)[:, None]  # (B, T)


def _corrupt(t, mask, value):
    """Overwrite the padded frames of ``t`` (B, T, ...)."""
    t = t.clone()
    t[~mask] = value
    return t


@pytest.mark.parametrize("kind", ["multi_label", "int", "one_hot"])
def test_classify_loss_ignores_masked_frames(kind):
    g = torch.Generator().manual_seed(3)
    out = torch.randn(2, 10, N_CLASSES, generator=g)
    mask = _padding_mask([10, 6], 10)
    if kind == "multi_label":
        model = make_model()
        targets = (torch.rand(2, 10, N_CLASSES, generator=g) > 0.5).float()
    else:
        model = make_model(multi_label=False)
        targets = torch.randint(0, N_CLASSES, (2, 10), generator=g)
        if kind == "one_hot":
            targets = torch.nn.functional.one_hot(targets, N_CLASSES).float()
    base = model.loss(out, targets, mask)
    # garbage (NaN, huge, invalid class index) in padding must not change anything
    bad_targets = _corrupt(targets, mask, -1 if kind == "int" else float("nan"))
    torch.testing.assert_close(model.loss(_corrupt(out, mask, 1e6), bad_targets, mask), base)
    # and the loss is the plain mean over the valid frames only
    pieces = [(out[0], targets[0]), (out[1, :6], targets[1, :6])]
    flat_out = torch.cat([p[0] for p in pieces])[None]
    flat_t = torch.cat([p[1] for p in pieces])[None]
    torch.testing.assert_close(base, model.loss(flat_out, flat_t, None))
    assert base.item() != pytest.approx(model.loss(out, targets, None).item())


def test_multi_class_int_and_one_hot_agree():
    model = make_model(multi_label=False)
    out = torch.randn(2, 7, N_CLASSES)
    idx = torch.randint(0, N_CLASSES, (2, 7))
    one_hot = torch.nn.functional.one_hot(idx, N_CLASSES).float()
    torch.testing.assert_close(model.loss(out, idx, None), model.loss(out, one_hot, None))
    torch.testing.assert_close(model.loss(out, idx, None),
                               torch.nn.functional.cross_entropy(out.reshape(-1, N_CLASSES), idx.reshape(-1)))


@pytest.mark.parametrize("horizon", [1, 3])
def test_forecast_loss_and_frame_error(horizon, x):
    model = make_model(task="forecast", horizon=horizon)
    out = model(x)[0]  # (B, T, F)
    xn = (x - model.mean) / model.std
    expected = (out[:, :-horizon] - xn[:, horizon:]).abs().mean()
    torch.testing.assert_close(model.loss(out, x, None), expected)

    mask = _padding_mask([37, 25], 37)
    base = model.loss(out, x, mask)
    torch.testing.assert_close(model.loss(_corrupt(out, mask, 1e6), _corrupt(x, mask, float("nan")), mask),
                               base)
    # second item: only pairs (t, t + h) with t + h < 25 count
    err = (out[:, :-horizon] - xn[:, horizon:]).abs()
    valid = torch.cat([err[0].reshape(-1), err[1, :25 - horizon].reshape(-1)])
    torch.testing.assert_close(base, valid.mean())

    with torch.no_grad():  # the score predict reports (engine.frame_error, on either engine's output)
        score = torch.from_numpy(frame_error(TorchNetwork(model), x.numpy(), out.numpy()))[..., 0]  # (B, T)
    assert score.shape == (2, 37)
    assert (score[:, :horizon] == 0).all() and torch.isfinite(score[:, horizon:]).all()
    torch.testing.assert_close(score[:, horizon:], err.detach().mean(-1))
    torch.testing.assert_close(score[:, horizon:].mean(), expected.detach())


def test_forecast_loss_without_pairs_is_zero():
    model = make_model(task="forecast", horizon=4)
    out = torch.randn(1, 3, N_FEATURES, requires_grad=True)
    loss = model.loss(out, torch.randn(1, 3, N_FEATURES), None)
    assert loss.item() == 0.0
    loss.backward()  # still attached to the graph


def test_loss_backpropagates(x):
    model = make_model(conv_channels=2).train()
    targets = (torch.rand(2, 37, N_CLASSES) > 0.5).float()
    model.loss(model(x)[0], targets, _padding_mask([37, 20], 37)).backward()
    assert all(p.grad is not None for p in model.parameters())


# -- model directories ------------------------------------------------------------------------
@pytest.mark.parametrize("conv", [0, 4])
@pytest.mark.parametrize("stack", [2, 3])
def test_stacked_frames_keep_the_frame_rate(stack, conv, x):
    """model.stack=k: one recurrent step per k frames, still one output per input frame; frames
    past the end are filled with the last one and their outputs dropped."""
    model = make_model(cell="gru", bidirectional=True, stack=stack, conv_channels=conv)
    assert model.rnn.input_size == stack * (model.front.out_features if conv else N_FEATURES)
    with torch.no_grad():
        out, state = model(x)  # T = 37: not a multiple of 2 or 3
        assert out.shape == (2, 37, N_CLASSES) and state is None
        if not conv:  # (the conv front end's zero padding sees the filled frames)
            filled = torch.cat([x, x[:, -1:].expand(2, -37 % stack, N_FEATURES)], dim=1)
            assert filled.shape[1] % stack == 0
            assert torch.allclose(model(filled)[0][:, :37], out, atol=1e-6)
        assert not torch.allclose(out[:, 0], out[:, 1])  # each frame of a step has its own output
        # the first k frames are one step: changing frame 1 moves frame 0's output too
        y = x.clone()
        y[:, 1] += 3.0
        assert not torch.allclose(model(y)[0][:, 0], out[:, 0])
    for bad in (dict(stack=2), dict(stack=2, bidirectional=True, task="forecast"), dict(stack=0)):
        with pytest.raises(ParameterError, match="stack"):
            ModelConfig(**bad)


@pytest.mark.parametrize("cfg", [dict(cell="gru", conv_channels=4),
                                 dict(cell="gru", bidirectional=True, stack=2),
                                 dict(cell="lstm", bidirectional=True, layers=1, multi_label=False),
                                 dict(cell="rnn", task="forecast", horizon=2)])
def test_save_load_round_trip(tmp_path, x, cfg):
    model = make_model(seed=5, **cfg)
    save_model(model, tmp_path / "m", {"classes": ["a", "b", "c"], "model": {"stale": 1}})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    record = json.loads((tmp_path / "m" / "config.json").read_text())
    assert record["sha256"] == {"model.safetensors": hashlib.sha256((tmp_path / "m" / "model.safetensors")
                                                                    .read_bytes()).hexdigest()}
    assert record["classes"] == ["a", "b", "c"] and record["n_features"] == N_FEATURES
    assert record["model"]["cell"] == cfg["cell"] and "stale" not in record["model"]

    loaded, config = load_model(tmp_path / "m")
    assert config == record and not loaded.training
    assert loaded.cfg == model.cfg
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])
    assert torch.equal(loaded.std, model.std)


def _before_hashes(directory):
    """A model directory as written before config.json recorded the weights' sha256."""
    config = json.loads((directory / "config.json").read_text())
    del config["sha256"]
    (directory / "config.json").write_text(json.dumps(config))


def test_load_legacy_weights_only_checkpoint(tmp_path, x):
    model = make_model(seed=2, conv_channels=2)
    save_model(model, tmp_path, {})
    _before_hashes(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "model.pt")
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


def test_load_rejects_mismatched_or_missing_weights(tmp_path):
    save_model(make_model(hidden=8), tmp_path, {})
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["hidden"] = 16
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PipelineError, match="model.safetensors.*do not fit"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(PipelineError, match="no model.safetensors"):
        load_model(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(PipelineError, match="config.json"):
        load_model(tmp_path)


class _Evil:
    """Unpickling this creates the file ``path``: a stand-in for arbitrary code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("target,writer", [
    ("model.safetensors", "pickle"),
    ("model.safetensors", "torch"),
    ("model.pt", "pickle"),
    ("model.pt", "torch"),
])
def test_malicious_weights_are_never_executed(tmp_path, target, writer):
    # the payload really runs when unpickled unsafely
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()

    directory = tmp_path / "model"
    save_model(make_model(), directory, {})
    _before_hashes(directory)  # the weights-only reading itself is under test, not the hash check
    (directory / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    payload = {"state_dict": _Evil(marker)}
    if writer == "pickle":
        (directory / target).write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, directory / target)
    if target == "model.safetensors":  # a valid-looking fallback must not be used either
        torch.save(make_model().state_dict(), directory / "model.pt")
    with pytest.raises(PipelineError, match=target.replace(".", r"\.")):
        load_model(directory)
    assert not marker.exists()


def test_saved_model_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_model(make_model(hidden=8), tmp_path / "m", {})
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("bidirectional", [False, True])
def test_front_end_in_slices_equals_one_call(bidirectional, monkeypatch):
    """Inference runs the conv front end over a few batch items at a time (bounded memory); the
    outputs, and a causal model's carried state, are those of one call over the whole batch."""
    import pipeline.nets as nets

    model = make_model(conv_channels=4, bidirectional=bidirectional)
    x = torch.randn(7, 20, N_FEATURES, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole, state = model(x)
        monkeypatch.setattr(nets, "FRONT_FRAMES", 45)  # two items of 20 frames per front call
        sliced, sliced_state = model(x)
        if not bidirectional:
            torch.testing.assert_close(sliced_state["context"], state["context"])
            more = torch.randn(7, 9, N_FEATURES)
            monkeypatch.setattr(nets, "FRONT_FRAMES", 10**9)
            cont = model(more, state)[0]
            monkeypatch.setattr(nets, "FRONT_FRAMES", 20)  # one item at a time
            torch.testing.assert_close(model(more, sliced_state)[0], cont, atol=1e-5, rtol=0)
    torch.testing.assert_close(sliced, whole, atol=1e-5, rtol=0)


class _Killed(BaseException):
    """A kill between two file operations (nothing below catches it)."""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_a_kill_while_saving_leaves_a_loadable_model(tmp_path, monkeypatch, x, kill_at):
    """Stopped at any rename of save_model, the directory loads: the old network or the new."""
    import pipeline.modeldir

    old, new = make_model(seed=1, hidden=8), make_model(seed=2, hidden=8)
    save_model(old, tmp_path, {"epoch": 1})
    calls, real = [0], os.replace

    def replace(a, b):
        calls[0] += 1
        if calls[0] == kill_at:
            raise _Killed
        return real(a, b)
    monkeypatch.setattr(pipeline.modeldir.os, "replace", replace)
    try:
        save_model(new, tmp_path, {"epoch": 2})
    except _Killed:
        pass
    monkeypatch.undo()
    loaded, config = load_model(tmp_path)
    with torch.no_grad():
        got = loaded(x)[0]
        assert torch.equal(got, old(x)[0]) or torch.equal(got, new(x)[0])
    if calls[0] < kill_at:  # the save finished: the new network, one hash
        assert torch.equal(got, new(x)[0]) and set(config) >= {"sha256"} and "sha256_replaced" not in config
