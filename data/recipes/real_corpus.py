#!/usr/bin/env python3
"""Build a speech-activity corpus from REAL recordings shipped in Debian packages.

Speech: real voices of many people and languages (KLettres letters and syllables, KTuberling
words, Hedgewars voice packs, Asterisk prompts) strung into phrase-like streams with natural
gaps, plus the synthetic voices of ``vad_corpus.py``. Non-speech: real game soundtracks, real
sound effects and ambiences (Hedgewars, SuperTuxKart, Widelands, OpenClonk, Minetest, Pingus,
and held out for dev: Neverball, Frozen Bubble, OpenTTD OpenSFX), plus ``vad_corpus.py``'s
General MIDI music, Sonic Pi samples, keyboard clicks and noise; ``--extra-animals`` clips add
Tux Paint's recorded animal calls (train only). Augmented with simulated rooms
(pyroomacoustics, or a synthetic decaying-noise RIR without it), random EQ and band limits,
telephone band / mu-law and level changes. Labels come exactly from the clean, dry speech with
``vad_corpus.py``'s energy rule, before anything is mixed or filtered.

    python data/recipes/real_corpus.py --out DIR [--seed 0] [--train-hours 5] [--dev-hours 0.5]

Writes ``DIR/{train,dev}/clip_NNNNN.wav``, ``DIR/{train,dev}.tsv`` (DCASE metadata) and
``DIR/meta.json``; the dev split holds out whole languages, voice packs and packages (see
``HELD_OUT_*``). Same seed and settings give byte-identical files. Exit codes: 0 done, 2 usage
error, 3 a needed Debian package is missing (the message names it and the apt-get command).
``--inventory FILE`` writes the screening table of every candidate speech file and exits.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import gzip
import hashlib
import os
import re
import shutil
import struct
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vad_corpus as vc  # noqa: E402  (the sibling recipe: label rule, TTS, MIDI, helpers)

RECIPE_VERSION = 1
SPLITS = vc.SPLITS
DEV_PERCENT = 15
EXIT_MISSING = 3

# ----------------------------------------------------------------------------- real sources

KLETTRES = "/usr/share/klettres"
KTUBERLING = "/usr/share/ktuberling/sounds"
HEDGEWARS = "/usr/share/games/hedgewars/Data"
FROZEN = "/usr/share/games/frozen-bubble/snd"
NEVERBALL = "/usr/share/games/neverball/bgm"
PINGUS = "/usr/share/games/pingus/data/sounds"
STK = "/usr/share/games/supertuxkart/data"
WIDELANDS = "/usr/share/games/widelands/data"
OPENCLONK = "/usr/share/games/openclonk"
MINETEST = "/usr/share/games/minetest/games/minetest_game/mods"
OPENSFX = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"
TUXPAINT = "/usr/share/tuxpaint/stamps"


@dataclass(frozen=True)
class RealSource:
    name: str                      # for --allow-missing and meta.json
    package: str
    check: str                     # a path the package installs
    roles: tuple[str, ...]         # "speech", "music", "effects"


REAL_SOURCES = (
    RealSource("klettres", "klettres-data", f"{KLETTRES}/en/alpha", ("speech",)),
    RealSource("ktuberling", "ktuberling-data", f"{KTUBERLING}/en", ("speech",)),
    RealSource("hedgewars", "hedgewars-data", f"{HEDGEWARS}/Sounds/voices",
               ("speech", "music", "effects")),
    RealSource("frozen-bubble", "frozen-bubble-data", FROZEN, ("music", "effects")),
    RealSource("neverball", "neverball-common", NEVERBALL, ("music",)),
    RealSource("pingus", "pingus-data", PINGUS, ("effects",)),
    RealSource("supertuxkart", "supertuxkart-data", f"{STK}/music", ("music", "effects")),
    RealSource("widelands", "widelands-data", f"{WIDELANDS}/music", ("music", "effects")),
    RealSource("openclonk", "openclonk-data", f"{OPENCLONK}/Sound.ocg", ("music", "effects")),
    RealSource("minetest", "minetest-data", MINETEST, ("effects",)),
    RealSource("openttd", "openttd-opensfx", OPENSFX, ("effects",)),
    # Tux Paint's stamp sounds: real animal calls, used only by --extra-animals clips (train);
    # its spoken stamp descriptions (*_desc*.ogg) are not read
    RealSource("tuxpaint", "tuxpaint-stamps-default", f"{TUXPAINT}/animals", ("calls",)),
)
REAL_BY_NAME = {s.name: s for s in REAL_SOURCES}

# Whole sources that train never sees (dev only). Languages are held out across KLettres and
# KTuberling together (a KDE translator may have recorded both); Hedgewars packs by name.
HELD_OUT_LANGS = ("da", "it")
HELD_OUT_PACKS = ("Default_pl", "Russian_pl", "Pirate", "Robot")
HELD_OUT_MUSIC = ("neverball", "frozen-bubble")     # whole packages
HELD_OUT_EFFECTS = ("openttd", "frozen-bubble")
P_DEV_HELD = 0.6  # dev draws a held-out group / package for this share of its real material

# Screening of speech files (measured per file, see --inventory and the README):
# groups whose median noise floor is within 30 dB of the peak (hum, hiss) are dropped whole,
# and so is any single file whose quietest 30 ms is within 30 dB of its peak; anything over
# 5 s after trimming would be a jingle or music bed in a speech package (none is).
DROPPED_GROUPS = {
    "klettres:hu": "noise floor: median quietest 30 ms at -27 dB re peak",
    "ktuberling:gl": "noise floor/hum: median quietest 30 ms at -13 dB re peak",
    "ktuberling:sr": "noise floor: median quietest 30 ms at -18 dB re peak",
    "hedgewars:Singer": "singing (label policy: no singing anywhere in the corpus)",
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

# Mixing (weights renormalised over what is present).
SPEECH_WEIGHTS = {"klettres": 0.15, "ktuberling": 0.20, "hedgewars": 0.20, "asterisk": 0.20,
                  "tts": 0.25}
BACKGROUND_WEIGHTS = {"music": 0.30, "effects": 0.20, "ambience": 0.08, "midi": 0.08,
                      "samples": 0.07, "keyboard": 0.05, "noise": 0.22}
P_NO_SPEECH, P_NO_BACKGROUND, P_TELEPHONE = 0.20, 0.08, 0.15
P_REVERB, P_REVERB_BACKGROUND, P_EQ, P_BAND, P_LEVEL_RAMP = 0.35, 0.5, 0.5, 0.4, 0.3
SNR_RANGE_DB = (-5.0, 30.0)
SPEECH_LEVEL_DBFS = (-42.0, -14.0)
BACKGROUND_LEVEL_DBFS = (-48.0, -14.0)
PHRASE_JITTER_DB = (-8.0, 4.0)
# --extra-no-speech: train-only clips without speech, appended after the train clips (their own
# seeds, so every other clip stays byte-identical). Animal calls are the non-speech sound most
# like a voice (pitched, syllabic); a field recording is full of them. P_VOCAL_LIKE of these clips
# draw their effects / ambience only from files whose package path names an animal.
P_VOCAL_LIKE = 0.6
# --extra-animals: train-only clips over animal calls only (the split's VOCAL_LIKE effects plus
# Tux Paint's 67 recorded calls: cows, sheep, goats, donkeys, dogs, birds...), appended after
# the --extra-no-speech clips; P_ANIMAL_SPEECH of them have speech over the calls, so the
# model learns to tell a voice from a call rather than to go deaf near one.
P_ANIMAL_SPEECH = 0.4
VOCAL_LIKE = re.compile(r"(?i)(animal|bird|sheep|cow|(^|/)ox_|horse|pig|chicken|hen_|goat|wolf|"
                        r"dog|cat_|frog|cricket|boar|moose|stag|coyote|monkey|owl|duck|seagull|"
                        r"chirp|growl|snort|whine|bark|howl|bleat|moo)")
WORD_JITTER_DB = (-2.5, 2.5)
RT60_RANGE = (0.15, 0.8)
LABEL_POLICY = (
    "speech = lexical speech (words, letters, syllables, acted lines), whatever the voice; "
    "singing, laughs, grunts, coughs, moans and crowds are used nowhere (neither speech nor "
    "background); reverberation tails after the dry speech's last active frame are non-speech")

# ----------------------------------------------------------------------------- helpers


def split_of(name: str) -> str:
    return "dev" if int(vc.sha256_hex("real-corpus-split", name)[:8], 16) % 100 < DEV_PERCENT \
        else "train"


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def group_lang(source: str, group: str) -> str:
    if source == "hedgewars":
        return {"Default_es": "es", "Default_pl": "pl", "Russian_pl": "pl", "Default_ru": "ru",
                "Default_uk": "uk"}.get(group, "en")
    return {"en_GB": "en", "pt_BR": "pt"}.get(group, group)


def is_held_group(source: str, group: str) -> bool:
    if source == "hedgewars":
        return group in HELD_OUT_PACKS
    return group_lang(source, group) in HELD_OUT_LANGS


# --------------------------------------------------------------- archives (OpenClonk, OpenSFX)

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


def _publish(tmp: str, final: str) -> None:
    """Rename a finished temporary folder into place (another process may have won)."""
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_archives(cache: str, sources: list[str], versions: dict) -> dict[str, list[str]]:
    """Unpack OpenClonk's Sound.ocg and OpenSFX's catalogue into the cache (once per version)."""
    out: dict[str, list[str]] = {}
    if "openclonk" in sources:
        d = os.path.join(cache, "extracted", "openclonk-" + versions.get("openclonk-data", ""))
        if not os.path.isdir(d):
            tmp = d + f".tmp{os.getpid()}"
            os.makedirs(tmp, exist_ok=True)
            raw = open(os.path.join(OPENCLONK, "Sound.ocg"), "rb").read()
            u = gzip.decompress(b"\x1f\x8b" + raw[2:])  # C4Group: gzip with a changed magic
            for name, off, size in _c4_entries(u):
                if name.lower().endswith((".ogg", ".wav")):
                    dst = os.path.join(tmp, name.replace(".ocg/", "/").replace(".ocg", ""))
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    with open(dst, "wb") as f:
                        f.write(u[off:off + size])
            _publish(tmp, d)
        files = sorted(glob.glob(os.path.join(d, "**", "*.*"), recursive=True))
        out["openclonk"] = [f for f in files if not any(
            os.path.relpath(f, d).startswith(x.replace(".ocg", "")) for x in
            OPENCLONK_EXCLUDE_DIRS)]
    if "openttd" in sources:
        d = os.path.join(cache, "extracted", "opensfx-" + versions.get("openttd-opensfx", ""))
        if not os.path.isdir(d):
            tmp = d + f".tmp{os.getpid()}"
            os.makedirs(tmp, exist_ok=True)
            cat = open(OPENSFX, "rb").read()
            n = (struct.unpack("<I", cat[:4])[0] & 0x7FFFFFFF) // 8
            for i in range(n):
                off, size = struct.unpack("<II", cat[8 * i:8 * i + 8])
                off &= 0x7FFFFFFF
                k = cat[off]  # name length, name, then a RIFF WAV
                with open(os.path.join(tmp, f"{i:02d}.wav"), "wb") as f:
                    f.write(cat[off + 1 + k:off + size])
            _publish(tmp, d)
        out["openttd"] = sorted(glob.glob(os.path.join(d, "*.wav")))
    return out


# ----------------------------------------------------------------------------- package check

def missing_packages() -> list[str]:
    """Every Debian package the full recipe needs that is not installed (for tests)."""
    out = vc.missing_packages()
    out += [s.package for s in REAL_SOURCES if not os.path.exists(s.check)]
    return list(dict.fromkeys(out))


def check_sources(allow_missing: list[str], calls: bool = True):
    """Return (vad_corpus sources, festival voices, real sources, notes) or exit 2/3. ``calls``:
    whether the animal-call sources are needed (only ``--extra-animals`` clips read them)."""
    known = {s.name for s in vc.SOURCES} | {p for s in vc.SOURCES for p in s.packages} \
        | {v.package for v in vc.FESTIVAL_VOICES} | set(REAL_BY_NAME) \
        | {s.package for s in REAL_SOURCES}
    unknown = sorted(set(allow_missing) - known)
    if unknown:
        print(f"error: --allow-missing: unknown source(s) {', '.join(unknown)}; known sources: "
              f"{', '.join([s.name for s in vc.SOURCES] + list(REAL_BY_NAME))}",
              file=sys.stderr)
        sys.exit(2)
    allowed = set(allow_missing)
    use_vc, use_real, notes, blocking = [], [], [], []
    for s in vc.SOURCES:
        missing = [p for p, ok in vc._package_checks(s) if not ok]
        if not missing:
            use_vc.append(s.name)
        elif s.name in allowed or all(p in allowed for p in missing):
            notes.append(f"skipping {s.name}: missing {' '.join(missing)}")
        else:
            blocking += missing
    voices = []
    if "festival" in use_vc:
        for v in vc.FESTIVAL_VOICES:
            if os.path.isdir(v.directory):
                voices.append(v.name)
            elif v.package in allowed or "festival" in allowed:
                notes.append(f"skipping festival voice {v.name}: missing {v.package}")
            else:
                blocking.append(v.package)
        if not voices:
            use_vc.remove("festival")
    for s in REAL_SOURCES:
        if "calls" in s.roles and not calls:
            continue
        if os.path.exists(s.check):
            use_real.append(s.name)
        elif s.name in allowed or s.package in allowed:
            notes.append(f"skipping {s.name}: missing {s.package}")
        else:
            blocking.append(s.package)
    if blocking:
        pkgs = " ".join(dict.fromkeys(blocking))
        names = [s.name for s in vc.SOURCES if any(p in blocking for p in s.packages)] \
            + [s.name for s in REAL_SOURCES if s.package in blocking]
        print(f"error: missing Debian package(s): {pkgs}\n"
              f"install them with:\n    apt-get update && apt-get install -y {pkgs}\n"
              f"or skip optional sources with --allow-missing {','.join(names) or 'festival'}",
              file=sys.stderr)
        sys.exit(EXIT_MISSING)
    speech = [n for n in use_real if "speech" in REAL_BY_NAME[n].roles] \
        + [n for n in use_vc if vc.SOURCE_BY_NAME[n].role == "speech"]
    if not speech:
        print("error: no speech source left (all skipped)", file=sys.stderr)
        sys.exit(EXIT_MISSING)
    return use_vc, voices, use_real, notes


# ----------------------------------------------------------------------------- pools


@dataclass
class Pools:
    """What clips draw from, per split; sorted plain lists, picklable for worker processes."""
    sr: int
    vc: vc.Pools                                       # asterisk, TTS, MIDI, samples, keys
    real: list
    words: dict = field(default_factory=dict)         # split -> source -> group -> [paths]
    held_groups: list = field(default_factory=list)   # ["klettres:da", ...]
    music: dict = field(default_factory=dict)         # split -> [(package, path, seconds)]
    events: dict = field(default_factory=dict)        # split -> [(package, path)]
    beds: dict = field(default_factory=dict)          # split -> [(package, path, seconds)]
    screened: dict = field(default_factory=dict)      # notes on what was left out
    versions: dict = field(default_factory=dict)
    vocal_like: bool = False  # events and beds narrowed to animal calls (vocal_like_pools)
    calls: dict = field(default_factory=dict)         # split -> [(package, path, seconds)]


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


def file_id(src: str, path: str) -> str:
    """A stable, machine-independent id: the source name and the path inside the package."""
    for root in (KLETTRES, KTUBERLING, HEDGEWARS, FROZEN, NEVERBALL, PINGUS, STK, WIDELANDS,
                 OPENCLONK, MINETEST, TUXPAINT):
        if path.startswith(root + "/"):
            return f"{src}:{os.path.relpath(path, root)}"
    if "/extracted/" in path:  # <cache>/extracted/<package-version>/<path in the archive>
        return f"{src}:{path.split('/extracted/', 1)[1].split('/', 1)[1]}"
    return f"{src}:{path}"


def build_pools(vc_sources, voices, real, sr, cache) -> Pools:
    import soundfile as sf
    vpools = vc.build_pools(vc_sources, voices, sr, cache)
    versions = dict(vpools.versions)
    versions.update({s.package: vc.package_version(s.package) for s in REAL_SOURCES})
    p = Pools(sr=sr, vc=vpools, real=list(real), versions=versions)
    for split in SPLITS:
        p.words[split], p.music[split], p.events[split], p.beds[split] = {}, [], [], []
        p.calls[split] = []
    dropped = []
    for src, groups in speech_files(real).items():
        for split in SPLITS:
            p.words[split][src] = {}
        for g, files in groups.items():
            key = f"{src}:{g}"
            if key in DROPPED_GROUPS:
                dropped.append(f"{key}: {DROPPED_GROUPS[key]}")
                continue
            if is_held_group(src, g):
                p.held_groups.append(key)
                p.words["dev"][src][g] = files
                continue
            for f in files:
                p.words[split_of(file_id(src, f))][src].setdefault(g, []).append(f)
    extracted = extract_archives(cache, real, versions)
    music, effects = background_files(real, extracted)
    for src, f in music:
        split = "dev" if src in HELD_OUT_MUSIC else split_of(file_id(src, f))
        p.music[split].append((src, f, float(sf.info(f).duration)))
    for src, f in effects:
        split = "dev" if src in HELD_OUT_EFFECTS else split_of(file_id(src, f))
        seconds = float(sf.info(f).duration)
        p.events[split].append((src, f))
        if seconds >= AMBIENCE_SECONDS:
            p.beds[split].append((src, f, seconds))
    if "tuxpaint" in real:  # train only: dev's sources stay as they were
        p.calls["train"] = [("tuxpaint", f, float(sf.info(f).duration)) for f in
                            sorted(glob.glob(f"{TUXPAINT}/animals/**/*.ogg", recursive=True))
                            if "_desc" not in stem(f)]
    p.screened = {"dropped_groups": dropped,
                  "file_rule": f"a speech file is skipped when its quietest 30 ms is within "
                               f"{MIN_FLOOR_MARGIN_DB:.0f} dB of its loudest 10 ms, or when "
                               f"it lasts over {MAX_WORD_SECONDS:.0f} s after trimming",
                  "nonlexical_hedgewars": list(HEDGEWARS_NONLEXICAL),
                  "effects_excluded": {k: list(v) for k, v in sorted(EFFECTS_EXCLUDE.items())},
                  "openclonk_excluded_dirs": list(OPENCLONK_EXCLUDE_DIRS)}
    return p


# ----------------------------------------------------------------------------- speech


@lru_cache(maxsize=4096)
def screen_word(path: str, sr: int):
    """(Utterance or None, statistics) for one real speech file at the corpus rate."""
    y, sr_in = vc.read_audio(path)
    y = vc.resample(y, sr_in, sr)
    e = vc.frame_energy_db(y, sr // 100)
    peak = float(e.max()) if len(e) else -200.0
    k = min(3, len(e))
    floor = float(np.convolve(e, np.ones(k) / k, mode="valid").min()) if len(e) else peak
    stats = {"seconds": vc.r3(len(y) / sr), "peak_db": round(peak, 1),
             "floor_re_peak_db": round(max(floor - peak, -120.0), 1)}
    if peak < -100:
        return None, {**stats, "drop": "silent"}
    if floor - peak > -MIN_FLOOR_MARGIN_DB:
        return None, {**stats, "drop": "noise floor"}
    u = vc.analyse(y, sr)
    if u is None:
        return None, {**stats, "drop": "no active frame"}
    if len(u.y) / sr > MAX_WORD_SECONDS:
        return None, {**stats, "drop": "too long (music or jingle?)"}
    return u, {**stats, "active_seconds": vc.r3(len(u.y) / sr)}


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
        g = vc.choice(rng, held)
    else:
        g = vc.choice(rng, seen)
    files = groups[g]
    k = int(rng.integers(1, 4)) if source == "hedgewars" else int(rng.integers(1, 7))
    hop = pools.sr // 100
    parts, segs, words, t = [], [], [], 0
    for i in range(k):
        f = vc.choice(rng, files)
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
             vc.sha256_hex(*words)[:16], "words": words}
    return Phrase(y=np.concatenate(parts), segments=segs, entry=entry)


def vc_phrase(rng, split: str, kind: str, pools: Pools) -> Phrase | None:
    """An Asterisk prompt or a synthetic sentence, through vad_corpus.py's own code."""
    if kind == "asterisk":
        sub = dataclasses.replace(pools.vc, sources=[s for s in pools.vc.sources
                                                     if s.startswith("asterisk-")])
    else:
        sub = dataclasses.replace(pools.vc, sources=[s for s in pools.vc.sources
                                                     if s in ("espeak-ng", "flite", "festival")])
    spec = vc.utterance_spec(rng, split, sub)
    u = vc.load_utterance(spec, sub)
    if u is None:
        return None
    entry = {k: spec[k] for k in ("source", "id", "voice", "lang") if k in spec}
    if "text" in spec:
        entry.update(text=spec["text"], text_id=spec["text_id"])
    entry["held_out"] = spec.get("voice") in vc.HELD_OUT.get(spec["source"], ())
    entry["package"] = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}.get(
        spec["source"], vc.SOURCE_BY_NAME.get(spec["source"], vc.SOURCES[0]).packages[0])
    return Phrase(y=u.y / u.active_rms, segments=list(u.segments), entry=entry)


