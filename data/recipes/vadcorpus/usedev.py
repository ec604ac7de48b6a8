"""A dev split that resembles use, not the recipe: continuous real speech from held-out sources
under one background over the whole clip at fixed SNRs, laid out like speech-v1 (so that
``bench/vad.py --benchmark DIR`` scores it with speech-v1's figures).

The training recipes string isolated words and letters together and mix a random background at a
random SNR; this split has real utterances (IVR prompts, acted game lines, spoken descriptions)
from voices that no training clip contains, pauses of 0.4-4 s, and per clip one background class
(music, events over a pink floor, noise) at SNR 20, 10, 5, 0 or -5 dB, plus clean clips and clips
without speech. Labels come from the clean speech before mixing, by speech-v1's rule (primary,
tight, uncertain) and by ours (``labels.LABEL_RULE``), one file each.
"""
from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import os
import re
import shutil
import sys
import time

import numpy as np

from .asterisk import ASTERISK_DIRS, ASTERISK_EXCLUDE, ASTERISK_ROOT
from .common import (canonical_json, choice, package_version, read_audio, resample, split_of,
                     trim_silence, weighted, write_wav_atomic)
from .gamesounds import (AMBIENCE_SECONDS, VOCAL_LIKE, background_files, extract_archives,
                         more_music_files)
from .gamespeech import (DROPPED_GROUPS, MIN_FLOOR_MARGIN_DB, TUXPAINT_DEV_LANGS, is_held_group,
                         queen_lines, speech_files, tuxpaint_descriptions)
from .labels import LABEL_RULE, frame_energy_db, label_runs, merge_runs, rms_over
from .music import SF2, tonal_bank
from .packages import (DESKTOP_EVENTS, DESKTOP_MUSIC, DESKTOP_SOURCES, HELD_OUT_EFFECTS,
                       HELD_OUT_MUSIC, MORE_MUSIC, REAL_BY_NAME, file_id)
from .packages import split_of as real_split_of
from .rooms import convolve, room_rir, simulation_method
from .synthetic import SOURCE_BY_NAME, _package_checks
from .tts import ESPEAK_LANGS, ESPEAK_VARIANTS, FESTIVAL_VOICES, FLITE_VOICES, HELD_OUT
from .tts import pick_sentence, render_tts, utterance_id

RECIPE_VERSION = 1
SIDES = ("dev", "train")  # --side: whose voices, files and packages a build reads
SR, HOP, FPS = 16000, 160, 100
EXIT_MISSING = 3

# Voices no training clip contains: Tux Paint's descriptions in gamespeech.TUXPAINT_DEV_LANGS,
# Hedgewars' held-out packs (their Robot pack is vocoded: left out).
HEDGEWARS_DEV_PACKS = ("Default_pl", "Pirate", "Russian_pl")
SPEECH_WEIGHTS = {"asterisk": 0.35, "hedgewars": 0.25, "tuxpaint": 0.40,
                  # --side train only, and only when named in --speech: synthetic voices reading
                  # sentences of tts.py's word lists (0.30 of 1.30: 23 % of the voices drawn)
                  "espeak-ng": 0.15, "festival": 0.10, "flite": 0.05,
                  # --side train only, when named: Flight of the Amazon Queen's acted dialogue
                  "queen": 0.25}
TTS_FAMILIES = ("espeak-ng", "festival", "flite")
TRAIN_ONLY = TTS_FAMILIES + ("queen",)
TTS_SPEED = {"espeak-ng": (130, 190), "flite": (0.85, 1.2), "festival": (0.9, 1.2)}
MIN_ACTIVE_S = 0.8          # shorter files are single words or syllables: left out (sentences wanted)
MAX_ACTIVE_S = 20.0

CLIP_S = 30.0
SNRS_DB = (20, 10, 5, 0, -5)
CLASSES = ("music", "events", "noise")
BACKGROUND_SETS = ("games", "desktop")  # --backgrounds (dev side)
TONAL_PACKAGES = ("fluidsynth", "fluid-soundfont-gm")  # --tonal's renders
PACKAGE_OF = {**{s.name: s.package for s in REAL_BY_NAME.values()},
              **{s.name: s.package for s in DESKTOP_SOURCES}}  # a background source's package
TONAL_BANK = {"jingle": 400, "ringtone": 150}  # sounds per build (--tonal)
PAUSE_S = (0.4, 4.0)        # log-uniform, from one utterance's last labelled frame to the next's first
CONTEXT_FRAMES = 30         # recording kept around an utterance's labelled frames (room tone)
SPEECH_DBFS = (-30.0, -20.0)
BACKGROUND_DBFS = (-35.0, -25.0)  # clips without speech
UTTERANCE_JITTER_DB = (-3.0, 3.0)
PINK_FLOOR_DB = -20.0       # under the events' RMS
# recorded noise: ambience files whose names say they are a steady noise (not events)
NOISE_LIKE = re.compile(r"(?i)(rain|wind|water|fire|sea|ocean|wave|river|stream|engine|motor|"
                        r"noise|storm|fountain|lava|bubbl|machine|factory|traffic)")

