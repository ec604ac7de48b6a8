"""The recipe of ``real_corpus.py``: real speech over real music and sounds, held-out sources."""
from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .common import SPLITS, choice, package_version, r3, resample, weighted
from .driver import (check_clip_args, clear_split_dirs, clip_counts, finish_clip, run_clip_jobs,
                     summarize, write_meta, write_tsv)
from .gamesounds import (AMBIENCE_SECONDS, EFFECTS_EXCLUDE, OPENCLONK_EXCLUDE_DIRS, VOCAL_LIKE,
                         background_effects, background_files, background_music, extract_archives)
from .gamespeech import (DROPPED_GROUPS, HEDGEWARS_NONLEXICAL, MAX_WORD_SECONDS,
                         MIN_FLOOR_MARGIN_DB, TUXPAINT_DEV_LANGS, Phrase, is_held_group,
                         real_phrase, screen_word, speech_files, tuxpaint_descriptions,
                         queen_lines, warzone_lines)
from .labels import LABEL_RULE, merge_runs, rms_over
from .music import make_midi, render_music
from .noise import background_noise, telephone
from .packages import (DEV_PERCENT, HELD_OUT_EFFECTS, HELD_OUT_MUSIC, REAL_BY_NAME, REAL_SOURCES,
                       TUXPAINT, file_id, split_of, stem)
from .rooms import convolve, equalise, level_ramp, room_rir, simulation_method
from .samples import background_keyboard, background_samples
from .synthetic import SOURCES, SOURCE_BY_NAME, load_utterance, utterance_spec
from .tts import FESTIVAL_VOICES, HELD_OUT
from . import singing, synthetic


RECIPE_VERSION = 1


EXIT_MISSING = 3


# Mixing (weights renormalised over what is present).
SPEECH_WEIGHTS = {"klettres": 0.15, "ktuberling": 0.20, "hedgewars": 0.20, "asterisk": 0.20,
                  "tts": 0.25}
# --continuous-speech, train only: Tux Paint's spoken descriptions (real voices in a dozen
# languages) join, isolated letters (KLettres) weigh a third, sentences (Asterisk) more
CONTINUOUS_WEIGHTS = {"klettres": 0.05, "ktuberling": 0.15, "hedgewars": 0.20, "asterisk": 0.25,
                      "tts": 0.15, "tuxpaint": 0.20}
# --warzone-speech, train only: Warzone 2100's voice lines join at this weight (renormalised)
WARZONE_WEIGHT = 0.10
# --queen-speech, train only: Flight of the Amazon Queen's dialogue (4.5 h kept, some 40 characters)
QUEEN_WEIGHT = 0.20
# the train-only voice-line sources: option, weight, reader (group -> files)
TRAIN_LINES = {"warzone": ("--warzone-speech", WARZONE_WEIGHT, warzone_lines),
               "queen": ("--queen-speech", QUEEN_WEIGHT, queen_lines)}


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


LABEL_POLICY = (
    "speech = lexical speech (words, letters, syllables, acted lines), whatever the voice; "
    "singing, laughs, grunts, coughs, moans and crowds are used nowhere (neither speech nor "
    "background); reverberation tails after the dry speech's last active frame are non-speech")


def missing_packages() -> list[str]:
    """Every Debian package the full recipe needs that is not installed (for tests)."""
    out = synthetic.missing_packages()
    out += [s.package for s in REAL_SOURCES if not os.path.exists(s.check)]
    return list(dict.fromkeys(out))


def check_sources(allow_missing: list[str], calls: bool = True):
    """Return (vad_corpus sources, festival voices, real sources, notes) or exit 2/3. ``calls``:
    whether the animal-call sources are needed (only ``--extra-animals`` clips read them)."""
    synthetic.check_allow_missing(allow_missing, [s.name for s in SOURCES] + list(REAL_BY_NAME),
                                  packages=tuple(s.package for s in REAL_SOURCES))
    allowed = set(allow_missing)
    use_vc, voices, notes, blocking = synthetic.sources_present(allowed)
    use_real = []
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
        names = [s.name for s in SOURCES if any(p in blocking for p in s.packages)] \
            + [s.name for s in REAL_SOURCES if s.package in blocking]
        print(f"error: missing Debian package(s): {pkgs}\n"
              f"install them with:\n    apt-get update && apt-get install -y {pkgs}\n"
              f"or skip optional sources with --allow-missing {','.join(names) or 'festival'}",
              file=sys.stderr)
        sys.exit(EXIT_MISSING)
    speech = [n for n in use_real if "speech" in REAL_BY_NAME[n].roles] \
        + [n for n in use_vc if SOURCE_BY_NAME[n].role == "speech"]
    if not speech:
        print("error: no speech source left (all skipped)", file=sys.stderr)
        sys.exit(EXIT_MISSING)
    return use_vc, voices, use_real, notes