def speech_kinds(pools: Pools) -> dict:
    kinds = {}
    for s in ("klettres", "ktuberling", "hedgewars"):
        if s in pools.real:
            kinds[s] = SPEECH_WEIGHTS[s]
    if any(s.startswith("asterisk-") for s in pools.vc.sources):
        kinds["asterisk"] = SPEECH_WEIGHTS["asterisk"]
    if any(s in pools.vc.sources for s in ("espeak-ng", "flite", "festival")):
        kinds["tts"] = SPEECH_WEIGHTS["tts"]
    return kinds


# ----------------------------------------------------------------------------- backgrounds


def read_window(path: str, start_s: float, seconds: float, sr: int) -> np.ndarray:
    """``seconds`` of a (long) file from ``start_s``, mono at ``sr``; decodes only that part."""
    import soundfile as sf
    with sf.SoundFile(path) as f:
        a = int(start_s * f.samplerate)
        f.seek(min(a, max(f.frames - 1, 0)))
        y = f.read(int(np.ceil(seconds * f.samplerate)) + 1, dtype="float64", always_2d=True)
        sr_in = f.samplerate
    return vc.resample(y.mean(axis=1), sr_in, sr)


def _dev_side(rng, split: str) -> bool:
    """Dev only: whether this clip's real background comes from held-out packages (decided
    once per clip, so a clip is wholly "unseen package" or wholly "seen package")."""
    return split == "dev" and bool(rng.random() < P_DEV_HELD)


