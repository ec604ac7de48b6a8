"""The load stage: decode any soundfile/librosa-readable file to mono float32 at a target rate.

Decoding goes through soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...) and falls
back to audioread (ffmpeg, gstreamer), as librosa does, for anything else. Resampling uses soxr. Integer formats are scaled
to [-1, 1) the way soundfile does (``int16 / 32768``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import LoadConfig
from .errors import AudioLoadError



def _existing(path: str | Path) -> Path:
    """``path`` as a Path, or the error a missing or empty file gets."""
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{path}: empty file (0 bytes)")
    return path


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a file as float32 samples, keeping its channels and rate.

    Returns
    -------
    y : np.ndarray [shape=(n_samples, n_channels), dtype=float32]
    sr : int
    Raises
    ------
    AudioLoadError
        when neither soundfile nor librosa/audioread can read it.
    """
    path = _existing(path)
    import soundfile as sf

    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return y, int(sr)
    except Exception as sf_exc:  # libsndfile says why in the message
        first = f"soundfile: {sf_exc}"
    try:
        y, sr = _decode_audioread(path)
    except Exception as ar_exc:
        why = str(ar_exc) or type(ar_exc).__name__
        raise AudioLoadError(f"{path}: not a readable audio file ({first}; audioread: {why})") from None
    return y, sr


def _decode_audioread(path: Path) -> tuple[np.ndarray, int]:
    """Fallback decoder (ffmpeg/gstreamer through audioread), as librosa's own fallback."""
    import audioread

    with audioread.audio_open(str(path)) as f:
        sr, channels = int(f.samplerate), int(f.channels)
        pcm = b"".join(f)
    y = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return np.ascontiguousarray(y.reshape(-1, channels)), sr


def to_mono(y: np.ndarray, *, channel: int = -1, path: str | Path = "") -> np.ndarray:
    """Mix (n_samples, n_channels) down to (n_samples,): mean of channels, or one channel."""
    if channel < 0:
        return y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    if channel >= y.shape[1]:
        raise AudioLoadError(f"{path}: load.channel={channel} but the file has {y.shape[1]} channel(s)")
    return y[:, channel]


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """soxr resampling along the first axis; identity when the rates match."""
    if orig_sr == target_sr:
        return y
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality=quality).astype(np.float32, copy=False)


def load_audio(path: str | Path, *, sr: int = 16000, mono: bool = True, channel: int = -1,
               resample_quality: str = "HQ") -> np.ndarray:
    """Decode, pick or mix channels, resample, and check the samples.

    Returns
    -------
    y : np.ndarray [shape=(n_samples,) if mono else (n_samples, n_channels), dtype=float32]
    Raises
    ------
    AudioLoadError
        unreadable file, no samples, or non-finite samples (the message names the file).
    """
    y, file_sr = decode(path)
    if y.shape[0] == 0:
        raise AudioLoadError(f"{path}: no audio samples (empty audio)")
    if not np.isfinite(y).all():
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioLoadError(f"{path}: {bad} non-finite samples (NaN or inf); audio must be finite")
    if mono:
        y = to_mono(y, channel=channel, path=path)
    elif channel >= 0:
        y = to_mono(y, channel=channel, path=path)[:, None]
    y = resample(y, orig_sr=file_sr, target_sr=sr, quality=resample_quality)
    return np.ascontiguousarray(y, dtype=np.float32)


def compute(cfg: LoadConfig, source: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Stage body: the arrays and metadata of one load entry."""
    y = load_audio(source, sr=cfg.sr, mono=cfg.mono, channel=cfg.channel,
                   resample_quality=cfg.resample_quality)
    n = int(y.shape[0])
    return {"y": y}, {"sr": cfg.sr, "n_samples": n, "duration": n / cfg.sr}


def stream_audio(path: str | Path, *, sr: int = 16000, channel: int = -1, resample_quality: str = "HQ",
                 block_seconds: float = 30.0):
    """Decode, mix to mono, check and resample a file block by block (soundfile blocks, soxr's
    streaming resampler): the blocks concatenated equal :func:`load_audio` with ``mono=True``
    sample for sample, while memory holds one block whatever the file's length. A format
    soundfile cannot read falls back to :func:`load_audio` (one block).

    Raises
    ------
    AudioLoadError
        unreadable file, no samples, or non-finite samples (the message names the file and where).
    """
    import soundfile as sf

    path = _existing(path)
    try:
        f = sf.SoundFile(str(path))
    except Exception:  # noqa: BLE001 - not for libsndfile: the whole-file path tries audioread
        yield load_audio(path, sr=sr, mono=True, channel=channel, resample_quality=resample_quality)
        return
    with f:
        yield from resample_blocks(_sf_blocks(f, path, channel, block_seconds), orig_sr=int(f.samplerate),
                                   target_sr=sr, quality=resample_quality)


def _sf_blocks(f, path: Path, channel: int, block_seconds: float):
    """Mono float32 blocks of an open SoundFile, each checked finite; at least one sample."""
    file_sr, seen = int(f.samplerate), 0
    step = max(1, int(block_seconds * file_sr))
    while True:
        try:
            y = f.read(step, dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 - libsndfile stops mid-file: name the file and where
            try:  # the decoder's position: a failed read of a whole block still decoded part of it
                reached = max(seen, int(f.tell()))
            except Exception:  # noqa: BLE001 - then the last block that was read whole
                reached = seen
            raise AudioLoadError(f"{path}: not a readable audio file after {reached / file_sr:.2f} s "
                                 f"(soundfile: {exc})") from None
        if len(y) and not np.isfinite(y).all():
            bad = int(np.count_nonzero(~np.isfinite(y)))
            raise AudioLoadError(f"{path}: {bad} non-finite samples (NaN or inf) in the block at "
                                 f"{seen / file_sr:.2f} s; audio must be finite")
        seen += len(y)
        if len(y) < step and seen == 0:
            raise AudioLoadError(f"{path}: no audio samples (empty audio)")
        if len(y):
            yield to_mono(y, channel=channel, path=path)
        if len(y) < step:
            return


def resample_blocks(blocks, *, orig_sr: int, target_sr: int, quality: str = "HQ"):
    """Mono float32 blocks at ``orig_sr`` -> blocks at ``target_sr`` through soxr's streaming
    resampler, flushed when the input ends: concatenated, they equal :func:`resample` of the whole
    signal sample for sample (the one streaming resampler, for files and for ``stream``)."""
    if orig_sr == target_sr:
        for y in blocks:
            yield np.ascontiguousarray(y, dtype=np.float32)
        return
    import soxr

    rs = soxr.ResampleStream(orig_sr, target_sr, 1, dtype="float32", quality=quality)
    for y in blocks:
        out = rs.resample_chunk(np.ascontiguousarray(y, dtype=np.float32), last=False)
        if len(out):
            yield out
    out = rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
    if len(out):
        yield out
