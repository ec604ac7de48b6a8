#!/usr/bin/env python3
"""A small labelled corpus of whispered and spoken sentences over farm-animal ambiences, for
fine-tuning ``models/vad`` on a condition it is weak at (the README's "Adapt the shipped model to
your recordings"): it finds none of espeak-ng's whispered speech (frame F1 0.000 on 12 clips).

Ambiences: Widelands' recorded animal and farm sounds (``widelands-data``:
``data/sound/{farm,animals}/*.ogg``; sheep, oxen, horses, a donkey, boars, wolves, birds, frogs,
crickets...) laid end to end with random gaps and levels over a quiet bed of the same calls. Half
the clips have no speech (empty labels); the other half get espeak-ng sentences (``espeak-ng``),
half of them whispered, mixed in at -5..10 dB SNR and labelled from the clean speech before
mixing with the corpus recipes' energy rule (``vadcorpus.labels``). ``train/`` and ``test/`` share no animal recording,
no sentence and no espeak-ng voice variant (train whispers with ``whisper``, test with
``whisperf``). ``valid/`` (for early stopping) is drawn like ``train/``, from its own random
stream. Same seed, same files. Exit codes: 0 done, 2 usage, 3 a package is missing.

    python data/recipes/farm_corpus.py --out data/farm    # 10 min train, 3 min valid, 5 min test
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the corpus recipes' package: label rule, TTS sentences, audio helpers
from vadcorpus.common import _add, _run, read_audio, resample, write_wav_atomic  # noqa: E402
from vadcorpus.labels import analyse  # noqa: E402
from vadcorpus.tts import pick_sentence  # noqa: E402

SR = 16000
SOUNDS = "/usr/share/games/widelands/data/sound"
ANIMALS = ("farm/*.ogg", "animals/*.ogg")
VARIANTS = {"train": ("m1", "m3", "f1", "f3", "m7", "klatt2"), "test": ("m2", "f2", "klatt3", "m5")}
WHISPER = {"train": "whisper", "test": "whisperf"}
P_WHISPER = 0.5  # of the sentences
SPEECH_SHARE = 0.5
SNR_DB = (-5.0, 10.0)
CLIP_SECONDS = 15.0


def split_of(name: str) -> str:
    """One third of the animal recordings (by a hash of the name) are the test side's."""
    return "test" if int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 3 == 0 else "train"


def animal_pool(split: str) -> list[np.ndarray]:
    files = sorted(f for pat in ANIMALS for f in glob.glob(os.path.join(SOUNDS, pat)))
    if not files:
        raise FileNotFoundError(f"no animal sounds under {SOUNDS} (apt-get install widelands-data)")
    out = []
    for f in files:
        if split_of(os.path.relpath(f, SOUNDS)) == split:
            y, sr = read_audio(f)
            out.append(resample(y, sr, SR))
    return out


def ambience(rng: np.random.Generator, pool: list[np.ndarray], n: int) -> np.ndarray:
    """Calls one after another (gaps of 0-1.5 s, levels -12..0 dB) over a 20 dB quieter bed."""
    def lay(gain_db: tuple[float, float], gap: float) -> np.ndarray:
        buf, t = np.zeros(n), int(rng.uniform(0, 0.5) * SR)
        while t < n:
            x = pool[int(rng.integers(len(pool)))]
            x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(*gain_db) / 20)
            _add(buf, x[: n - t], t)
            t += len(x) + int(rng.uniform(0, gap) * SR)
        return buf
    return lay((-12.0, 0.0), 1.5) + lay((-32.0, -20.0), 0.2)


def speech(rng: np.random.Generator, split: str, n: int, tmp: str):
    """Sentences placed with pauses of 0.4-3 s; returns the clean track and its labels (s)."""
    buf, spans, t = np.zeros(n), [], int(rng.uniform(0.3, 2.0) * SR)
    while True:
        num, text = pick_sentence(rng, "en", "dev" if split == "test" else "train")
        voice = WHISPER[split] if rng.random() < P_WHISPER else VARIANTS[split][int(rng.integers(len(VARIANTS[split])))]
        wav = os.path.join(tmp, f"{split}-{num}-{voice}.wav")
        _run(["espeak-ng", "-v", f"en+{voice}", "-s", str(int(rng.integers(130, 200))), "-w", wav, text],
                "espeak-ng")
        y, sr = read_audio(wav)
        u = analyse(resample(y, sr, SR), SR)
        if u is None:
            continue
        if t + len(u.y) > n:
            break
        _add(buf, u.y / (u.active_rms + 1e-9), t)
        hop = SR // 100
        spans += [((t + a * hop) / SR, (t + b * hop) / SR) for a, b in u.segments]
        t += len(u.y) + int(rng.uniform(0.4, 3.0) * SR)
    return buf, spans


def make_clip(folder: str, split: str, i: int, seed: int, pool: list[np.ndarray], out: str, tmp: str) -> float:
    """One clip of ``split``'s sources into ``out/folder``; returns its seconds of speech."""
    rng = np.random.default_rng([seed, ("train", "test", "valid").index(folder), i])
    n = int(CLIP_SECONDS * SR)
    y = ambience(rng, pool, n)
    y *= 10 ** (rng.uniform(-30, -18) / 20) / (np.sqrt(np.mean(y ** 2)) + 1e-12)  # bed RMS -30..-18 dBFS
    spans: list = []
    if rng.random() < SPEECH_SHARE:
        s, spans = speech(rng, split, n, tmp)
        active = np.zeros(n, dtype=bool)
        for a, b in spans:
            active[int(a * SR): int(b * SR)] = True
        bed = np.sqrt(np.mean(y[active] ** 2)) if active.any() else np.sqrt(np.mean(y ** 2))
        y = y + s * bed * 10 ** (rng.uniform(*SNR_DB) / 20)  # s has unit RMS over its active frames
    y *= min(1.0, 0.95 / (np.abs(y).max() + 1e-12))
    name = os.path.join(out, folder, f"farm_{folder}_{i:03d}")
    write_wav_atomic(name + ".wav", y.astype(np.float32), SR)
    with open(name + ".tsv", "w") as fh:
        fh.write("onset\toffset\tevent_label\n" + "".join(f"{a:.3f}\t{b:.3f}\tspeech\n" for a, b in spans))
    return sum(b - a for a, b in spans)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="Output folder (train/ and test/ are written in it).")
    p.add_argument("--train", type=int, default=40, help="Train clips of 15 s.")
    p.add_argument("--valid", type=int, default=12, help="Validation clips of 15 s (train's sources).")
    p.add_argument("--test", type=int, default=20, help="Test clips of 15 s.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    if min(a.train, a.valid, a.test) < 0:
        p.error("--train, --valid and --test must be >= 0")
    import shutil
    import tempfile

    if not shutil.which("espeak-ng") or not os.path.isdir(SOUNDS):
        print("missing: apt-get install espeak-ng widelands-data", file=sys.stderr)
        return 3
    for folder, split, count in (("train", "train", a.train), ("valid", "train", a.valid), ("test", "test", a.test)):
        os.makedirs(os.path.join(a.out, folder), exist_ok=True)
        pool = animal_pool(split)
        with tempfile.TemporaryDirectory() as tmp:
            speech_s = sum(make_clip(folder, split, i, a.seed, pool, a.out, tmp) for i in range(count))
        if not a.quiet:
            print(f"{folder}: {count} clips, {count * CLIP_SECONDS / 60:.1f} min, {speech_s / 60:.1f} min of "
                  f"speech, {len(pool)} animal recordings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
