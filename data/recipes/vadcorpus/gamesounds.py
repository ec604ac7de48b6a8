"""Real backgrounds from game packages: soundtracks, effects, ambience beds, animal calls."""
from __future__ import annotations

import glob
import gzip
import os
import re
import struct
from functools import lru_cache

import numpy as np

from .common import _add, r3, read_audio, resample, unpack_once
from .packages import (FROZEN, HEDGEWARS, HELD_OUT_EFFECTS, HELD_OUT_MUSIC, MINETEST, MORE_MUSIC,
                       NEVERBALL, OPENCLONK, OPENSFX, PINGUS, REAL_BY_NAME, STK, WIDELANDS,
                       _dev_side, _pick, file_id, stem)


# Effects files with voices (speech, crowds, screams, singing, chants) or derived from packages
# reserved for independent evaluation (SuperTuxKart credits some sfx to Wesnoth, SuperTux,
# MegaGlest); music tracks that may contain singing.
EFFECTS_EXCLUDE = {
    "hedgewars": ("Hellish", "Kiss", "Yoohoo", "hell_growl", "hell_ooff", "hell_ow", "hell_ugh",
                  "hogchant3", "Whistle", "ride_of_the_valkyries", "countdown1", "countdown2",
                  "countdown3", "countdown4", "suddendeath", "homerun"),
    "frozen-bubble": ("applause", "chatted", "hurry", "lose", "noh", "snore"),
    "pingus": ("goodidea", "letsgo", "ohno", "yipee"),
    "supertuxkart": ("WilhelmScream", "ugh", "wee", "sara_airport_pa", "lenautile_restaurant",
                     "goal_scored", "static-radio", "fireworks_show", "anvil", "ball_bounce",
                     "rain", "shoot", "race_finish_victory", "track_intro", "gp_end"),
    "widelands": ("lobby_chat", "lobby_freshmen", "biginn_00", "biginn_01", "inn_00", "inn_01",
                  "tavern_00", "tavern_01", "meal_00", "meal_01", "ration_00", "ration_01",
                  "under_attack", "site_occupied"),
    "minetest": ("player_damage",),
    # OpenSFX entries by index: crowd cheers/boos/"oooh", applause, empty placeholders
    "openttd": ("00", "01", "29", "30", "34", "50"),
}


# OpenClonk sound folders with the Clonks' voices
OPENCLONK_EXCLUDE_DIRS = ("Clonk.ocg/Skin.ocg/",)


AMBIENCE_SECONDS = 3.0   # effects at least this long can be looped as an ambience bed


VOCAL_LIKE = re.compile(r"(?i)(animal|bird|sheep|cow|(^|/)ox_|horse|pig|chicken|hen_|goat|wolf|"
                        r"dog|cat_|frog|cricket|boar|moose|stag|coyote|monkey|owl|duck|seagull|"
                        r"chirp|growl|snort|whine|bark|howl|bleat|moo)")


def _c4_unscramble(b: bytes) -> bytes:
    x = bytearray(v ^ 237 for v in b)
    for i in range(0, len(x) - 2, 3):
        x[i], x[i + 2] = x[i + 2], x[i]
    return bytes(x)


def _c4_entries(u: bytes, base: int = 0, prefix: str = "") -> list[tuple[str, int, int]]:
    """(path, offset, size) of the files in an unpacked OpenClonk C4Group, recursively."""
    head = _c4_unscramble(u[base:base + 204])
    if not head.startswith(b"RedWolf Design"):
        raise ValueError("not a C4Group")
    n = struct.unpack("<i", head[36:40])[0]
    entries, p = [], base + 204
    for _ in range(n):
        e = u[p:p + 316]
        p += 316
        name = e[:260].split(b"\0")[0].decode("latin-1")
        _, child, size, _, off = struct.unpack("<5i", e[260:280])
        entries.append((name, child, size, off))
    out = []
    for name, child, size, off in entries:
        if child:
            out += _c4_entries(u, p + off, prefix + name + "/")
        else:
            out.append((prefix + name, p + off, size))
    return out


