"""The features stage: waveform -> spectrogram (frames x bins).

Frame convention (labels and predictions rely on it): frame ``i`` is centred at
``i * hop_length / sr`` seconds, and a file of ``n`` samples has ``1 + n // hop_length`` frames
(librosa's ``center=True``). ``fps = sr / hop_length`` (100 with the defaults).

Kinds, all float32 with shape ``(n_frames, n_bins)``:

- ``stft``: magnitude ``|X|``; ``power``: ``|X|**2`` (``n_fft // 2 + 1`` bins);
- ``mel``: mel power spectrogram (librosa's ``melspectrogram``: Slaney mel scale and norm);
- ``logmel``: ``10 * log10(max(mel, amin))`` (librosa's ``power_to_db(ref=1, top_db=None)``);
- ``mfcc``: orthonormal DCT-II of ``logmel``, first ``n_mfcc`` coefficients (librosa's ``mfcc``
  given that ``logmel``);
- ``fbank``: Kaldi filterbanks (``torchaudio.compliance.kaldi.fbank``: povey window, pre-emphasis
  0.97, DC removal, natural log, the signal scaled to 16-bit range as Kaldi reads it), on the
  signal padded by ``win_length // 2`` on each side so that frames keep the centring above.

On the CPU the spectrogram is computed in blocks of frames with numpy/scipy (about twice
librosa's single-thread speed, measured by ``bench/features.py``); on ``cuda`` the same maths runs
in torch over a batch of files at once.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import FeaturesConfig
from .errors import ParameterError

_DB_PER_NEPER = np.float32(10.0 / np.log(10.0))  # 10 log10(x) = _DB_PER_NEPER * ln(x)
_BLOCK = 256  # frames per FFT block: keeps the working set in the L2 cache
_KALDI_SCALE = 32768.0
_KALDI_PREEMPH = 0.97


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a signal under the centred convention: ``1 + n_samples // hop_length``."""
    return 1 + n_samples // hop_length


def fps(cfg: FeaturesConfig, sr: int) -> float:
    """Frames per second."""
    return sr / cfg.hop_length


# --------------------------------------------------------------------------- filterbanks


def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
                    mels)


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=16)
def mel_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float = 0.0,
                   htk: bool = False, norm: str = "slaney") -> np.ndarray:
    """Triangular mel filters, the same as ``librosa.filters.mel``.

    Returns
    -------
    fb : np.ndarray [shape=(n_mels, n_fft // 2 + 1), dtype=float32] (read-only, cached)
    """
    fmax = fmax or sr / 2.0
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    fb = weights.astype(np.float32)
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=16)
def _window(kind: str, win_length: int) -> np.ndarray:
    """Periodic analysis window (scipy/librosa ``get_window(kind, n, fftbins=True)``); povey is
    Kaldi's symmetric one. Written out here: importing scipy.signal costs seconds per worker."""
    n = np.arange(win_length, dtype=np.float64)
    phase = 2 * np.pi * n / win_length
    if kind == "povey":
        w = (0.5 - 0.5 * np.cos(2 * np.pi * n / (win_length - 1))) ** 0.85
    elif kind == "hann":
        w = 0.5 - 0.5 * np.cos(phase)
    elif kind == "hamming":
        w = 0.54 - 0.46 * np.cos(phase)
    elif kind == "blackman":
        w = 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2 * phase)
    else:
        raise ParameterError(f"features.window={kind!r} must be one of hann, hamming, blackman, povey")
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


@lru_cache(maxsize=8)
def _dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II as a (n_mels, n_mfcc) matrix (scipy's ``dct(type=2, norm='ortho')``)."""
    import scipy.fft

    d = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].T
    return np.ascontiguousarray(d, dtype=np.float32)


def _require_torchaudio() -> None:
    """Kaldi filterbanks are torchaudio's: name the extra that brings it when it is absent."""
    from .engine import require_torch

    require_torch("features.kind='fbank' (Kaldi filterbanks through torchaudio)")


