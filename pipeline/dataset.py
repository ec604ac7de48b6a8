"""DATASET arguments: labelled audio for chunk, train, tune and evaluate.

A DATASET is one of

- a directory of audio with a label file beside each clip (``clip.tsv``, ``.rttm``, ``.txt``
  Audacity labels or ``.json``; a clip with no label file has no events), or with one DCASE
  metadata TSV in it (``filename onset offset event_label``);
- a DCASE metadata TSV (file names relative to its folder);
- a manifest (``.csv``/``.tsv`` with ``path`` and ``labels`` columns; ``labels`` is a label file
  relative to the manifest, empty for a clip with no events).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .errors import LabelError, ParameterError
from .inputs import AUDIO_EXTENSIONS, Source, expand_inputs, is_audio
from .labels import Segment, class_names, find_label_file, read_labels


@dataclass(frozen=True)
class Item:
    """One labelled clip."""

    source: Source
    segments: tuple[Segment, ...]

    @property
    def name(self) -> str:
        return self.source.rel.as_posix()


@dataclass(frozen=True)
class Dataset:
    items: tuple[Item, ...]
    classes: tuple[str, ...]
    origin: str


def _is_dcase_metadata(path: Path) -> bool:
    try:
        with open(path, newline="") as fh:
            head = fh.readline().rstrip("\r\n").split("\t")
    except OSError:
        return False
    return head[:1] == ["filename"]


def _from_metadata(tsv: Path) -> list[Item]:
    labels = read_labels(tsv, fmt="dcase")
    items = []
    for name in sorted(labels):
        path = tsv.parent / name
        items.append(Item(Source(path, Path(name)), tuple(labels[name])))
    return items


def _from_manifest(path: Path) -> list[Item]:
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delim)
        cols = reader.fieldnames or []
        if "path" not in cols or "labels" not in cols:
            raise ParameterError(f"{path}: a dataset manifest needs 'path' and 'labels' columns (has {cols})")
        rows = list(reader)
    items = []
    for line, row in enumerate(rows, start=2):
        audio = path.parent / row["path"]
        segs: tuple[Segment, ...] = ()
        if row.get("labels"):
            lab = path.parent / row["labels"]
            if not lab.is_file():
                raise LabelError(f"{path}: line {line}: label file {lab} does not exist")
            found = read_labels(lab, default_name=Path(row["path"]).as_posix())
            segs = tuple(s for v in found.values() for s in v)
        items.append(Item(Source(audio, Path(row["path"])), segs))
    return items


def _from_directory(root: Path) -> list[Item]:
    tsvs = [p for p in sorted(root.glob("*.tsv")) if _is_dcase_metadata(p)]
    if len(tsvs) == 1:
        return _from_metadata(tsvs[0])
    sources, _ = expand_inputs([str(root)])
    items = []
    for src in sources:
        lab = find_label_file(src.path)
        segs: tuple[Segment, ...] = ()
        if lab is not None:
            found = read_labels(lab, default_name=src.rel.as_posix())
            segs = tuple(s for v in found.values() for s in v)
        items.append(Item(src, segs))
    return items


def load_dataset(spec: str | Path, *, classes: list[str] | None = None) -> Dataset:
    """Resolve a DATASET argument into labelled items (sorted by name) and the class list.

    Raises
    ------
    ParameterError
        nothing found, or a label file names audio that is missing.
    """
    path = Path(spec)
    if path.is_dir():
        items = _from_directory(path)
    elif path.is_file() and path.suffix.lower() == ".tsv" and _is_dcase_metadata(path):
        items = _from_metadata(path)
    elif path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        items = _from_manifest(path)
    else:
        raise ParameterError(f"{spec}: a DATASET must be a folder of audio with labels, a DCASE metadata "
                             f"TSV or a manifest with path and labels columns")
    if not items:
        raise ParameterError(f"{spec}: the dataset is empty (no audio files with {', '.join(AUDIO_EXTENSIONS[:3])}, ...)")
    missing = [i.source.path for i in items if not i.source.path.is_file()]
    if missing:
        raise LabelError(f"{spec}: labels name audio that is missing: {missing[0]}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for i in items:
        if not is_audio(i.source.path):
            raise ParameterError(f"{spec}: {i.source.path} is not an audio file name")
    found = class_names({i.name: i.segments for i in items})
    if classes is not None:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise LabelError(f"{spec}: label {unknown[0]!r} is not one of the model's classes {classes}")
        found = list(classes)
    items = sorted(items, key=lambda i: i.name)
    return Dataset(tuple(items), tuple(found), str(spec))
