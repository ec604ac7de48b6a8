"""The inference engines: a model's network as calls on numpy arrays, through ONNX Runtime or torch.

The line onnxruntime users draw: the network was exported once (:mod:`pipeline.export`) with its
state as explicit inputs and outputs, and inference calls ``session.run`` on arrays. torch stays
on the training side of that line; it runs inference only with ``--engine torch``, ``--device
cuda`` or a model directory without ``model.onnx``. Nothing here imports torch at module level.

Both engines offer the same four things to ``predict``, ``stream`` and the Python API:

- ``whole(x)``: scores [shape=(B, T, C)] of whole inputs [shape=(B, T, F)], as ``model(x)``;
- ``step(x, state)``: one chunk's scores and the state after it (unidirectional models);
- ``end_frames(batch, n)``: what a look-ahead model reads after an input (the mean frame);
- ``cfg``, ``n_features``, ``n_outputs``, ``mean``, ``std``, ``call_frames``.

Scores are probabilities for a classifier and, for a forecaster, its predicted (normalised)
frames (:func:`frame_error` turns them into per-frame errors).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .config import ENGINES
from .errors import ModelError, ParameterError
from .modeldir import ONNX_FILE, WEIGHTS_FILE, check_weights

TORCH_EXTRA = "pip install 'audio-seq-pipeline[train]'"
TORCH_CALL_FRAMES = 65_536  # frames per torch call of overlapping chunks: a recurrence is bound by
                            # per-step overhead at small batches (64 chunks: 0.7x the GRU time of
                            # 16 on an hour); torch runs its conv front end over nets.FRONT_FRAMES
                            # at a time, so its activations stay bounded
ONNX_CALL_FRAMES = 16_384  # frames per ONNX Runtime call: the graph runs the conv front end on the
                           # whole call (an hour at 64 chunks a call peaked at 1.18 GB, at 16 at
                           # 422 MB, in the same time)


def torch_available() -> bool:
    """Whether torch can be imported here (without importing it)."""
    if "torch" in sys.modules:  # imported already, or blocked (None)
        return sys.modules["torch"] is not None
    return importlib.util.find_spec("torch") is not None


def require_torch(what: str) -> None:
    """Raise a one-line usage error naming the extra when ``what`` needs torch and it is absent."""
    if not torch_available():
        raise ParameterError(f"{what} needs torch, which is not installed: {TORCH_EXTRA}")


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for a requested device: ``auto`` is ``cuda`` where torch sees a GPU,
    else ``cpu`` (without torch: ``cpu``, torch not imported); ``cpu`` never imports torch.

    Raises
    ------
    ParameterError
        An unknown device, or ``cuda`` where torch is absent or sees no GPU.
    """
    if device == "cpu":
        return device
    if device not in ("auto", "cuda"):
        raise ParameterError(f"--device {device!r} must be one of auto, cpu, cuda")
    if device == "auto" and not torch_available():
        return "cpu"  # no torch, so no CUDA through it
    require_torch(f"--device {device}")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("--device cuda: no CUDA device is available here (torch.cuda.is_available() "
                             "is False); use --device cpu or auto")
    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_engine(directory: str | Path, engine: str = "auto", device: str = "cpu") -> str:
    """``onnx`` or ``torch`` for a model directory: ``auto`` is ONNX Runtime where the model has
    ``model.onnx`` and runs on the CPU, else torch (``device``: as :func:`resolve_device` gives).

    Raises
    ------
    ParameterError
        An unknown engine, ``onnx`` for a model without ``model.onnx``, or torch needed and absent.
    """
    if engine not in ENGINES:
        raise ParameterError(f"--engine {engine!r} must be one of {', '.join(ENGINES)}")
    has_onnx = (Path(directory) / ONNX_FILE).is_file()
    if engine == "onnx" and not has_onnx:
        raise ModelError(f"{directory}: --engine onnx needs {ONNX_FILE} "
                         f"(python -m pipeline export {directory} writes it)")
    on_cpu = (resolve_device(device) if device == "auto" else device) == "cpu"
    if engine == "auto":
        engine = "onnx" if has_onnx and on_cpu else "torch"
    if engine == "torch":
        require_torch(f"--device {device}" if not on_cpu else
                      "--engine torch" if has_onnx else f"{directory} (a model without {ONNX_FILE})")
    return engine


