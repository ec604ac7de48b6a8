"""Generated backgrounds and channels: coloured noise and hum, the telephone band."""
from __future__ import annotations



import numpy as np

from .common import choice, resample


def background_noise(rng, n, sr) -> tuple[np.ndarray, dict]:
    color = choice(rng, ("white", "pink", "brown", "hum"))
    if color == "hum":
        f0 = choice(rng, (50.0, 60.0)) * rng.uniform(0.995, 1.005)
        t = np.arange(n) / sr
        y = np.zeros(n)
        for h in range(1, int(rng.integers(3, 12))):
            if h * f0 < sr / 2:
                y += rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * h * f0 * t
                                                       + rng.uniform(0, 2 * np.pi))
        y = y / (np.sqrt(np.mean(y ** 2)) + 1e-12) + 10 ** (-30 / 20) * rng.standard_normal(n)
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sr)
        f[0] = f[1]
        if color == "pink":
            spec /= np.sqrt(f)
        elif color == "brown":
            spec /= np.maximum(f, 20.0)
        spec[0] = 0
        y = np.fft.irfft(spec, n)
    modulated = bool(rng.random() < 0.3)
    if modulated:
        t = np.arange(n) / sr
        depth = rng.uniform(0.3, 0.9)
        y = y * (1 - depth / 2 + depth / 2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t
                                                   + rng.uniform(0, 2 * np.pi)))
    return y, {"detail": {"color": color, "modulated": modulated}}


def telephone(y: np.ndarray, sr: int, rng) -> tuple[np.ndarray, dict]:
    """Narrow-band channel: to 8 kHz, 300-3400 Hz band-pass, maybe G.711 mu-law, and back."""
    from scipy.signal import butter, sosfilt
    x = resample(y, sr, 8000)
    x = sosfilt(butter(4, (300, 3400), btype="bandpass", fs=8000, output="sos"), x)
    mulaw = bool(rng.random() < 0.5)
    if mulaw:
        mu = 255.0
        c = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
        c = np.round(c * 127.5) / 127.5
        x = np.sign(c) * ((1 + mu) ** np.abs(c) - 1) / mu
    return resample(x, 8000, sr)[:len(y)], {"mulaw": mulaw}
