"""Real speech from games and education packages: KLettres, KTuberling, Hedgewars voice packs,
Tux Paint's spoken descriptions, Warzone 2100's voice lines, Flight of the Amazon Queen's dialogue."""
from __future__ import annotations

import glob
import io
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .common import choice, r3, read_audio, resample, sha256_hex, unpack_once
from .labels import analyse, frame_energy_db
from .packages import (HEDGEWARS, HELD_OUT_LANGS, HELD_OUT_PACKS, KLETTRES, KTUBERLING, P_DEV_HELD,
                       QUEEN_1C, REAL_BY_NAME, TUXPAINT, WARZONE_ZIP, file_id, stem)


# Screening of speech files (measured per file, see --inventory and the README):
# groups whose median noise floor is within 30 dB of the peak (hum, hiss) are dropped whole,
# and so is any single file whose quietest 30 ms is within 30 dB of its peak; anything over
# 5 s after trimming would be a jingle or music bed in a speech package (none is).
DROPPED_GROUPS = {
    "klettres:hu": "noise floor: median quietest 30 ms at -27 dB re peak",
    "ktuberling:gl": "noise floor/hum: median quietest 30 ms at -13 dB re peak",
    "ktuberling:sr": "noise floor: median quietest 30 ms at -18 dB re peak",
    "hedgewars:Singer": "singing (label policy: no singing anywhere in the corpus)",
    # Tux Paint's spoken descriptions (--continuous-speech), measured on every file
    "tuxpaint:fr": "noise floor: median quietest 30 ms at -25 dB re peak (633 of 770 files)",
    "tuxpaint:nl": "noise floor: median quietest 30 ms at -24 dB re peak (66 of 67 files)",
}


MIN_FLOOR_MARGIN_DB = 30.0


MAX_WORD_SECONDS = 5.0


# ktuberling's four Serbian folders hold the same 15 files; only "sr" is read
KTUBERLING_ALIASES = ("sr@ijekavian", "sr@ijekavianlatin", "sr@latin")


# Non-lexical vocal sounds (laughs, grunts, coughs, moans, shouts without words): label policy
# is to use them nowhere, neither as speech nor as background (their label is ambiguous).
HEDGEWARS_NONLEXICAL = ("Laugh", "Hmm", "Jump1", "Jump2", "Jump3", "Ooff1", "Ooff2", "Ooff3",
                        "Ow1", "Ow2", "Ow3", "Ow4", "PoisonCough", "PoisonMoan", "Firepunch1",
                        "Firepunch2", "Firepunch3", "Firepunch4", "Firepunch5", "Firepunch6")


WORD_JITTER_DB = (-2.5, 2.5)
# sources whose files are whole lines or sentences, not words: 1-3 of them make a phrase (words: 1-6)
LINE_SOURCES = ("hedgewars", "tuxpaint", "warzone", "queen")
# Tux Paint's spoken stamp descriptions in these languages are the use-like dev split's
# (usedev.py) and never in training; Danish is also KLettres' and KTuberling's held-out language.
TUXPAINT_DEV_LANGS = ("da", "el", "lt")


# Warzone 2100's folders of spoken lines (base.wz); its effects (sfx, multi), radio clicks and
# cutscene tracks (sequenceaudio: narration over music) are not read, nor NEXUS's laughs
WARZONE_SPEECH_DIRS = ("audio/tutorial/", "audio/memressp/", "audio/countdown/", "audio/extra/",
                       "audio/coltive/", "audio/nexus/", "audio/taunts/", "audio/trnsppil/",
                       "audio/vtoltalk/", "audio/proxmessages/")
WARZONE_NONLEXICAL = ("laugh1", "laugh2", "laugh3")


def warzone_lines(cache: str, version: str) -> dict[str, list[str]]:
    """group (the line's top folder under ``audio/``: tutorial, memressp, ...) -> Warzone 2100's
    voice lines, unpacked from ``base.wz`` into the cache once per package version."""
    def lines():
        with zipfile.ZipFile(WARZONE_ZIP) as z:
            for name in sorted(z.namelist()):
                if name.startswith(WARZONE_SPEECH_DIRS) and name.lower().endswith(".ogg") \
                        and stem(name) not in WARZONE_NONLEXICAL:
                    yield name, z.read(name)

    d = unpack_once(cache, "warzone2100-" + version, lines)
    out: dict[str, list[str]] = {}
    root = os.path.join(d, "audio")
    for f in sorted(glob.glob(os.path.join(root, "**", "*.ogg"), recursive=True)):
        out.setdefault(os.path.relpath(f, root).split(os.sep)[0], []).append(f)
    return out


