"""Small helpers every recipe module shares: hashing, the seed-free split, levels, random picks,
audio I/O."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import wave
from functools import lru_cache

import numpy as np


RECIPE_VERSION = 1


SPLITS = ("train", "dev")


DEV_PERCENT = 15  # files / keys / sentences hashed into dev


EXIT_MISSING = 3


def sha256_hex(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def split_of(name: str) -> str:
    """The split a file, key or sentence belongs to: a fixed hash of its name (seed-free)."""
    return "dev" if int(sha256_hex("vad-corpus-split", name)[:8], 16) % 100 < DEV_PERCENT \
        else "train"


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=1) + "\n"


def r3(x) -> float:
    return round(float(x), 3)


def db(x: float) -> float:
    return 10.0 * np.log10(max(float(x), 1e-20))


def choice(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def weighted(rng: np.random.Generator, weights: dict):
    keys = sorted(k for k, w in weights.items() if w > 0)
    w = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.asarray(y, dtype=np.float64)
    import soxr
    return np.asarray(soxr.resample(np.asarray(y, dtype=np.float64), sr_in, sr_out,
                                    quality="HQ"), dtype=np.float64)


def trim_silence(y: np.ndarray, rel: float = 1e-3) -> np.ndarray:
    """``y`` without its lead-in and tail under ``rel`` of its peak (empty if all of it is)."""
    on = np.flatnonzero(np.abs(y) > rel * (np.max(np.abs(y), initial=0.0) + 1e-12))
    return y[on[0]:on[-1] + 1] if len(on) else y[:0]


def read_audio(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf
    y, sr = sf.read(path, dtype="float64", always_2d=True)
    return y.mean(axis=1), int(sr)


def write_wav_atomic(path: str, y: np.ndarray, sr: int) -> None:
    """16-bit PCM mono WAV via the standard library (no timestamps, byte-stable)."""
    pcm = np.clip(np.round(y * 32767.0), -32768, 32767).astype("<i2")
    tmp = f"{path}.tmp{os.getpid()}"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def package_version(pkg: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else "not-installed"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _run(cmd: list[str], what: str, timeout: int = 300, cwd: str | None = None) -> None:
    res = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd)
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed ({res.returncode}): {' '.join(cmd)}\n"
                           f"{res.stderr.decode(errors='replace')[-2000:]}")


@lru_cache(maxsize=512)
def _sample(path: str, sr: int) -> np.ndarray:
    y, sr_in = read_audio(path)
    return resample(y, sr_in, sr)


def _add(buf: np.ndarray, x: np.ndarray, at: int, gain: float = 1.0) -> None:
    if at >= len(buf):
        return
    if at < 0:
        x, at = x[-at:], 0
    x = x[:len(buf) - at]
    buf[at:at + len(x)] += gain * x


def unpack_once(cache: str, name: str, members) -> str:
    """``<cache>/extracted/<name>``, filled once from ``members()`` (``(path inside, bytes)``
    pairs): written into a temporary folder and renamed into place, so a reader never sees half
    of it (when another process wins the race, its copy stays)."""
    d = os.path.join(cache, "extracted", name)
    if not os.path.isdir(d):
        tmp = d + f".tmp{os.getpid()}"
        os.makedirs(tmp, exist_ok=True)
        for rel, data in members():
            dst = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(data)
        try:
            os.replace(tmp, d)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return d
