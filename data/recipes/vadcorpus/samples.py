"""Backgrounds from sample packs: Sonic Pi samples (loops, patterns, scattered) and bucklespring
keys."""
from __future__ import annotations

import os

import numpy as np

from .common import _add, _sample, choice, r3


SONIC_PI_DIR = "/usr/share/sonic-pi/samples"


BUCKLE_DIR = "/usr/share/buckle/wav"


# Sonic Pi samples that contain voice-like sounds (choir, vocoded "voxy"/robot voices, a burp).
SONIC_PI_EXCLUDE = ("ambi_choir", "bass_voxy_c", "bass_voxy_hit_c", "glitch_robot1",
                    "glitch_robot2", "misc_burp") + tuple(f"mehackit_robot{i}" for i in range(1, 8))


def background_samples(rng, n, split, pools) -> tuple[np.ndarray, dict]:
    sr, buf = pools.sr, np.zeros(n)
    loops, shots = pools.samples_loop[split], pools.samples_shot[split]
    used = []
    mode = choice(rng, ("loop", "pattern", "sparse")) if loops else \
        choice(rng, ("pattern", "sparse"))
    if mode == "loop":
        name = choice(rng, loops)
        x = _sample(os.path.join(SONIC_PI_DIR, name), sr)
        used.append(name)
        pos = -int(rng.integers(0, len(x)))
        while pos < n:
            _add(buf, x, pos)
            pos += len(x)
    if mode == "pattern" or (mode == "loop" and rng.random() < 0.5):
        names = [choice(rng, shots) for _ in range(int(rng.integers(2, 6)))]
        step = int(sr * 60.0 / rng.uniform(70, 160) / 4)  # sixteenth notes
        pattern = [[int(j) for j in np.flatnonzero(rng.random(16) < 0.3)] for _ in names]
        gains = [10 ** (rng.uniform(-12, 0) / 20) for _ in names]
        used += names
        for bar in range(n // (16 * step) + 1):
            for name, steps, g in zip(names, pattern, gains):
                x = _sample(os.path.join(SONIC_PI_DIR, name), sr)
                for s in steps:
                    _add(buf, x, (bar * 16 + s) * step, g * 10 ** (rng.uniform(-3, 0) / 20))
    if mode == "sparse":
        rate = rng.uniform(0.3, 3.0)
        t = rng.exponential(1 / rate)
        while t * sr < n:
            name = choice(rng, shots)
            used.append(name)
            _add(buf, _sample(os.path.join(SONIC_PI_DIR, name), sr), int(t * sr),
                 10 ** (rng.uniform(-12, 0) / 20))
            t += rng.exponential(1 / rate)
    used = sorted(set(used))
    return buf, {"sources": [f"sonic-pi:{u}" for u in used], "detail": {"mode": mode}}


def background_keyboard(rng, n, split, pools) -> tuple[np.ndarray, dict]:
    sr, buf, used = pools.sr, np.zeros(n), set()
    keys = pools.keys[split]
    speed = rng.uniform(0.6, 1.5)
    t = rng.uniform(0, 1.0)
    while t * sr < n:
        for _ in range(int(rng.integers(2, 10))):  # one word
            code, files = keys[int(rng.integers(len(keys)))]
            g = 10 ** (rng.uniform(-4, 0) / 20)
            press = files[0]
            used.add(press)
            _add(buf, _sample(os.path.join(BUCKLE_DIR, press), sr), int(t * sr), g)
            if len(files) > 1:
                used.add(files[1])
                _add(buf, _sample(os.path.join(BUCKLE_DIR, files[1]), sr),
                     int((t + rng.uniform(0.04, 0.15)) * sr), g)
            t += float(np.clip(rng.normal(0.13, 0.04), 0.05, 0.4)) * speed
        t += rng.uniform(0.1, 0.6) * speed
        if rng.random() < 0.15:
            t += rng.uniform(1.0, 4.0)
    return buf, {"sources": [f"bucklespring:{u}" for u in sorted(used)],
                 "detail": {"speed": r3(speed)}}