# Flight of the Amazon Queen's speech files kept: dialogue lines (``<dialogue:2><line:4>J|P<n>``),
# Joe's comments (``JOE<n>``) and cutaway lines (``C...``), which a recording of a voice says.
# Out: the 223 ``*SSSS*`` files (of the 215 that pass the screening, models/vad finds speech in
# under 30 % of the labelled frames of 55 %, against 2-3 % of the files of the other kinds, and
# silero-vad finds none in the five tried: vocal sounds and effects, not words) and 31 one-off
# names (MIK_, UNTITLED, ROCKPAKS, ...)
QUEEN_KEEP = re.compile(r"^([0-9A-F]{6}[JP][0-9]|JOE[0-9]+|C[0-9A-Z_]+|[0-9]{2}XXXX[JP][0-9])$")


def queen_entries(path: str = QUEEN_1C) -> list[tuple[str, int, int]]:
    """``(name, offset, size)`` of every speech file (``*.SB``) in a Flight of the Amazon Queen
    resource bundle rebuilt for ScummVM (``queen.1c``): the header ``QTBL``, a 6-byte version,
    2 bytes, the compression (1: MP3, 2: Ogg Vorbis, 3: FLAC), a big-endian uint16 entry count,
    then per entry a 12-byte NUL-padded name, a bundle byte and big-endian uint32 offset and
    size (ScummVM's ``engines/queen/resource.cpp``)."""
    with open(path, "rb") as f:
        head = f.read(15)
        if len(head) < 15 or head[:4] != b"QTBL" or head[12] not in (1, 2, 3):
            raise ValueError(f"{path}: not a compressed ScummVM queen bundle "
                             f"(header {head[:13]!r}: wants 'QTBL' and compression 1-3)")
        n = struct.unpack(">H", head[13:15])[0]
        table = f.read(21 * n)
    if len(table) < 21 * n:
        raise ValueError(f"{path}: resource table cut short ({len(table) // 21} of {n} entries)")
    out = []
    for i in range(n):
        rec = table[21 * i: 21 * i + 21]
        name = rec[:12].split(b"\0", 1)[0].decode("ascii")
        offset, size = struct.unpack(">II", rec[13:21])
        if name.upper().endswith(".SB"):
            out.append((name, offset, size))
    return out


def queen_group(name: str) -> str:
    """The speaker-ish group of a queen speech file: ``JOE`` for Joe's comments, else the first
    two characters (a dialogue's number, whose ``J`` and ``P`` lines are Joe and the person he
    talks to, or a cutaway's ``C<n>``)."""
    return "JOE" if name.upper().startswith("JOE") else name[:2].upper()


def queen_lines(cache: str, version: str) -> dict[str, list[str]]:
    """group -> Flight of the Amazon Queen's spoken lines, decoded once per package version from
    ``queen.1c`` into 16-bit WAV files in the cache (MP3 through libsndfile)."""
    import soundfile as sf

    def lines():
        with open(QUEEN_1C, "rb") as f:
            for name, offset, size in queen_entries(QUEEN_1C):
                f.seek(offset)
                try:
                    y, sr = sf.read(io.BytesIO(f.read(size)), dtype="float64", always_2d=True)
                except RuntimeError as e:  # an old libsndfile: no MP3
                    raise RuntimeError(f"{QUEEN_1C}: {name} does not decode ({e}); --queen-speech "
                                       "needs libsndfile >= 1.1 (soundfile >= 0.12)") from e
                buf = io.BytesIO()
                sf.write(buf, y.mean(axis=1), sr, format="WAV", subtype="PCM_16")
                yield f"{queen_group(name)}/{os.path.splitext(name)[0]}.wav", buf.getvalue()

    d = unpack_once(cache, "flight-of-the-amazon-queen-" + version, lines)
    out: dict[str, list[str]] = {}
    for f in sorted(glob.glob(os.path.join(d, "*", "*.wav"))):
        if QUEEN_KEEP.match(stem(f)):  # no *SSSS* name matches
            out.setdefault(os.path.basename(os.path.dirname(f)), []).append(f)
    return out


def tuxpaint_descriptions() -> dict[str, list[str]]:
    """language -> Tux Paint's spoken stamp descriptions (``*_desc_<lang>.ogg``; no suffix: en)."""
    out: dict[str, list[str]] = {}
    for f in sorted(glob.glob(f"{TUXPAINT}/**/*_desc*.ogg", recursive=True)):
        lang = os.path.basename(f).rsplit("_desc", 1)[1].split(".")[0].lstrip("_") or "en"
        out.setdefault(lang, []).append(f)
    return out


def group_lang(source: str, group: str) -> str:
    if source in ("warzone", "queen"):
        return "en"
    if source == "hedgewars":
        return {"Default_es": "es", "Default_pl": "pl", "Russian_pl": "pl", "Default_ru": "ru",
                "Default_uk": "uk"}.get(group, "en")
    return {"en_GB": "en", "pt_BR": "pt"}.get(group, group)