def _pick(rng, items: list, held_names: tuple, held_side: bool) -> tuple:
    held = [x for x in items if x[0] in held_names]
    seen = [x for x in items if x[0] not in held_names]
    side = held if (held_side and held) or not seen else seen
    return side[int(rng.integers(len(side)))]


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
               "held_out": src in HELD_OUT_MUSIC, "detail": {"start_s": vc.r3(start)}}


@lru_cache(maxsize=1024)
def _event(path: str, sr: int) -> np.ndarray:
    y, sr_in = vc.read_audio(path)
    return vc.resample(y, sr_in, sr)


def background_effects(rng, n, split, pools, bed: bool) -> tuple[np.ndarray, dict]:
    """Real sound events scattered in time (1-6 sounds), over an ambience bed if ``bed``."""
    sr, buf, used = pools.sr, np.zeros(n), []
    detail = {}
    held_side = _dev_side(rng, split)
    if bed or not pools.events[split]:
        src, path, seconds = _pick(rng, pools.beds[split], HELD_OUT_EFFECTS, held_side)
        x = _event(path, sr)
        pos = -int(rng.integers(0, max(len(x), 1)))
        while pos < n:
            vc._add(buf, x, pos)
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
            vc._add(buf, _event(path, sr) / (np.max(np.abs(_event(path, sr))) + 1e-9),
                    int(t * sr), 10 ** (rng.uniform(-15, 0) / 20))
            t += float(rng.exponential(1 / rate))
        detail["events_per_s"] = round(rate, 2)
    used = sorted(set(used))
    return buf, {"sources": [file_id(s, f) for s, f in used],
                 "packages": sorted({REAL_BY_NAME[s].package for s, _ in used}),
                 "held_out": any(s in HELD_OUT_EFFECTS for s, _ in used), "detail": detail}