@dataclass
class Pools:
    """What clips draw from, per split; sorted plain lists, picklable for worker processes."""
    sr: int
    vc: synthetic.Pools                                       # asterisk, TTS, MIDI, samples, keys
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
    continuous: bool = False  # --continuous-speech: train phrases weighted by CONTINUOUS_WEIGHTS
    events_near_speech: float = 0.0  # --events-near-speech: share of train events moved next to speech
    train_snr: tuple = SNR_RANGE_DB  # --train-snr: the train clips' SNR range (dev keeps SNR_RANGE_DB)
    speed: tuple | None = None  # --speed-perturb: train phrases played LO..HI times as fast


def build_pools(vc_sources, voices, real, sr, cache, continuous: bool = False,
                lines: tuple = ()) -> Pools:
    """``lines``: names in TRAIN_LINES whose voice lines join the train phrases."""
    import soundfile as sf
    vpools = synthetic.build_pools(vc_sources, voices, sr, cache)
    versions = dict(vpools.versions)
    versions.update({s.package: package_version(s.package) for s in REAL_SOURCES})
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
    if continuous:  # Tux Paint's spoken descriptions, train only, without usedev's languages
        p.continuous = True
        p.words["dev"]["tuxpaint"] = {}
        p.words["train"]["tuxpaint"] = {}
        for lang, files in tuxpaint_descriptions().items():
            key = f"tuxpaint:{lang}"
            if key in DROPPED_GROUPS:
                dropped.append(f"{key}: {DROPPED_GROUPS[key]}")
            elif lang not in TUXPAINT_DEV_LANGS:  # the alphabet stamps say one letter: out
                p.words["train"]["tuxpaint"][lang] = [f for f in files
                                                      if "/symbols/alphabets/" not in f]
    for name in lines:  # train only: dev's sources stay as they were
        version = package_version(REAL_BY_NAME[name].package)
        p.versions[REAL_BY_NAME[name].package] = version
        p.words["dev"][name] = {}
        p.words["train"][name] = TRAIN_LINES[name][2](cache, version)
    p.screened = {"dropped_groups": dropped,
                  "file_rule": f"a speech file is skipped when its quietest 30 ms is within "
                               f"{MIN_FLOOR_MARGIN_DB:.0f} dB of its loudest 10 ms, or when "
                               f"it lasts over {MAX_WORD_SECONDS:.0f} s after trimming",
                  "nonlexical_hedgewars": list(HEDGEWARS_NONLEXICAL),
                  "effects_excluded": {k: list(v) for k, v in sorted(EFFECTS_EXCLUDE.items())},
                  "openclonk_excluded_dirs": list(OPENCLONK_EXCLUDE_DIRS)}
    return p


def vc_phrase(rng, split: str, kind: str, pools: Pools) -> Phrase | None:
    """An Asterisk prompt or a synthetic sentence, through vad_corpus.py's own code."""
    if kind == "asterisk":
        sub = dataclasses.replace(pools.vc, sources=[s for s in pools.vc.sources
                                                     if s.startswith("asterisk-")])
    else:
        sub = dataclasses.replace(pools.vc, sources=[s for s in pools.vc.sources
                                                     if s in ("espeak-ng", "flite", "festival")])
    spec = utterance_spec(rng, split, sub)
    u = load_utterance(spec, sub)
    if u is None:
        return None
    entry = {k: spec[k] for k in ("source", "id", "voice", "lang") if k in spec}
    if "text" in spec:
        entry.update(text=spec["text"], text_id=spec["text_id"])
    entry["held_out"] = spec.get("voice") in HELD_OUT.get(spec["source"], ())
    entry["package"] = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}.get(
        spec["source"], SOURCE_BY_NAME.get(spec["source"], SOURCES[0]).packages[0])
    return Phrase(y=u.y / u.active_rms, segments=list(u.segments), entry=entry)


