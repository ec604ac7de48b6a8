"""The shared driver: size options, the clip jobs, TSV, meta.json and the summary."""
from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import time

import numpy as np

from .common import SPLITS, canonical_json, r3, write_wav_atomic


def check_clip_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """The rules every corpus recipe's size and rate options follow (``p.error`` otherwise)."""
    if a.sr <= 0 or a.sr % 100:
        p.error(f"--sr={a.sr} must be a positive multiple of 100 (10 ms frames)")
    if a.clip_seconds < 1:
        p.error(f"--clip-seconds={a.clip_seconds} must be at least 1")
    for name in ("train_hours", "dev_hours", "train_clips", "dev_clips"):
        v = getattr(a, name)
        if v is not None and v < 0:
            p.error(f"--{name.replace('_', '-')}={v} must not be negative")
    if a.jobs < 1:
        p.error(f"--jobs={a.jobs} must be at least 1")


def finish_clip(meta: dict, mix: np.ndarray, sr: int, out_dir: str, split: str, index: int, *,
                segments: list, background: dict, snr: float | None, target: float, **more) -> dict:
    """A clip's last step in every recipe: its peak limited to 0.98, what made it recorded in
    ``meta`` (``segments`` in 10 ms frames), the WAV written as ``split/clip_NNNNN.wav``."""
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    limited = peak > 0.98
    if limited:
        mix = mix * (0.98 / peak)
    meta.update(background=background, snr_db=None if snr is None else r3(snr),
                level_dbfs=r3(target), peak_limited=limited, **more,
                speech_seconds=r3(sum(b - a for a, b in segments) / 100),
                segments=[(r3(a / 100), r3(b / 100)) for a, b in segments])
    name = f"{split}/clip_{index + 1:05d}.wav"
    write_wav_atomic(os.path.join(out_dir, name), mix, sr)
    meta["file"] = name
    return meta


def clip_counts(a: argparse.Namespace) -> dict[str, int]:
    """Clips per split: ``--train-clips`` / ``--dev-clips``, else the hours over the clip length."""
    return {"train": a.train_clips if a.train_clips is not None
            else int(round(a.train_hours * 3600 / a.clip_seconds)),
            "dev": a.dev_clips if a.dev_clips is not None
            else int(round(a.dev_hours * 3600 / a.clip_seconds))}


def clear_split_dirs(out: str) -> None:
    """Create ``OUT/<split>/`` and remove its clips: a rerun with fewer clips leaves no stale ones."""
    for split in SPLITS:
        d = os.path.join(out, split)
        os.makedirs(d, exist_ok=True)
        for old in sorted(glob.glob(os.path.join(d, "clip_*.wav"))):
            os.remove(old)


def run_clip_jobs(make, jobs: list, workers: int, say, t0: float, every: int = 20) -> list[dict]:
    """``make(job)`` for every job, in order (in ``workers`` spawned processes when > 1): the
    metas; a progress line every ``every`` clips."""
    metas: list[dict] = []
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.imap(make, jobs, chunksize=1)
            for k, m in enumerate(results):
                metas.append(m)
                if (k + 1) % every == 0:
                    say(f"  {k + 1}/{len(jobs)} clips, {time.monotonic() - t0:.0f} s")
    else:
        for k, job in enumerate(jobs):
            metas.append(make(job))
            if (k + 1) % every == 0:
                say(f"  {k + 1}/{len(jobs)} clips, {time.monotonic() - t0:.0f} s")
    return metas


def write_meta(out: str, meta: dict) -> None:
    """``OUT/meta.json``, canonical JSON, replaced atomically."""
    with open(os.path.join(out, "meta.json.tmp"), "w", encoding="utf-8") as f:
        f.write(canonical_json(meta))
    os.replace(os.path.join(out, "meta.json.tmp"), os.path.join(out, "meta.json"))


def summarize(metas: list[dict], held_line: str, elapsed: float, out: str, say, *,
              unit: str = "utterances", reverberant: bool = False) -> None:
    """Per split: clips, hours, speech share, clips without speech, telephone (and reverberant)
    clips, backgrounds, and ``unit`` per speech source; then ``held_line``."""
    say(f"wrote {out} in {elapsed:.0f} s")
    for split in SPLITS:
        ms = [m for m in metas if m["split"] == split]
        if not ms:
            say(f"  {split}: 0 clips")
            continue
        dur = sum(m["duration"] for m in ms)
        sp = sum(m["speech_seconds"] for m in ms)
        kinds: dict[str, int] = {}
        srcs: dict[str, int] = {}
        for m in ms:
            kinds[m["background"]["kind"]] = kinds.get(m["background"]["kind"], 0) + 1
            for u in m["utterances"]:
                srcs[u["source"]] = srcs.get(u["source"], 0) + 1
        reverb = (f"reverberant {sum(bool(m['augment']['reverb']) for m in ms)}, "
                  if reverberant else "")
        say(f"  {split}: {len(ms)} clips, {dur / 3600:.2f} h, speech {100 * sp / dur:.1f} %, "
            f"no-speech {sum(not m['segments'] for m in ms)}, "
            f"telephone {sum(m['telephone'] for m in ms)}, {reverb}"
            f"background {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}")
        say(f"    {unit}: {', '.join(f'{k} {v}' for k, v in sorted(srcs.items()))}")
    say(held_line)


def write_tsv(path: str, metas: list[dict], rows=None) -> None:
    """DCASE metadata: the clips' ``speech`` segments, plus ``rows(meta)`` -> [(onset, offset,
    label)] of other classes when given (a clip with no row at all gets an empty one)."""
    lines = ["filename\tonset\toffset\tevent_label"]
    for m in metas:
        more = rows(m) if rows else []
        if not m["segments"] and not more:
            lines.append(f"{m['file']}\t\t\t")
        for a, b in m["segments"]:
            lines.append(f"{m['file']}\t{a:.3f}\t{b:.3f}\tspeech")
        for a, b, label in more:
            lines.append(f"{m['file']}\t{a:.3f}\t{b:.3f}\t{label}")
    with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
