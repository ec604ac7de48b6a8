"""Expand command-line INPUTS into audio sources: files, directories, globs and manifests.

A directory is searched recursively for audio (by extension); a glob is expanded; a manifest is
a ``.csv``/``.tsv`` with a ``path`` column or a ``.txt`` list, one path a line, relative paths
resolved against the manifest's folder. Each source keeps its path relative to its input root,
so ``predict --out`` can mirror the input folders.
"""
from __future__ import annotations

import csv
import glob as globmod
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


def read_manifest(path: Path) -> list[Path]:
    """Paths listed in a manifest, resolved against its folder."""
    base = path.parent
    if path.suffix.lower() in (".csv", ".tsv"):
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delim)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ParameterError(f"{path}: a manifest needs a 'path' column "
                                     f"(columns: {', '.join(reader.fieldnames or [])})")
            rows = [row["path"] for row in reader if row.get("path")]
    else:
        rows = [line.strip() for line in path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return [p if p.is_absolute() else base / p for p in map(Path, rows)]


def expand_inputs(inputs: list[str] | tuple[str, ...]) -> tuple[list[Source], list[str]]:
    """Sources for the given INPUTS, sorted and de-duplicated, and the problems found.

    Returns
    -------
    sources : list[Source]
    problems : list[str]
        one line per input that names nothing readable (a missing path, an empty glob); the
        caller reports them as failed inputs and goes on with the rest.
    """
    sources: dict[Path, Source] = {}
    problems: list[str] = []

    def add(path: Path, root: Path | None) -> None:
        resolved = path.resolve()
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
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_audio(f))
            if not found:
                problems.append(f"{p}: directory holds no audio files ({', '.join(AUDIO_EXTENSIONS[:4])}, ...)")
            for f in found:
                add(f, p)
        elif p.is_file() and p.suffix.lower() in MANIFEST_EXTENSIONS:
            for f in read_manifest(p):
                add(f, p.parent)  # missing ones fail at load, named
        elif p.exists() or not any(ch in item for ch in "*?["):
            add(p, p.parent)  # a missing plain path fails at load, named, with the rest going on
        else:
            matches = sorted(Path(m) for m in globmod.glob(item, recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                problems.append(f"{item}: glob matches no files")
            for m in matches:
                add(m, _glob_root(item))
    return sorted(sources.values(), key=lambda s: str(s.path)), problems


def _glob_root(pattern: str) -> Path:
    """The fixed directory part of a glob (``data/**/*.wav`` -> ``data``)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")
