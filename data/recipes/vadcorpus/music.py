"""Music: random General MIDI rendered by fluidsynth with the FluidR3 GM soundfont."""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile

import numpy as np

from .common import RECIPE_VERSION, _run, choice, read_audio, resample, sha256_hex


SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


# General MIDI programs (0-based) that sound like voices or crowds.
GM_EXCLUDE = (52, 53, 54, 85, 91)


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def make_midi(rng, seconds: float) -> tuple[bytes, dict]:
    """A random format-0 MIDI file: 1-3 pitched parts in a scale, maybe drums."""
    tpq = 480
    bpm = int(rng.integers(60, 171))
    beat_s = 60.0 / bpm
    n_beats = int(np.ceil((seconds + 1.0) / beat_s)) + 1
    root = int(rng.integers(0, 12))
    mode = choice(rng, ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9),
                        (0, 3, 5, 7, 10)))
    programs = [p for p in range(120) if p not in GM_EXCLUDE]
    events = []  # (tick, order, bytes)
    events.append((0, 0, b"\xff\x51\x03" + int(beat_s * 1e6).to_bytes(3, "big")))
    parts = []
    for ch in range(int(rng.integers(1, 4))):
        prog = int(choice(rng, programs))
        role = choice(rng, ("melody", "chords", "bass"))
        parts.append({"program": prog, "role": role})
        events.append((0, 1, bytes([0xC0 | ch, prog])))
        events.append((0, 1, bytes([0xB0 | ch, 7, int(rng.integers(70, 121))])))
        octave = {"melody": 5, "chords": 4, "bass": 3}[role] + int(rng.integers(-1, 2))
        t = 0.0
        while t < n_beats:
            dur = float(choice(rng, (0.25, 0.5, 0.5, 1.0, 1.0, 2.0) if role != "chords"
                               else (1.0, 2.0, 2.0, 4.0)))
            if rng.random() > 0.2:
                degree = int(rng.integers(0, len(mode)))
                notes = [degree] if role != "chords" else [degree, degree + 2, degree + 4]
                vel = int(rng.integers(50, 111))
                for d in notes:
                    note = 12 * (octave + d // len(mode)) + root + mode[d % len(mode)]
                    note = int(min(max(note, 24), 100))
                    on, off = int(t * tpq), int((t + dur * 0.95) * tpq)
                    events.append((on, 3, bytes([0x90 | ch, note, vel])))
                    events.append((off, 2, bytes([0x80 | ch, note, 0])))
            t += dur
    if rng.random() < 0.4:
        parts.append({"program": "drums", "role": "drums"})
        pattern = [(0, 36), (2, 38)] + [(s, 42) for s in range(0, 4) if rng.random() < 0.8]
        step = choice(rng, (0.5, 1.0))
        for b in range(n_beats):
            for s, note in pattern:
                on = int((b + s * step / 2) * tpq)
                events.append((on, 3, bytes([0x99, note, int(rng.integers(60, 121))])))
                events.append((on + tpq // 8, 2, bytes([0x89, note, 0])))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    track, last = bytearray(), 0
    for tick, _, data in events:
        track += _vlq(tick - last) + data
        last = tick
    # end of track after the last beat even if the parts end in rests: the render covers the clip
    track += _vlq(max(n_beats * tpq - last, 0)) + b"\xff\x2f\x00"
    midi = b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + \
        struct.pack(">I", len(track)) + bytes(track)
    return midi, {"bpm": bpm, "parts": parts}


def render_music(midi: bytes, pools: Pools) -> np.ndarray:
    key = sha256_hex(RECIPE_VERSION, hashlib.sha256(midi).hexdigest(), pools.sr,
                     pools.versions.get("fluidsynth", ""),
                     pools.versions.get("fluid-soundfont-gm", ""))
    out = os.path.join(pools.cache_dir, "music", key[:2], key + ".wav")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
            mid, wav = os.path.join(tmp, "m.mid"), os.path.join(tmp, "m.wav")
            with open(mid, "wb") as f:
                f.write(midi)
            _run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(pools.sr), "-T", "wav",
                  "-O", "s16", "-F", wav, SF2, mid], "fluidsynth")
            os.replace(wav, out)
    y, sr = read_audio(out)
    return resample(y, sr, pools.sr)