def _kaldi_banks(cfg: FeaturesConfig, sr: int, padded: int) -> np.ndarray:
    from torchaudio.compliance import kaldi

    banks = kaldi.get_mel_banks(cfg.n_mels, padded, float(sr), cfg.fmin, cfg.fmax, 100.0, -500.0, 1.0)
    banks = banks[0] if isinstance(banks, tuple) else banks
    banks = np.pad(banks.numpy(), ((0, 0), (0, 1)))  # the Nyquist bin gets weight 0
    return banks.astype(np.float32)


# --------------------------------------------------------------------------- CPU path


def _centre_pad(frame_length: int) -> tuple[int, int]:
    """(left, right) padding that centres frame ``i`` on sample ``i * hop`` and yields
    ``1 + n // hop`` frames also for an odd ``frame_length`` (symmetric ``frame_length // 2``
    padding leaves an odd-length frame one sample short of the last frame)."""
    return frame_length // 2, frame_length - frame_length // 2


def _frames(y: np.ndarray, *, frame_length: int, hop_length: int, pad: int | tuple[int, int],
            pad_mode: str) -> np.ndarray:
    """Strided view of the padded signal: (n_frames, frame_length), no copy of the frames."""
    yp = np.pad(y, pad, mode=pad_mode)
    return np.lib.stride_tricks.sliding_window_view(yp, frame_length)[::hop_length]


def spectrogram(y: np.ndarray, *, sr: int, cfg: FeaturesConfig) -> np.ndarray:
    """Compute one file's features on the CPU.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
    sr : int
    cfg : FeaturesConfig
    Returns
    -------
    S : np.ndarray [shape=(1 + n_samples // hop_length, n_bins), dtype=float32]
    """
    if y.ndim != 1:
        raise ParameterError(f"features need a mono signal, got shape {y.shape} (set load.mono=true)")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if cfg.kind == "fbank":
        _require_torchaudio()
        return _fbank_torch([y], sr=sr, cfg=cfg, device="cpu")[0]
    n_out = n_frames(len(y), cfg.hop_length)
    frames = _frames(y, frame_length=cfg.n_fft, hop_length=cfg.hop_length,
                     pad=_centre_pad(cfg.n_fft), pad_mode=cfg.pad_mode)[:n_out]
    return frame_features(frames, sr=sr, cfg=cfg)


def frame_length(cfg: FeaturesConfig) -> int:
    """Samples one frame reads from the centre-padded signal (``win_length`` for fbank)."""
    return cfg.win_length if cfg.kind == "fbank" else cfg.n_fft


def frame_features(frames: np.ndarray, *, sr: int, cfg: FeaturesConfig) -> np.ndarray:
    """Features of frames of the centre-padded signal [shape=(n, frame_length(cfg))]: each frame's
    row depends on that frame alone, so any split of a signal into frames gives the same rows."""
    if cfg.kind == "fbank":
        _require_torchaudio()
        import torch

        return _fbank_frames(torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[None],
                             sr=sr, cfg=cfg, device="cpu")[0].cpu().numpy()
    # Only the win_length non-zero samples of each centred frame are read; rfft zero-pads them to
    # n_fft at the end, a circular shift of librosa's centred window, so |X| is identical.
    off = (cfg.n_fft - cfg.win_length) // 2
    frames = frames[:, off: off + cfg.win_length]
    w = _window(cfg.window, cfg.win_length)
    fb = None
    if cfg.kind in ("mel", "logmel", "mfcc"):
        fb = mel_filterbank(sr=sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
                            htk=cfg.htk, norm=cfg.norm).T.copy()  # (bins, n_mels)
    width = fb.shape[1] if fb is not None else cfg.n_fft // 2 + 1
    out = np.empty((len(frames), width), dtype=np.float32)
    with _one_blas_thread(), np.errstate(over="ignore", invalid="ignore"):
        _blocks(frames, w, fb, out, cfg)  # absurd input overflows: the runner refuses to store it
    if cfg.kind in ("logmel", "mfcc"):
        np.maximum(out, cfg.amin, out=out)
        np.log(out, out=out)  # 10 log10(x) as (10 / ln 10) ln(x): 3x faster, equal to float32 round-off
        out *= _DB_PER_NEPER
    if cfg.kind == "mfcc":
        with _one_blas_thread():
            out = out @ _dct_matrix(cfg.n_mels, cfg.n_mfcc)
    return out


