"""``cache ls | status | verify | gc``: what the cache holds, what a config would recompute and
why, checksum verification, and garbage collection. Readers only, except :func:`gc`, which
removes whole entries through :meth:`Cache.remove` (renamed away first, never half-deleted).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from .cache import META, Cache
from .config import Config
from .inputs import Source
from .runner import file_keys
from .stage import STAGES, key_config, stored_chain


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"  # pragma: no cover


def _metas(cache: Cache, stage: str):
    for key in cache.keys(stage):
        try:
            yield key, cache.read_meta(stage, key)
        except Exception:  # noqa: BLE001 - a corrupt entry is verify's business, not ls's
            yield key, None


def listing(cache: Cache, *, long: bool = False) -> str:
    """Entries and bytes per stage (``long``: one line per entry)."""
    lines = [f"cache: {cache.root.resolve()}"]
    total = 0
    for stage in cache.stages():
        size, count = 0, 0
        for key in cache.keys(stage):
            s = cache.entry_size(stage, key)
            size += s
            count += 1
            if long:
                meta = cache.read_meta(stage, key) if cache.has(stage, key) else {}
                what = meta.get("source") or ",".join(k[:12] for k in meta.get("inputs", [])[:3])
                lines.append(f"  {stage:<10} {key[:16]}  {human(s):>10}  {meta.get('created', '?')}  {what}")
        total += size
        lines.append(f"{stage:<12} {count:>7} {'entry' if count == 1 else 'entries':<7}  {human(size):>10}")
    tmp = cache.stale_temporaries()
    if tmp:
        lines.append(f"{'(unfinished)':<12} {len(tmp):>7} temporaries of interrupted runs (cache gc removes them)")
    lines.append(f"{'total':<12} {'':>7}          {human(total):>10}")
    return "\n".join(lines)


def _why(cache: Cache, cfg: Config, stage: str, inputs: list[str], source: Path | None,
         context: dict | None = None) -> str:
    """Explain a miss by the nearest existing entry: same inputs with other settings, or the
    same source file with other bytes."""
    want = key_config(STAGES[stage], cfg, context)
    version = STAGES[stage].version
    same_source = None
    for _, meta in _metas(cache, stage):
        if not meta:
            continue
        if meta.get("inputs") == inputs:
            if meta.get("version") != version:
                return f"stage version {meta.get('version')} -> {version}"
            old = meta.get("config", {})
            diffs = [f"{stage}.{k}: {old.get(k)!r} -> {v!r}" for k, v in want.items() if old.get(k) != v]
            if diffs:
                return "; ".join(diffs)
        if source is not None and meta.get("source") == str(source.resolve()):
            same_source = meta
    if same_source is not None:
        return "source bytes changed since it was cached"
    return "never computed"


def status(cache: Cache, cfg: Config, sources: list[Source], *, upto: str = "features",
           context: dict | None = None) -> str:
    """Per stage of ``upto``'s chain, how many sources are cached and what would be recomputed,
    with reasons (the same keys as the runner: :func:`pipeline.runner.file_keys`)."""
    stages = stored_chain(upto)  # a stage only read through (load, by streaming features) is not stored
    counts = {s: {"cached": 0, "compute": 0} for s in stages}
    lines = []
    for src in sources:
        try:
            keys = file_keys(cache, cfg, src.path, upto, context)
        except OSError as exc:
            lines.append(f"  {src.path}: unreadable ({exc.strerror or exc})")
            continue
        for stage in stages:
            st = STAGES[stage]
            inputs = [keys[r] for r in st.requires] or [keys["source"]]
            inputs += [(context or {})[n] for n in st.context_inputs]
            if cache.has(stage, keys[stage]):
                counts[stage]["cached"] += 1
            else:
                counts[stage]["compute"] += 1
                reason = _why(cache, cfg, stage, inputs, src.path, context)  # entries read from a file name it
                lines.append(f"  {stage:<9} {src.path}: {reason}")
    head = [f"{s:<9} {c['cached']} cached, {c['compute']} to compute" for s, c in counts.items()]
    return "\n".join(head + lines)


def verify_all(cache: Cache) -> tuple[list[str], int]:
    """Verify every entry; returns the problems and the number of entries checked."""
    problems, n = [], 0
    for stage in cache.stages():
        for key in cache.keys(stage):
            n += 1
            problems.extend(cache.verify(stage, key))
    return problems, n


def unreachable(cache: Cache) -> set[tuple[str, str]]:
    """Entries no current source can reach: entries of a stage read from files (``load``) whose
    source file is gone or holds other bytes, and every entry built (directly or not) on one of
    those, whatever its stage (walked to a fixed point, so the order of stages does not matter)."""
    gone: set[str] = set()
    out: set[tuple[str, str]] = set()
    readers = [name for name, st in STAGES.items() if not st.requires]
    rest = []
    for stage in cache.stages():
        for key, meta in _metas(cache, stage):
            src = meta.get("source") if meta else None
            if stage in readers or src is not None:  # read from a file: is it still there, unchanged?
                digests = [meta.get("source_sha256")] if meta.get("source_sha256") else meta.get("inputs", [])
                try:
                    ok = src is not None and cache.fingerprint(src) in digests
                except OSError:
                    ok = False
                if not ok:
                    gone.add(key)
                    out.add((stage, key))
                    continue
            if meta:
                rest.append((stage, key, meta))
    changed = True
    while changed:
        changed = False
        for stage, key, meta in rest:
            if key not in gone and gone.intersection(meta.get("inputs", [])):
                gone.add(key)
                out.add((stage, key))
                changed = True
    return out


def gc(cache: Cache, *, max_bytes: int | None = None, dry_run: bool = False, tmp_age: float = 3600.0) -> str:
    """Remove temporaries no writer will finish (writer gone, or older than ``tmp_age`` s),
    entries that fail verification, unreachable entries, then least recently used entries until
    the cache is at most ``max_bytes``."""
    verb = "would remove" if dry_run else "removed"
    lines, freed = [], 0
    for tmp in cache.stale_temporaries(older_than=tmp_age):
        if not dry_run:
            shutil.rmtree(tmp, ignore_errors=True)
        lines.append(f"{verb} temporary {tmp.name}")
    bad = {(stage, key) for stage in cache.stages() for key in cache.keys(stage) if cache.verify(stage, key)}
    for stage, key in sorted(bad):
        freed += cache.entry_size(stage, key) if dry_run else cache.remove(stage, key)
        lines.append(f"{verb} {stage}/{key[:16]} (fails verification)")
    for stage, key in sorted(unreachable(cache) - bad):
        size = cache.entry_size(stage, key)
        freed += size if dry_run else cache.remove(stage, key)
        lines.append(f"{verb} {stage}/{key[:16]} (unreachable: source gone or changed)")
    if max_bytes is not None:
        entries = []
        for stage in cache.stages():
            for key in cache.keys(stage):
                meta_path = cache.entry_path(stage, key) / META
                used = meta_path.stat().st_mtime if meta_path.exists() else 0.0
                entries.append((used, stage, key, cache.entry_size(stage, key)))
        total = sum(e[3] for e in entries)
        for used, stage, key, size in sorted(entries):
            if total <= max_bytes:
                break
            if not dry_run:
                cache.remove(stage, key)
            total -= size
            freed += size
            age = (time.time() - used) / 86400
            lines.append(f"{verb} {stage}/{key[:16]} (least recently used, {age:.1f} days)")
    lines.append(f"{verb} {human(freed)}")
    return "\n".join(lines)
