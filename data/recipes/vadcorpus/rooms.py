"""Acoustic augmentation: simulated rooms, EQ and band limits, level ramps."""
from __future__ import annotations



import numpy as np

from .common import r3


RT60_RANGE = (0.15, 0.8)


def room_rir(rng, sr: int, n_sources: int) -> tuple[list[np.ndarray], dict]:
    """Impulse responses of one simulated shoebox room (one per source position).

    pyroomacoustics' image-source model when it is installed; otherwise an exponentially
    decaying noise tail with the same RT60 after a direct-path impulse. Each response starts
    at its direct path, so the dry speech labels stay aligned."""
    dims = [float(rng.uniform(3, 12)), float(rng.uniform(2.5, 9)), float(rng.uniform(2.4, 4))]
    rt60 = float(rng.uniform(*RT60_RANGE))
    mic = [float(rng.uniform(0.5, d - 0.5)) for d in dims]
    srcs = [[float(rng.uniform(0.5, d - 0.5)) for d in dims] for _ in range(n_sources)]
    info = {"rt60_s": r3(rt60), "room_m": [r3(d) for d in dims]}
    hs, method = [], "synthetic exponential noise tail"
    try:
        import pyroomacoustics as pra
    except ImportError:
        pra = None
    if pra is not None:
        try:
            e_abs, order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # a large room cannot be that dry (absorption over 1): the tail below
            method += " (pyroomacoustics: room too large for its RT60)"
        else:
            room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(e_abs), max_order=order,
                               air_absorption=False)
            for s in srcs:
                room.add_source(s)
            room.add_microphone(mic)
            room.compute_rir()
            hs = [np.asarray(room.rir[0][i], dtype=np.float64) for i in range(n_sources)]
            info["method"] = f"pyroomacoustics {pra.__version__} image sources, order {order}"
    if not hs:
        for s in srcs:
            dist = float(np.linalg.norm(np.subtract(s, mic)))
            m = int(rt60 * sr)
            t = np.arange(m) / sr
            tail = rng.standard_normal(m) * np.exp(-6.9078 * t / rt60)
            h = 0.3 * dist * tail / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
            h[0] = 1.0
            hs.append(h)
        info["method"] = method
    out = []
    for h in hs:
        i = int(np.flatnonzero(np.abs(h) >= 0.5 * np.abs(h).max())[0])
        out.append(h[max(i - 40, 0):])  # the fractional-delay filter's pre-ringing kept
    info["distances_m"] = [r3(np.linalg.norm(np.subtract(s, mic))) for s in srcs]
    return out, info


def simulation_method() -> str:
    """What :func:`room_rir` simulates rooms with here, for a build's recipe.json."""
    try:
        import pyroomacoustics as pra
    except ImportError:
        return "synthetic exponential noise tail (pyroomacoustics not installed)"
    return f"pyroomacoustics {pra.__version__}"


def convolve(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve
    shift = int(np.flatnonzero(np.abs(h) >= 0.5 * np.abs(h).max())[0])
    return fftconvolve(y, h)[shift:shift + len(y)]


def _peaking(f0, gain_db, q, sr):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / sr
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])


def equalise(y, sr, rng, band: bool, eq: bool) -> tuple[np.ndarray, dict]:
    """Random peaking filters (+-10 dB) and/or random band limits (a cheap microphone)."""
    from scipy.signal import butter, sosfilt
    info = {}
    if eq:
        sos, bands = [], []
        for _ in range(int(rng.integers(1, 4))):
            f0 = float(np.exp(rng.uniform(np.log(80), np.log(min(7000, 0.4 * sr)))))
            g, q = float(rng.uniform(-10, 10)), float(rng.uniform(0.4, 2.5))
            sos.append(_peaking(f0, g, q, sr))
            bands.append([round(f0), round(g, 1), round(q, 2)])
        y = sosfilt(np.array(sos), y)
        info["peaking_hz_db_q"] = bands
    if band:
        lo = float(rng.uniform(60, 400)) if rng.random() < 0.7 else None
        hi = float(rng.uniform(3000, min(7500, 0.45 * sr))) if rng.random() < 0.7 else None
        if lo:
            y = sosfilt(butter(2, lo, btype="highpass", fs=sr, output="sos"), y)
        if hi:
            y = sosfilt(butter(4, hi, btype="lowpass", fs=sr, output="sos"), y)
        info["band_hz"] = [None if lo is None else round(lo), None if hi is None else round(hi)]
    return y, info


def level_ramp(rng, n: int) -> tuple[np.ndarray, list]:
    """A slow piecewise-linear gain in dB (2-4 knots within +-8 dB): fades, a moving source."""
    k = int(rng.integers(2, 5))
    knots_db = rng.uniform(-8, 8, k)
    x = np.linspace(0, n - 1, k)
    return 10 ** (np.interp(np.arange(n), x, knots_db) / 20), [round(float(d), 1)
                                                               for d in knots_db]