# speech-v1's label rule (its README): frames above max(p95 - 35 dB, -65 dBFS), raised to the
# recording's noise floor + 6 dB, counted only within 200 ms of a frame above p95 - 20 dB; gaps
# under 250 ms filled, islands under 30 ms removed. Tight: gaps under 50 ms filled. Uncertain:
# primary frames a stricter rule (p95 - 25 dB, within 100 ms) rejects.
V1_RULE = {"p": 95, "rel_db": -35.0, "abs_dbfs": -65.0, "floor_margin_db": 6.0,
           "strong_db": -20.0, "near_s": 0.200, "fill_gap_s": 0.250, "min_island_s": 0.030,
           "tight_gap_s": 0.050, "strict_rel_db": -25.0, "strict_near_s": 0.100}


def fill_gaps(mask: np.ndarray, gap: int, island: int) -> np.ndarray:
    """Join runs closer than ``gap`` frames, then drop runs shorter than ``island`` frames."""
    out = np.zeros_like(mask)
    for a, b in merge_runs(mask, gap):
        if b - a >= island:
            out[a:b] = True
    return out


def v1_frames(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """speech-v1's rule on one clean utterance at its level in the clip: (primary-rule frames
    before gap filling, strict-rule frames) at 100 fps."""
    e = frame_energy_db(y, HOP)
    p95 = float(np.percentile(e, V1_RULE["p"]))
    k = min(3, len(e))
    floor = float(np.convolve(e, np.ones(k) / k, mode="valid").min())
    thr = max(p95 + V1_RULE["rel_db"], V1_RULE["abs_dbfs"], floor + V1_RULE["floor_margin_db"])

    def near(level_db: float, seconds: float) -> np.ndarray:
        w = int(round(seconds * FPS))
        strong = np.flatnonzero(e > p95 + level_db)
        m = np.zeros(len(e), bool)
        for i in strong:  # dilate by w frames each side
            m[max(0, i - w):i + w + 1] = True
        return m

    primary = (e > thr) & near(V1_RULE["strong_db"], V1_RULE["near_s"])
    strict = (e > max(thr, p95 + V1_RULE["strict_rel_db"])) & near(V1_RULE["strict_rel_db"],
                                                                    V1_RULE["strict_near_s"])
    return primary, strict


# ----------------------------------------------------------------------------- speech


def speech_groups(side: str = "dev") -> dict[str, list[tuple[str, str]]]:
    """voice group -> [(id, path)]. ``dev``: Asterisk prompts hashed into dev (as ``vad_corpus.py``
    splits them), Hedgewars' held-out packs, Tux Paint's held-out languages. ``train``: what the
    training recipes may read of the same three sources (Asterisk prompts hashed into train,
    Hedgewars' train packs' files hashed into train, Tux Paint's train languages), so that a
    train build shares no voice and no file with the dev split or the recipes' dev clips."""
    check_side(side)
    groups: dict[str, list[tuple[str, str]]] = {}
    for lang, d in sorted(ASTERISK_DIRS.items()):
        root = os.path.join(ASTERISK_ROOT, d)
        for f in sorted(glob.glob(os.path.join(root, "**", "*.wav"), recursive=True)):
            rel = os.path.relpath(f, root)
            if rel.startswith("silence/") or os.path.basename(rel) in ASTERISK_EXCLUDE:
                continue
            if (split_of(f"asterisk:{rel}") == "dev") == (side == "dev"):
                groups.setdefault(f"asterisk:{d}", []).append((f"asterisk:{d}/{rel}", f))
    for pack, files in sorted(speech_files(["hedgewars"]).get("hedgewars", {}).items()):
        if side == "dev" and pack in HEDGEWARS_DEV_PACKS:
            groups[f"hedgewars:{pack}"] = [(file_id("hedgewars", f), f) for f in files]
        elif side == "train" and not (pack in HEDGEWARS_DEV_PACKS or is_held_group("hedgewars", pack)
                                      or f"hedgewars:{pack}" in DROPPED_GROUPS):
            groups[f"hedgewars:{pack}"] = [(file_id("hedgewars", f), f) for f in files
                                           if real_split_of(file_id("hedgewars", f)) == "train"]
    for lang, files in sorted(tuxpaint_descriptions().items()):
        if (lang in TUXPAINT_DEV_LANGS) != (side == "dev") or f"tuxpaint:{lang}" in DROPPED_GROUPS:
            continue  # the alphabet stamps say a letter: left out
        groups[f"tuxpaint:{lang}"] = [(file_id("tuxpaint", f), f) for f in files
                                      if "/symbols/alphabets/" not in f]
    return {g: v for g, v in groups.items() if v}


def check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side={side!r}: choose from {', '.join(SIDES)}")


class TtsVoice:
    """One synthetic voice of the train side: an espeak-ng language voice with one speaker
    variant (its pitch fixed per voice), a flite voice or a festival voice. Each draw reads a new
    train-side sentence (``tts.pick_sentence``) at a drawn speed, rendered once into the cache
    (``tts.render_tts``, which reads its ``cache_dir`` and ``versions``), so a voice is a stream
    of utterances, not a list of files."""

    def __init__(self, engine: str, voice: str, lang: str, cache: str, versions: dict,
                 espeak_voice: str = "", stretch: bool = True):
        self.engine, self.voice, self.lang = engine, voice, lang
        self.espeak_voice, self.stretch = espeak_voice, stretch
        self.cache_dir, self.versions = cache, versions
        h = int(hashlib.sha256(f"tts-pitch:{espeak_voice}".encode()).hexdigest()[:8], 16)
        self.pitch = 30 + h % 41 if espeak_voice else None  # espeak-ng -p, 30..70

    def draw(self, rng) -> tuple[str, str]:
        lo, hi = TTS_SPEED[self.engine]
        spec = {"source": self.engine, "voice": self.voice, "lang": self.lang}
        if self.engine == "espeak-ng":
            spec.update(espeak_voice=self.espeak_voice, speed=int(rng.integers(lo, hi + 1)),
                        pitch=self.pitch, wordgap=int(rng.integers(0, 3)))
        else:
            spec["stretch"] = round(float(rng.uniform(lo, hi)), 2) if self.stretch else 1.0
        n, text = pick_sentence(rng, self.lang, "train")
        spec.update(text=text, text_id=f"{self.lang}:{n}")
        return utterance_id(spec), render_tts(spec, self)


def tts_groups(families: list[str], cache: str) -> tuple[dict[str, TtsVoice], dict[str, str]]:
    """(voice group -> :class:`TtsVoice`, package -> version) of the named engines, train voices
    only (``tts.HELD_OUT`` keeps its voices for the recipes' dev clips); festival voices whose
    folder is absent are skipped."""
    versions = {pk: package_version(pk) for pk in families}
    groups: dict[str, TtsVoice] = {}
    if "espeak-ng" in families:
        for lang, lvs in sorted(ESPEAK_LANGS.items()):
            for lv in lvs:
                for var in ESPEAK_VARIANTS:
                    if var not in HELD_OUT["espeak-ng"]:
                        groups[f"espeak-ng:{lv}+{var}"] = TtsVoice(
                            "espeak-ng", var, lang, cache, versions, espeak_voice=f"{lv}+{var}")
    if "flite" in families:
        for v in FLITE_VOICES:
            if v not in HELD_OUT["flite"]:
                groups[f"flite:{v}"] = TtsVoice("flite", v, "en", cache, versions)
    if "festival" in families:
        for v in FESTIVAL_VOICES:
            if v.name not in HELD_OUT["festival"] and os.path.isdir(v.directory):
                versions[v.package] = package_version(v.package)
                groups[f"festival:{v.name}"] = TtsVoice("festival", v.name, v.lang, cache,
                                                        versions, stretch=v.stretch)
    return groups, versions


def draw_file(rng, group) -> tuple[str, str]:
    """(id, path) of one utterance of a voice group: a recorded file, or a new synthetic one."""
    return group.draw(rng) if isinstance(group, TtsVoice) else choice(rng, group)


def played_at(piece: np.ndarray, a: int, b: int, factor: float) -> tuple[np.ndarray, int, int]:
    """A screened utterance (:func:`screen`) played ``factor`` times as fast (resampled: pitch,
    formants and tempo move together), its first and end labelled frame moved alike."""
    y = resample(piece, int(round(SR * factor)), SR)
    n = len(y) // HOP
    return y[:n * HOP], int(round(a / factor)), min(int(round(b / factor)), n)


def speed_of(seed: int, path: str, lo: float, hi: float) -> float:
    """One speed per build and file, log-uniform in ``lo..hi`` (from a hash: no draw from a
    clip's generator, so the rest of the build does not move)."""
    h = int(hashlib.sha256(f"{seed}:{path}".encode()).hexdigest()[:8], 16)
    return float(np.exp(np.random.default_rng(h).uniform(np.log(lo), np.log(hi))))


def screen(path: str) -> tuple[np.ndarray, int, int] | None:
    """(the utterance with CONTEXT_FRAMES of its recording either side, first and end labelled
    frame in it) or None: silent, noise floor within 30 dB of the peak (as the training
    recipes screen), or active length outside MIN_ACTIVE_S..MAX_ACTIVE_S."""
    y, sr_in = read_audio(path)
    y = resample(y, sr_in, SR)
    found = label_runs(y, SR)
    if found is None:
        return None
    runs = found[0]
    e = frame_energy_db(y, HOP)
    k = min(3, len(e))
    if np.convolve(e, np.ones(k) / k, mode="valid").min() - e.max() > -MIN_FLOOR_MARGIN_DB:
        return None
    a, b = runs[0][0], runs[-1][1]
    if not MIN_ACTIVE_S <= (b - a) / FPS <= MAX_ACTIVE_S:
        return None
    lo, hi = max(a - CONTEXT_FRAMES, 0), min(b + CONTEXT_FRAMES, len(e))
    piece = np.zeros((hi - lo) * HOP)
    seg = y[lo * HOP:hi * HOP]
    piece[:len(seg)] = seg
    return piece, a - lo, b - lo


# ----------------------------------------------------------------------------- backgrounds


def background_pools(cache: str, side: str = "dev", more_music: bool = False) -> dict[str, list]:
    """``dev``: held-out music and effect packages (never in training), and recorded ambience
    beds: files of the seen packages hashed into dev (never in training either), animal calls
    out. ``train``: the seen packages' music and effects hashed into train (as the training
    recipes split them), animal calls out, and their steady ambience files as beds.
    ``more_music`` (train only): the installed ``packages.MORE_MUSIC`` soundtracks' files hashed
    into train join the music."""
    import soundfile as sf

    check_side(side)
    if more_music and side != "train":
        raise ValueError("more_music is for the train side")
    real = [s.name for s in REAL_BY_NAME.values() if s not in MORE_MUSIC and os.path.exists(s.check)]
    versions = {REAL_BY_NAME[s].package: package_version(REAL_BY_NAME[s].package) for s in real}
    music, effects = background_files(real, extract_archives(cache, real, versions))

    def on_side(s: str, f: str, held: tuple) -> bool:
        if side == "dev":
            return s in held
        return s not in held and real_split_of(file_id(s, f)) == "train"

    def vocal(s: str, f: str) -> bool:
        return bool(VOCAL_LIKE.search(file_id(s, f).split(":", 1)[1]))

    if more_music:
        more = [s for s in MORE_MUSIC if os.path.exists(s.check)]
        versions.update({s.package: package_version(s.package) for s in more})
        music = music + more_music_files(cache, versions)
    music_files = [(s, f, float(sf.info(f).duration)) for s, f in music if on_side(s, f, HELD_OUT_MUSIC)]
    events = [(s, f) for s, f in effects if on_side(s, f, HELD_OUT_EFFECTS)
              and (side == "dev" or not vocal(s, f))]
    beds = []
    for s, f in effects:
        fid = file_id(s, f)
        if s not in HELD_OUT_EFFECTS and real_split_of(fid) == side and not vocal(s, f) \
                and NOISE_LIKE.search(fid.split(":", 1)[1]):
            d = float(sf.info(f).duration)
            if d >= AMBIENCE_SECONDS:
                beds.append((s, f, d))
    return {"music": music_files, "events": events, "beds": beds, "versions": versions}


def desktop_pools(cache: str) -> dict[str, list]:
    """The dev side's pools with other music and events (``--backgrounds desktop``): a desktop's
    notification sounds (``packages.DESKTOP_EVENTS``) and produced tracks and ringtones
    (``DESKTOP_MUSIC``), packages no training recipe reads; the noise beds are the default's."""
    import soundfile as sf

    bg = background_pools(cache, "dev")

    def files(table: dict) -> list[tuple[str, str]]:
        out = []
        for name, (pkg, root, globs) in sorted(table.items()):
            seen = set()
            for g in globs:
                for f in sorted(glob.glob(os.path.join(root, g))):
                    real = os.path.realpath(f)  # sound-icons names one file several times
                    if real not in seen and not os.path.islink(f):
                        seen.add(real)
                        out.append((name, f))
            bg["versions"][pkg] = package_version(pkg)
        return out

    music = [(s, f, float(sf.info(f).duration)) for s, f in files(DESKTOP_MUSIC)]
    events = [(s, f) for s, f in files(DESKTOP_EVENTS)]
    # the default's versions keep only what this build reads: the beds' packages
    used = {REAL_BY_NAME[s].package for s, _, _ in bg["beds"]} | \
        {t[0] for t in (*DESKTOP_EVENTS.values(), *DESKTOP_MUSIC.values())}
    versions = {k: v for k, v in bg["versions"].items() if k in used}
    return {"music": music, "events": events, "beds": bg["beds"], "versions": versions}


def _loop(y: np.ndarray, n: int, rng) -> np.ndarray:
    start = int(rng.integers(len(y)))
    return np.resize(np.roll(y, -start), n)


def coloured_noise(rng, n: int, alpha: float) -> np.ndarray:
    """1/f^alpha noise (alpha 0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    spec = spec / f ** (alpha / 2)
    spec[0] = 0
    y = np.fft.irfft(spec, n)
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-12)


def background(rng, cls: str, n: int, bg: dict) -> tuple[np.ndarray, str, list[str]]:
    """(signal over the whole clip, detail, package sources) for one background class."""
    if cls == "music" and bg.get("ringtones") and rng.random() < bg["tonal"]:
        k = int(rng.integers(len(bg["ringtones"])))  # a synthetic ringtone, looped
        unit = np.concatenate([bg["ringtones"][k], np.zeros(int(rng.uniform(0.0, 0.6) * SR))])
        return _loop(unit, n, rng), f"tonal ringtone #{k}", list(TONAL_PACKAGES)
    if cls == "music":
        for _ in range(20):  # a window with music throughout: no 1 s block 30 dB under the rest
            src, f, dur = choice(rng, bg["music"])
            start = float(rng.uniform(0, max(dur - n / SR, 0)))
            y, sr_in = read_audio(f)
            y = resample(y[int(start * sr_in):int((start + n / SR + 1) * sr_in)], sr_in, SR)
            if src in DESKTOP_MUSIC and dur < n / SR:  # a ringtone: looped without its silences
                y = trim_silence(y) if np.any(y) else y
            y = np.resize(y, n)
            blocks = (y[:n // SR * SR].reshape(-1, SR) ** 2).mean(axis=1)
            if blocks.min() > 1e-3 * blocks.mean():
                break
        return y, f"{file_id(src, f)}@{start:.1f}s", [PACKAGE_OF[src]]
    if cls == "events":
        buf, used = np.zeros(n), []
        rate = float(rng.uniform(0.3, 1.5))
        t = float(rng.exponential(1 / rate))
        while t * SR < n:
            if bg.get("jingles") and rng.random() < bg["tonal"]:  # a synthetic chime
                src, x = "tonal", choice(rng, bg["jingles"])
            else:
                src, f = choice(rng, bg["events"])
                x, sr_in = read_audio(f)
                x = resample(x, sr_in, SR)
            x = x / (np.max(np.abs(x)) + 1e-9) * 10 ** (rng.uniform(-12, 0) / 20)
            a = int(t * SR)
            buf[a:a + len(x)] += x[:n - a]
            used.append(src)
            t += float(rng.exponential(1 / rate))
        rms = float(np.sqrt(np.mean(buf ** 2))) or 1.0
        buf += coloured_noise(rng, n, 1.0) * rms * 10 ** (PINK_FLOOR_DB / 20)
        pk = sorted({p for s in used
                     for p in (TONAL_PACKAGES if s == "tonal" else (PACKAGE_OF[s],))})
        return buf, f"{len(used)} events over pink noise {PINK_FLOOR_DB:.0f} dB", pk
    if rng.random() < 0.5 and bg["beds"]:  # recorded noise
        src, f, _ = choice(rng, bg["beds"])
        y, sr_in = read_audio(f)
        return _loop(resample(y, sr_in, SR), n, rng), f"recorded:{file_id(src, f)}", \
            [REAL_BY_NAME[src].package]
    alpha = float(rng.uniform(0.0, 2.0))
    return coloured_noise(rng, n, alpha), f"1/f^{alpha:.2f} noise", []


# ----------------------------------------------------------------------------- clips


def clip_plan(per_cell: int, clean: int, nonspeech: int) -> list[tuple[str, str, float | None]]:
    """[(kind, bg_class, snr_db)]: every class x SNR ``per_cell`` times, then clean clips and
    clips without speech (music, events, noise in turn)."""
    plan = [("mixed", c, float(s)) for c in CLASSES for s in SNRS_DB for _ in range(per_cell)]
    plan += [("clean", "none", None)] * clean
    plan += [("nonspeech", CLASSES[i % len(CLASSES)], None) for i in range(nonspeech)]
    return plan


def make_clip(seed: int, index: int, kind: str, cls: str, snr: float | None, groups: dict,
              bg: dict, screened: dict, speed: tuple | None = None, rooms: float = 0.0) -> dict:
    """One clip: its signal, its label frames and its meta.csv / utterances.csv rows.
    ``speed``: (lo, hi), each file played at its :func:`speed_of`. ``rooms``: the share of clips
    whose speech (not the background) is heard in a simulated room, drawn from a stream of its own
    so that the clips without a room are the bytes of a build without ``rooms``; the labels stay
    the dry speech's (a reverberation tail is not speech)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 2000, index])))
    n = int(CLIP_S * SR)
    nf = n // HOP
    s = np.zeros(n)
    placed = []  # (start frame of the piece, piece * gain, first, end labelled frame, id)
    if kind != "nonspeech":
        fams = {f: w for f, w in SPEECH_WEIGHTS.items() if any(g.startswith(f) for g in groups)}
        voices = []
        for _ in range(int(rng.integers(1, 3))):
            fam = weighted(rng, fams)
            voices.append(choice(rng, sorted(g for g in groups if g.startswith(fam + ":"))))
        t = int(rng.uniform(0.5, 2.0) * FPS)  # first labelled frame
        for _ in range(500):  # draws (a voice may have few files that pass the screening)
            voice = choice(rng, voices)
            uid, path = draw_file(rng, groups[voice])
            if path not in screened:
                got = screen(path)
                if got is not None and speed:
                    got = played_at(*got, speed_of(seed, path, *speed))
                screened[path] = got
            got = screened[path]
            if got is None:
                continue
            piece, a, b = got
            lo = t - a
            if lo + len(piece) // HOP > nf:
                break
            runs = label_runs(piece, SR)[0]
            mask = np.zeros(len(piece) // HOP, bool)
            for r0, r1 in runs:
                mask[r0:r1] = True
            rms = rms_over(piece, mask, HOP)
            g = 10 ** (rng.uniform(*UTTERANCE_JITTER_DB) / 20) / rms
            placed.append([lo, g * piece, a, b, uid, voice, runs])
            pause = np.exp(rng.uniform(*np.log(PAUSE_S)))  # log-uniform: median 1.26 s
            t += (b - a) + int(round(pause * FPS))
    # ours: the union of each utterance's runs, gaps under 150 ms joined (as the recipes)
    ours = np.zeros(nf, bool)
    for lo, piece, _, _, _, _, runs in placed:
        s[max(lo, 0) * HOP:max(lo, 0) * HOP + len(piece)] += piece[:n - max(lo, 0) * HOP]
        for r0, r1 in runs:
            ours[lo + r0:lo + r1] = True
    ours = fill_gaps(ours, int(round(LABEL_RULE["merge_gap_s"] * FPS)), 1)
    rows, detail, pkgs = [], "none", []
    if placed:
        level = rms_over(s, ours, HOP)
        target = float(rng.uniform(*SPEECH_DBFS))
        gain = 10 ** (target / 20) / level
        s *= gain
    room = None
    if placed and rooms > 0:
        rr = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 2001, index])))
        if rr.random() < rooms:
            hs, room = room_rir(rr, SR, 1)
            wet = convolve(s, hs[0])
            # the speech's level kept
            s = wet * (rms_over(s, ours, HOP) / (rms_over(wet, ours, HOP) + 1e-12))
    primary, strict = np.zeros(nf, bool), np.zeros(nf, bool)
    for lo, piece, a, b, uid, voice, _ in placed:
        p, st = v1_frames(gain * piece)  # at its level in the clip (the rule has a dBFS floor)
        primary[lo:lo + len(p)] |= p[:nf - lo]
        strict[lo:lo + len(st)] |= st[:nf - lo]
        rows.append({"onset": f"{(lo + a) / FPS:.2f}", "offset": f"{(lo + b) / FPS:.2f}",
                     "speaker": voice, "file": uid})
    gap, isl = int(round(V1_RULE["fill_gap_s"] * FPS)), int(round(V1_RULE["min_island_s"] * FPS))
    frames = fill_gaps(primary, gap, isl)
    tight = fill_gaps(primary, int(round(V1_RULE["tight_gap_s"] * FPS)), isl)
    uncertain = frames & ~fill_gaps(strict, int(round(V1_RULE["tight_gap_s"] * FPS)), 1)
    b = np.zeros(n)
    if cls != "none":
        b, detail, pkgs = background(rng, cls, n, bg)
        b = b / (float(np.sqrt(np.mean(b ** 2))) + 1e-12)
        if placed:
            level = rms_over(s, frames, HOP)
            b *= level * 10 ** (-snr / 20)
        else:
            b *= 10 ** (rng.uniform(*BACKGROUND_DBFS) / 20)
    mix = s + b
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:  # scaled down whole: labels (from the clean speech) are unchanged
        mix *= 0.98 / peak
    speech_dbfs = 20 * np.log10(rms_over(mix, frames, HOP) + 1e-12) \
        if frames.any() else None
    return {"mix": mix, "frames": frames, "tight": tight, "uncertain": uncertain, "ours": ours,
            "utterances": rows, "detail": detail, "packages": pkgs,
            "speakers": sorted({u["speaker"] for u in rows}), "speech_dbfs": speech_dbfs,
            "room": room}


