"""Label files (DCASE TSV, RTTM, Audacity, JSON, Praat TextGrid) and their frame rasterisation.

Every reader returns ``dict[str, list[Segment]]`` keyed by the audio file name as written in the
label file; per-clip files (no file name column) use the caller's ``default_name``, else the
label file's stem. Segments come back sorted by onset, offset, label. Frame ``i`` is centred at
``i / fps`` seconds and is active for a segment iff ``onset <= i / fps < offset``.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import LabelError, ParameterError, TierError


class Segment(NamedTuple):
    """One labelled interval in seconds, ``onset < offset``."""

    onset: float
    offset: float
    label: str


Labels = dict[str, list[Segment]]
FORMATS = ("dcase", "rttm", "audacity", "json", "textgrid")
_SUFFIX_FORMAT = {".tsv": "dcase", ".csv": "dcase", ".rttm": "rttm", ".txt": "audacity",
                  ".json": "json", ".textgrid": "textgrid"}
LABEL_SUFFIXES = (".tsv", ".rttm", ".txt", ".json", ".TextGrid")  # beside audio, in this order
_DCASE_COLUMNS = ("filename", "onset", "offset", "event_label")


# ---------------------------------------------------------------------------- shared checks

def _is_number(value) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _time(value, what: str, where: str) -> float:
    if not _is_number(value):
        raise LabelError(f"{where}: {what}={value!r} is not a number")
    t = float(value)
    if t < 0:
        raise LabelError(f"{where}: {what}={t:g} is negative")
    return t


def _segment(onset, offset, label, where: str) -> Segment:
    on, off = _time(onset, "onset", where), _time(offset, "offset", where)
    if on > off:
        raise LabelError(f"{where}: onset={on:g} > offset={off:g}")
    if not isinstance(label, str) or not label.strip():
        raise LabelError(f"{where}: empty or missing label {label!r}")
    return Segment(on, off, label.strip())


def _sorted(labels: Labels) -> Labels:
    return {name: sorted(segs) for name, segs in labels.items()}


def _read_text(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # -sig: drop an Excel BOM
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{path}: cannot read label file ({e})") from e


def _write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))


def _safe_text(text: str, seps: str) -> str:
    """``text`` with each character a format cannot hold (its ``seps``) written as ``_``."""
    return "".join("_" if c in seps else c for c in text) if seps else text


def _normalise(segments, name: str | None, fmt: str, seps: str) -> tuple[Labels, bool]:
    """Return ``(labels, per_clip)`` for a writer: a list becomes ``{name: list}``, flagged per
    clip; segments are sorted and checked. A file name or label holding one of the format's
    separators ``seps`` (RTTM: whitespace; TSV and Audacity: tab and line breaks) is written with
    each such character as ``_``, so every file name can be written in every format."""
    per_clip = not isinstance(segments, Mapping)
    out: Labels = {}
    for key, segs in ({name or "": segments} if per_clip else segments).items():
        key = _safe_text(str(key), seps)
        rows = sorted(Segment(float(a), float(b), _safe_text(str(c), seps)) for a, b, c in segs)
        for s in rows:
            if not (0 <= s.onset <= s.offset) or not s.label.strip():
                raise ParameterError(f"{key}: cannot write {s}: needs 0 <= onset <= offset "
                                     "and a non-empty label")
        out.setdefault(key, []).extend(rows)
        out[key].sort()
    return out, per_clip


# ---------------------------------------------------------------------------- DCASE TSV

def read_dcase(path, *, default_name: str | None = None) -> Labels:
    """Read a DCASE TSV: metadata (``filename onset offset event_label``) or one clip's file
    (``onset offset event_label``, header optional, keyed by ``default_name``, else the stem).
    A row with a file name and empty times means that file has no events. Raises
    :class:`LabelError` naming the file, the 1-based line and the rule a row breaks."""
    path = Path(path)
    lines = _read_text(path)
    rows = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        return {default_name or path.stem: []}
    sep = "\t" if "\t" in rows[0][1] else "," if "," in rows[0][1] else "\t"
    first = [f.strip() for f in rows[0][1].split(sep)]
    if any(_is_number(f) for f in first):  # headerless: onset, offset, event_label
        columns = ["onset", "offset", "event_label"]
    else:
        (header_line, _), rows, columns = rows[0], rows[1:], first
        if (sorted(columns) != sorted(_DCASE_COLUMNS)
                and sorted(columns) != sorted(_DCASE_COLUMNS[1:])):
            raise LabelError(f"{path}: line {header_line}: header columns {columns} are unknown, "
                             f"repeated or missing (expected [filename,] onset, offset, "
                             "event_label)")
    has_name = "filename" in columns
    out: Labels = {} if has_name else {default_name or path.stem: []}
    for n, line in rows:
        where = f"{path}: line {n}"
        fields = [f.strip() for f in line.split(sep)]
        if has_name and len(fields) < len(columns) and not any(fields[1:]):
            fields += [""] * (len(columns) - len(fields))  # "no events" row, trailing tabs cut
        if len(fields) != len(columns):
            raise LabelError(f"{where}: expected {len(columns)} columns "
                             f"({', '.join(columns)}), got {len(fields)}")
        row = dict(zip(columns, fields))
        name = row["filename"] if has_name else (default_name or path.stem)
        if not name:
            raise LabelError(f"{where}: empty filename")
        segs = out.setdefault(name, [])
        if row["onset"] == row["offset"] == row["event_label"] == "":
            continue  # the file has no events
        segs.append(_segment(row["onset"], row["offset"], row["event_label"], where))
    return _sorted(out)


def write_dcase(segments, path, *, name: str | None = None) -> None:
    """Write a DCASE TSV: a list gives a per-clip file (``onset offset event_label``), a dict a
    metadata file (``filename onset offset event_label``; files without events get a row with
    empty times). Times in seconds with 3 decimals. ``name`` is unused (per-clip has no name)."""
    labels, per_clip = _normalise(segments, name, "dcase", "\t\n\r")
    lines = ["\t".join(_DCASE_COLUMNS[1:] if per_clip else _DCASE_COLUMNS)]
    for key, segs in labels.items():
        prefix = "" if per_clip else key + "\t"
        if not segs and not per_clip:
            lines.append(prefix + "\t\t")
        for s in segs:
            lines.append(f"{prefix}{s.onset:.3f}\t{s.offset:.3f}\t{s.label}")
    _write_text(Path(path), lines)


# ---------------------------------------------------------------------------- RTTM

def read_rttm(path, *, default_name: str | None = None) -> Labels:
    """Read RTTM ``SPEAKER <file> <chan> <onset> <duration> <NA> <NA> <label> <NA> <NA>``.

    Other legacy RTTM line types and ``;;`` comments are skipped. ``default_name`` is unused
    (each row names its file). Raises :class:`LabelError` naming the file and line."""
    path = Path(path)
    out: Labels = {}
    for n, line in enumerate(_read_text(path), 1):
        fields, where = line.split(), f"{path}: line {n}"
        if not fields or fields[0].startswith(";;"):
            continue
        if fields[0] != "SPEAKER":
            if fields[0].isupper():  # another RTTM type (LEXEME, SPKR-INFO, ...): not ours
                continue
            raise LabelError(f"{where}: unknown RTTM type {fields[0]!r} (expected SPEAKER)")
        if not 8 <= len(fields) <= 10:
            raise LabelError(f"{where}: expected 10 fields (SPEAKER file chan onset duration "
                             f"NA NA label NA NA), got {len(fields)}")
        onset = _time(fields[3], "onset", where)
        duration = _time(fields[4], "duration", where)
        out.setdefault(fields[1], []).append(
            _segment(onset, onset + duration, fields[7], where))
    return _sorted(out)


def write_rttm(segments, path, *, name: str | None = None) -> None:
    """Write RTTM; a list of segments needs ``name`` (the file id). Files without segments
    leave no trace: RTTM cannot say "no events"."""
    if not isinstance(segments, Mapping) and not name:
        raise ParameterError("write_rttm: a list of segments needs name= (the file id)")
    labels, _ = _normalise(segments, name, "rttm", " \t\n\r")
    lines = []
    for key, segs in labels.items():
        for s in segs:
            on, off = round(s.onset, 3), round(s.offset, 3)  # so onset + duration == offset
            lines.append(f"SPEAKER {key} 1 {on:.3f} {off - on:.3f} <NA> <NA> {s.label} "
                         "<NA> <NA>")
    _write_text(Path(path), lines)


# ---------------------------------------------------------------------------- Audacity

def read_audacity(path, *, default_name: str | None = None) -> Labels:
    """Read Audacity labels ``start<TAB>end<TAB>label`` (one clip, keyed by ``default_name``,
    else the file's stem); spectral-selection lines starting with ``\\`` are skipped.

    Audacity writes tabs; lines whose columns are separated by spaces instead (hand-written or
    passed through an editor) are read the same way: two times, then the label (which may hold
    spaces)."""
    path = Path(path)
    segs = []
    for n, line in enumerate(_read_text(path), 1):
        if not line.strip() or line.startswith("\\"):
            continue
        fields = line.split("\t", 2) if "\t" in line else line.split(None, 2)
        if len(fields) != 3:
            raise LabelError(f"{path}: line {n}: expected 3 columns (start, end, label) separated "
                             f"by tabs, got {len(fields)}")
        segs.append(_segment(fields[0].strip(), fields[1].strip(), fields[2],
                             f"{path}: line {n}"))
    return {default_name or path.stem: sorted(segs)}


def write_audacity(segments, path, *, name: str | None = None) -> None:
    """Write Audacity labels for one clip (a list, or a dict with one entry)."""
    labels, _ = _normalise(segments, name, "audacity", "\t\n\r")
    if len(labels) != 1:
        raise ParameterError(f"an Audacity label file holds one clip; got {len(labels)} files")
    segs = next(iter(labels.values()))
    _write_text(Path(path), [f"{s.onset:.3f}\t{s.offset:.3f}\t{s.label}" for s in segs])


# ---------------------------------------------------------------------------- JSON

def read_json(path, *, default_name: str | None = None) -> Labels:
    """Read JSON: a list of ``{"onset", "offset", "label"}`` objects (one clip, keyed by
    ``default_name``, else the stem) or ``{"<filename>": [...]}``. ``"event_label"`` is
    accepted for ``"label"``. Errors name the file and the event (JSON syntax: the line)."""
    path = Path(path)
    try:
        data = json.loads("\n".join(_read_text(path)))
    except json.JSONDecodeError as e:
        raise LabelError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from e
    if isinstance(data, list):
        data = {default_name or path.stem: data}
    if not isinstance(data, dict):
        raise LabelError(f"{path}: expected a list of events or an object of lists")
    out: Labels = {}
    for key, events in data.items():
        if not isinstance(events, list):
            raise LabelError(f"{path}: {key!r} must be a list of events")
        out[key] = []
        for i, ev in enumerate(events, 1):
            where = f"{path}: {key!r} event {i}"
            if not isinstance(ev, dict) or not {"onset", "offset"} <= ev.keys():
                raise LabelError(f"{where}: expected an object with onset, offset, label")
            label = ev.get("label", ev.get("event_label"))
            out[key].append(_segment(ev["onset"], ev["offset"], label, where))
    return _sorted(out)


def write_json(segments, path, *, name: str | None = None) -> None:
    """Write JSON: a list gives a list of events, a dict an object keyed by file name."""
    labels, per_clip = _normalise(segments, name, "json", "")
    data = {key: [{"onset": round(s.onset, 3), "offset": round(s.offset, 3), "label": s.label}
                  for s in segs] for key, segs in labels.items()}
    text = json.dumps(next(iter(data.values())) if per_clip else data, indent=2)
    _write_text(Path(path), [text])


# ---------------------------------------------------------------------------- Praat TextGrid

# a quoted string ("" escapes a quote), a number, or something to skip (a key, "[3]", <exists>)
_TG_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|\[[^\]]*\]|<[^>]*>|[A-Za-z_][\w?]*')


def _textgrid_tokens(path: Path) -> list:
    """Strings and numbers of a text TextGrid (long or short form; UTF-8 or UTF-16 as Praat
    writes them), keys and ``[n]`` indices dropped."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LabelError(f"{path}: cannot read label file ({e})") from e
    enc = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(enc)
    except UnicodeDecodeError as e:
        raise LabelError(f"{path}: not a text TextGrid ({e})") from e
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("!"))
    out: list = []
    for m in _TG_TOKEN.finditer(text):
        if m.group(1) is not None:
            out.append(m.group(1).replace('""', '"'))
        elif m.group(2) is not None:
            out.append(float(m.group(2)))
    return out


