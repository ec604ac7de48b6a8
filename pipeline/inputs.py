"""Expand command-line INPUTS into audio sources: files, directories, globs and manifests.

A directory is searched recursively for audio (by extension); a glob is expanded; a manifest is
a ``.csv``/``.tsv`` with a ``path`` column or a ``.txt`` list, one path a line, relative paths
resolved against the manifest's folder. Each source keeps its path relative to its input root,
so ``predict --out`` can mirror the input folders.
"""
from __future__ import annotations

import csv
import errno
import glob as globmod
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ParameterError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au",
                    ".m4a", ".wma", ".aac", ".caf", ".w64", ".rf64", ".sph", ".webm", ".mp4")
MANIFEST_EXTENSIONS = (".csv", ".tsv", ".txt", ".lst", ".scp")


@dataclass(frozen=True)
class Source:
    """One audio input: where it is, and its path relative to the input root (no suffix change)."""

    path: Path
    rel: Path


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def not_regular(path: str | Path) -> str | None:
    """Why ``path`` is not a regular file that can be read as a source, or None if it is.

    Only ``stat`` is used: a FIFO or a device is never opened (opening a FIFO blocks forever).
    Symlinks are followed; a loop or a dangling link is named as such.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "a dangling symlink"
        return None  # missing or unreadable: the reader names it with the system's reason
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def read_manifest(path: Path) -> list[Path]:
    """Paths listed in a manifest, resolved against its folder."""
    try:
        return _read_manifest(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParameterError(f"{path}: cannot read the manifest ({getattr(exc, 'strerror', None) or exc})") from None


def _read_manifest(path: Path) -> list[Path]:
    base = path.parent
    if path.suffix.lower() in (".csv", ".tsv"):
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=delim)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ParameterError(f"{path}: a manifest needs a 'path' column "
                                     f"(columns: {', '.join(reader.fieldnames or [])})")
            rows = [row["path"] for row in reader if row.get("path")]
    else:
        rows = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return [p if p.is_absolute() else base / p for p in map(Path, rows)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (1 <= i <= n) -> ``(i, n)``."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ParameterError(f"--shard {text!r} must look like i/n, e.g. 2/8") from None
    if not 1 <= i <= n:
        raise ParameterError(f"--shard {text!r}: need 1 <= i <= n")
    return i, n


def in_shard(source: Source, shard: tuple[int, int]) -> bool:
    """Whether ``source`` belongs to shard ``i`` of ``n``: by a hash of its path relative to its input
    root, so every machine given the same INPUTS picks the same, disjoint, share."""
    import hashlib

    i, n = shard
    return int(hashlib.sha256(source.rel.as_posix().encode()).hexdigest(), 16) % n == i - 1


def expand_inputs(inputs: list[str] | tuple[str, ...], *, shard: tuple[int, int] | None = None
                  ) -> tuple[list[Source], list[str]]:
    """Sources for the given INPUTS, sorted and de-duplicated, and the problems found.

    ``shard=(i, n)`` keeps only this shard's sources (:func:`in_shard`).

    Returns
    -------
    sources : list[Source]
    problems : list[str]
        one line per input that names nothing readable (a missing path, an empty glob); the
        caller reports them as failed inputs and goes on with the rest.
    """
    sources: dict[str, Source] = {}
    problems: list[str] = []

    def add(path: Path, root: Path | None) -> None:
        why = not_regular(path)
        if why is not None:
            problems.append(f"{path}: {why}, not an audio file; skipped without opening it")
            return
        resolved = os.path.realpath(path)
        if resolved in sources:
            return
        try:
            rel = path.relative_to(root) if root is not None else Path(path.name)
        except ValueError:
            rel = Path(path.name)
        sources[resolved] = Source(path, rel)

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            # every audio-named entry that is not a directory: FIFOs and devices are named and
            # skipped by add(); rglob does not descend into symlinked directories (no loops)
            found = sorted(f for f in p.rglob("*") if is_audio(f) and not f.is_dir())
            if not found:
                problems.append(f"{p}: directory holds no audio files ({', '.join(AUDIO_EXTENSIONS[:4])}, ...)")
            for f in found:
                add(f, p)
        elif p.is_file() and p.suffix.lower() in MANIFEST_EXTENSIONS:
            try:
                listed = read_manifest(p)
            except ParameterError as exc:  # this input fails, named; the others go on
                problems.append(str(exc))
                continue
            for f in listed:
                add(f, p.parent)  # missing ones fail at load, named
        elif p.exists() or not any(ch in item for ch in "*?["):
            add(p, p.parent)  # a missing plain path fails at load, named, with the rest going on
        else:
            matches = sorted(Path(m) for m in globmod.glob(item, recursive=True))
            matches = [m for m in matches if not m.is_dir()]
            if not matches:
                problems.append(f"{item}: glob matches no files")
            for m in matches:
                add(m, _glob_root(item))
    found = sorted(sources.values(), key=lambda s: str(s.path))
    if shard is not None:
        found = [s for s in found if in_shard(s, shard)]
    return found, problems


def _glob_root(pattern: str) -> Path:
    """The fixed directory part of a glob (``data/**/*.wav`` -> ``data``)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")
