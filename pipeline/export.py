"""ONNX export: a trained :class:`~pipeline.nets.FrameModel` as ``model.onnx`` beside its weights.

Inference then runs on ONNX Runtime over numpy arrays (:mod:`pipeline.engine`), so torch is
needed only to train and to export. The graph is traced (the legacy exporter, ``dynamo=False``,
opset 17) through one of two small wrapper modules, whose batch and time axes stay dynamic:

- :class:`OfflineGraph` (bidirectional models): ``x (B, T, F) -> scores (B, T, C)``: normalise,
  the conv front end on the whole batch, the ``stack`` reshape by indexing (no Python branch on
  the length), the recurrence, the head and the sigmoid / softmax;
- :class:`StepGraph` (unidirectional models): ``x, [context], h, [c] -> scores, [context], h,
  [c]``: :meth:`FrameModel.step` with the conv front end's context frames and the recurrent state
  as explicit inputs and outputs, for predict's stateful pass and ``stream``. A whole input is
  one step from a zero state; a look-ahead (``model.delay``) stays with the caller (skip the first
  ``delay`` outputs, then read the end frames), as :func:`pipeline.engine.stream_chunks` does.

Exporting ``FrameModel`` itself would unroll its Python loops for the example's shape (the front
end's slices: 64 rows back for a 65-chunk call; the stack padding: a fixed time length), so
:func:`export_onnx` checks the graph against torch on shapes other than the example's.

Forecast models export the predicted (normalised) frames; the engine turns them into errors.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelError
from .modeldir import ONNX_FILE, WEIGHTS_FILE, pretraining_only, record_hashes, write_beside, writing_model_dir
from .nets import CONTEXT_FRAMES, FrameModel, load_model, save_weights

OPSET = 17
TOLERANCE = 1e-4  # largest |ORT - torch| score difference accepted at export (measured: ~5e-6)
# (batch, frames) checked at export, none of them the example's (2, 37): a batch above the front
# end's old slice size, one frame, and lengths not a multiple of the stack
CHECK_SHAPES = ((1, 1), (3, 250), (65, 41), (1, 1001))


class OfflineGraph(nn.Module):
    """A bidirectional model over whole inputs: ``x (B, T, F) -> scores (B, T, C)``."""

    def __init__(self, model: FrameModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        h = m.normalize(x)  # (B, T, F)
        if m.front is not None:
            h, _ = m.front(h, None)  # the whole batch at once: the caller bounds the batch
        B, T, width = h.shape
        k = m.cfg.stack
        # (B, T, F') -> (B, ceil(T / k), k F'), the last frame repeated: indices, not a branch on T
        idx = torch.arange((T + k - 1) // k * k, device=h.device).clamp(max=T - 1)
        h = h.index_select(1, idx).reshape(B, -1, k * width)
        h, _ = m.rnn(h)  # (B, T / k, 2 hidden)
        out = m.head(h).reshape(B, -1, m.n_outputs)[:, :T]  # (B, T, C)
        return m.scores(out)


class StepGraph(nn.Module):
    """A unidirectional model's step: ``(x, [context], h, [c]) -> (scores, [context], h, [c])``."""

    def __init__(self, model: FrameModel) -> None:
        super().__init__()
        self.model = model
        self.has_context = model.front is not None
        self.lstm = model.cfg.cell == "lstm"

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        m = self.model
        state = list(state)
        context = state.pop(0) if self.has_context else None
        rnn_state = tuple(state) if self.lstm else state[0]
        h = m.normalize(x)  # (B, T, F)
        if self.has_context:
            h, context = m.front(h, context)  # (B, T, C F'), context (B, CONTEXT_FRAMES, F)
        h, rnn_state = m.rnn(h, rnn_state)  # (B, T, hidden)
        out = m.scores(m.head(h))  # (B, T, C)
        rest = list(rnn_state) if self.lstm else [rnn_state]
        return (out, context, *rest) if self.has_context else (out, *rest)


def graph_of(model: FrameModel) -> tuple[nn.Module, list[str], list[str]]:
    """The wrapper that exports ``model``, its input names and its output names."""
    if model.cfg.bidirectional:
        return OfflineGraph(model).eval(), ["x"], ["scores"]
    wrapper = StepGraph(model).eval()
    state = (["context"] if wrapper.has_context else []) + ["h"] + (["c"] if wrapper.lstm else [])
    return wrapper, ["x", *state], ["scores", *(f"{n}_out" for n in state)]