class _Reader:
    """Pops typed tokens, naming the file and the item in errors."""

    def __init__(self, path: Path, tokens: list):
        self.path, self.tokens, self.i = path, tokens, 0

    def take(self, kind: type, what: str):
        if self.i >= len(self.tokens):
            raise LabelError(f"{self.path}: TextGrid ends early (expected {what})")
        value = self.tokens[self.i]
        self.i += 1
        if not isinstance(value, kind):
            raise LabelError(f"{self.path}: TextGrid {what} must be a "
                             f"{'number' if kind is float else 'quoted string'}, got {value!r}")
        return value


def _textgrid_tiers(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """Interval tiers of a TextGrid: ``{tier name: [(xmin, xmax, text), ...]}``; point tiers are
    skipped."""
    r = _Reader(path, _textgrid_tokens(path))
    if r.take(str, "file type") != "ooTextFile" or r.take(str, "object class") != "TextGrid":
        raise LabelError(f"{path}: not a text TextGrid (expected File type = \"ooTextFile\", "
                         "Object class = \"TextGrid\")")
    r.take(float, "xmin"), r.take(float, "xmax")
    tiers: dict[str, list] = {}
    for k in range(int(r.take(float, "tier count"))):
        kind, name = r.take(str, f"tier {k + 1} class"), r.take(str, f"tier {k + 1} name")
        r.take(float, f"tier {name!r} xmin"), r.take(float, f"tier {name!r} xmax")
        n = int(r.take(float, f"tier {name!r} size"))
        if kind == "IntervalTier":
            tiers[name] = [(r.take(float, f"tier {name!r} interval {j + 1} xmin"),
                            r.take(float, f"tier {name!r} interval {j + 1} xmax"),
                            r.take(str, f"tier {name!r} interval {j + 1} text")) for j in range(n)]
        elif kind == "TextTier":
            for j in range(n):
                r.take(float, f"tier {name!r} point {j + 1} time"), r.take(str, "point mark")
        else:
            raise LabelError(f"{path}: tier {name!r} has unknown class {kind!r}")
    return tiers


def read_textgrid(path, *, default_name: str | None = None, tier: str | None = None) -> Labels:
    """Read a Praat TextGrid (text, long or short form): every non-empty interval of the
    interval tiers (only ``tier`` when given) is a segment labelled with its text. One clip,
    keyed by ``default_name``, else the file's stem. Raises :class:`LabelError` naming the file
    and the tier or interval."""
    path = Path(path)
    tiers = _textgrid_tiers(path)
    if tier is not None and tier not in tiers:
        raise TierError(f"{path}: no interval tier {tier!r} (has {', '.join(map(repr, tiers))})")
    segs = []
    for name, intervals in tiers.items():
        if tier is not None and name != tier:
            continue
        for j, (a, b, text) in enumerate(intervals, 1):
            if text.strip():
                segs.append(_segment(a, b, text, f"{path}: tier {name!r} interval {j}"))
    return {default_name or path.stem: sorted(segs)}


def _tg_str(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def write_textgrid(segments, path, *, name: str | None = None,
                   duration: float | None = None) -> None:
    """Write a TextGrid (long text form) for one clip: one interval tier per label, named after
    it, the label's segments as intervals with its text and the gaps as empty intervals, from 0
    to ``duration`` (default: the last offset). Overlapping segments of a label are merged (a
    tier cannot hold overlaps)."""
    labels, _ = _normalise(segments, name, "textgrid", "")
    if len(labels) != 1:
        raise ParameterError(f"a TextGrid holds one clip; got {len(labels)} files")
    segs = next(iter(labels.values()))
    end = max([duration or 0.0] + [s.offset for s in segs])
    classes = sorted({s.label for s in segs})
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
             f"xmax = {end!r}", "tiers? <exists>", f"size = {len(classes)}", "item []:"]
    for k, label in enumerate(classes, 1):
        cuts = _tier_intervals([s for s in segs if s.label == label], end)
        lines += [f"    item [{k}]:", '        class = "IntervalTier"',
                  f"        name = {_tg_str(label)}", "        xmin = 0", f"        xmax = {end!r}",
                  f"        intervals: size = {len(cuts)}"]
        for j, (a, b, text) in enumerate(cuts, 1):
            lines += [f"        intervals [{j}]:", f"            xmin = {a!r}",
                      f"            xmax = {b!r}", f"            text = {_tg_str(text)}"]
    _write_text(Path(path), lines)


def _tier_intervals(segs: list[Segment], end: float) -> list[tuple[float, float, str]]:
    """Segments of one label merged, with the gaps between them, covering ``[0, end]``."""
    merged: list[list] = []
    for s in sorted(segs):
        if merged and s.onset <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s.offset)
        else:
            merged.append([s.onset, s.offset, s.label])
    out, t = [], 0.0
    for a, b, label in merged:
        if a > t:
            out.append((t, a, ""))
        if b > a:
            out.append((a, b, label))
        t = max(t, b)
    if end > t or not out:
        out.append((t, max(end, t), ""))
    return out