def perturb_speed(rng, ph: Phrase, lo: float, hi: float, sr: int) -> Phrase:
    """``ph`` played ``f`` times as fast, ``f`` drawn log-uniformly in ``lo..hi``: pitch, formants
    and tempo move together, as a tape sped up (Kaldi's and ESPnet's speed perturbation, Ko et al.
    2015), so one speaker's phrases sound like a shorter or longer vocal tract's. Resampled with
    soxr; the label frames scale with it (first frame down, end frame up), the audio is padded to
    whole 10 ms frames."""
    f = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    hop = sr // 100
    y = resample(ph.y, sr * f, sr)
    nf = -(-len(y) // hop)
    y = np.pad(y, (0, nf * hop - len(y)))
    segments = [(min(int(np.floor(a / f)), nf - 1), min(int(np.ceil(b / f)), nf))
                for a, b in ph.segments]
    return Phrase(y=y, segments=[(a, b) for a, b in segments if b > a],
                  entry={**ph.entry, "speed": round(f, 4)})


def speech_kinds(pools: Pools, split: str = "dev") -> dict:
    weights = CONTINUOUS_WEIGHTS if pools.continuous and split == "train" else SPEECH_WEIGHTS
    kinds = {}
    for s in ("klettres", "ktuberling", "hedgewars"):
        if s in pools.real:
            kinds[s] = weights[s]
    if "tuxpaint" in weights and pools.words[split].get("tuxpaint"):
        kinds["tuxpaint"] = weights["tuxpaint"]
    if any(s.startswith("asterisk-") for s in pools.vc.sources):
        kinds["asterisk"] = weights["asterisk"]
    for name, (_, weight, _) in TRAIN_LINES.items():
        if pools.words[split].get(name):
            kinds[name] = weight
    if any(s in pools.vc.sources for s in ("espeak-ng", "flite", "festival")):
        kinds["tts"] = weights["tts"]
    return kinds


def make_background(rng, kind, n, split, index, seconds, pools, near=None) -> tuple[np.ndarray, dict]:
    """``near``: ``(share, [(first, end) sample runs of speech])`` moves that share of an effects
    or ambience clip's events next to the speech (:func:`gamesounds.background_effects`)."""
    sr = pools.sr
    if kind == "singing":  # sung voice, over an instrumental bed P_BED of the time
        y, info = singing.sung_track(rng, n, sr, pools.vc.cache_dir)
        out = {"sources": [f"festival-singing:{p['song']}:{p['voice']}" for p in info["songs"]],
               "packages": ["festival"] + sorted({v.package for v in FESTIVAL_VOICES
                                                  if v.name in {p["voice"] for p in info["songs"]}}),
               "held_out": False, "detail": info}
        if rng.random() < singing.P_BED:
            bed_kind = choice(rng, [k for k in ("music", "midi") if k in background_kinds(split, pools)])
            bed, bed_info = make_background(rng, bed_kind, n, split, index, seconds, pools)
            bed_db = float(rng.uniform(*singing.BED_DB))
            y = y + bed / (np.sqrt(np.mean(bed ** 2)) + 1e-12) * 10 ** (bed_db / 20)
            out["sources"] += bed_info["sources"]
            out["packages"] += bed_info["packages"]
            info["bed"] = {"kind": bed_kind, "db_re_voice": r3(bed_db)}
        return y, out
    if kind == "music":
        return background_music(rng, n, split, pools)
    if kind in ("effects", "ambience"):
        return background_effects(rng, n, split, pools, bed=kind == "ambience", near=near)
    if kind == "midi":
        midi, info = make_midi(rng, seconds)
        y = render_music(midi, pools.vc)
        off = int(rng.integers(0, max(min(len(y) - n, sr), 0) + 1))
        return np.resize(y[off:], n), {
            "sources": [f"fluidsynth:{split}:{index}:{hashlib.sha256(midi).hexdigest()[:12]}"],
            "packages": ["fluidsynth", "fluid-soundfont-gm"], "held_out": False, "detail": info}
    if kind == "samples":
        b, info = background_samples(rng, n, split, pools.vc)
        return b, {**info, "packages": ["sonic-pi-samples"], "held_out": False}
    if kind == "keyboard":
        b, info = background_keyboard(rng, n, split, pools.vc)
        return b, {**info, "packages": ["bucklespring-data"], "held_out": False}
    b, info = background_noise(rng, n, sr)
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


def make_clip(job: tuple) -> dict:
    """Build clip ``index`` of ``split``; writes its WAV, returns its meta (with segments)."""
    seed, split, index, seconds, pools, out_dir, *extra = job
    mode = extra[0] if extra else None  # "no-speech" / "animals" / "singing": an --extra-* clip (train)
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
    elif mode == "singing":
        has_speech = bool(rng.random() < singing.P_SINGING_SPEECH)
    has_bg = (not has_speech) or mode in ("animals", "singing") or rng.random() >= P_NO_BACKGROUND
    is_tel = bool(rng.random() < P_TELEPHONE)
    reverb = bool(rng.random() < P_REVERB)
    meta = {"split": split, "duration": r3(n / sr), "telephone": is_tel, "utterances": []}

    s = np.zeros(n)
    segments = []
    if has_speech:
        kinds = speech_kinds(pools, split)
        gap_scale = choice(rng, (0.5, 1.0, 1.0, 2.0, 4.0))
        t = int(rng.integers(0, min(nf_clip, 300)))
        for _ in range(60):
            kind = weighted(rng, kinds)
            ph = vc_phrase(rng, split, kind, pools) if kind in ("asterisk", "tts") \
                else real_phrase(rng, split, kind, pools)
            gap = int(max(rng.exponential(0.8 * gap_scale), 0.2) * 100)
            if ph is None:
                continue
            if pools.speed and split == "train":
                ph = perturb_speed(rng, ph, *pools.speed, sr)
            nf = len(ph.y) // hop
            if t + nf > nf_clip:
                if rng.random() < 0.5 or t >= nf_clip - 20:
                    break
                nf = nf_clip - t
            g_db = float(rng.uniform(*PHRASE_JITTER_DB))
            s[t * hop:(t + nf) * hop] += 10 ** (g_db / 20) * ph.y[:nf * hop]
            segments += [(t + a, t + min(b, nf)) for a, b in ph.segments if a < nf]
            meta["utterances"].append({**ph.entry, "start": r3(t / 100),
                                       "end": r3((t + nf) / 100), "gain_db": round(g_db, 2),
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
    segments = merge_runs(mask, int(round(LABEL_RULE["merge_gap_s"] * 100)))
    mask = np.zeros(nf_clip, dtype=bool)
    for a, b in segments:
        mask[a:b] = True

    room, hs = None, []
    if reverb:
        hs, room = room_rir(rng, sr, 2)
    if has_speech and reverb:
        s = convolve(s, hs[0])
        room["applied_to"] = ["speech"]
    speech_level = rms_over(s, mask, hop) if has_speech else 0.

    kind, bg_info = "none", {"sources": [], "packages": [], "held_out": False}
    if has_bg:
        kinds = background_kinds(split, pools)
        if pools.vocal_like:
            kinds = {k: kinds[k] for k in ("effects", "ambience") if k in kinds}
        kind = weighted(rng, kinds) if mode != "singing" else "singing"
        near = None
        if pools.events_near_speech > 0 and split == "train" and segments:
            near = (pools.events_near_speech, [(a * hop, b * hop) for a, b in segments])
        b, bg_info = make_background(rng, kind, n, split, index, seconds, pools, near)
        if reverb and rng.random() < P_REVERB_BACKGROUND:
            b = convolve(b, hs[1])
            room["applied_to"] = room.get("applied_to", []) + ["background"]
        if rng.random() < P_LEVEL_RAMP:
            ramp, knots = level_ramp(rng, n)
            b = b * ramp
            bg_info["level_ramp_db"] = knots
        rms = float(np.sqrt(np.mean(b ** 2)))
        if rms < 1e-9:  # a silent file or window: fall back to noise
            b, info = background_noise(rng, n, sr)
            kind, bg_info = "noise", {**info, "sources": [f"noise:{split}:{index}"],
                                      "packages": [], "held_out": False}
            rms = float(np.sqrt(np.mean(b ** 2)))
        b = b / rms
    else:
        b = np.zeros(n)
        if rng.random() < 0.5:
            rel = float(rng.uniform(50, 70))
            b = rng.standard_normal(n) * speech_level * 10 ** (-rel / 20)
            bg_info["detail"] = {"below_speech_db": r3(rel)}
            bg_info["sources"] = [f"noise:floor:{split}:{index}"]
        else:
            bg_info["detail"] = {"digital_silence": True}

    snr = None
    if has_speech and has_bg:
        snr = float(rng.uniform(*(pools.train_snr if split == "train" else SNR_RANGE_DB)))
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
        mix, meta["telephone_detail"] = telephone(mix, sr, rng)
    return finish_clip(meta, mix, sr, out_dir, split, index, segments=segments,
                       background={"kind": kind, **bg_info}, snr=snr, target=target, augment=augment)


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
    p.add_argument("--extra-singing", type=int, default=0, metavar="N",
                   help="N more train clips of sung voice (Festival's singing mode; labelled "
                        "music, not speech), 60%% over an instrumental bed, 40%% with speech over "
                        "them, after the --extra-animals ones; the other clips are unchanged")
    p.add_argument("--clip-seconds", type=float, default=20.0)
    p.add_argument("--sr", type=int, default=16000, help="output sample rate (multiple of 100)")
    p.add_argument("--allow-missing", default="",
                   help="comma-separated sources (or package names) to skip if missing: "
                        + ", ".join([s.name for s in SOURCES] + list(REAL_BY_NAME)))
    p.add_argument("--cache-dir", default=None, help="renders and unpacked archives "
                                                     "(default: OUT/_cache)")
    p.add_argument("--inventory", default=None, metavar="TSV",
                   help="write the screening statistics of every speech file and exit")
    p.add_argument("--continuous-speech", action="store_true",
                   help="train phrases: Tux Paint's spoken descriptions added, isolated letters "
                        "weighed down (CONTINUOUS_WEIGHTS); dev is unchanged")
    p.add_argument("--events-near-speech", type=float, default=0.0, metavar="SHARE",
                   help="train clips over sound effects: move this share of their events next to "
                        "the speech (starting 0-0.4 s after an utterance ends, or ending 0-0.4 s "
                        "before one starts), where a model leans on the speech beside them to call "
                        "them speech; 0 (default): events fall anywhere; dev is unchanged")
    p.add_argument("--warzone-speech", action="store_true",
                   help="train phrases: Warzone 2100's recorded voice lines join (English, "
                        "needs warzone2100-data); dev is unchanged")
    p.add_argument("--queen-speech", action="store_true",
                   help="train phrases: Flight of the Amazon Queen's recorded dialogue joins "
                        "(English, some 40 characters, needs flight-of-the-amazon-queen); dev is "
                        "unchanged")
    p.add_argument("--train-snr", type=float, nargs=2, default=list(SNR_RANGE_DB),
                   metavar=("LO", "HI"),
                   help="train clips with speech over a background: SNR drawn uniformly in "
                        "LO..HI dB; dev keeps the default range")
    p.add_argument("--speed-perturb", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="train phrases: each played f times as fast, f drawn log-uniformly in "
                        "LO..HI (e.g. 0.85 1.2: pitch, formants and tempo move together, like "
                        "another speaker); labels scale with it; dev is unchanged")
    p.add_argument("--multi-label", action="store_true",
                   help="also write SPLIT.multi.tsv with music and other rows from the "
                        "backgrounds (with --relabel: only that, from OUT/meta.json)")
    p.add_argument("--classes", default="speech,music,other",
                   help="with --multi-label: the classes of its TSVs, speech and any of music, "
                        "other (default: all three, into SPLIT.multi.tsv; a subset writes "
                        "SPLIT.<classes joined by +>.tsv, e.g. train.speech+music.tsv)")
    p.add_argument("--relabel", action="store_true",
                   help="with --multi-label: write the multi-label TSVs of an existing build "
                        "from its meta.json and exit")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="worker processes (the output does not depend on it)")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    if not a.out and not a.inventory:
        p.error("--out is required (or --inventory FILE)")
    if a.relabel and not a.multi_label:
        p.error("--relabel writes the multi-label TSVs: give --multi-label too")
    for name in ("extra_no_speech", "extra_animals", "extra_singing"):
        if getattr(a, name) < 0:
            p.error(f"--{name.replace('_', '-')}={getattr(a, name)} must not be negative")
    a.classes = [c.strip() for c in a.classes.split(",") if c.strip()]
    if "speech" not in a.classes or not set(a.classes) <= set(MULTI_CLASSES) \
            or len(set(a.classes)) != len(a.classes):
        p.error(f"--classes {','.join(a.classes)}: speech and any of music, other, each once")
    if a.speed_perturb and not 0.5 <= a.speed_perturb[0] <= a.speed_perturb[1] <= 2.0:
        p.error(f"--speed-perturb {a.speed_perturb[0]:g} {a.speed_perturb[1]:g}: "
                "needs 0.5 <= LO <= HI <= 2")
    check_clip_args(p, a)
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


# The background a clip was mixed with, as frame targets beside speech: music where music plays
# (real soundtracks, General MIDI, Sonic Pi loops and beat patterns), other sound where sound
# events or an ambience play (effects, ambience, keyboard, scattered Sonic Pi hits). Rows span
# the clip, except over sound events without a bed, whose meta records where each one sounds
# (``detail["events"]``): there the other rows are the events' own times, overlaps joined.
BACKGROUND_LABELS = {"music": "music", "midi": "music", "singing": "music", "effects": "other",
                     "ambience": "other", "keyboard": "other"}


MULTI_CLASSES = ("speech", "music", "other")


def multi_name(classes) -> str:
    """The multi-label TSVs' suffix: ``multi`` for all classes, else the classes joined by +."""
    return "multi" if list(classes) == list(MULTI_CLASSES) else "+".join(classes)


def multi_rows(classes):
    """``write_tsv``'s rows for the classes kept (see background_rows)."""
    return lambda meta: [r for r in background_rows(meta) if r[2] in classes]


def background_rows(meta: dict) -> list[tuple[float, float, str]]:
    """Rows of the background's class for one clip's meta (see BACKGROUND_LABELS)."""
    bg = meta["background"]
    label = BACKGROUND_LABELS.get(bg["kind"])
    detail = bg.get("detail") or {}
    if bg["kind"] == "samples":
        label = "other" if detail.get("mode") == "sparse" else "music"
    if bg["kind"] == "effects" and "events" in detail and "bed" not in detail:
        rows: list[tuple[float, float, str]] = []
        for a, b in sorted(detail["events"]):
            if rows and a <= rows[-1][1]:
                rows[-1] = (rows[-1][0], max(rows[-1][1], b), label)
            else:
                rows.append((a, b, label))
        return rows
    return [(0.0, meta["duration"], label)] if label else []


def relabel(out: str, say, classes=MULTI_CLASSES) -> int:
    """SPLIT.multi.tsv of an existing build, from its meta.json (byte-equal to a build's)."""
    import json

    path = os.path.join(out, "meta.json")
    if not os.path.isfile(path):
        print(f"error: {path}: no such file (build the corpus first)", file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as fh:
        clips = json.load(fh)["clips"]
    metas = [clips[k] for k in sorted(clips, key=lambda f: (SPLITS.index(clips[f]["split"]), f))]
    name = multi_name(classes)
    for split in SPLITS:
        write_tsv(os.path.join(out, f"{split}.{name}.tsv"),
                  [m for m in metas if m["split"] == split], multi_rows(classes))
    say(f"wrote {', '.join(os.path.join(out, f'{s}.{name}.tsv') for s in SPLITS)}")
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.relabel:
        return relabel(os.path.abspath(a.out), (lambda *x: None) if a.quiet else print, a.classes)
    allow = [x.strip() for x in a.allow_missing.split(",") if x.strip()]
    if a.extra_singing and not singing.available(voices=True):
        print("error: --extra-singing needs Festival's singing mode and the voices "
              f"{', '.join(singing.TRAIN_VOICES)}: apt-get install festival festvox-kallpc16k "
              "festvox-italp16k", file=sys.stderr)
        return 3
    lines = tuple(n for n in TRAIN_LINES if getattr(a, TRAIN_LINES[n][0][2:].replace("-", "_")))
    for name in lines:
        src = REAL_BY_NAME[name]
        if not os.path.exists(src.check):
            print(f"error: {TRAIN_LINES[name][0]} needs the Debian package {src.package} "
                  f"({src.check} is missing)\ninstall it with:\n"
                  f"    apt-get update && apt-get install -y {src.package}", file=sys.stderr)
            return EXIT_MISSING
    vc_sources, voices, real, notes = check_sources(
        allow, calls=a.extra_animals > 0 or a.continuous_speech)
    say = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    for note in notes:
        say(f"note: {note}")
    if a.inventory:
        write_inventory(a.inventory, real, a.sr, DROPPED_GROUPS)
        say(f"wrote {a.inventory}")
        return 0
    out = os.path.abspath(a.out)
    cache = os.path.abspath(a.cache_dir or os.path.join(out, "_cache"))
    counts = clip_counts(a)
    clear_split_dirs(out)
    os.makedirs(cache, exist_ok=True)
    t0 = time.monotonic()
    pools = build_pools(vc_sources, voices, real, a.sr, cache, a.continuous_speech, lines)
    pools.events_near_speech = a.events_near_speech
    pools.train_snr = tuple(a.train_snr)
    pools.speed = tuple(a.speed_perturb) if a.speed_perturb else None
    jobs = [(a.seed, split, i, a.clip_seconds, pools, out)
            for split in SPLITS for i in range(counts[split])]
    jobs += [(a.seed, "train", counts["train"] + i, a.clip_seconds, pools, out, "no-speech")
             for i in range(a.extra_no_speech)]
    jobs += [(a.seed, "train", counts["train"] + a.extra_no_speech + i, a.clip_seconds, pools,
              out, "animals") for i in range(a.extra_animals)]
    jobs += [(a.seed, "train", counts["train"] + a.extra_no_speech + a.extra_animals + i,
              a.clip_seconds, pools, out, "singing") for i in range(a.extra_singing)]
    metas = run_clip_jobs(make_clip, jobs, a.jobs, say, t0, every=max(20, len(jobs) // 50))
    for split in SPLITS:
        write_tsv(os.path.join(out, f"{split}.tsv"), [m for m in metas if m["split"] == split])
        if a.multi_label:
            write_tsv(os.path.join(out, f"{split}.{multi_name(a.classes)}.tsv"),
                      [m for m in metas if m["split"] == split], multi_rows(a.classes))
    held = {"speech_groups": sorted(pools.held_groups),
            "tts_voices": {e: v for e, v in sorted(HELD_OUT.items())
                           if e in vc_sources},
            "music_packages": sorted(REAL_BY_NAME[s].package for s in HELD_OUT_MUSIC
                                     if s in real),
            "effects_packages": sorted(REAL_BY_NAME[s].package for s in HELD_OUT_EFFECTS
                                       if s in real)}
    rir = simulation_method()
    meta = {
        "recipe": "data/recipes/real_corpus.py", "version": RECIPE_VERSION,
        "settings": {"seed": a.seed, "sr": a.sr, "clip_seconds": a.clip_seconds,
                     "train_clips": counts["train"], "dev_clips": counts["dev"],
                     "extra_no_speech": a.extra_no_speech, "p_vocal_like": P_VOCAL_LIKE,
                     "extra_animals": a.extra_animals, "p_animal_speech": P_ANIMAL_SPEECH,
                     **({"continuous_speech": CONTINUOUS_WEIGHTS} if a.continuous_speech
                        else {}),
                     **({"events_near_speech": a.events_near_speech} if a.events_near_speech else {}),
                     **{f"{n}_speech": TRAIN_LINES[n][1] for n in lines},
                     **({"train_snr_db": list(a.train_snr)}
                        if tuple(a.train_snr) != SNR_RANGE_DB else {}),
                     **({"speed_perturb": list(a.speed_perturb)} if a.speed_perturb else {}),
                     **({"extra_singing": a.extra_singing, "singing": {
                         "voices": singing.TRAIN_VOICES, "songs": singing.songs(),
                         "held_out_voices": singing.HELD_OUT_VOICES,
                         "held_out_songs": singing.HELD_OUT_SONGS}} if a.extra_singing else {})},
        "sources": sorted(vc_sources + real), "festival_voices": voices, "skipped": notes,
        "packages": pools.versions, "held_out": held, "dev_percent": DEV_PERCENT,
        "screening": pools.screened, "label_rule": LABEL_RULE,
        "label_policy": LABEL_POLICY, "room_simulation": rir,
        "clips": {m["file"]: m for m in metas},
    }
    write_meta(out, meta)
    summarize(metas, f"  held out for dev: {held}", time.monotonic() - t0, out, say,
                 unit="phrases", reverberant=True)
    return 0
