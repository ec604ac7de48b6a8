"""Frame-level recurrent networks: normalisation, optional conv front end, RNN / LSTM / GRU, a head.

:class:`FrameModel` maps a spectrogram batch ``(B, T, F)`` to per-frame outputs ``(B, T, C)``:
class logits for ``task="classify"``, for ``task="forecast"`` the normalised frame ``horizon``
steps ahead, or for ``task="masked"`` (pretraining) each normalised frame, rebuilt where spans of the
input were hidden (:func:`hide_spans`). Unidirectional models are causal end to end, or read a fixed look-ahead of
``model.delay`` frames, so they can run chunk by chunk while carrying a state (:func:`stream`),
exactly equal to one pass over the whole input.

A model directory holds ``config.json`` and ``model.safetensors`` (:func:`save_model`,
:func:`load_model`); loading never executes code from the files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, require_positive_int, section_from_dict
from .errors import ModelError, ParameterError

from .modeldir import (CONFIG_FILE, HASHES, LEGACY_WEIGHTS_FILE, ONNX_FILE, WEIGHTS_FILE,  # noqa: F401  (the names nets has always exported)
                       PREVIOUS_HASHES, _umask, check_weights, read_model_config, record_hashes, update_model_config,
                       weights_file, write_beside)

_KERNEL = 3  # conv front end: kernel size along time and frequency
_CONV_LAYERS = 2
CONTEXT_FRAMES = _CONV_LAYERS * (_KERNEL - 1)  # input frames a causal front end looks back
FRONT_FRAMES = 16_384  # frames per conv front end call at inference: its activations (B, C, T, F)
                      # are 4 C times the input's (64 chunks of 1000 frames, 4 channels: 66 MB)


class _ConvFront(nn.Module):
    """Two Conv2d + ReLU + frequency max-pool(2) blocks over ``(B, 1, T, F)``.

    No BatchNorm / GroupNorm: both mix statistics across time (and GroupNorm across the chunk),
    which would make a frame's output depend on the chunk it sits in and break streaming.

    Causal mode (unidirectional models) uses no time padding inside the convolutions; instead the
    last ``CONTEXT_FRAMES`` normalised input frames are prepended (zeros, i.e. the mean frame, at
    the start of a file). The state carries those frames, so chunked and one-pass outputs agree.
    Non-causal mode zero-pads each convolution by one frame on both sides.
    """

    def __init__(self, channels: int, n_features: int, *, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.conv1 = nn.Conv2d(1, channels, _KERNEL)  # padding: see forward
        self.conv2 = nn.Conv2d(channels, channels, _KERNEL)
        # then max-pool(2) over frequency only: time resolution is kept
        self.out_features = channels * (n_features // 4)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, n_feat = x.shape  # (B, T, F)
        if self.causal:
            if context is None:
                context = x.new_zeros(B, CONTEXT_FRAMES, n_feat)
            h = torch.cat([context, x], dim=1)  # (B, CONTEXT + T, F)
            new_context = h[:, -CONTEXT_FRAMES:]  # (B, CONTEXT, F)
            pad = (0, 1)  # time: the context frames; frequency: zeros
        else:
            h, new_context, pad = x, None, (1, 1)  # zeros one frame beyond both ends
        # oneDNN's convolution is slow on 1-8 channels at inference (2x on an hour of audio);
        # the native kernel gives the same values
        mkldnn = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = mkldnn and (self.training or x.is_cuda)
        try:
            h = self._block(self.conv1, h[:, None], pad)  # (B, C, T [+ 2], F // 2)
            h = self._block(self.conv2, h, pad)  # (B, C, T, F // 4)
        finally:
            torch.backends.mkldnn.enabled = mkldnn
        B, C, T, n_bins = h.shape
        return h.permute(0, 2, 1, 3).reshape(B, T, C * n_bins), new_context  # (B, T, C * F')

    @staticmethod
    def _block(conv: nn.Conv2d, h: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
        """conv -> max-pool(2) over frequency -> ReLU (the two commute; pooling first halves the
        ReLU's work, and the maximum of the even and odd bins pools faster than MaxPool2d)."""
        h = F.conv2d(h, conv.weight, conv.bias, padding=pad)  # (B, C, T', F')
        n = h.shape[-1] // 2 * 2
        return torch.maximum(h[..., 0:n:2], h[..., 1:n:2]).relu_()  # (B, C, T', F' // 2)


class FrameModel(nn.Module):
    """Per-frame recurrent model: ``(x - mean) / std`` -> [conv front] -> RNN -> Linear.

    With ``cfg.stack = k > 1`` the RNN steps over groups of ``k`` consecutive frames (their
    features side by side) and the head gives the ``k`` frames' outputs from each step: a k-fold
    shorter recurrence (what bounds a GRU's speed on a CPU) at the features' own frame rate.

    Parameters
    ----------
    cfg : ModelConfig
        Cell, sizes, direction, dropout (between RNN layers), conv channels, task.
    n_features : int
        Width ``F`` of an input frame.
    n_outputs : int
        Number of classes for ``task="classify"``. Ignored for ``task="forecast"`` and
        ``"masked"``, whose head always predicts ``n_features`` values (``self.n_outputs`` is then
        ``n_features``).

    Raises
    ------
    ParameterError
        Non-positive sizes, a conv front end on fewer than 4 bins, or a bidirectional forecaster
        (its backward pass would see the frame it has to predict).
    """

    def __init__(self, cfg: ModelConfig, *, n_features: int, n_outputs: int) -> None:
        super().__init__()
        require_positive_int(n_features=n_features)
        if cfg.task in ("forecast", "masked"):
            n_outputs = n_features
            if cfg.task == "forecast" and cfg.bidirectional:
                raise ParameterError("model.bidirectional=True cannot be used with model.task='forecast': "
                                     "the backward pass sees the frame it must predict")
        require_positive_int(n_outputs=n_outputs)
        if cfg.conv_channels > 0 and n_features < 4:
            raise ParameterError(f"n_features={n_features} must be >= 4 with model.conv_channels > 0 "
                                 "(the front end halves the frequency axis twice)")
        self.cfg = cfg
        self.n_features = n_features
        self.n_outputs = n_outputs
        self.register_buffer("mean", torch.zeros(n_features))  # (F,)
        self.register_buffer("std", torch.ones(n_features))  # (F,)
        if cfg.conv_channels > 0:
            self.front: _ConvFront | None = _ConvFront(cfg.conv_channels, n_features,
                                                       causal=not cfg.bidirectional)
            rnn_in = self.front.out_features
        else:
            self.front = None
            rnn_in = n_features
        rnn_in *= cfg.stack  # k consecutive frames in one step: k-fold input, k frames out
        rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cfg.cell]
        extra = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
        self.rnn = rnn_class(rnn_in, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                             bidirectional=cfg.bidirectional,
                             dropout=cfg.dropout if cfg.layers > 1 else 0.0, **extra)
        self.head = nn.Linear(cfg.hidden * (2 if cfg.bidirectional else 1), n_outputs * cfg.stack)

    # -- normalisation -------------------------------------------------------------------------
    def set_normalization(self, mean: Any, std: Any) -> None:
        """Store per-bin statistics; inputs are mapped to ``(x - mean) / std``.

        Parameters
        ----------
        mean, std : array-like [shape=(n_features,)]
            ``std`` must be finite and strictly positive.

        Raises
        ------
        ParameterError
            Wrong shape, non-finite values or ``std <= 0``.
        """
        mean, std = (torch.as_tensor(v.detach().cpu() if isinstance(v, torch.Tensor) else np.asarray(v),
                                     dtype=self.mean.dtype) for v in (mean, std))
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (self.n_features,):
                raise ParameterError(f"{name} has shape {tuple(value.shape)}, expected ({self.n_features},)")
            if not torch.isfinite(value).all():
                raise ParameterError(f"{name} must be finite")
        if not (std > 0).all():
            raise ParameterError(f"std must be > 0 in every bin, got min {std.min().item()}")
        self.mean.copy_(mean)
        self.std.copy_(std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` for ``x`` [shape=(..., n_features)]."""
        return (x - self.mean) / self.std

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, state: Mapping[str, Any] | None = None
                ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        """Run over ``x``, optionally continuing from ``state``; ``out[:, t]`` is frame ``t``'s output.

        A model with a look-ahead (``cfg.delay = d > 0``) reads ``d`` frames past each frame, so a
        whole input is followed by ``d`` mean frames (zeros once normalised: the end of the input)
        and returns no state; to run one chunk after another, use :func:`pipeline.engine.stream_chunks`, which
        gives the same outputs.

        Parameters
        ----------
        x : torch.Tensor [shape=(B, T, n_features)]
            Un-normalised features.
        state : dict or None
            ``None`` starts from zeros. Otherwise the ``new_state`` of the previous call over the
            preceding frames: ``{"context": (B, 4, F) normalised input frames or None,
            "rnn": h (layers, B, hidden), or (h, c) for LSTM}``.

        Returns
        -------
        out : torch.Tensor [shape=(B, T, n_outputs)]
            Logits (classify) or the predicted normalised frame ``horizon`` steps ahead (forecast).
        new_state : dict or None
            State after the last frame; ``None`` for bidirectional models and look-ahead models.

        Raises
        ------
        ParameterError
            Wrong input shape, or a state passed to a bidirectional or look-ahead model.
        """
        d = self.cfg.delay
        if d:
            self._check_input(x)  # before the end frames are joined on (step checks the rest)
            if state is not None:
                raise ParameterError(f"a model with model.delay={d} runs chunk by chunk through "
                                     "engine.stream_chunks, not from a state")
            x = torch.cat([x, self.end_frames(x.shape[0], d)], dim=1)  # (B, T + d, F)
            return self.step(x)[0][:, d:], None
        return self.step(x, state)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.n_features:
            raise ParameterError(f"x has shape {tuple(x.shape)}, expected (B, T, {self.n_features})")

    def _front_in_slices(self, h: torch.Tensor, context: torch.Tensor | None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The conv front end over at most ``FRONT_FRAMES`` frames of the batch at a time (whole
        batch items; the same values): its activations are ``4 * conv_channels`` times its
        input's, so a large inference batch, which the recurrence wants, would otherwise hold
        hundreds of MB at once. Training runs the whole batch (autograd keeps it all anyway)."""
        B, T = h.shape[:2]
        step = max(1, FRONT_FRAMES // max(1, T))
        if self.training or B <= step:
            return self.front(h, context)
        parts = [self.front(h[i: i + step], None if context is None else context[i: i + step])
                 for i in range(0, B, step)]
        new_context = None if parts[0][1] is None else torch.cat([p[1] for p in parts])  # causal only
        return torch.cat([p[0] for p in parts]), new_context

    def end_frames(self, batch: int, n: int) -> torch.Tensor:
        """``n`` frames that mark the end of an input for a look-ahead model: the mean frame."""
        return self.mean.expand(batch, n, self.n_features)  # (B, n, F)

    def step(self, x: torch.Tensor, state: Mapping[str, Any] | None = None
             ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        """The network itself: ``out[:, t]`` after reading frame ``t``, which is frame
        ``t - cfg.delay``'s output (:meth:`forward` aligns it). Arguments and results as
        :meth:`forward`'s, with a state for every unidirectional model."""
        self._check_input(x)
        if self.cfg.bidirectional and state is not None:
            raise ParameterError("a bidirectional model cannot continue from a state: "
                                 "run it on whole inputs or on overlapping chunks (stitch.overlap_add)")
        context = state.get("context") if state is not None else None
        rnn_state = state.get("rnn") if state is not None else None
        h = self.normalize(x)  # (B, T, F)
        if self.front is not None:
            h, context = self._front_in_slices(h, context)  # (B, T, C * F // 4)
        k, (B, T) = self.cfg.stack, h.shape[:2]
        pad = -T % k  # (B, T, F') -> (B, ceil(T / k), k * F'), the last frame repeated to fill
        if pad:
            h = torch.cat([h, h[:, -1:].expand(B, pad, h.shape[2])], dim=1)
        h = h.reshape(B, (T + pad) // k, k * h.shape[2])  # a view when k = 1
        h, rnn_state = self.rnn(h, rnn_state)  # (B, T / k, D * hidden)
        out = self.head(h).reshape(B, T + pad, self.n_outputs)[:, :T]  # (B, T, n_outputs)
        if self.cfg.bidirectional:
            return out, None
        return out, {"context": context, "rnn": rnn_state}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid (multi-label) or softmax over the last axis (multi-class) of classify logits.

        Raises
        ------
        ParameterError
            For a forecast model, whose outputs are not logits.
        """
        if self.cfg.task != "classify":
            raise ParameterError(f"probabilities() needs model.task='classify', got {self.cfg.task!r}")
        return torch.sigmoid(logits) if self.cfg.multi_label else torch.softmax(logits, dim=-1)

    def scores(self, out: torch.Tensor) -> torch.Tensor:
        """The head's outputs -> what inference reports: a classifier's probabilities, a
        forecaster's predicted frames as they are (the ONNX graphs and the torch engine alike)."""
        return self.probabilities(out) if self.cfg.task == "classify" else out

    # -- losses --------------------------------------------------------------------------------
    def loss(self, out: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
             ) -> torch.Tensor:
        """Task loss averaged over valid frames only; padded frames never contribute.

        Parameters
        ----------
        out : torch.Tensor [shape=(B, T, n_outputs)]
            The model's output.
        targets : torch.Tensor
            classify, multi-label: ``(B, T, C)`` in [0, 1] (binary cross-entropy with logits,
            mean over valid frames and classes). classify, multi-class: ``(B, T)`` integer class
            indices or ``(B, T, C)`` one-hot / soft targets (cross-entropy, mean over valid
            frames). forecast: the un-normalised input ``x`` ``(B, T, F)``; L1 between
            ``out[:, :-h]`` and ``normalize(x)[:, h:]``, mean over valid pairs and bins. masked:
            the un-normalised input as it was before spans were hidden; L1 between ``out`` and
            ``normalize(x)``, mean over the frames ``mask`` selects and bins.
        mask : torch.Tensor or None [shape=(B, T)], bool
            True for real frames. A forecast pair counts only when both of its frames are valid.
            masked: True for the real frames that were hidden (only those are rebuilt).

        Returns
        -------
        torch.Tensor, scalar
            0 (still attached to the graph) when no frame is valid.
        """
        B, T, _ = out.shape  # (B, T, C)
        valid = (torch.ones(B, T, dtype=torch.bool, device=out.device) if mask is None
                 else mask.to(device=out.device, dtype=torch.bool))  # (B, T)
        if self.cfg.task == "forecast":
            h = self.cfg.horizon
            if T <= h:
                return out.sum() * 0.0
            target = self.normalize(targets)[:, h:]  # (B, T - h, F)
            err = (out[:, :-h] - target).abs()  # (B, T - h, F)
            pair = valid[:, :-h] & valid[:, h:]  # (B, T - h)
            return self._masked_mean(err, pair)
        if self.cfg.task == "masked":
            err = (out - self.normalize(targets)).abs()  # (B, T, F)
            return self._masked_mean(err, valid)
        if self.cfg.multi_label:
            # where(), not a product: NaN or garbage in padded frames must not leak in
            safe_t = torch.where(valid[..., None], targets.to(out.dtype), torch.zeros_like(out))
            err = F.binary_cross_entropy_with_logits(out, safe_t, reduction="none")  # (B, T, C)
            return self._masked_mean(err, valid)
        logp = torch.log_softmax(out, dim=-1)  # (B, T, C)
        if targets.dim() == 2:  # (B, T) class indices
            idx = torch.where(valid, targets.long(), torch.zeros_like(targets, dtype=torch.long))
            err = -logp.gather(-1, idx[..., None])[..., 0]  # (B, T)
        else:  # (B, T, C) one-hot or soft targets
            safe_t = torch.where(valid[..., None], targets.to(out.dtype), torch.zeros_like(out))
            err = -(safe_t * logp).sum(-1)  # (B, T)
        return self._masked_mean(err, valid)

    @staticmethod
    def _masked_mean(err: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean of ``err`` (B, T[, C]) over the frames where ``valid`` (B, T) is True."""
        if err.dim() == 3:
            valid = valid[..., None].expand_as(err)
        kept = torch.where(valid, err, torch.zeros_like(err))
        return kept.sum() / valid.sum().clamp(min=1)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def hide_spans(valid: torch.Tensor, fraction: float, span: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Which frames a masked-frame model must rebuild: spans of ``span`` frames, starting at
    ``round(fraction * n / span)`` distinct frames drawn uniformly among each chunk's ``n`` valid
    ones, so that about ``fraction`` of them are hidden (less where spans overlap), as
    wav2vec 2.0 and Mockingjay mask time (Baevski et al. 2020; Liu et al. 2020).

    Parameters
    ----------
    valid : torch.Tensor [shape=(B, T)], bool
        The real frames of each chunk (padding is never hidden nor counted).
    fraction : float in (0, 1)
    span : int >= 1
    generator : torch.Generator or None
        The draw's source (None: torch's seeded default).

    Returns
    -------
    torch.Tensor [shape=(B, T)], bool
        True for hidden frames, a subset of ``valid``.
    """
    B, T = valid.shape
    n = valid.sum(1)  # (B,)
    starts = torch.zeros(B, T + span, dtype=torch.bool, device=valid.device)
    noise = torch.rand(B, T, generator=generator, device="cpu" if generator is None else generator.device)
    noise = noise.to(valid.device).masked_fill(~valid, 2.0)  # padding drawn last, never
    order = noise.argsort(1)  # (B, T): a random order of each chunk's valid frames first
    k = torch.round(fraction * n.float() / span).long().clamp(min=1)  # (B,) starts per chunk
    take = torch.arange(T, device=valid.device)[None] < k[:, None]  # (B, T)
    starts.scatter_(1, torch.where(take, order, torch.full_like(order, T + span - 1)), True)
    starts[:, T + span - 1] = False
    hidden = torch.zeros(B, T + span, dtype=torch.bool, device=valid.device)
    for j in range(span):  # each start hides itself and the span - 1 frames after it
        hidden[:, j:] |= starts[:, : T + span - j]
    return hidden[:, :T] & valid & (n[:, None] > 0)


# -- model directories -----------------------------------------------------------------------
def widen_into(small: FrameModel, big: FrameModel, *, head_rows: Mapping[int, int] | None = None) -> None:
    """Copy ``small`` into ``big``, a network of the same cell, layers, direction and stack with
    at least as many recurrent units (``model.hidden``) and conv channels, so that ``big``
    computes what ``small`` computes (net2net-style widening; Chen et al., 2016).

    The old units and channels keep their weights at their old places in ``big``'s gate-stacked,
    direction-concatenated and stack-interleaved layouts. Every weight from a *new* unit or channel
    into anything is set to zero, so nothing old (nor the head) sees the new ones at first; the new
    ones keep ``big``'s fresh weights from the old inputs, so their activations are non-zero and
    training moves them from the first step. ``head_rows`` maps ``big``'s output classes to
    ``small``'s (those copied; the others keep their fresh rows); ``None``: the same classes;
    ``{}``: no row copied, and then ``small`` may be of another task (a masked-frame model, whose
    head rebuilds frames, into a classifier: everything but the head).

    Raises
    ------
    ModelError
        The two differ in anything but width, or ``big`` is narrower.
    """
    a, b = small.cfg, big.cfg
    same = ("cell", "layers", "bidirectional", "stack", "delay") + (() if head_rows == {} else ("task",))
    if any(getattr(a, k) != getattr(b, k) for k in same) or small.n_features != big.n_features \
            or b.hidden < a.hidden or b.conv_channels < a.conv_channels or (a.conv_channels == 0) != (b.conv_channels == 0):
        raise ModelError(f"cannot widen a {a.cell} {a.layers}x{a.hidden} (conv {a.conv_channels}) network "
                         f"into a {b.cell} {b.layers}x{b.hidden} (conv {b.conv_channels}) one: only model.hidden "
                         f"and model.conv_channels may grow")
    h0, h1, c0, c1, k = a.hidden, b.hidden, a.conv_channels, b.conv_channels, a.stack
    unit, chan = torch.arange(h0), torch.arange(c0)

    def blocks(n_old: int, size_old: int, size_new: int) -> torch.Tensor:
        """Old positions of ``n_old // size_old`` consecutive blocks (gates, directions) in the new layout."""
        return torch.cat([i * size_new + torch.arange(size_old) for i in range(n_old // size_old)])

    if small.front is not None:  # a frame's conv features are (channel, bin); k frames side by side
        bins = small.front.out_features // c0
        frame = (chan[:, None] * bins + torch.arange(bins)).reshape(-1)
        rnn_in = torch.cat([s * c1 * bins + frame for s in range(k)])
    else:
        rnn_in = torch.arange(small.n_features * k)
    if head_rows is None:
        head_rows = {i: i for i in range(small.n_outputs)}
    # the head's rows are (frame of the stack) x (class)
    new_rows = torch.tensor([s * big.n_outputs + i for s in range(k) for i in head_rows], dtype=torch.long)
    old_rows = torch.tensor([s * small.n_outputs + j for s in range(k) for j in head_rows.values()], dtype=torch.long)
    old, new = small.state_dict(), big.state_dict()
    with torch.no_grad():
        for name, w in old.items():
            if name in ("mean", "std"):
                new[name].copy_(w)
                continue
            if name.startswith("front."):  # conv1 reads one input channel, conv2 the channels
                maps = [chan] + ([chan if name.startswith("front.conv2") else torch.arange(1)] if w.dim() > 1 else [])
            elif name.startswith("head."):
                maps = [old_rows] + ([blocks(w.shape[1], h0, h1)] if w.dim() > 1 else [])
            elif name.startswith("rnn.weight_ih_l0"):
                maps = [blocks(w.shape[0], h0, h1), rnn_in]
            elif name.startswith("rnn.weight_ih"):
                maps = [blocks(w.shape[0], h0, h1), blocks(w.shape[1], h0, h1)]
            elif name.startswith("rnn.weight_hh"):
                maps = [blocks(w.shape[0], h0, h1), unit]
            elif name.startswith("rnn.bias"):
                maps = [blocks(w.shape[0], h0, h1)]
            else:
                raise ModelError(f"cannot widen parameter {name!r}")
            target = new[name]
            if w.dim() > 1:  # weights from new units or channels: zero
                keep = torch.zeros(target.shape[1], dtype=torch.bool)
                keep[maps[1]] = True
                target[:, ~keep] = 0.0
            if name.startswith("head."):  # rows: the classes copied; columns: the old units
                target[(new_rows[:, None], maps[1][None]) if w.dim() > 1 else new_rows] = w[maps[0]]
            else:
                target[torch.meshgrid(*maps, indexing="ij") if len(maps) > 1 else maps[0]] = w
    big.load_state_dict(new)


def save_model(model: FrameModel, directory: str | Path, config_dict: Mapping[str, Any]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

    Parameters
    ----------
    model : FrameModel
    directory : str or Path
    config_dict : dict
        JSON-serialisable record (task, class names, feature / chunk configs, ...). Its
        ``"model"``, ``"n_features"`` and ``"n_outputs"`` entries are replaced by the model's own.

    Returns
    -------
    Path
        The model directory.
    """
    from .cache import file_digest

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = dict(config_dict)
    record.update({"model": dataclasses.asdict(model.cfg), "n_features": model.n_features,
                   "n_outputs": model.n_outputs})
    target = directory / WEIGHTS_FILE
    # A kill at any point leaves a loadable directory: the new weights wait under a temporary
    # name while config.json lists their sha256 and, still accepted, the old file's; then they
    # are renamed into place, and the old hash leaves the table.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{WEIGHTS_FILE}.")
    os.close(fd)
    try:
        save_weights(model, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        record[HASHES] = {WEIGHTS_FILE: file_digest(Path(tmp))}
        record[PREVIOUS_HASHES] = {WEIGHTS_FILE: file_digest(target)} if target.is_file() else {}
        try:
            text = json.dumps(record, indent=2, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"config_dict is not JSON-serialisable ({exc})") from None
        # an earlier model.onnx here is another network's now: its hash leaves the table, and the
        # file goes (export or the end of training writes the new one)
        (directory / ONNX_FILE).unlink(missing_ok=True)
        write_beside(directory / CONFIG_FILE, lambda p: Path(p).write_text(text + "\n"))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    record_hashes(directory)
    return directory


def save_weights(model: FrameModel, path: str | Path) -> None:
    """A model's state dict (plain tensors) as a safetensors file at ``path``."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def load_model(directory: str | Path, map_location: str | torch.device = "cpu"
               ) -> tuple[FrameModel, dict[str, Any]]:
    """Rebuild a model from ``config.json`` and its weights, without executing code from files.

    Weights come from ``model.safetensors``; only when it is absent, from ``model.pt`` read with
    ``torch.load(weights_only=True)`` (a state dict, or ``{"state_dict": ...}``).

    Returns
    -------
    model : FrameModel
        On ``map_location``, in eval mode.
    config : dict
        The whole ``config.json``.

    Raises
    ------
    ModelError (a ParameterError)
        Missing or malformed files, weights whose sha256 differs from the one ``config.json``
        records, weights that are not plain tensors, or weights that do not fit the
        configuration. The message names the file.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    config = read_model_config(directory)
    if not isinstance(config.get("model"), dict):
        raise ModelError(f"{config_path}: needs a 'model' table")
    cfg = section_from_dict(ModelConfig, "model", config["model"], source=str(config_path))
    try:
        model = FrameModel(cfg, n_features=int(config["n_features"]),
                           n_outputs=int(config["n_outputs"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{config_path}: needs integer 'n_features' and 'n_outputs' ({exc})") from None

    weights = weights_file(directory)
    if not weights.exists():
        raise ModelError(f"{directory}: no {WEIGHTS_FILE} or {LEGACY_WEIGHTS_FILE}")
    check_weights(directory, weights.name, config=config)
    if weights.name == WEIGHTS_FILE:
        try:
            state = load_file(str(weights), device="cpu")
        except Exception as exc:  # safetensors only parses: nothing in the file can run
            raise ModelError(f"{weights}: not a valid safetensors file ({exc})") from None
    else:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # the weights-only unpickler refuses anything but tensors
            raise ModelError(f"{weights}: not a plain tensor checkpoint "
                                f"(loaded with weights_only=True): {exc}") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{weights}: expected a mapping of names to tensors")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{weights}: weights do not fit {config_path} ({exc})") from None
    return model.to(map_location).eval(), config