def spectrogram_blocks(blocks, *, sr: int, cfg: FeaturesConfig, frames_per_block: int = 16 * _BLOCK):
    """Features of a signal that arrives as consecutive blocks (any sizes), yielded as blocks of
    rows; concatenated they equal :func:`spectrogram` of the whole signal (the same frames, split
    at multiples of the FFT block, so even the BLAS calls see the same rows). Memory holds one
    block of samples and one block of rows, whatever the signal's length.

    Returns (through ``StopIteration.value``) the number of samples seen.
    """
    L, hop = frame_length(cfg), cfg.hop_length
    left, right = _centre_pad(L)
    parts: list[np.ndarray] = []  # the padded signal from frame `done`'s first sample on, in pieces
    # (joined only when a block of rows is ready: one copy per sample)
    head: np.ndarray | None = None  # the first samples, kept until the left padding can be made
    done, n = 0, 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        n += len(block)
        if head is not None or done == 0 and not parts:
            head = block if head is None else np.concatenate([head, block])
            if len(head) <= left + L:  # reflect padding needs the first left + 1 samples
                continue
            block, head = np.concatenate([_left_pad(head, left, cfg.pad_mode), head]), None
        parts.append(block)
        have = sum(len(p) for p in parts)
        ready = (have - L) // hop + 1 if have >= L else 0
        ready -= ready % frames_per_block
        if ready:
            buf = np.concatenate(parts) if len(parts) > 1 else parts[0]
            yield frame_features(np.lib.stride_tricks.sliding_window_view(buf, L)[::hop][:ready], sr=sr, cfg=cfg)
            parts, done = [buf[ready * hop:]], done + ready
    if head is not None:  # a short signal: the whole path, exactly
        rows = spectrogram(head, sr=sr, cfg=cfg)
        if len(rows):
            yield rows
        return n
    buf = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    tail = _right_pad(buf, right, cfg.pad_mode)
    n_out = n_frames(n, hop) - done
    if n_out > 0:
        padded = np.concatenate([buf, tail])
        yield frame_features(np.lib.stride_tricks.sliding_window_view(padded, L)[::hop][:n_out], sr=sr, cfg=cfg)
    return n


def _left_pad(head: np.ndarray, left: int, mode: str) -> np.ndarray:
    return np.pad(head[: left + 1], (left, 0), mode=mode)[:left] if left else head[:0]


def _right_pad(tail: np.ndarray, right: int, mode: str) -> np.ndarray:
    return np.pad(tail[-(right + 1):], (0, right), mode=mode)[-right:] if right else tail[:0]


@lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """Single-threaded BLAS: the same summation order, so bit-identical output on any machine
    load or executor (parallelism is across files, not inside one)."""
    return _controller().limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _rfft_rows():
    """``f(x)`` = ``scipy.fft.rfft(x, axis=1)`` for a C-contiguous float32 array: scipy's pocketfft
    kernel called directly, loaded from its file without importing the ``scipy.fft`` package, whose
    array-API layer (numpy.f2py, numpy.ma, scipy.special) costs 0.25-0.3 s of every start-up. The
    same kernel and arguments (forward, no normalisation, one thread), so the same bits; scipy.fft
    itself where the module is not where scipy keeps it."""
    import glob
    import importlib.util
    import os

    try:
        root = importlib.util.find_spec("scipy").submodule_search_locations[0]
        path, = glob.glob(os.path.join(root, "fft", "_pocketfft", "pypocketfft.*"))
        spec = importlib.util.spec_from_file_location("scipy.fft._pocketfft.pypocketfft", path)
        pfft = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pfft)
        pfft.r2c(np.zeros((1, 4), np.float32), (1,), True, 0, None, 1)
        return lambda x: pfft.r2c(x, (1,), True, 0, None, 1)
    except Exception:  # noqa: BLE001 - another scipy layout: the public function, same result
        import scipy.fft

        return lambda x: scipy.fft.rfft(x, axis=1)


