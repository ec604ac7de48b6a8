"""Sung voice (``real_corpus.py --extra-singing N``): Festival's singing mode sings the songs it
ships, transposed and at other tempi, by the training voices; the clips label it ``music``, not
``speech`` (the project's rule: singing is music, as inaSpeechSegmenter counts it).

Songs: ``/usr/share/doc/festival/examples/songs/*.xml`` (package ``festival``). Voices: Festival's
diphone voices, the only ones its singing mode drives. Held out of training, for
``bench/singing.py``: the voices ``ked_diphone`` and ``pc_diphone`` and the songs ``daisy`` and
``lochlomond``."""
from __future__ import annotations

import os
import re
import shutil
import tempfile

import numpy as np

from .common import RECIPE_VERSION, _run, _sample, choice, sha256_hex

SONG_DIR = "/usr/share/doc/festival/examples/songs"
DTD = "/usr/share/sgml/festival/Singing.v0_1.dtd"
TRAIN_VOICES = ("kal_diphone", "lp_diphone")
HELD_OUT_VOICES = ("ked_diphone", "pc_diphone")
HELD_OUT_SONGS = ("daisy", "lochlomond")
TRANSPOSE = (-5, 7)          # semitones, inclusive range
TOP_NOTE = 72                # no transposed note above this (Festival's notation, C6): higher
                             # notes crash its diphone resynthesis (spice1 + 7 did: SIGSEGV)
TEMPO = (0.8, 1.25)          # factor on the song's BPM
REST_S = (0.3, 2.5)          # between two sung renders
P_BED = 0.6                  # an instrumental bed under the voice
BED_DB = (-15.0, 0.0)        # the bed's RMS relative to the voice's
P_SINGING_SPEECH = 0.4       # clips with speech over the singing (a presenter over a song)

NOTE = re.compile(r"([A-G])([#b]?)(\d)")
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
OFFSET = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def available(voices: bool = False) -> bool:
    """Festival's singing mode and its songs (and, with ``voices``, the training voices)."""
    from .tts import FESTIVAL_VOICES

    ok = os.path.isdir(SONG_DIR) and os.path.isfile(DTD) and shutil.which("text2wave") is not None
    return ok and (not voices or all(os.path.isdir(v.directory) for v in FESTIVAL_VOICES
                                     if v.name in TRAIN_VOICES))


def songs(held_out: bool = False) -> list[str]:
    """The song names (file stems) of training, or the held-out ones."""
    names = sorted(f[:-4] for f in os.listdir(SONG_DIR) if f.endswith(".xml"))
    return [s for s in names if (s in HELD_OUT_SONGS) == held_out]


def notes(xml: str) -> list[int]:
    """The song's notes as numbers (12 x octave + semitone, Festival's own count)."""
    return [12 * int(m.group(3)) + OFFSET[m.group(1)] + {"#": 1, "b": -1, "": 0}[m.group(2)]
            for v in re.findall(r'NOTE="([^"]*)"', xml) for m in NOTE.finditer(v)]


def song_xml(song: str) -> str:
    with open(os.path.join(SONG_DIR, song + ".xml"), encoding="latin-1") as fh:
        return fh.read()


def transpose(xml: str, semitones: int, tempo: float) -> str:
    """A singing file moved by ``semitones`` and played ``tempo`` times as fast."""
    def note(m):
        midi = 12 * int(m.group(3)) + OFFSET[m.group(1)] + {"#": 1, "b": -1, "": 0}[m.group(2)] + semitones
        return f"{NAMES[midi % 12]}{midi // 12}"

    xml = re.sub(r'NOTE="([^"]*)"', lambda m: 'NOTE="' + NOTE.sub(note, m.group(1)) + '"', xml)
    return re.sub(r'BPM="([\d.]+)"', lambda m: f'BPM="{float(m.group(1)) * tempo:.1f}"', xml)


def render_song(song: str, voice: str, semitones: int, tempo: float, sr: int, cache: str) -> np.ndarray:
    """One sung render at ``sr`` (cached WAV in ``cache/singing``)."""
    key = sha256_hex(RECIPE_VERSION, "singing", song, voice, semitones, f"{tempo:.3f}")
    out = os.path.join(cache, "singing", key[:2], key + ".wav")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        xml = transpose(song_xml(song), semitones, tempo)
        with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
            shutil.copy(DTD, tmp)  # the songs name it relative to themselves
            with open(os.path.join(tmp, "s.xml"), "w", encoding="latin-1") as fh:
                fh.write(xml)
            _run(["text2wave", "-eval", f"(voice_{voice})", "-mode", "singing", "s.xml", "-o", "s.wav"],
                 "festival singing mode", cwd=tmp)
            os.replace(os.path.join(tmp, "s.wav"), out)
    return _sample(out, sr)


def sung_track(rng, n: int, sr: int, cache: str) -> tuple[np.ndarray, dict]:
    """``n`` samples of training songs one after another (each transposed, at its own tempo, by
    a training voice, at its own level +-3 dB), rests between them; the voice normalised to unit
    RMS over its active part."""
    y, t, parts, failed = np.zeros(n), int(rng.uniform(0, 1.0) * sr), [], 0
    while t < n - sr // 2:
        song, voice = choice(rng, songs()), choice(rng, TRAIN_VOICES)
        top = min(TRANSPOSE[1], TOP_NOTE - max(notes(song_xml(song))))
        semi, tempo = int(rng.integers(TRANSPOSE[0], top + 1)), float(rng.uniform(*TEMPO))
        try:
            x = render_song(song, voice, semi, round(tempo, 3), sr, cache)
        except RuntimeError:  # a render Festival cannot make: draw another (seeded, so the same one)
            failed += 1
            if failed > 20:
                raise
            continue
        x = x[: n - t] * 10 ** (rng.uniform(-3, 3) / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12)
        y[t:t + len(x)] += x
        parts.append({"song": song, "voice": voice, "semitones": semi, "tempo": round(tempo, 3),
                      "start": round(t / sr, 3)})
        t += len(x) + int(rng.uniform(*REST_S) * sr)
    act = np.abs(y) > 1e-4
    y = y / (np.sqrt(np.mean(y[act] ** 2)) + 1e-12) if act.any() else y
    return y, {"songs": parts, **({"failed_renders": failed} if failed else {})}