def extract_archives(cache: str, sources: list[str], versions: dict) -> dict[str, list[str]]:
    """Unpack OpenClonk's Sound.ocg and OpenSFX's catalogue into the cache (once per version)."""
    out: dict[str, list[str]] = {}
    if "openclonk" in sources:
        def sound_ocg():
            raw = open(os.path.join(OPENCLONK, "Sound.ocg"), "rb").read()
            u = gzip.decompress(b"\x1f\x8b" + raw[2:])  # C4Group: gzip with a changed magic
            for name, off, size in _c4_entries(u):
                if name.lower().endswith((".ogg", ".wav")):
                    yield name.replace(".ocg/", "/").replace(".ocg", ""), u[off:off + size]

        d = unpack_once(cache, "openclonk-" + versions.get("openclonk-data", ""), sound_ocg)
        files = sorted(glob.glob(os.path.join(d, "**", "*.*"), recursive=True))
        out["openclonk"] = [f for f in files if not any(
            os.path.relpath(f, d).startswith(x.replace(".ocg", "")) for x in
            OPENCLONK_EXCLUDE_DIRS)]
    if "openttd" in sources:
        def opensfx_cat():
            cat = open(OPENSFX, "rb").read()
            n = (struct.unpack("<I", cat[:4])[0] & 0x7FFFFFFF) // 8
            for i in range(n):
                off, size = struct.unpack("<II", cat[8 * i:8 * i + 8])
                off &= 0x7FFFFFFF
                k = cat[off]  # name length, name, then a RIFF WAV
                yield f"{i:02d}.wav", cat[off + 1 + k:off + size]

        d = unpack_once(cache, "opensfx-" + versions.get("openttd-opensfx", ""), opensfx_cat)
        out["openttd"] = sorted(glob.glob(os.path.join(d, "*.wav")))
    return out


def background_files(real: list[str], extracted: dict) -> tuple[list, list]:
    """([(package source, path)] music, [(package source, path)] effects), vocal files out."""
    music, effects = [], []

    def fx(src, files):
        ex = EFFECTS_EXCLUDE.get(src, ())
        effects.extend((src, f) for f in sorted(files) if stem(f) not in ex)

    if "hedgewars" in real:
        music += [("hedgewars", f) for f in sorted(glob.glob(f"{HEDGEWARS}/Music/*.ogg"))]
        fx("hedgewars", glob.glob(f"{HEDGEWARS}/Sounds/*.ogg"))
    if "frozen-bubble" in real:
        zik = sorted(glob.glob(f"{FROZEN}/*zik*.ogg"))
        music += [("frozen-bubble", f) for f in zik]
        fx("frozen-bubble", [f for f in glob.glob(f"{FROZEN}/*.ogg") if f not in zik])
    if "neverball" in real:  # its snd/ folder speaks ("ready", "go"): only the music
        music += [("neverball", f) for f in sorted(glob.glob(f"{NEVERBALL}/*.ogg"))]
    if "pingus" in real:  # the music is in tracker formats soundfile cannot read
        fx("pingus", glob.glob(f"{PINGUS}/*.wav"))
    if "supertuxkart" in real:
        music += [("supertuxkart", f) for f in sorted(glob.glob(f"{STK}/music/*.ogg"))]
        fx("supertuxkart", glob.glob(f"{STK}/sfx/*.ogg"))
    if "widelands" in real:
        music += [("widelands", f) for f in sorted(glob.glob(f"{WIDELANDS}/music/*.ogg"))]
        fx("widelands", glob.glob(f"{WIDELANDS}/sound/**/*.ogg", recursive=True))
    if "openclonk" in real:
        music += [("openclonk", f) for f in sorted(glob.glob(f"{OPENCLONK}/Music.ocg/*.ogg"))]
        fx("openclonk", extracted.get("openclonk", []))
    if "minetest" in real:
        fx("minetest", glob.glob(f"{MINETEST}/*/sounds/*.ogg"))
    if "openttd" in real:
        fx("openttd", extracted.get("openttd", []))
    return music, effects


# --more-music tracks left out, by file stem: the two in which models/vad finds speech-like runs
# over 5 s (may hold sung or spoken samples; every track was run through it, see
# data/recipes/README.md)
MORE_MUSIC_EXCLUDE = {"nexuiz": ("digital-pursuit", "infight")}


def more_music_files(cache: str, versions: dict) -> list[tuple[str, str]]:
    """[(source, path)] of the --more-music soundtracks whose packages are installed (Nexuiz's
    tracks unpacked from music.pk3 into the cache once per version; the others' ``check`` is
    their music folder)."""
    import zipfile

    out = []
    for s in MORE_MUSIC:
        if not os.path.exists(s.check):
            continue
        if s.name == "nexuiz":
            def pk3():
                with zipfile.ZipFile(s.check) as z:
                    for name in sorted(z.namelist()):
                        if name.lower().endswith(".ogg"):
                            yield name, z.read(name)

            d = unpack_once(cache, "nexuiz-music-" + versions.get(s.package, ""), pk3)
            files = glob.glob(os.path.join(d, "**", "*.ogg"), recursive=True)
        else:
            files = [f for ext in ("ogg", "opus")
                     for f in glob.glob(os.path.join(s.check, "**", f"*.{ext}"), recursive=True)]
        ex = MORE_MUSIC_EXCLUDE.get(s.name, ())
        out += [(s.name, f) for f in sorted(files) if stem(f) not in ex]
    return out