# ---------------------------------------------------------------------------- dispatch

_READERS = dict(zip(FORMATS, (read_dcase, read_rttm, read_audacity, read_json, read_textgrid)))
_WRITERS = dict(zip(FORMATS, (write_dcase, write_rttm, write_audacity, write_json, write_textgrid)))


def _format(path: Path, fmt: str | None) -> str:
    fmt = fmt or _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ParameterError(f"{path}: label format {fmt!r} unknown or not inferable from the "
                             f"suffix; pass fmt= one of {', '.join(FORMATS)}")
    return fmt


def read_labels(path, *, fmt: str | None = None, default_name: str | None = None,
                tier: str | None = None) -> Labels:
    """Read a label file; the format comes from the suffix (``.tsv``/``.csv`` dcase, ``.rttm``,
    ``.txt`` audacity, ``.json``, ``.TextGrid``) unless ``fmt`` names it. ``tier`` chooses a
    TextGrid's tier (other formats have none). See the ``read_<fmt>`` functions."""
    path = Path(path)
    fmt = _format(path, fmt)
    if fmt == "textgrid":
        return read_textgrid(path, default_name=default_name, tier=tier)
    return _READERS[fmt](path, default_name=default_name)


def write_labels(segments, path, *, fmt: str | None = None, name: str | None = None,
                 duration: float | None = None) -> None:
    """Write ``segments`` (one clip's list, or ``dict[str, list[Segment]]``) to ``path`` in
    ``fmt`` (default: from the suffix). ``name`` is the file id RTTM needs for a list;
    ``duration`` the end of a TextGrid (other formats store none)."""
    path = Path(path)
    fmt = _format(path, fmt)
    if fmt == "textgrid":
        write_textgrid(segments, path, name=name, duration=duration)
        return
    _WRITERS[fmt](segments, path, name=name)


