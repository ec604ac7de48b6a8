"""Shared fixtures: short synthetic signals and real audio files in ``tmp_path``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest


def make_tone(sr: int = 16000, seconds: float = 1.0, freq: float = 440.0, *,
              amplitude: float = 0.5, channels: int = 0) -> np.ndarray:
    """A sine at ``freq`` Hz; ``channels=0``: shape (n,), else (n, channels), channel k scaled by k+1."""
    t = np.arange(int(round(sr * seconds))) / sr
    y = amplitude * np.sin(2 * np.pi * freq * t)
    if channels:
        y = y[:, None] * (np.arange(channels) + 1) / channels
    return y.astype(np.float32)


def make_noise(sr: int = 16000, seconds: float = 1.0, *, amplitude: float = 0.1, seed: int = 0,
               channels: int = 0) -> np.ndarray:
    """Gaussian noise, reproducible by ``seed``: shape (n,) or (n, channels)."""
    n = int(round(sr * seconds))
    shape = (n, channels) if channels else (n,)
    return (amplitude * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@pytest.fixture
def tone() -> Callable[..., np.ndarray]:
    """``tone(sr, seconds, freq)``: see :func:`make_tone`."""
    return make_tone


@pytest.fixture
def noise() -> Callable[..., np.ndarray]:
    """``noise(sr, seconds, seed=0)``: see :func:`make_noise`."""
    return make_noise


def write_audio(directory: Path, name: str, y: np.ndarray, sr: int, subtype: str | None = "PCM_16",
                **sf_kwargs) -> Path:
    """Write ``y`` [shape=(n,) or (n, channels)] to ``directory / name`` with soundfile.

    The container follows the extension (``.wav``, ``.flac``, ``.ogg``, ``.mp3``) unless
    ``format=`` is given; ``subtype=None`` takes soundfile's default for that container.
    """
    import soundfile as sf

    path = Path(directory) / name
    sf.write(str(path), y, sr, subtype=subtype, **sf_kwargs)
    return path


@pytest.fixture
def write_wav() -> Callable[..., Path]:
    """``write_wav(tmp_path, name, y, sr, subtype)``: see :func:`write_audio`."""
    return write_audio
