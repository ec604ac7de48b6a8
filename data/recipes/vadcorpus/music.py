"""Music: random General MIDI rendered by fluidsynth with the FluidR3 GM soundfont."""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile

import numpy as np

from .common import (RECIPE_VERSION, _run, choice, read_audio, resample, sha256_hex,
                     trim_silence)


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


def _midi_file(events: list, tpq: int, end_tick: int) -> bytes:
    """A format-0 MIDI file of ``(tick, order, bytes)`` events, its track ending at ``end_tick``."""
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    track, last = bytearray(), 0
    for tick, _, data in events:
        track += _vlq(tick - last) + data
        last = tick
    track += _vlq(max(end_tick - last, 0)) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + \
        struct.pack(">I", len(track)) + bytes(track)


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
    # end of track after the last beat even if the parts end in rests: the render covers the clip
    return _midi_file(events, tpq, n_beats * tpq), {"bpm": bpm, "parts": parts}


def render_music(midi: bytes, pools: Pools) -> np.ndarray:
    return render_midi_file(midi, pools.sr, pools.cache_dir, pools.versions)


# Pitched General MIDI programs that ring, pluck or chime (0-based): pianos, chromatic percussion,
# guitars, strings, harp, brass, pipes, leads, pads, ethnic plucks and bells; no voices.
TONAL_PROGRAMS = tuple(p for p in (*range(0, 16), *range(24, 32), *range(40, 52), *range(56, 64),
                                   *range(72, 84), 86, 87, 88, 89, 90, 92, 93, 94, 95,
                                   *range(104, 115)) if p not in GM_EXCLUDE)
_PENTA, _MAJOR = (0, 2, 4, 7, 9), (0, 2, 4, 5, 7, 9, 11)


def tonal_bank_midi(rng, count: int, slot_s: float, kind: str) -> tuple[bytes, list[dict]]:
    """``count`` short tonal sounds, one per ``slot_s`` seconds of one MIDI file (120 bpm: a beat
    is 0.5 s), each on a program of :data:`TONAL_PROGRAMS` (channel 9, drums, never used).
    ``jingle``: 1-5 notes or a chord, as a notification chime; ``ringtone``: a melodic motif of
    4-12 notes over 1.5-5 s, maybe with a second part, to be looped like a ringtone or hold music."""
    tpq, beat_s = 480, 0.5
    events = [(0, 0, b"\xff\x51\x03" + int(beat_s * 1e6).to_bytes(3, "big"))]
    info = []
    tick = lambda s: int(round(s / beat_s * tpq))  # noqa: E731
    for k in range(count):
        t0 = k * slot_s
        parts = 1 if kind == "jingle" or rng.random() < 0.5 else 2
        root = int(rng.integers(0, 12))
        scale = _PENTA if rng.random() < 0.5 else _MAJOR
        progs = []
        for p in range(parts):
            ch = (2 * k + p) % 16
            ch = ch if ch != 9 else 10
            prog = int(choice(rng, TONAL_PROGRAMS))
            progs.append(prog)
            events.append((tick(t0), 1, bytes([0xC0 | ch, prog])))
            octave = int(rng.integers(4, 7)) - p
            if kind == "jingle":
                n = int(rng.integers(1, 6))
                gap = float(rng.uniform(0.06, 0.35))
                chord = rng.random() < 0.25
                span = 0.0 if chord else gap * (n - 1)
                lengths = [float(rng.uniform(0.15, 1.2))] * n
                starts = [t0 + (0.0 if chord else gap * i) for i in range(n)]
            else:
                motif = float(rng.uniform(1.5, 5.0))
                n = int(rng.integers(4, 13)) if p == 0 else int(rng.integers(2, 5))
                starts = sorted(t0 + float(x) for x in rng.uniform(0, motif * 0.9, n))
                lengths = [float(rng.uniform(0.1, 0.8)) for _ in range(n)]
                span = motif
            degrees = np.cumsum(rng.integers(-2, 3, n)) + int(rng.integers(0, len(scale)))
            for s, length, d in zip(starts, lengths, degrees):
                d = int(d)
                note = int(min(max(12 * (octave + d // len(scale)) + root + scale[d % len(scale)],
                                   36), 96))
                vel = int(rng.integers(60, 121))
                events.append((tick(s), 3, bytes([0x90 | ch, note, vel])))
                events.append((tick(s + length), 2, bytes([0x80 | ch, note, 0])))
        info.append({"programs": progs, "notes_span_s": round(span, 3)})
    return _midi_file(events, tpq, tick(count * slot_s)), info


def render_midi_file(midi: bytes, sr: int, cache_dir: str, versions: dict) -> np.ndarray:
    """fluidsynth's render of one MIDI file with the FluidR3 GM soundfont, cached by content
    (a long bank may take minutes: a longer timeout than the other tools')."""
    key = sha256_hex(RECIPE_VERSION, hashlib.sha256(midi).hexdigest(), sr,
                     versions.get("fluidsynth", ""), versions.get("fluid-soundfont-gm", ""))
    out = os.path.join(cache_dir, "music", key[:2], key + ".wav")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
            mid, wav = os.path.join(tmp, "m.mid"), os.path.join(tmp, "m.wav")
            with open(mid, "wb") as f:
                f.write(midi)
            _run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(sr), "-T", "wav",
                  "-O", "s16", "-F", wav, SF2, mid], "fluidsynth", timeout=1800)
            os.replace(wav, out)
    y, sr_in = read_audio(out)
    return resample(y, sr_in, sr)


def tonal_bank(seed: int, count: int, kind: str, sr: int, cache_dir: str,
               versions: dict) -> list[np.ndarray]:
    """The rendered bank: ``count`` sounds cut from one render, each without its silences."""
    slot = 4.0 if kind == "jingle" else 8.0
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 3000,
                                                                      0 if kind == "jingle" else 1])))
    midi, _ = tonal_bank_midi(rng, count, slot, kind)
    y = render_midi_file(midi, sr, cache_dir, versions)
    cuts = (trim_silence(y[int(k * slot * sr):int((k + 1) * slot * sr)]) for k in range(count))
    return [x.copy() for x in cuts if len(x)]