def find_label_file(audio_path) -> Path | None:
    """Return the label file beside ``audio_path`` (``<stem>.tsv``, ``.rttm``, ``.txt``,
    ``.json``, ``.TextGrid``, in that order), or None. A ``.txt`` counts only if it parses as Audacity labels,
    since other text files often sit beside audio."""
    audio_path = Path(audio_path)
    for suffix in LABEL_SUFFIXES:
        candidate = audio_path.with_suffix(suffix)
        if not candidate.is_file() or candidate == audio_path:
            continue
        if suffix == ".txt":
            try:
                read_audacity(candidate)
            except LabelError:
                continue
        return candidate
    return None


def class_names(segments_by_file: Mapping[str, Iterable[Segment]]) -> list[str]:
    """Sorted unique labels over all files."""
    return sorted({s.label for segs in segments_by_file.values() for s in segs})


# ---------------------------------------------------------------------------- frames

def segments_to_frames(segments: Iterable[Segment], *, classes: Sequence[str], n_frames: int,
                       fps: float, path=None) -> np.ndarray:
    """Rasterise segments to 0/1 targets: frame ``i`` is active iff ``onset <= i/fps < offset``.

    Parameters
    ----------
    segments : iterable of Segment
    classes : sequence of str, the output's column order
    n_frames : int
    fps : float, frames per second (``sr / hop_length``)
    path : str or Path, optional, the label file named in errors and warnings

    Returns
    -------
    Y : np.ndarray [shape=(n_frames, n_classes), dtype=float32]

    Raises
    ------
    LabelError
        A label is not in ``classes``. (Segments ending over a frame after the audio are
        clipped with a ``UserWarning`` naming ``path``.)
    """
    if not (isinstance(n_frames, (int, np.integer)) and n_frames >= 0):
        raise ParameterError(f"n_frames={n_frames!r} must be a non-negative integer")
    if not fps > 0:
        raise ParameterError(f"fps={fps!r} must be positive")
    index = {c: k for k, c in enumerate(classes)}
    if len(index) != len(classes):
        raise ParameterError(f"classes={list(classes)!r} has duplicates")
    Y = np.zeros((n_frames, len(classes)), dtype=np.float32)
    end, late = n_frames / fps, []
    for s in segments:
        if s.label not in index:
            raise LabelError(f"{path or '<segments>'}: label {s.label!r} is not one of the "
                             f"classes {list(classes)}")
        if s.offset > end + 1 / fps:
            late.append(s)
        # -1e-6 absorbs float error so frame-aligned times land on their own frame
        start = max(math.ceil(s.onset * fps - 1e-6), 0)
        stop = min(math.ceil(s.offset * fps - 1e-6), n_frames)
        Y[start:stop, index[s.label]] = 1.0
    if late:
        warnings.warn(f"{path or '<segments>'}: {len(late)} segment(s) end after the audio "
                      f"({end:.3f} s), up to {max(s.offset for s in late):.3f} s; clipped",
                      stacklevel=2)
    return Y