def example_inputs(model: FrameModel, batch: int, frames: int, *, seed: int = 0) -> list[np.ndarray]:
    """Inputs of the graph: features about the model's normalisation, and a random state."""
    rng = np.random.default_rng(seed)
    mean, std = model.mean.cpu().numpy(), model.std.cpu().numpy()
    x = (mean + std * rng.standard_normal((batch, frames, model.n_features))).astype(np.float32)
    if model.cfg.bidirectional:
        return [x]
    state = []
    if model.front is not None:
        state.append(rng.standard_normal((batch, CONTEXT_FRAMES, model.n_features)).astype(np.float32))
    n = 2 if model.cfg.cell == "lstm" else 1
    state += [(0.5 * rng.standard_normal((model.cfg.layers, batch, model.cfg.hidden))).astype(np.float32)
              for _ in range(n)]
    return [x, *state]


def export_graph(model: FrameModel, path: str | Path) -> None:
    """Trace ``model`` (in eval mode: no dropout in the graph) into an ONNX file at ``path``;
    dynamic batch and time. The model is left in the mode it was in."""
    training = model.training
    wrapper, inputs, outputs = graph_of(model)  # eval(): the exporter restores the wrapper's mode
    # afterwards, so a wrapper left in training mode would switch dropout back on in the model
    axes = {"x": {0: "batch", 1: "frames"}, "scores": {0: "batch", 1: "frames"}}
    for name in inputs[1:]:  # context (B, 4, F); h, c (layers, B, hidden)
        batch_axis = 0 if name == "context" else 1
        axes[name] = axes[f"{name}_out"] = {batch_axis: "batch"}
    args = tuple(torch.from_numpy(a) for a in example_inputs(model, 2, 37))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the legacy exporter is chosen (dynamo fixes the time axis); its tracer warns of
            # Python values that become constants, and "a batch_size other than 1 ... with GRU
            # can cause an error": check_graph runs other batch and time shapes against torch
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
            torch.onnx.export(wrapper, args, str(path), dynamo=False, opset_version=OPSET,
                              input_names=inputs, output_names=outputs, dynamic_axes=axes)
    finally:
        model.train(training)


def check_graph(model: FrameModel, path: str | Path, shapes=CHECK_SHAPES) -> float:
    """The largest |ONNX Runtime - torch| over ``shapes`` (every output: scores and state).

    Raises
    ------
    ModelError
        A difference above ``TOLERANCE`` or a shape that differs.
    """
    import onnxruntime as ort

    wrapper, inputs, _ = graph_of(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, frames in shapes:
        arrays = example_inputs(model, batch, frames, seed=batch * 7919 + frames)
        with torch.no_grad():
            want = wrapper(*(torch.from_numpy(a) for a in arrays))
        want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
        got = session.run(None, dict(zip(inputs, arrays)))
        for w, g in zip(want, got):
            if w.shape != g.shape:
                raise ModelError(f"{path}: the graph gives shape {g.shape} for input {(batch, frames)}, "
                                 f"torch {w.shape}")
            worst = max(worst, float(np.abs(w - g).max()) if w.size else 0.0)
    if worst > TOLERANCE:
        raise ModelError(f"{path}: ONNX Runtime differs from torch by {worst:.2g} (> {TOLERANCE:g})")
    return worst


def export_onnx(directory: str | Path) -> Path:
    """Write ``model.onnx`` into a model directory (its weights verified, the graph checked
    against torch) and record its sha256 in ``config.json``; returns the file's path.

    A legacy directory (``model.pt`` only) gets ``model.safetensors`` too, the same tensors: the
    engine reads the normalisation from it, and the hashes cover it (``model.pt`` stays, unread).

    Raises
    ------
    ParameterError
        A shipped model named by its name, or a directory that cannot be written.
    ModelError
        Weights refused, or a graph that differs from torch.
    """
    directory = Path(directory)
    with writing_model_dir(directory, "export", f"export a copy (cp -r {directory} DIR)"):
        model, _ = load_model(directory)
        if model.cfg.task == "masked":  # nothing would run it: predict and stream refuse it
            raise pretraining_only(directory, "it has no ONNX graph")
        target = directory / ONNX_FILE

        def write(tmp: str) -> None:
            export_graph(model, tmp)
            check_graph(model, tmp)
        write_beside(target, write)
        if not (directory / WEIGHTS_FILE).is_file():  # model.pt: weights only, as safetensors
            write_beside(directory / WEIGHTS_FILE, lambda p: save_weights(model, p))
        record_hashes(directory)
    return target
