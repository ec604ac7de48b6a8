"""The recipe of ``vad_corpus.py``: Asterisk and synthetic voices over MIDI, samples, keys and
noise."""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .asterisk import ASTERISK_DIRS, ASTERISK_EXCLUDE, ASTERISK_ROOT, _asterisk
from .common import (DEV_PERCENT, EXIT_MISSING, RECIPE_VERSION, SPLITS, choice, package_version,
                     r3, read_audio, resample, split_of, weighted)
from .driver import (check_clip_args, clear_split_dirs, clip_counts, finish_clip, run_clip_jobs,
                     summarize, write_meta, write_tsv)
from .labels import LABEL_RULE, Utterance, analyse, rms_over
from .music import SF2, make_midi, render_music
from .noise import background_noise, telephone
from .samples import (BUCKLE_DIR, SONIC_PI_DIR, SONIC_PI_EXCLUDE, background_keyboard,
                      background_samples)
from .tts import (ESPEAK_LANGS, ESPEAK_VARIANTS, FESTIVAL_VOICES, FLITE_VOICES, HELD_OUT,
                  pick_sentence, render_tts, utterance_id)


@dataclass(frozen=True)
class Source:
    name: str
    role: str                      # "speech" or "background"
    packages: tuple[str, ...]
    binaries: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


SOURCES = (
    Source("asterisk-en", "speech", ("asterisk-core-sounds-en-wav",),
           paths=(f"{ASTERISK_ROOT}/en_US_f_Allison",)),
    Source("asterisk-es", "speech", ("asterisk-core-sounds-es-wav",),
           paths=(f"{ASTERISK_ROOT}/es_MX_f_Allison",)),
    Source("asterisk-fr", "speech", ("asterisk-core-sounds-fr-wav",),
           paths=(f"{ASTERISK_ROOT}/fr_CA_f_June",)),
    Source("espeak-ng", "speech", ("espeak-ng",), binaries=("espeak-ng",)),
    Source("flite", "speech", ("flite",), binaries=("flite",)),
    Source("festival", "speech", ("festival",), binaries=("text2wave",)),
    Source("fluidsynth", "background", ("fluidsynth", "fluid-soundfont-gm"),
           binaries=("fluidsynth",), paths=(SF2,)),
    Source("sonic-pi", "background", ("sonic-pi-samples",), paths=(SONIC_PI_DIR,)),
    Source("bucklespring", "background", ("bucklespring-data",), paths=(BUCKLE_DIR,)),
)


SOURCE_BY_NAME = {s.name: s for s in SOURCES}


# Mixing weights (renormalised over the sources present).
SPEECH_WEIGHTS = {"asterisk": 0.40, "espeak-ng": 0.25, "festival": 0.20, "flite": 0.15}


BACKGROUND_WEIGHTS = {"music": 0.30, "samples": 0.25, "keyboard": 0.15, "noise": 0.30}


BACKGROUND_SOURCE = {"music": "fluidsynth", "samples": "sonic-pi", "keyboard": "bucklespring",
                     "noise": None}


P_NO_SPEECH, P_NO_BACKGROUND, P_TELEPHONE = 0.10, 0.10, 0.30


SNR_RANGE_DB = (-5.0, 30.0)


SPEECH_LEVEL_DBFS = (-38.0, -18.0)      # active speech level of the finished clip


BACKGROUND_LEVEL_DBFS = (-45.0, -18.0)  # RMS of a clip without speech


UTTERANCE_JITTER_DB = (-8.0, 4.0)