def open_network(directory: str | Path, config: dict[str, Any], cfg, *, engine: str = "auto",
                 device: str = "cpu", threads: int = 1):
    """A model directory's network on the chosen engine (weights verified, nothing executed)."""
    device = resolve_device(device)
    if choose_engine(directory, engine, device) == "onnx":
        return OnnxNetwork(directory, config, cfg, device=device, threads=threads)
    from .nets import load_model

    model, _ = load_model(directory)
    return TorchNetwork(model, device=device, threads=threads)


def as_network(model, device: str = "cpu", threads: int | None = None):
    """An engine network for what a caller holds: a network as it is, a lazily opened model
    directory opened, a torch ``FrameModel`` wrapped (on ``device``, with ``threads`` torch
    threads when given)."""
    if isinstance(model, (OnnxNetwork, TorchNetwork)):
        return model
    if hasattr(model, "network"):  # jobs.LazyNetwork
        return model.network()
    return TorchNetwork(model, device=device, threads=threads)


# ------------------------------------------------------------------ the stateful loop


def stream_chunks(net, chunks: Iterable) -> Iterator:
    """Feed consecutive chunks [shape=(B, t, F)], yield the outputs [shape=(B, t', C)] each one
    completes, with the state carried: concatenated, one pass over the whole sequence. Without a
    look-ahead ``t' = t``; with ``cfg.delay = d`` the first ``d`` outputs (before frame 0) are
    skipped and, after the last chunk, the last ``d`` come from reading the end frames.

    ``net`` is anything with ``step``, ``end_frames`` and ``cfg``: an engine network (arrays)."""
    state, skip, batch = None, net.cfg.delay, None
    for xc in chunks:
        out, state = net.step(xc, state)
        batch = xc.shape[0]
        drop = min(skip, out.shape[1])  # a look-ahead model's first outputs precede frame 0
        skip -= drop
        yield out[:, drop:]
    if net.cfg.delay and batch is not None:  # the end: the last `delay` frames' outputs
        out, _ = net.step(net.end_frames(batch, net.cfg.delay), state)
        yield out[:, skip:]