def make_background(rng, kind, n, split, index, seconds, pools) -> tuple[np.ndarray, dict]:
    sr = pools.sr
    if kind == "music":
        return background_music(rng, n, split, pools)
    if kind in ("effects", "ambience"):
        return background_effects(rng, n, split, pools, bed=kind == "ambience")
    if kind == "midi":
        midi, info = vc.make_midi(rng, seconds)
        y = vc.render_music(midi, pools.vc)
        off = int(rng.integers(0, max(min(len(y) - n, sr), 0) + 1))
        return np.resize(y[off:], n), {
            "sources": [f"fluidsynth:{split}:{index}:{hashlib.sha256(midi).hexdigest()[:12]}"],
            "packages": ["fluidsynth", "fluid-soundfont-gm"], "held_out": False, "detail": info}
    if kind == "samples":
        b, info = vc.background_samples(rng, n, split, pools.vc)
        return b, {**info, "packages": ["sonic-pi-samples"], "held_out": False}
    if kind == "keyboard":
        b, info = vc.background_keyboard(rng, n, split, pools.vc)
        return b, {**info, "packages": ["bucklespring-data"], "held_out": False}
    b, info = vc.background_noise(rng, n, sr)
    return b, {**info, "sources": [f"noise:{info['detail']['color']}:{split}:{index}"],
               "packages": [], "held_out": False}