def write_clip(out: str, name: str, c: dict) -> None:
    write_wav_atomic(os.path.join(out, name + ".wav"), c["mix"], SR)
    for key, fname in (("frames", "frames"), ("tight", "tight"), ("uncertain", "uncertain"),
                       ("ours", "ours")):
        np.save(os.path.join(out, f"{name}.{fname}.npy"), c[key].astype(np.uint8))
    lines = ["onset\toffset\tevent_label"]
    for a, b in merge_runs(c["frames"], 1):
        lines.append(f"{a / FPS:.2f}\t{b / FPS:.2f}\tspeech")
    with open(os.path.join(out, name + ".tsv"), "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (laid out like speech-v1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-cell", type=int, default=3, help="clips per background class and SNR")
    p.add_argument("--clean", type=int, default=6, help="clips of speech alone")
    p.add_argument("--nonspeech", type=int, default=6, help="clips without speech")
    p.add_argument("--speech", default=None,
                   help="speech families to draw from (default: hedgewars,tuxpaint for --side dev, "
                        "asterisk,hedgewars,tuxpaint for --side train); 'asterisk' on the dev side "
                        "adds the prompts hashed into dev, whose two speakers training has heard "
                        "(other prompts); --side train may add synthetic voices: espeak-ng, "
                        "festival, flite (or 'tts' for the three), and Flight of the Amazon "
                        "Queen's dialogue: queen")
    p.add_argument("--side", choices=SIDES, default="dev",
                   help="dev: held-out voices and packages (the dev split); train: the same layout "
                        "from what the training recipes may read, with a train.tsv to train on")
    p.add_argument("--speed-perturb", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                   help="--side train only: each speech file played f times as fast, f log-uniform "
                        "in LO..HI, one draw per file and build")
    p.add_argument("--rooms", type=float, default=0.0, metavar="P",
                   help="the share of clips whose speech is heard in a simulated room (RT60 "
                        "0.15-0.8 s; labels from the dry speech); on the dev side, a reverberant "
                        "twin of the split (the same clips, the speech in rooms), not the split")
    p.add_argument("--more-music", action="store_true",
                   help="--side train only: Warzone 2100's, Nexuiz's and LinCity-NG's soundtracks "
                        "(warzone2100-music, nexuiz-music, lincity-ng-data; those installed) join "
                        "the music backgrounds, their files hashed into train")
    p.add_argument("--tonal", type=float, default=0.0, metavar="P",
                   help="--side train only: each scattered event is, with probability P, a "
                        "synthetic chime (1-5 notes or a chord of a pitched General MIDI "
                        "instrument, rendered by fluidsynth), and each music background a "
                        "synthetic ringtone (a 1.5-5 s melodic motif, looped); the banks (400 "
                        "chimes, 150 ringtones) are drawn from the seed")
    p.add_argument("--backgrounds", choices=BACKGROUND_SETS, default="games",
                   help="dev side: games = held-out game soundtracks and effects (the split); "
                        "desktop = a second split of the same speech under other music and events: "
                        "produced tracks and ringtones (Colobot, X-Moto, Lomiri) and a desktop's "
                        "notification sounds (Yaru, Lomiri, Pidgin, Psi+, EiskaltDC++, "
                        "sound-icons) over a pink floor, packages no training recipe reads")
    p.add_argument("--cache-dir", default=None, help="unpacked archives (default: OUT/_cache)")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.speech is None:
        a.speech = "hedgewars,tuxpaint" if a.side == "dev" else "asterisk,hedgewars,tuxpaint"
    a.speech = [x.strip() for x in a.speech.split(",") if x.strip()]
    if "tts" in a.speech:
        a.speech = [x for x in a.speech if x != "tts"] + [f for f in TTS_FAMILIES
                                                         if f not in a.speech]
    if a.side != "train" and set(a.speech) & set(TRAIN_ONLY):
        p.error(f"--speech {','.join(sorted(set(a.speech) & set(TRAIN_ONLY)))}: for --side train "
                "only (the dev split is recorded voices of held-out sources nobody trains on)")
    if a.speed_perturb is not None:
        lo, hi = a.speed_perturb
        if a.side != "train":
            p.error("--speed-perturb is for --side train: the dev split plays its speech as recorded")
        if not 0.5 <= lo <= hi <= 2.0:
            p.error(f"--speed-perturb {lo:g} {hi:g}: need 0.5 <= LO <= HI <= 2")
    if a.more_music and a.side != "train":
        p.error("--more-music is for --side train: the dev split's music is its held-out packages'")
    if not 0.0 <= a.tonal <= 1.0:
        p.error(f"--tonal {a.tonal:g}: a probability, 0..1")
    if a.tonal and a.side != "train":
        p.error("--tonal is for --side train: the dev split's sounds are recorded ones")
    if a.backgrounds != "games" and a.side != "dev":
        p.error(f"--backgrounds {a.backgrounds} is for --side dev: its packages are kept out of "
                "training")
    if not 0.0 <= a.rooms <= 1.0:
        p.error(f"--rooms {a.rooms:g}: a share, 0..1")
    if not a.speech or set(a.speech) - set(SPEECH_WEIGHTS):
        p.error(f"--speech={','.join(a.speech)}: choose from {', '.join(SPEECH_WEIGHTS)}")
    for k in ("per_cell", "clean", "nonspeech"):
        if getattr(a, k) < 0:
            p.error(f"--{k.replace('_', '-')}={getattr(a, k)} must not be negative")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    say = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    need = ["asterisk-core-sounds-en-wav", "hedgewars-data", "tuxpaint-stamps-default",
            "neverball-common", "frozen-bubble-data", "openttd-opensfx"]
    checks = {"asterisk-core-sounds-en-wav": os.path.join(ASTERISK_ROOT, ASTERISK_DIRS["en"]),
              **{REAL_BY_NAME[s].package: REAL_BY_NAME[s].check
                 for s in ("hedgewars", "tuxpaint", "neverball", "frozen-bubble", "openttd")}}
    if "queen" in a.speech:
        need.append(REAL_BY_NAME["queen"].package)
        checks[REAL_BY_NAME["queen"].package] = REAL_BY_NAME["queen"].check
    if a.backgrounds == "desktop":
        need += sorted({s.package for s in DESKTOP_SOURCES})
        checks.update({s.package: s.check for s in DESKTOP_SOURCES})
    if a.tonal:
        need += list(TONAL_PACKAGES)
        checks.update({"fluidsynth": shutil.which("fluidsynth") or "/nonexistent",
                       "fluid-soundfont-gm": SF2})
    missing = [pk for pk in need if not os.path.exists(checks[pk])]
    tts = [f for f in TTS_FAMILIES if f in a.speech]  # the engines' binaries, as synthetic.py checks
    missing += [pk for f in tts for pk, ok in _package_checks(SOURCE_BY_NAME[f]) if not ok]
    if missing:
        print(f"error: missing Debian package(s): {' '.join(missing)}\ninstall them with:\n"
              f"    apt-get update && apt-get install -y {' '.join(missing)}", file=sys.stderr)
        return EXIT_MISSING
    out = os.path.abspath(a.out)
    cache = os.path.abspath(a.cache_dir or os.path.join(out, "_cache"))
    os.makedirs(out, exist_ok=True)
    os.makedirs(cache, exist_ok=True)
    t0 = time.monotonic()
    groups = {g: v for g, v in speech_groups(a.side).items() if g.split(":")[0] in a.speech}
    tts_voices, extra_versions = tts_groups(tts, cache)
    groups.update(tts_voices)
    if "queen" in a.speech:  # every kept line: the real corpus has no Queen dev clips
        pkg = REAL_BY_NAME["queen"].package
        extra_versions[pkg] = package_version(pkg)
        for g, files in sorted(queen_lines(cache, extra_versions[pkg]).items()):
            groups[f"queen:{g}"] = [(file_id("queen", f), f) for f in files]
    bg = desktop_pools(cache) if a.backgrounds == "desktop" else \
        background_pools(cache, a.side, a.more_music)
    if a.tonal:
        bg["versions"].update({pk: package_version(pk) for pk in TONAL_PACKAGES})
        bg["tonal"] = a.tonal
        for kind, count in TONAL_BANK.items():
            bg[kind + "s"] = tonal_bank(a.seed, count, kind, SR, cache, bg["versions"])
    plan = clip_plan(a.per_cell, a.clean, a.nonspeech)
    screened: dict = {}
    meta_rows, utt_rows, train_rows = [], [], []
    for i, (kind, cls, snr) in enumerate(plan):
        name = f"use_{i:03d}"
        c = make_clip(a.seed, i, kind, cls, snr, groups, bg, screened, a.speed_perturb, a.rooms)
        write_clip(out, name, c)
        if a.side == "train":  # the training recipes' rule (ours), as their train.tsv rows
            runs = merge_runs(c["ours"], 1)
            train_rows += [f"{name}.wav\t{r0 / FPS:.3f}\t{r1 / FPS:.3f}\tspeech" for r0, r1 in runs] \
                or [f"{name}.wav\t\t\t"]
        srcs = sorted({u["speaker"].split(":")[0] for u in c["utterances"]} | set(c["packages"]))
        meta_rows.append({
            "clip": name, "kind": kind, "bg_class": cls, "bg_detail": c["detail"],
            "snr_db": "inf" if kind == "clean" else ("" if snr is None else f"{snr:g}"),
            "speakers": ";".join(c["speakers"]), "sources": ";".join(srcs),
            "n_utt": len(c["utterances"]), "speech_frac": f"{c['frames'].mean():.3f}",
            "uncertain_frac": f"{c['uncertain'].mean():.3f}", "duration_s": f"{CLIP_S:.2f}",
            "n_frames": len(c["frames"]),
            "speech_dbfs": "" if c["speech_dbfs"] is None else f"{c['speech_dbfs']:.1f}",
            "ours_speech_frac": f"{c['ours'].mean():.3f}",
            **({"rt60_s": "" if c["room"] is None else f"{c['room']['rt60_s']:g}"} if a.rooms else {})})
        utt_rows += [{"clip": name, **u} for u in c["utterances"]]
        if (i + 1) % 10 == 0:
            say(f"  {i + 1}/{len(plan)} clips, {time.monotonic() - t0:.0f} s")
    for fname, rows in (("meta.csv", meta_rows), ("utterances.csv", utt_rows)):
        with open(os.path.join(out, fname), "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    if a.side == "train":
        with open(os.path.join(out, "train.tsv"), "w", encoding="utf-8", newline="\n") as fh:
            fh.write("filename\tonset\toffset\tevent_label\n" + "\n".join(train_rows) + "\n")
    info = {"recipe": "data/recipes/dev_continuous.py", "version": RECIPE_VERSION,
            "settings": {"seed": a.seed, "per_cell": a.per_cell, "clean": a.clean,
                         "speech": a.speech, "side": a.side, "speed_perturb": a.speed_perturb,
                         "nonspeech": a.nonspeech, "clip_seconds": CLIP_S, "sr": SR,
                         **({"rooms": a.rooms, "room_simulation": simulation_method()} if a.rooms else {}),
                         **({"more_music": True} if a.more_music else {}),
                         **({"backgrounds": a.backgrounds} if a.backgrounds != "games" else {}),
                         **({"tonal": a.tonal, "tonal_bank": TONAL_BANK} if a.tonal else {})},
            "speech_groups": {g: "synthetic" if isinstance(v, TtsVoice) else len(v)
                              for g, v in sorted(groups.items())},
            "screened_out": sorted(p for p, v in screened.items() if v is None),
            "background_files": {k: len(bg[k]) for k in ("music", "events", "beds")},
            "packages": dict(sorted({**bg["versions"], **extra_versions}.items())),
            "v1_rule": V1_RULE,
            "ours_rule": LABEL_RULE}
    with open(os.path.join(out, "recipe.json"), "w", encoding="utf-8") as fh:
        fh.write(canonical_json(info))
    sp = sum(float(r["speech_frac"]) for r in meta_rows) / max(len(meta_rows), 1)
    say(f"wrote {out}: {len(plan)} clips of {CLIP_S:.0f} s, speech {100 * sp:.0f} % of frames, "
        f"{len(utt_rows)} utterances from {len({u['speaker'] for u in utt_rows})} voices, "
        f"{time.monotonic() - t0:.0f} s")
    return 0