def _blocks(frames, w, fb, out, cfg: FeaturesConfig) -> None:
    """Power (or magnitude) spectra of windowed frames, through the mel bank when ``fb`` is given,
    into ``out``; ``_BLOCK`` frames at a time, the windowed frames written into one zero-padded
    buffer and the power formed in place (re * re + im * im, as written, so exact)."""
    rfft = _rfft_rows()
    n_out, n = out.shape[0], frames.shape[1]
    buf = np.zeros((min(_BLOCK, n_out), cfg.n_fft), dtype=np.float32)  # windowed frames, then zeros to n_fft
    for s in range(0, n_out, _BLOCK):
        b = min(_BLOCK, n_out - s)
        np.multiply(frames[s: s + b], w, out=buf[:b, :n])
        X = rfft(buf[:b]).view(np.float32)  # (b, 2 * bins): re, im, re, im, ...
        np.square(X, out=X)
        P = X[:, 0::2] + X[:, 1::2]  # (b, bins)
        if fb is not None:
            np.matmul(P, fb, out=out[s: s + b])
        elif cfg.kind == "stft":
            np.sqrt(P, out=out[s: s + b])
        else:
            out[s: s + b] = P


# --------------------------------------------------------------------------- torch path


def _pad_batch(ys: list[np.ndarray], pad: int | tuple[int, int], pad_mode: str):
    """Pad each signal by ``pad`` (both sides, or (left, right)) in its own mode, then right-pad
    to a batch."""
    import torch

    padded = [np.pad(np.asarray(y, dtype=np.float32), pad, mode=pad_mode) for y in ys]
    longest = max(len(p) for p in padded)
    batch = np.zeros((len(padded), longest), dtype=np.float32)
    for i, p in enumerate(padded):
        batch[i, : len(p)] = p
    return torch.from_numpy(batch)


def _fbank_torch(ys: list[np.ndarray], *, sr: int, cfg: FeaturesConfig, device: str) -> list[np.ndarray]:
    """Kaldi fbank over a batch: same maths as ``torchaudio.compliance.kaldi.fbank``."""
    win, hop = cfg.win_length, cfg.hop_length
    x = _pad_batch(ys, _centre_pad(win), cfg.pad_mode).to(device)  # (B, N)
    out = _fbank_frames(x.unfold(1, win, hop), sr=sr, cfg=cfg, device=device).cpu().numpy()  # (B, n, n_mels)
    return [np.ascontiguousarray(out[i, : n_frames(len(y), hop)]) for i, y in enumerate(ys)]


def _fbank_frames(frames, *, sr: int, cfg: FeaturesConfig, device: str):
    """Kaldi fbank of frames (B, n, win) of the padded signal: DC removal, pre-emphasis, povey
    window, power spectrum, mel banks, natural log."""
    import torch

    win = cfg.win_length
    padded = 1 << (win - 1).bit_length()  # Kaldi rounds the FFT size to a power of two
    frames = frames.to(device) * _KALDI_SCALE
    frames = frames - frames.mean(dim=2, keepdim=True)  # remove DC offset
    prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=2)  # Kaldi replicates sample 0
    frames = frames - _KALDI_PREEMPH * prev
    frames = frames * torch.from_numpy(_window("povey", win).copy()).to(device)
    spec = torch.fft.rfft(frames, n=padded, dim=2)
    power = spec.real.square() + spec.imag.square()  # (B, n, bins)
    banks = torch.from_numpy(_kaldi_banks(cfg, sr, padded)).to(device)  # (n_mels, bins)
    mel = power @ banks.T
    eps = torch.finfo(torch.float32).eps
    return torch.clamp_min(mel, eps).log()