def vocal_like_pools(pools: Pools, split: str, calls: list = ()) -> Pools:
    """``pools`` with the split's effects and beds narrowed to animal calls (``VOCAL_LIKE``) and
    the extra ``calls`` [(package, path, seconds)], when there are any of both."""
    events = [x for x in pools.events[split] if VOCAL_LIKE.search(file_id(x[0], x[1]).split(":", 1)[1])]
    beds = [x for x in pools.beds[split] if VOCAL_LIKE.search(file_id(x[0], x[1]).split(":", 1)[1])]
    events += [(s, f) for s, f, _ in calls]
    beds += [x for x in calls if x[2] >= AMBIENCE_SECONDS]
    if not events or not beds:
        return pools
    return dataclasses.replace(pools, events={**pools.events, split: events},
                               beds={**pools.beds, split: beds}, vocal_like=True)


def background_kinds(split: str, pools: Pools) -> dict:
    kinds = dict(BACKGROUND_WEIGHTS)
    if not pools.music[split]:
        kinds.pop("music")
    if not pools.events[split]:
        kinds.pop("effects")
    if not pools.beds[split]:
        kinds.pop("ambience")
    if "fluidsynth" not in pools.vc.sources:
        kinds.pop("midi")
    if "sonic-pi" not in pools.vc.sources or not pools.vc.samples_shot[split]:
        kinds.pop("samples")
    if "bucklespring" not in pools.vc.sources or not pools.vc.keys[split]:
        kinds.pop("keyboard")
    return kinds