def check_sources(allow_missing: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Return (source names to use, festival voice names to use, notes) or exit 3.

    A missing package stops the build unless ``allow_missing`` names its source or the
    package itself (festival voices can be skipped one by one by package name)."""
    check_allow_missing(allow_missing, [s.name for s in SOURCES], "(or a festvox-* package name)")
    use, voices, notes, blocking = sources_present(set(allow_missing))
    if blocking:
        pkgs = " ".join(dict.fromkeys(blocking))
        print(f"error: missing Debian package(s): {pkgs}\n"
              f"install them with:\n    apt-get update && apt-get install -y {pkgs}\n"
              f"or skip optional sources with --allow-missing "
              f"{','.join(s.name for s in SOURCES if any(p in blocking for p in s.packages)) or 'festival'}",
              file=sys.stderr)
        sys.exit(EXIT_MISSING)
    if not any(SOURCE_BY_NAME[n].role == "speech" for n in use):
        print("error: no speech source left (all skipped)", file=sys.stderr)
        sys.exit(EXIT_MISSING)
    return use, voices, notes


def check_allow_missing(allow_missing: list[str], names: list[str], hint: str = "",
                        packages: tuple[str, ...] = ()) -> None:
    """Exit 2 naming the ``--allow-missing`` entries that are neither a source (the synthetic
    ones, ``names``) nor a package (theirs, the festival voices', ``packages``)."""
    known = {s.name for s in SOURCES} | {p for s in SOURCES for p in s.packages} \
        | {v.package for v in FESTIVAL_VOICES} | set(names) | set(packages)
    unknown = sorted(set(allow_missing) - known)
    if unknown:
        print(f"error: --allow-missing: unknown source(s) {', '.join(unknown)}; known sources: "
              f"{', '.join(names)}{' ' + hint if hint else ''}", file=sys.stderr)
        sys.exit(2)


def sources_present(allowed: set[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(sources, festival voices, notes, blocking packages)``: the sources whose packages are
    installed; those missing but ``allowed`` skipped with a note; the others' packages blocking."""
    use, notes, blocking = [], [], []
    for s in SOURCES:
        missing = [p for p, ok in _package_checks(s) if not ok]
        if not missing:
            use.append(s.name)
        elif s.name in allowed or all(p in allowed for p in missing):
            notes.append(f"skipping {s.name}: missing {' '.join(missing)}")
        else:
            blocking += missing
    voices = []
    if "festival" in use:
        for v in FESTIVAL_VOICES:
            if os.path.isdir(v.directory):
                voices.append(v.name)
            elif v.package in allowed or "festival" in allowed:
                notes.append(f"skipping festival voice {v.name}: missing {v.package}")
            else:
                blocking.append(v.package)
        if not voices:
            use.remove("festival")
            notes.append("skipping festival: no voice installed")
    return use, voices, notes, blocking


def _package_checks(s: Source):
    checks = []
    for p in s.packages:
        ok = True
        if p in ("fluid-soundfont-gm",):
            ok = os.path.exists(SF2)
        else:
            ok = all(shutil.which(b) for b in s.binaries) and all(os.path.exists(x)
                                                                    for x in s.paths
                                                                    if x != SF2)
        checks.append((p, ok))
    return checks


def missing_packages() -> list[str]:
    """All Debian packages the full recipe needs that are not present (for tests)."""
    out = []
    for s in SOURCES:
        out += [p for p, ok in _package_checks(s) if not ok]
    out += [v.package for v in FESTIVAL_VOICES if not os.path.isdir(v.directory)]
    return list(dict.fromkeys(out))


@dataclass
class Pools:
    """Everything a clip draws from, per split; plain sorted lists (picklable, ordered)."""
    sr: int
    sources: list
    festival_voices: list
    asterisk: dict = field(default_factory=dict)   # split -> lang -> [relative paths]
    samples_loop: dict = field(default_factory=dict)  # split -> [file names]
    samples_shot: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)       # split -> [(code, [files])]
    versions: dict = field(default_factory=dict)   # package -> version (cache keys)
    cache_dir: str = ""


def build_pools(sources, festival_voices, sr, cache_dir) -> Pools:
    p = Pools(sr=sr, sources=list(sources), festival_voices=list(festival_voices),
              cache_dir=cache_dir)
    for split in SPLITS:
        p.asterisk[split] = {}
        p.samples_loop[split], p.samples_shot[split], p.keys[split] = [], [], []
    for lang, d in sorted(ASTERISK_DIRS.items()):
        if f"asterisk-{lang}" not in sources:
            continue
        root = os.path.join(ASTERISK_ROOT, d)
        files = sorted(os.path.relpath(f, root)
                       for f in glob.glob(os.path.join(root, "**", "*.wav"), recursive=True))
        for split in SPLITS:
            p.asterisk[split][lang] = []
        for rel in files:
            if rel.startswith("silence/") or os.path.basename(rel) in ASTERISK_EXCLUDE:
                continue
            # split by prompt name without the language folder: a prompt's en/es/fr takes
            # stay together
            p.asterisk[split_of(f"asterisk:{rel}")][lang].append(f"{d}/{rel}")
    if "sonic-pi" in sources:
        for f in sorted(glob.glob(os.path.join(SONIC_PI_DIR, "*.flac"))):
            name = os.path.basename(f)
            if name[:-5] in SONIC_PI_EXCLUDE:
                continue
            bucket = p.samples_loop if name.startswith(("loop_", "ambi_", "vinyl_hiss",
                                                        "guit_em9")) else p.samples_shot
            bucket[split_of(f"sonic-pi:{name}")].append(name)
    if "bucklespring" in sources:
        codes: dict[str, list[str]] = {}
        for f in sorted(glob.glob(os.path.join(BUCKLE_DIR, "*.wav"))):
            name = os.path.basename(f)
            codes.setdefault(name.split("-")[0], []).append(name)
        for code in sorted(codes):
            p.keys[split_of(f"bucklespring:{code}")].append((code, sorted(codes[code])))
    pkgs = sorted({pk for s in SOURCES for pk in s.packages}
                  | {v.package for v in FESTIVAL_VOICES})
    p.versions = {pk: package_version(pk) for pk in pkgs}
    for split in SPLITS:
        for lang, files in p.asterisk[split].items():
            if not files:
                raise SystemExit(f"error: no asterisk-{lang} prompt for {split}")
    return p


def utterance_spec(rng, split: str, pools: Pools) -> dict:
    engines = {}
    if any(f"asterisk-{lang}" in pools.sources for lang in ASTERISK_DIRS):
        engines["asterisk"] = SPEECH_WEIGHTS["asterisk"]
    for e in ("espeak-ng", "festival", "flite"):
        if e in pools.sources:
            engines[e] = SPEECH_WEIGHTS[e]
    engine = weighted(rng, engines)
    if engine == "asterisk":
        lang = choice(rng, sorted(pools.asterisk[split]))
        path = choice(rng, pools.asterisk[split][lang])
        return {"source": f"asterisk-{lang}", "lang": lang, "voice": path.split("/")[0],
                "id": f"asterisk:{path}", "path": path}
    held = HELD_OUT.get(engine, ())
    if engine == "espeak-ng":
        candidates = list(ESPEAK_VARIANTS)
    elif engine == "flite":
        candidates = list(FLITE_VOICES)
    else:
        candidates = list(pools.festival_voices)
    train_voices = [v for v in candidates if v not in held]
    dev_held = [v for v in candidates if v in held]
    if split == "train" or not dev_held or rng.random() < 0.5:
        voice = choice(rng, train_voices)
    else:
        voice = choice(rng, dev_held)
    spec = {"source": engine}
    if engine == "espeak-ng":
        lang = choice(rng, sorted(ESPEAK_LANGS))
        lv = choice(rng, ESPEAK_LANGS[lang])
        spec.update(voice=voice, lang=lang, espeak_voice=f"{lv}+{voice}",
                    speed=int(rng.integers(120, 211)), pitch=int(rng.integers(25, 76)),
                    wordgap=int(rng.integers(0, 4)))
    elif engine == "flite":
        spec.update(voice=voice, lang="en", stretch=round(float(rng.uniform(0.8, 1.3)), 2))
    else:
        v = next(v for v in FESTIVAL_VOICES if v.name == voice)
        spec.update(voice=voice, lang=v.lang,
                    stretch=round(float(rng.uniform(0.85, 1.25)), 2) if v.stretch else 1.0)
    n, text = pick_sentence(rng, spec["lang"], split)
    spec.update(text=text, text_id=f"{spec['lang']}:{n}")
    spec["id"] = utterance_id(spec)
    return spec


def load_utterance(spec: dict, pools: Pools) -> Utterance | None:
    if spec["source"].startswith("asterisk"):
        return _asterisk(spec["path"], pools.sr)
    y, sr_in = read_audio(render_tts(spec, pools))
    return analyse(resample(y, sr_in, pools.sr), pools.sr)


def make_clip(job: tuple) -> dict:
    """Build clip ``index`` of ``split``; writes its WAV, returns its meta (with segments)."""
    seed, split, index, seconds, pools, out_dir = job
    sr, hop = pools.sr, pools.sr // 100
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed, SPLITS.index(split), index])))
    n = int(round(seconds * sr))
    n = (n // hop) * hop
    has_speech = rng.random() >= P_NO_SPEECH
    has_bg = (not has_speech) or rng.random() >= P_NO_BACKGROUND
    is_tel = bool(rng.random() < P_TELEPHONE)
    meta = {"split": split, "duration": r3(n / sr), "telephone": is_tel, "utterances": []}

    # speech: utterances on the 10 ms grid, in order, never overlapping
    s = np.zeros(n)
    segments = []
    if has_speech:
        gap_scale = choice(rng, (0.5, 1.0, 1.0, 2.0, 4.0))
        t = int(rng.integers(0, min(n // hop, 300)))  # start frame, first 3 s
        for _ in range(50):
            spec = utterance_spec(rng, split, pools)
            u = load_utterance(spec, pools)
            gap = int(max(rng.exponential(0.8 * gap_scale), 0.2) * 100)
            if u is None:
                continue
            nf = len(u.y) // hop
            if t + nf > n // hop:
                if rng.random() < 0.5 or t >= n // hop - 20:
                    break
                nf = n // hop - t  # runs past the end: cut
            g_db = rng.uniform(*UTTERANCE_JITTER_DB)
            g = 10 ** (g_db / 20) / u.active_rms
            s[t * hop:(t + nf) * hop] += g * u.y[:nf * hop]
            useg = [(t + a, t + min(b, nf)) for a, b in u.segments if a < nf]
            segments += useg
            entry = {k: spec[k] for k in ("source", "id", "voice", "lang") if k in spec}
            if "text" in spec:
                entry.update(text=spec["text"], text_id=spec["text_id"])
                for k in ("speed", "pitch", "stretch"):
                    if k in spec:
                        entry[k] = spec[k]
            entry.update(start=r3(t / 100), end=r3((t + nf) / 100), gain_db=round(g_db, 2),
                         threshold_db=u.threshold_db, truncated=nf < len(u.y) // hop)
            meta["utterances"].append(entry)
            t += nf + gap
            if t >= n // hop - 20:
                break
        has_speech = bool(segments)
    if not has_speech:
        has_bg = True
    mask = np.zeros(n // hop, dtype=bool)
    for a, b in segments:
        mask[a:b] = True
    speech_level = rms_over(s, mask, hop) if has_speech else 0.0

    # background
    kind, bg_info = "none", {"sources": []}
    if has_bg:
        kinds = {k: w for k, w in BACKGROUND_WEIGHTS.items()
                 if BACKGROUND_SOURCE[k] is None or BACKGROUND_SOURCE[k] in pools.sources}
        if not pools.samples_shot[split]:
            kinds.pop("samples", None)
        if not pools.keys[split]:
            kinds.pop("keyboard", None)
        kind = weighted(rng, kinds)
        if kind == "music":
            midi, info = make_midi(rng, seconds)
            y = render_music(midi, pools)
            # start within the first second (the notes run 1 s past the clip, then the
            # release tail) so clips do not all open on a downbeat
            off = int(rng.integers(0, max(min(len(y) - n, sr), 0) + 1))
            b = np.resize(y[off:], n)  # tiles if ever shorter than the clip
            bg_info = {"sources": [f"fluidsynth:{split}:{index}:"
                                   f"{hashlib.sha256(midi).hexdigest()[:12]}"],
                       "detail": info}
        elif kind == "samples":
            b, bg_info = background_samples(rng, n, split, pools)
        elif kind == "keyboard":
            b, bg_info = background_keyboard(rng, n, split, pools)
        else:
            b, bg_info = background_noise(rng, n, sr)
            bg_info["sources"] = [f"noise:{bg_info['detail']['color']}:{split}:{index}"]
        rms = float(np.sqrt(np.mean(b ** 2)))
        if rms < 1e-9:  # e.g. music that rendered silent: fall back to pink noise
            b, bg_info = background_noise(rng, n, sr)
            kind, bg_info["sources"] = "noise", [f"noise:{split}:{index}"]
            rms = float(np.sqrt(np.mean(b ** 2)))
        b = b / rms
    else:
        quiet = bool(rng.random() < 0.5)
        b = np.zeros(n)
        if quiet:  # very low white noise, 50-70 dB under the speech
            rel = rng.uniform(50, 70)
            b = rng.standard_normal(n) * speech_level * 10 ** (-rel / 20)
            bg_info = {"sources": [f"noise:floor:{split}:{index}"],
                       "detail": {"below_speech_db": r3(rel)}}
        else:
            bg_info = {"sources": [], "detail": {"digital_silence": True}}

    snr = None
    if has_speech and has_bg:
        snr = float(rng.uniform(*SNR_RANGE_DB))
        mix = s + b * speech_level * 10 ** (-snr / 20)
        target = rng.uniform(*SPEECH_LEVEL_DBFS)
        gain = 10 ** (target / 20) / speech_level
    elif has_speech:
        mix = s + b
        target = rng.uniform(*SPEECH_LEVEL_DBFS)
        gain = 10 ** (target / 20) / speech_level
    else:
        mix = b
        target = rng.uniform(*BACKGROUND_LEVEL_DBFS)
        gain = 10 ** (target / 20)
    mix = mix * gain
    if is_tel:
        mix, tel = telephone(mix, sr, rng)
        meta["telephone_detail"] = tel
    return finish_clip(meta, mix, sr, out_dir, split, index, segments=segments,
                       background={"kind": kind, **bg_info}, snr=snr, target=target)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Build a labelled speech-activity corpus from offline Debian sources.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-hours", type=float, default=2.0)
    p.add_argument("--dev-hours", type=float, default=0.3)
    p.add_argument("--train-clips", type=int, default=None,
                   help="number of train clips (overrides --train-hours)")
    p.add_argument("--dev-clips", type=int, default=None,
                   help="number of dev clips (overrides --dev-hours)")
    p.add_argument("--clip-seconds", type=float, default=20.0)
    p.add_argument("--sr", type=int, default=16000, help="output sample rate (multiple of 100)")
    p.add_argument("--allow-missing", default="",
                   help="comma-separated sources (or festvox-* packages) to skip if missing: "
                        + ", ".join(s.name for s in SOURCES))
    p.add_argument("--cache-dir", default=None, help="rendered speech/music cache "
                                                     "(default: OUT/_cache)")
    p.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (the output does not depend on it)")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    check_clip_args(p, a)
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    allow = [x.strip() for x in a.allow_missing.split(",") if x.strip()]
    sources, festival_voices, notes = check_sources(allow)
    say = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    for note in notes:
        say(f"note: {note}")
    out = os.path.abspath(a.out)
    cache = os.path.abspath(a.cache_dir or os.path.join(out, "_cache"))
    counts = clip_counts(a)
    clear_split_dirs(out)
    os.makedirs(cache, exist_ok=True)
    t0 = time.monotonic()
    pools = build_pools(sources, festival_voices, a.sr, cache)
    jobs = [(a.seed, split, i, a.clip_seconds, pools, out)
            for split in SPLITS for i in range(counts[split])]
    metas = run_clip_jobs(make_clip, jobs, a.jobs, say, t0)
    for split in SPLITS:
        write_tsv(os.path.join(out, f"{split}.tsv"), [m for m in metas if m["split"] == split])
    held = {e: [v for v in vs if (e != "festival" or v in festival_voices)]
            for e, vs in sorted(HELD_OUT.items()) if e in sources}
    meta = {
        "recipe": "data/recipes/vad_corpus.py", "version": RECIPE_VERSION,
        "settings": {"seed": a.seed, "sr": a.sr, "clip_seconds": a.clip_seconds,
                     "train_clips": counts["train"], "dev_clips": counts["dev"]},
        "sources": sources, "festival_voices": festival_voices,
        "skipped": notes, "packages": pools.versions, "held_out_voices": held,
        "dev_percent": DEV_PERCENT, "label_rule": LABEL_RULE,
        "clips": {m["file"]: m for m in metas},
    }
    write_meta(out, meta)
    summarize(metas, "  held out for dev (never in train): "
              + "; ".join(f"{e}: {', '.join(v) or '-'}" for e, v in held.items())
              + "; asterisk prompts, sonic-pi samples, bucklespring keys and sentences split "
                f"{100 - DEV_PERCENT}/{DEV_PERCENT} by name hash",
              time.monotonic() - t0, out, say)
    return 0