def spectrogram_batch(ys: list[np.ndarray], *, sr: int, cfg: FeaturesConfig, device: str = "cpu") -> list[np.ndarray]:
    """Features of several files in one torch call (for ``--device cuda``).

    Each output equals :func:`spectrogram` of that file alone (float32 rounding aside).
    """
    import torch

    if cfg.kind == "fbank":
        return _fbank_torch(ys, sr=sr, cfg=cfg, device=device)
    x = _pad_batch(ys, _centre_pad(cfg.n_fft), cfg.pad_mode).to(device)  # (B, N)
    w = np.zeros(cfg.n_fft, dtype=np.float32)
    off = (cfg.n_fft - cfg.win_length) // 2
    w[off: off + cfg.win_length] = _window(cfg.window, cfg.win_length)
    X = torch.stft(x, cfg.n_fft, cfg.hop_length, window=torch.from_numpy(w).to(device), center=False,
                   return_complex=True)  # (B, bins, n)
    S = (X.real.square() + X.imag.square()).transpose(1, 2)  # (B, n, bins)
    if cfg.kind == "stft":
        S = S.sqrt()
    elif cfg.kind != "power":
        fb = torch.from_numpy(mel_filterbank(sr=sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                             fmax=cfg.fmax, htk=cfg.htk, norm=cfg.norm).copy()).to(device)
        S = S @ fb.T
        if cfg.kind in ("logmel", "mfcc"):
            S = 10.0 * torch.log10(torch.clamp_min(S, cfg.amin))
        if cfg.kind == "mfcc":
            S = S @ torch.from_numpy(_dct_matrix(cfg.n_mels, cfg.n_mfcc)).to(device)
    S = S.float().cpu().numpy()
    return [np.ascontiguousarray(S[i, : n_frames(len(y), cfg.hop_length)]) for i, y in enumerate(ys)]


def finish(S: np.ndarray, cfg: FeaturesConfig, sr: int, duration: float) -> tuple[dict[str, np.ndarray], dict]:
    """Cast to the storage dtype and describe the entry.

    Raises
    ------
    ParameterError
        ``dtype=float16`` and a value beyond float16's range (65504): linear-scale kinds
        (``stft``, ``power``, ``mel``) of loud audio would otherwise be stored as ``inf``.
    """
    if cfg.dtype == "float16" and S.size:
        peak = float(np.abs(S).max())
        if peak > float(np.finfo(np.float16).max):
            raise ParameterError(
                f"features.dtype=float16 cannot hold kind={cfg.kind!r}: a value of {peak:.4g} exceeds "
                f"float16's maximum 65504 (use dtype float32, or a log kind: logmel, mfcc, fbank)")
    S = S.astype(cfg.dtype, copy=False)
    return {"S": S}, {"sr": sr, "hop_length": cfg.hop_length, "fps": fps(cfg, sr),
                      "n_frames": int(S.shape[0]), "n_bins": int(S.shape[1]), "kind": cfg.kind,
                      "duration": duration}