# ----------------------------------------------------------------------------- augmentation


def room_rir(rng, sr: int, n_sources: int) -> tuple[list[np.ndarray], dict]:
    """Impulse responses of one simulated shoebox room (one per source position).

    pyroomacoustics' image-source model when it is installed; otherwise an exponentially
    decaying noise tail with the same RT60 after a direct-path impulse. Each response starts
    at its direct path, so the dry speech labels stay aligned."""
    dims = [float(rng.uniform(3, 12)), float(rng.uniform(2.5, 9)), float(rng.uniform(2.4, 4))]
    rt60 = float(rng.uniform(*RT60_RANGE))
    mic = [float(rng.uniform(0.5, d - 0.5)) for d in dims]
    srcs = [[float(rng.uniform(0.5, d - 0.5)) for d in dims] for _ in range(n_sources)]
    info = {"rt60_s": vc.r3(rt60), "room_m": [vc.r3(d) for d in dims]}
    try:
        import pyroomacoustics as pra
        e_abs, order = pra.inverse_sabine(rt60, dims)
        room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(e_abs), max_order=order,
                           air_absorption=False)
        for s in srcs:
            room.add_source(s)
        room.add_microphone(mic)
        room.compute_rir()
        hs = [np.asarray(room.rir[0][i], dtype=np.float64) for i in range(n_sources)]
        info["method"] = f"pyroomacoustics {pra.__version__} image sources, order {order}"
    except ImportError:
        hs = []
        for s in srcs:
            dist = float(np.linalg.norm(np.subtract(s, mic)))
            m = int(rt60 * sr)
            t = np.arange(m) / sr
            tail = rng.standard_normal(m) * np.exp(-6.9078 * t / rt60)
            h = 0.3 * dist * tail / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
            h[0] = 1.0
            hs.append(h)
        info["method"] = "synthetic exponential noise tail"
    out = []
    for h in hs:
        i = int(np.flatnonzero(np.abs(h) >= 0.5 * np.abs(h).max())[0])
        out.append(h[max(i - 40, 0):])  # the fractional-delay filter's pre-ringing kept
    info["distances_m"] = [vc.r3(np.linalg.norm(np.subtract(s, mic))) for s in srcs]
    return out, info


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


# ----------------------------------------------------------------------------- one clip