def frames_to_intervals(active: np.ndarray, *, fps: float) -> np.ndarray:
    """Runs of active frames ``a .. b-1`` -> intervals ``[a / fps, b / fps)``.

    Parameters
    ----------
    active : np.ndarray [shape=(n_frames,), dtype=bool]
    fps : float
        Frames per second.

    Returns
    -------
    intervals : np.ndarray [shape=(n, 2)]
        Onsets and offsets in seconds, sorted.
    """
    a = np.concatenate([[False], np.asarray(active, dtype=bool), [False]])
    edges = np.flatnonzero(a[1:] != a[:-1])  # alternating run starts and stops
    return np.stack([edges[0::2] / fps, edges[1::2] / fps], axis=1).astype(float)


def frames_to_segments(active, *, classes: Sequence[str], fps: float) -> list[Segment]:
    """Turn each run of active frames ``a..b-1`` into ``Segment(a / fps, b / fps, label)``.

    Parameters
    ----------
    active : np.ndarray [shape=(n_frames, n_classes)], bool or 0/1 (>= 0.5 is active)
    classes : sequence of str
    fps : float

    Returns
    -------
    list of Segment, sorted by onset then label
    """
    active = np.asarray(active)
    if active.ndim != 2 or active.shape[1] != len(classes):
        raise ParameterError(f"active has shape {active.shape}; expected "
                             f"(n_frames, {len(classes)}) for classes {list(classes)}")
    if not fps > 0:
        raise ParameterError(f"fps={fps!r} must be positive")
    on = active if active.dtype == bool else active >= 0.5
    out = [Segment(float(a), float(b), label)
           for k, label in enumerate(classes) for a, b in frames_to_intervals(on[:, k], fps=fps)]
    return sorted(out, key=lambda s: (s.onset, s.label, s.offset))