def features_of(y: np.ndarray, sr: int, cfg: FeaturesConfig) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata of one features entry for a waveform (CPU)."""
    return finish(spectrogram(y, sr=sr, cfg=cfg), cfg, sr, len(y) / sr)


def compute(cfg: FeaturesConfig, load) -> tuple[dict[str, np.ndarray], dict]:
    """Stage ``features``: one load entry (``y``, ``meta["sr"]``) -> spectrogram entry."""
    return features_of(load["y"], load.meta["sr"], cfg)


def compute_streaming(cfg: FeaturesConfig, source, load_cfg, *, block_seconds: float = 30.0):
    """Stage ``features`` straight from the source file, block by block (decode, mono, soxr's
    streaming resampler, frames): the same rows as :func:`compute` on the load entry, with memory
    bounded whatever the file's length and no waveform stored. Yields ``("S", rows)``; returns the
    entry's metadata."""
    from .audio import stream_audio
    from .progress import advance

    if not load_cfg.mono and load_cfg.channel < 0:
        raise ParameterError(f"{source}: features need a mono signal (set load.mono=true or load.channel)")
    sr = load_cfg.sr
    blocks = stream_audio(source, sr=sr, channel=load_cfg.channel, resample_quality=load_cfg.resample_quality,
                          block_seconds=block_seconds)
    rows_iter = spectrogram_blocks(blocks, sr=sr, cfg=cfg)
    n_rows, width = 0, None
    while True:
        try:
            rows = next(rows_iter)
        except StopIteration as stop:
            n_samples = stop.value
            break
        arrays, _ = finish(rows, cfg, sr, 0.0)  # the storage dtype (and its float16 range check)
        n_rows, width = n_rows + len(rows), rows.shape[1]
        yield "S", arrays["S"]
        advance(len(rows) / fps(cfg, sr))  # the run's progress, in seconds of audio
    return {"sr": sr, "hop_length": cfg.hop_length, "fps": fps(cfg, sr), "n_frames": n_rows,
            "n_bins": int(width if width is not None else cfg.n_bins), "kind": cfg.kind,
            "duration": n_samples / sr}


def compute_batched(cfg: FeaturesConfig, inputs: list, *, device: str = "cpu", **_):
    """Stage ``features`` over many load entries per torch call (``--device cuda``), in groups of
    ``cfg.batch_size`` files; yields ``(i, (arrays, meta))``, or ``(i, error)``, per input."""
    for start in range(0, len(inputs), cfg.batch_size):
        group = inputs[start: start + cfg.batch_size]
        sr = group[0][0].meta["sr"]
        outs = spectrogram_batch([up[0]["y"] for up in group], sr=sr, cfg=cfg, device=device)
        for i, ((load,), S) in enumerate(zip(group, outs)):
            try:
                yield start + i, finish(S, cfg, sr, load.meta["duration"])
            except ParameterError as exc:
                yield start + i, exc


# --------------------------------------------------------------------------- input level

LEVEL_KINDS = ("logmel", "fbank")  # the kinds whose rows a gain moves by a constant
LEVEL_PERCENTILE = 90.0  # the file's level: this percentile of its frames' levels (its loud part)
_LEVEL_BLOCK = 65536  # frames per pass over a file's rows: memory does not grow with its length
SILENT_ABOVE_FLOOR = 1e-3  # a bin within this of the floor is digital silence (the float32 log's round-off)


def level_floor(cfg: FeaturesConfig) -> float:
    """The value of a silent bin of a log kind: ``10 log10(amin)`` (logmel), ``ln(eps)`` (fbank)."""
    if cfg.kind == "logmel":
        return float(10.0 * np.log10(cfg.amin))
    if cfg.kind == "fbank":
        return float(np.log(np.finfo(np.float32).eps))
    raise ParameterError(f"predict.level_db needs a log-mel kind ({', '.join(LEVEL_KINDS)}); the model's "
                         f"features.kind is {cfg.kind!r}, which a gain does not move by a constant")


def db_per_unit(cfg: FeaturesConfig) -> float:
    """Decibels per unit of a log kind's rows: 1 (logmel), ``10 / ln 10`` (fbank: natural log)."""
    level_floor(cfg)  # other kinds are refused, naming the rule
    return 1.0 if cfg.kind == "logmel" else float(_DB_PER_NEPER)