def make_clip(job: tuple) -> dict:
    """Build clip ``index`` of ``split``; writes its WAV, returns its meta (with segments)."""
    seed, split, index, seconds, pools, out_dir, *extra = job
    mode = extra[0] if extra else None  # "no-speech" / "animals": an --extra-* clip (train)
    sr, hop = pools.sr, pools.sr // 100
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed, 1000 + SPLITS.index(split), index])))
    n = (int(round(seconds * sr)) // hop) * hop
    nf_clip = n // hop
    has_speech = rng.random() >= P_NO_SPEECH
    if mode == "no-speech":
        has_speech = False
        if rng.random() < P_VOCAL_LIKE:
            pools = vocal_like_pools(pools, split)
    elif mode == "animals":
        has_speech = bool(rng.random() < P_ANIMAL_SPEECH)
        pools = vocal_like_pools(pools, split, pools.calls[split])  # Tux Paint's calls too
    has_bg = (not has_speech) or mode == "animals" or rng.random() >= P_NO_BACKGROUND
    is_tel = bool(rng.random() < P_TELEPHONE)
    reverb = bool(rng.random() < P_REVERB)
    meta = {"split": split, "duration": vc.r3(n / sr), "telephone": is_tel, "utterances": []}

    s = np.zeros(n)
    segments = []
    if has_speech:
        kinds = speech_kinds(pools)
        gap_scale = vc.choice(rng, (0.5, 1.0, 1.0, 2.0, 4.0))
        t = int(rng.integers(0, min(nf_clip, 300)))
        for _ in range(60):
            kind = vc.weighted(rng, kinds)
            ph = vc_phrase(rng, split, kind, pools) if kind in ("asterisk", "tts") \
                else real_phrase(rng, split, kind, pools)
            gap = int(max(rng.exponential(0.8 * gap_scale), 0.2) * 100)
            if ph is None:
                continue
            nf = len(ph.y) // hop
            if t + nf > nf_clip:
                if rng.random() < 0.5 or t >= nf_clip - 20:
                    break
                nf = nf_clip - t
            g_db = float(rng.uniform(*PHRASE_JITTER_DB))
            s[t * hop:(t + nf) * hop] += 10 ** (g_db / 20) * ph.y[:nf * hop]
            segments += [(t + a, t + min(b, nf)) for a, b in ph.segments if a < nf]
            meta["utterances"].append({**ph.entry, "start": vc.r3(t / 100),
                                       "end": vc.r3((t + nf) / 100), "gain_db": round(g_db, 2),
                                       "truncated": nf < len(ph.y) // hop})
            t += nf + gap
            if t >= nf_clip - 20:
                break
        has_speech = bool(segments)
    if not has_speech:
        has_bg = True
    # labels: union of the words' active frames, gaps under the rule's 150 ms joined
    mask = np.zeros(nf_clip, dtype=bool)
    for a, b in segments:
        mask[a:b] = True
    segments = vc.merge_runs(mask, int(round(vc.LABEL_RULE["merge_gap_s"] * 100)))
    mask = np.zeros(nf_clip, dtype=bool)
    for a, b in segments:
        mask[a:b] = True

    room, hs = None, []
    if reverb:
        hs, room = room_rir(rng, sr, 2)
    if has_speech and reverb:
        s = convolve(s, hs[0])
        room["applied_to"] = ["speech"]
    speech_level = float(np.sqrt(np.mean(s.reshape(-1, hop)[mask] ** 2))) if has_speech else 0.

    kind, bg_info = "none", {"sources": [], "packages": [], "held_out": False}
    if has_bg:
        kinds = background_kinds(split, pools)
        if pools.vocal_like:
            kinds = {k: kinds[k] for k in ("effects", "ambience") if k in kinds}
        kind = vc.weighted(rng, kinds)
        b, bg_info = make_background(rng, kind, n, split, index, seconds, pools)
        if reverb and rng.random() < P_REVERB_BACKGROUND:
            b = convolve(b, hs[1])
            room["applied_to"] = room.get("applied_to", []) + ["background"]
        if rng.random() < P_LEVEL_RAMP:
            ramp, knots = level_ramp(rng, n)
            b = b * ramp
            bg_info["level_ramp_db"] = knots
        rms = float(np.sqrt(np.mean(b ** 2)))
        if rms < 1e-9:  # a silent file or window: fall back to noise
            b, info = vc.background_noise(rng, n, sr)
            kind, bg_info = "noise", {**info, "sources": [f"noise:{split}:{index}"],
                                      "packages": [], "held_out": False}
            rms = float(np.sqrt(np.mean(b ** 2)))
        b = b / rms
    else:
        b = np.zeros(n)
        if rng.random() < 0.5:
            rel = float(rng.uniform(50, 70))
            b = rng.standard_normal(n) * speech_level * 10 ** (-rel / 20)
            bg_info["detail"] = {"below_speech_db": vc.r3(rel)}
            bg_info["sources"] = [f"noise:floor:{split}:{index}"]
        else:
            bg_info["detail"] = {"digital_silence": True}

    snr = None
    if has_speech and has_bg:
        snr = float(rng.uniform(*SNR_RANGE_DB))
        mix = s + b * speech_level * 10 ** (-snr / 20)
    else:
        mix = s + b
    if has_speech:
        target = float(rng.uniform(*SPEECH_LEVEL_DBFS))
        gain = 10 ** (target / 20) / speech_level
    else:
        target = float(rng.uniform(*BACKGROUND_LEVEL_DBFS))
        gain = 10 ** (target / 20)
    mix = mix * gain
    augment = {"reverb": room if room and room.get("applied_to") else None}
    eq, band = bool(rng.random() < P_EQ), bool(rng.random() < P_BAND)
    if (eq or band) and not is_tel:
        mix, augment["eq"] = equalise(mix, sr, rng, band, eq)
    if is_tel:
        mix, meta["telephone_detail"] = vc.telephone(mix, sr, rng)
    peak = float(np.max(np.abs(mix))) if n else 0.0
    limited = peak > 0.98
    if limited:
        mix = mix * (0.98 / peak)
    meta.update(background={"kind": kind, **bg_info}, snr_db=None if snr is None else vc.r3(snr),
                level_dbfs=vc.r3(target), peak_limited=limited, augment=augment,
                speech_seconds=vc.r3(sum(b_ - a for a, b_ in segments) / 100),
                segments=[(vc.r3(a / 100), vc.r3(b_ / 100)) for a, b_ in segments])
    name = f"{split}/clip_{index + 1:05d}.wav"
    vc.write_wav_atomic(os.path.join(out_dir, name), mix, sr)
    meta["file"] = name
    return meta


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Build a speech-activity corpus from real recordings in Debian packages.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", help="output directory (required unless --inventory)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-hours", type=float, default=5.0)
    p.add_argument("--dev-hours", type=float, default=0.5)
    p.add_argument("--train-clips", type=int, default=None,
                   help="number of train clips (overrides --train-hours)")
    p.add_argument("--dev-clips", type=int, default=None,
                   help="number of dev clips (overrides --dev-hours)")
    p.add_argument("--extra-no-speech", type=int, default=0, metavar="N",
                   help="N more train clips without speech, 60%% of them over animal calls "
                        "(hard negatives); the other clips are unchanged")
    p.add_argument("--extra-animals", type=int, default=0, metavar="N",
                   help="N more train clips over animal calls only (with Tux Paint's), 40%% of "
                        "them with speech, after the --extra-no-speech ones; the other clips "
                        "are unchanged")
    p.add_argument("--clip-seconds", type=float, default=20.0)
    p.add_argument("--sr", type=int, default=16000, help="output sample rate (multiple of 100)")
    p.add_argument("--allow-missing", default="",
                   help="comma-separated sources (or package names) to skip if missing: "
                        + ", ".join([s.name for s in vc.SOURCES] + list(REAL_BY_NAME)))
    p.add_argument("--cache-dir", default=None, help="renders and unpacked archives "
                                                     "(default: OUT/_cache)")
    p.add_argument("--inventory", default=None, metavar="TSV",
                   help="write the screening statistics of every speech file and exit")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="worker processes (the output does not depend on it)")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    if not a.out and not a.inventory:
        p.error("--out is required (or --inventory FILE)")
    vc.check_clip_args(p, a)
    return a


def write_inventory(path: str, real: list[str], sr: int, dropped: dict) -> None:
    lines = ["file\tgroup\tseconds\tpeak_db\tfloor_re_peak_db\tactive_seconds\tdecision"]
    for src, groups in speech_files(real).items():
        for g, files in groups.items():
            for f in files:
                _, st = screen_word(f, sr)
                key = f"{src}:{g}"
                decision = dropped.get(key) and f"drop group: {dropped[key]}" \
                    or st.get("drop", "keep")
                lines.append(f"{file_id(src, f)}\t{key}\t{st['seconds']}\t{st['peak_db']}\t"
                             f"{st['floor_re_peak_db']}\t{st.get('active_seconds', '')}\t"
                             f"{decision}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    a = parse_args(argv)
    allow = [x.strip() for x in a.allow_missing.split(",") if x.strip()]
    vc_sources, voices, real, notes = check_sources(allow, calls=a.extra_animals > 0)
    say = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    for note in notes:
        say(f"note: {note}")
    if a.inventory:
        write_inventory(a.inventory, real, a.sr, DROPPED_GROUPS)
        say(f"wrote {a.inventory}")
        return 0
    out = os.path.abspath(a.out)
    cache = os.path.abspath(a.cache_dir or os.path.join(out, "_cache"))
    counts = vc.clip_counts(a)
    vc.clear_split_dirs(out)
    os.makedirs(cache, exist_ok=True)
    t0 = time.monotonic()
    pools = build_pools(vc_sources, voices, real, a.sr, cache)
    jobs = [(a.seed, split, i, a.clip_seconds, pools, out)
            for split in SPLITS for i in range(counts[split])]
    jobs += [(a.seed, "train", counts["train"] + i, a.clip_seconds, pools, out, "no-speech")
             for i in range(a.extra_no_speech)]
    jobs += [(a.seed, "train", counts["train"] + a.extra_no_speech + i, a.clip_seconds, pools,
              out, "animals") for i in range(a.extra_animals)]
    metas = vc.run_clip_jobs(make_clip, jobs, a.jobs, say, t0, every=max(20, len(jobs) // 50))
    for split in SPLITS:
        vc.write_tsv(os.path.join(out, f"{split}.tsv"), [m for m in metas if m["split"] == split])
    held = {"speech_groups": sorted(pools.held_groups),
            "tts_voices": {e: v for e, v in sorted(vc.HELD_OUT.items())
                           if e in vc_sources},
            "music_packages": sorted(REAL_BY_NAME[s].package for s in HELD_OUT_MUSIC
                                     if s in real),
            "effects_packages": sorted(REAL_BY_NAME[s].package for s in HELD_OUT_EFFECTS
                                       if s in real)}
    try:
        import pyroomacoustics as pra
        rir = f"pyroomacoustics {pra.__version__}"
    except ImportError:
        rir = "synthetic exponential noise tail (pyroomacoustics not installed)"
    meta = {
        "recipe": "data/recipes/real_corpus.py", "version": RECIPE_VERSION,
        "settings": {"seed": a.seed, "sr": a.sr, "clip_seconds": a.clip_seconds,
                     "train_clips": counts["train"], "dev_clips": counts["dev"],
                     "extra_no_speech": a.extra_no_speech, "p_vocal_like": P_VOCAL_LIKE,
                     "extra_animals": a.extra_animals, "p_animal_speech": P_ANIMAL_SPEECH},
        "sources": sorted(vc_sources + real), "festival_voices": voices, "skipped": notes,
        "packages": pools.versions, "held_out": held, "dev_percent": DEV_PERCENT,
        "screening": pools.screened, "label_rule": vc.LABEL_RULE,
        "label_policy": LABEL_POLICY, "room_simulation": rir,
        "clips": {m["file"]: m for m in metas},
    }
    vc.write_meta(out, meta)
    vc.summarize(metas, f"  held out for dev: {held}", time.monotonic() - t0, out, say,
                 unit="phrases", reverberant=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