def frame_error(net, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A forecaster's per-frame score: mean |predicted - actual| of the normalised frame, at the
    frame predicted (the forecast loss, per frame); 0 for the first ``horizon`` frames.

    x, out : np.ndarray [shape=(B, T, F)] -> np.ndarray [shape=(B, T, 1)]
    """
    h = net.cfg.horizon
    target = (x - net.mean) / net.std  # (B, T, F)
    err = np.zeros(target.shape[:-1], dtype=np.float32)
    if target.shape[1] > h:
        err[:, h:] = np.abs(out[:, :-h] - target[:, h:]).mean(-1)
    return err[..., None]


# ------------------------------------------------------------------ ONNX Runtime


class _Network:
    """What both engines share."""

    mean: np.ndarray
    n_features: int

    def end_frames(self, batch: int, n: int) -> np.ndarray:
        """``n`` frames that mark the end of an input for a look-ahead model: the mean frame."""
        return np.broadcast_to(self.mean, (batch, n, self.n_features))  # (B, n, F)

    def _check_stateful(self) -> None:
        if self.cfg.bidirectional:
            raise ParameterError("a bidirectional model cannot continue from a state: "
                                 "run it on whole inputs or on overlapping chunks")


class OnnxNetwork(_Network):
    """``model.onnx`` on ONNX Runtime (see :mod:`pipeline.export` for the two graphs)."""

    call_frames = ONNX_CALL_FRAMES

    def __init__(self, directory: str | Path, config: dict[str, Any], cfg, *, device: str = "cpu",
                 threads: int = 1) -> None:
        import onnxruntime as ort
        from safetensors.numpy import load_file

        directory = Path(directory)
        path = check_weights(directory, ONNX_FILE, config=config)
        weights = check_weights(directory, WEIGHTS_FILE, config=config)
        self.cfg = cfg
        self.n_features = int(config["n_features"])
        self.n_outputs = self.n_features if cfg.task == "forecast" else int(config["n_outputs"])
        try:  # the normalisation: the end frames a look-ahead model reads, a forecaster's targets
            buffers = load_file(str(weights))
            self.mean, self.std = (np.asarray(buffers[k], dtype=np.float32) for k in ("mean", "std"))
        except Exception as exc:  # safetensors only parses: nothing in the file can run
            raise ModelError(f"{weights}: no readable 'mean' and 'std' ({exc})") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        providers = ["CPUExecutionProvider"]
        if device != "cpu":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ParameterError(f"--engine onnx --device {device}: this onnxruntime has no CUDA "
                                     "provider (install onnxruntime-gpu, or use --engine torch)")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise ModelError(f"{path}: not a loadable ONNX graph ({str(exc).splitlines()[0]})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        want = (["x"] if cfg.bidirectional else
                ["x"] + (["context"] if cfg.conv_channels > 0 else []) + ["h"] + (["c"] if cfg.cell == "lstm" else []))
        if self.inputs != want:
            raise ModelError(f"{path}: graph inputs {self.inputs} do not fit config.json's model "
                             f"(expected {want}); python -m pipeline export {directory} rewrites it")

    def _zero_state(self, batch: int) -> list[np.ndarray]:
        """The start of an input: zeros of the graph's state shapes (context (B, 4, F) of
        normalised frames, i.e. mean frames; h and c (layers, B, hidden))."""
        return [np.zeros([d if isinstance(d, int) else batch for d in i.shape], dtype=np.float32)
                for i in self.session.get_inputs()[1:]]

    def _run(self, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
        """One graph call per slice of at most ``call_frames`` frames of the batch (whole items;
        the state sliced along its batch axis: 0 for the context, 1 for h and c)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        B, T = x.shape[:2]
        rows = max(1, self.call_frames // max(1, T))
        parts = []
        for i in range(0, B, rows):
            feed = {"x": x[i: i + rows]}
            for name, s in zip(self.inputs[1:], state):
                feed[name] = s[i: i + rows] if name == "context" else s[:, i: i + rows]
            parts.append(self.session.run(None, feed))
        if len(parts) == 1:
            return parts[0]
        names = ["scores", *self.inputs[1:]]
        return [np.concatenate([p[j] for p in parts], axis=1 if name in ("h", "c") else 0)
                for j, name in enumerate(names)]

    def step(self, x: np.ndarray, state: list[np.ndarray] | None = None
             ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Scores of one chunk [shape=(B, t, F)] continuing from ``state`` (``None``: zeros, the
        start of an input), and the state after it."""
        self._check_stateful()
        out = self._run(x, state if state is not None else self._zero_state(x.shape[0]))
        return out[0], out[1:]

    def whole(self, x: np.ndarray) -> np.ndarray:
        """Scores [shape=(B, T, C)] of whole inputs [shape=(B, T, F)]."""
        if self.cfg.bidirectional:
            return self._run(x, [])[0]
        d = self.cfg.delay
        if d:  # read the end frames after the input; output t + d is frame t's
            x = np.concatenate([x, self.end_frames(x.shape[0], d)], axis=1)  # (B, T + d, F)
        return self.step(x)[0][:, d:]


# ------------------------------------------------------------------ torch


class TorchNetwork(_Network):
    """A ``nets.FrameModel`` behind the same array calls (``--engine torch``, ``--device cuda``)."""

    call_frames = TORCH_CALL_FRAMES

    def __init__(self, model, *, device: str = "cpu", threads: int | None = None) -> None:
        import torch

        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        self.model, self.device = model.to(device).eval(), device
        self.cfg, self.n_features = model.cfg, model.n_features
        self.n_outputs = model.n_outputs
        self.mean, self.std = (b.detach().float().cpu().numpy() for b in (model.mean, model.std))

    def _tensor(self, x: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def _scores(self, out) -> np.ndarray:
        return self.model.scores(out).float().cpu().numpy()

    def step(self, x: np.ndarray, state=None) -> tuple[np.ndarray, Any]:
        import torch

        self._check_stateful()
        with torch.no_grad():
            out, state = self.model.step(self._tensor(x), state)
            return self._scores(out), state

    def whole(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._scores(self.model(self._tensor(x))[0])