def is_held_group(source: str, group: str) -> bool:
    if source == "hedgewars":
        return group in HELD_OUT_PACKS
    return group_lang(source, group) in HELD_OUT_LANGS


def speech_files(real: list[str]) -> dict[str, dict[str, list[str]]]:
    """source -> group -> sorted candidate files (before screening by statistics)."""
    out: dict[str, dict[str, list[str]]] = {}
    if "klettres" in real:
        out["klettres"] = {}
        for d in sorted(glob.glob(os.path.join(KLETTRES, "*", ""))):
            files = sorted(glob.glob(os.path.join(d, "alpha", "*.ogg"))
                           + glob.glob(os.path.join(d, "syllab", "*.ogg")))
            if files:
                out["klettres"][os.path.basename(d.rstrip("/"))] = files
    if "ktuberling" in real:
        out["ktuberling"] = {}
        for d in sorted(glob.glob(os.path.join(KTUBERLING, "*", ""))):
            g = os.path.basename(d.rstrip("/"))
            files = sorted(f for ext in ("ogg", "opus", "wav")
                           for f in glob.glob(os.path.join(d, f"*.{ext}")))
            if files and g not in KTUBERLING_ALIASES:
                out["ktuberling"][g] = files
    if "hedgewars" in real:
        out["hedgewars"] = {}
        for d in sorted(glob.glob(os.path.join(HEDGEWARS, "Sounds", "voices", "*", ""))):
            files = sorted(f for f in glob.glob(os.path.join(d, "*.ogg"))
                           if stem(f) not in HEDGEWARS_NONLEXICAL)
            if files:
                out["hedgewars"][os.path.basename(d.rstrip("/"))] = files
    return out


@lru_cache(maxsize=4096)
def screen_word(path: str, sr: int):
    """(Utterance or None, statistics) for one real speech file at the corpus rate."""
    y, sr_in = read_audio(path)
    y = resample(y, sr_in, sr)
    e = frame_energy_db(y, sr // 100)
    peak = float(e.max()) if len(e) else -200.0
    k = min(3, len(e))
    floor = float(np.convolve(e, np.ones(k) / k, mode="valid").min()) if len(e) else peak
    stats = {"seconds": r3(len(y) / sr), "peak_db": round(peak, 1),
             "floor_re_peak_db": round(max(floor - peak, -120.0), 1)}
    if peak < -100:
        return None, {**stats, "drop": "silent"}
    if floor - peak > -MIN_FLOOR_MARGIN_DB:
        return None, {**stats, "drop": "noise floor"}
    u = analyse(y, sr)
    if u is None:
        return None, {**stats, "drop": "no active frame"}
    if len(u.y) / sr > MAX_WORD_SECONDS:
        return None, {**stats, "drop": "too long (music or jingle?)"}
    return u, {**stats, "active_seconds": r3(len(u.y) / sr)}


@dataclass
class Phrase:
    y: np.ndarray       # clean words and gaps, frame aligned
    segments: list      # [(first_frame, end_frame)] from each word's label
    entry: dict         # meta.json record (without start/end)


def real_phrase(rng, split: str, source: str, pools: Pools) -> Phrase | None:
    """A phrase-like stream: 1-6 words of one speaker with natural gaps (30-600 ms)."""
    groups = pools.words[split][source]
    if not groups:
        return None
    names = sorted(groups)
    held = [g for g in names if f"{source}:{g}" in pools.held_groups]
    seen = [g for g in names if g not in held]
    if held and (not seen or rng.random() < P_DEV_HELD):
        g = choice(rng, held)
    else:
        g = choice(rng, seen)
    files = groups[g]
    k = int(rng.integers(1, 4)) if source in LINE_SOURCES else int(rng.integers(1, 7))
    hop = pools.sr // 100
    parts, segs, words, t = [], [], [], 0
    for i in range(k):
        f = choice(rng, files)
        u, _ = screen_word(f, pools.sr)
        gain = 10 ** (rng.uniform(*WORD_JITTER_DB) / 20)
        gap = int(round(float(np.clip(rng.lognormal(np.log(0.12), 0.6), 0.03, 0.6)) * 100))
        if u is None:
            continue
        if parts:
            parts.append(np.zeros(gap * hop))
            t += gap
        parts.append(gain * u.y / u.active_rms)
        segs += [(t + a, t + b) for a, b in u.segments]
        words.append(file_id(source, f))
        t += len(u.y) // hop
    if not parts:
        return None
    entry = {"source": source, "package": REAL_BY_NAME[source].package, "voice": f"{source}:{g}",
             "lang": group_lang(source, g), "held_out": f"{source}:{g}" in pools.held_groups,
             "id": words[0] if len(words) == 1 else f"{source}:phrase:" +
             sha256_hex(*words)[:16], "words": words}
    return Phrase(y=np.concatenate(parts), segments=segs, entry=entry)