def read_window(path: str, start_s: float, seconds: float, sr: int) -> np.ndarray:
    """``seconds`` of a (long) file from ``start_s``, mono at ``sr``; decodes only that part."""
    import soundfile as sf
    with sf.SoundFile(path) as f:
        a = int(start_s * f.samplerate)
        f.seek(min(a, max(f.frames - 1, 0)))
        y = f.read(int(np.ceil(seconds * f.samplerate)) + 1, dtype="float64", always_2d=True)
        sr_in = f.samplerate
    return resample(y.mean(axis=1), sr_in, sr)


def background_music(rng, n, split, pools) -> tuple[np.ndarray, dict]:
    sr = pools.sr
    src, path, seconds = _pick(rng, pools.music[split], HELD_OUT_MUSIC, _dev_side(rng, split))
    need = n / sr
    if seconds > need + 1.0:
        start = float(rng.uniform(0, seconds - need))
        y = read_window(path, start, need, sr)
    else:  # a short track (jingle): loop it
        start = 0.0
        y = read_window(path, 0, seconds, sr)
    y = np.resize(y, n) if len(y) else np.zeros(n)
    return y, {"sources": [file_id(src, path)], "packages": [REAL_BY_NAME[src].package],
               "held_out": src in HELD_OUT_MUSIC, "detail": {"start_s": r3(start)}}


@lru_cache(maxsize=1024)
def _event(path: str, sr: int) -> np.ndarray:
    y, sr_in = read_audio(path)
    return resample(y, sr_in, sr)


def _sounding(x: np.ndarray, pos: int, n: int) -> tuple[int, int] | None:
    """Where an event placed at sample ``pos`` sounds in a buffer of ``n`` samples: from its first
    to its last sample within 40 dB of its peak, clipped to the buffer (None if outside it)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 0.0:
        return None
    loud = np.flatnonzero(np.abs(x) >= 0.01 * peak)
    a, b = max(pos + int(loud[0]), 0), min(pos + int(loud[-1]) + 1, n)
    return (a, b) if b > a else None


def background_effects(rng, n, split, pools, bed: bool, near=None) -> tuple[np.ndarray, dict]:
    """Real sound events scattered in time (1-6 sounds), over an ambience bed if ``bed``.
    ``near = (share, speech)``: each event, with probability ``share``, is moved next to a run
    of ``speech`` ([(first, end)] samples): starting 0-0.4 s after it ends, or ending 0-0.4 s
    before it starts (each half the time). ``detail["events"]`` records where each event sounds
    (seconds, :func:`_sounding`): the ``other`` rows of the multi-label TSVs."""
    sr, buf, used = pools.sr, np.zeros(n), []
    detail = {}
    held_side = _dev_side(rng, split)
    if bed or not pools.events[split]:
        src, path, seconds = _pick(rng, pools.beds[split], HELD_OUT_EFFECTS, held_side)
        x = _event(path, sr)
        pos = -int(rng.integers(0, max(len(x), 1)))
        while pos < n:
            _add(buf, x, pos)
            pos += len(x)
        used.append((src, path))
        detail["bed"] = file_id(src, path)
    if not bed or rng.random() < 0.5:
        sounds = [_pick(rng, pools.events[split], HELD_OUT_EFFECTS, held_side)
                  for _ in range(int(rng.integers(1, 7)))]
        rate = float(rng.uniform(0.2, 2.0))
        gain_bed = 10 ** (rng.uniform(-25, -8) / 20) if bed else 0.0
        if bed:
            buf *= gain_bed / (np.sqrt(np.mean(buf ** 2)) + 1e-12)
        t = float(rng.exponential(1 / rate))
        while t * sr < n:
            src, path = sounds[int(rng.integers(len(sounds)))]
            used.append((src, path))
            x = _event(path, sr)
            pos = int(t * sr)
            if near is not None and rng.random() < near[0]:
                first, end = near[1][int(rng.integers(len(near[1])))]
                lag = int(rng.uniform(0.0, 0.4) * sr)
                pos = end + lag if rng.random() < 0.5 else max(first - lag - len(x), 0)
                detail["moved_near_speech"] = detail.get("moved_near_speech", 0) + 1
            _add(buf, x / (np.max(np.abs(x)) + 1e-9), pos, 10 ** (rng.uniform(-15, 0) / 20))
            span = _sounding(x, pos, n)
            if span:
                detail.setdefault("events", []).append([round(span[0] / sr, 3), round(span[1] / sr, 3)])
            t += float(rng.exponential(1 / rate))
        detail["events_per_s"] = round(rate, 2)
    used = sorted(set(used))
    return buf, {"sources": [file_id(s, f) for s, f in used],
                 "packages": sorted({REAL_BY_NAME[s].package for s, _ in used}),
                 "held_out": any(s in HELD_OUT_EFFECTS for s, _ in used), "detail": detail}