def file_level(S, cfg: FeaturesConfig) -> float | None:
    """A file's level in dB: the :data:`LEVEL_PERCENTILE` th percentile, over its frames more
    than 10 dB above silence, of each frame's mean mel power (``10 log10(mean_k 10^(S_k / 10))``
    for logmel). Speech where a file has speech, else its loudest background; a gain of ``g`` dB
    on the audio moves it by ``g``. ``None`` for a file with no such frame (silence)."""
    unit = db_per_unit(cfg)
    floor = level_floor(cfg) * unit
    per_db = np.float32(np.log(10.0) / 10.0)
    levels = []
    for a in range(0, len(S), _LEVEL_BLOCK):
        x = np.asarray(S[a: a + _LEVEL_BLOCK], dtype=np.float32) * np.float32(unit)  # dB
        top = x.max(axis=1, keepdims=True)
        x -= top  # <= 0: the powers below stay in (0, 1], float32 holds them to 1e-7
        np.multiply(x, per_db, out=x)
        np.exp(x, out=x)
        lv = top[:, 0].astype(np.float64) + 10.0 * np.log10(x.mean(axis=1, dtype=np.float64))
        levels.append(lv[lv > floor + 10.0])
    lv = np.concatenate(levels) if levels else np.zeros(0)
    return float(np.percentile(lv, LEVEL_PERCENTILE)) if len(lv) else None


def level_gain(S, cfg: FeaturesConfig, level_db: float, range_db: float) -> float:
    """The gain in dB that brings the file's level (:func:`file_level`) to ``level_db``, limited
    to ``+-range_db``; 0 for a silent file."""
    level = file_level(S, cfg)
    return 0.0 if level is None else float(np.clip(level_db - level, -range_db, range_db))


class Leveled:
    """A file's rows as if its audio had been ``gain_db`` louder: each bin moved by the gain (in
    the kind's units), silent bins kept silent and none pushed below silence. Read lazily, like
    the rows it wraps (``len``, ``shape``, slices)."""

    def __init__(self, S, cfg: FeaturesConfig, gain_db: float):
        self.S, self.gain_db = S, float(gain_db)
        self.floor = np.float32(level_floor(cfg))
        self.silent = self.floor + np.float32(SILENT_ABOVE_FLOOR)
        self.shift = np.float32(self.gain_db / db_per_unit(cfg))
        self.shape = S.shape

    def __len__(self) -> int:
        return len(self.S)

    def __getitem__(self, index) -> np.ndarray:
        x = np.asarray(self.S[index], dtype=np.float32)
        return np.where(x <= self.silent, x, np.maximum(x + self.shift, self.floor))


def leveled(S, cfg: FeaturesConfig, level_db: float, range_db: float):
    """``S`` moved to the level ``level_db`` (:func:`level_gain`, :class:`Leveled`); ``S`` itself
    when the gain is 0."""
    gain = level_gain(S, cfg, level_db, range_db)
    return Leveled(S, cfg, gain) if gain else S


# --------------------------------------------------------------------------- keyword API


def _kind_function(kind: str):
    def feature(y: np.ndarray, *, sr: int, **settings) -> np.ndarray:
        cfg = FeaturesConfig(kind=kind, **settings)  # checks every setting, names the bad one
        return spectrogram(np.asarray(y, dtype=np.float32), sr=sr, cfg=cfg)

    feature.__name__ = feature.__qualname__ = kind
    feature.__doc__ = (f"``{kind}`` features of a mono signal [shape=(n_frames, n_bins)], frame i centred at "
                       f"i * hop_length / sr.\n\n    Keyword settings are those of "
                       f":class:`pipeline.config.FeaturesConfig` (``n_fft``, ``win_length``, ``hop_length``, "
                       f"``n_mels``, ``fmin``, ``fmax``, ...), with its defaults; the numbers equal the "
                       f"features stage's.")
    return feature


stft = _kind_function("stft")
power = _kind_function("power")
mel = _kind_function("mel")
logmel = _kind_function("logmel")
mfcc = _kind_function("mfcc")
fbank = _kind_function("fbank")
