"""The evaluate stage: a ``predict --out`` folder against reference labels -> a report.

The metrics themselves are pure functions in :mod:`pipeline.metrics`; this module finds the
files, matches their names, decides each file's duration, and formats the report as a table,
per-file lines or (``pipeline.report``) an HTML page.

References (``--ref``), any of:

- a DATASET (audio with labels beside it, a DCASE metadata TSV, a manifest; see
  :mod:`pipeline.dataset`): durations can come from the audio;
- a folder of label files alone (``.tsv``, ``.rttm``, Audacity ``.txt``, ``.json``,
  ``.TextGrid``; searched recursively), each keyed by its path relative to the folder without the
  suffix, except files that name their clips (an RTTM, a DCASE metadata TSV, a JSON object);
- one label file for many clips (an RTTM as pyannote.metrics and dscore take it, a DCASE
  metadata TSV) or for one clip.

Names are matched by relative path (with or without the audio suffix), then by the path's tail
(``dev/clip`` matches ``clip``), then by a unique stem; references without a prediction count as
nothing predicted (``missing``), predictions without a reference are listed (``extra``) and not
scored. A file the UEM lists is scored even when the references have no line for it (an RTTM
cannot hold a file without events, nor can a DCASE metadata TSV without its empty row): it has no
events. Without a UEM such a file's prediction is one of the ``extra``.

A reference label that is not a class of the predictions' model (a ``dog`` row for a speech
model) is scored as a class of its own with nothing predicted; the model's classes keep their
threshold-free metrics, and the report warns (``"warnings"``).

Threshold-free metrics (AUC, AP, PSDS) are computed on the frame scores after each class's median
filter, as recorded in the ``.scores.json`` (``median_filter``, seconds per class; none: the
scores as they are): the scores the thresholds saw, and the ones ``tune --metric psds1`` scores
(:func:`pipeline.postprocess.filter_scores`, one definition for both).

A file's duration comes from, in this order: the UEM (``--uem``; ``<file> <channel> <start>
<end>``, scoring only ``[start, end]``), the reference audio when present, the predictions'
``.scores.json`` (its ``duration``, else ``(n_frames - 1) / fps``: the last frame is centred on
the last sample's hop, exact when the length is a multiple of the hop, at most one hop short),
else the last offset of its labels. The report says which (``settings.durations_from``).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import AudioLoadError, LabelError, ParameterError, PipelineError
from .inputs import AUDIO_EXTENSIONS, is_audio
from .labels import LABEL_SUFFIXES, Segment, read_dcase, read_labels
from .metrics import evaluate_files
from .report import format_per_file, format_table  # noqa: F401  (the stage's tables)
from .outputs import SCORES, SCORES_INFO
from .postprocess import filter_scores

_SKIP = (SCORES, SCORES_INFO)  # prediction side files, never references


# ---------------------------------------------------------------------------- references


@dataclass
class References:
    """Reference segments per clip name, the audio of those that have it, and where they came
    from."""

    labels: dict[str, list[Segment]]
    audio: dict[str, Path] = field(default_factory=dict)
    origin: str = ""


def _label_files(root: Path) -> list[Path]:
    suffixes = {s.lower() for s in LABEL_SUFFIXES}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not p.name.startswith(".") and not p.name.endswith(_SKIP))


def _is_dataset_folder(root: Path) -> bool:
    return any(is_audio(p) for p in root.rglob("*") if p.is_file())


def _is_manifest(path: Path) -> bool:
    """A ``.csv``/``.tsv`` whose header names ``path`` and ``labels`` columns."""
    if path.suffix.lower() not in (".csv", ".tsv"):
        return False
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            head = fh.readline().strip()
    except OSError:
        return False
    cols = {c.strip() for c in head.replace(",", "\t").split("\t")}
    return {"path", "labels"} <= cols


def _from_label_folder(root: Path, tier: str | None) -> dict[str, list[Segment]]:
    labels: dict[str, list[Segment]] = {}
    for path in _label_files(root):
        rel = path.relative_to(root).with_suffix("").as_posix()
        for name, segs in read_labels(path, default_name=rel, tier=tier).items():
            if name in labels:
                raise LabelError(f"{path}: clip {name!r} already has labels in another file "
                                 f"of {root}")
            labels[name] = segs
    return labels


def read_references(spec: str | Path, *, tier: str | None = None) -> References:
    """Reference labels from a DATASET, a folder of label files, or one label file.

    Raises
    ------
    ParameterError
        ``spec`` does not exist or holds no labels.
    LabelError
        a label file breaks its format's rules (named with the line).
    """
    from .dataset import load_dataset

    path = Path(spec)
    if path.is_dir() and _is_dataset_folder(path):
        ds = load_dataset(path)
        return References({i.name: list(i.segments) for i in ds.items},
                          {i.name: i.source.path for i in ds.items}, f"dataset {spec}")
    if path.is_dir():
        labels, origin = _from_label_folder(path, tier), f"label files in {spec}"
    elif path.is_file() and _is_manifest(path):
        ds = load_dataset(path)
        return References({i.name: list(i.segments) for i in ds.items},
                          {i.name: i.source.path for i in ds.items}, f"manifest {spec}")
    elif path.is_file():
        labels, origin = read_labels(path, default_name=path.stem, tier=tier), f"label file {spec}"
    else:
        raise ParameterError(f"--ref {spec}: no such file or folder")
    if not labels:
        raise ParameterError(f"--ref {spec}: no reference labels found (label files end with "
                             f"{', '.join(LABEL_SUFFIXES)})")
    audio = {n: path.parent / n for n in labels
             if path.is_file() and is_audio(Path(n)) and (path.parent / n).is_file()}
    return References(labels, audio, origin)


def read_uem(path: str | Path) -> dict[str, tuple[float, float]]:
    """A UEM file (``<file> <channel> <start> <end>`` per line; several lines of a file are
    joined into their hull) -> ``{file: (start, end)}``. Raises :class:`LabelError` naming the file
    and the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{path}: cannot read the UEM ({e})") from e
    out: dict[str, tuple[float, float]] = {}
    for n, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        try:
            start, end = float(fields[2]), float(fields[3])
        except (IndexError, ValueError):
            raise LabelError(f"{path}: line {n}: expected '<file> <channel> <start> <end>', "
                             f"got {line.strip()!r}") from None
        if not 0 <= start < end < float("inf"):
            raise LabelError(f"{path}: line {n}: start={start:g}, end={end:g} must have "
                             f"0 <= start < end")
        a, b = out.get(fields[0], (start, end))
        out[fields[0]] = (min(a, start), max(b, end))
    return out


# ---------------------------------------------------------------------------- predictions


def _index_predictions(pred_dir: Path) -> dict[str, Path]:
    """Prediction TSVs by their path relative to ``pred_dir`` without suffix, e.g. ``a/b/clip``."""
    return {tsv.relative_to(pred_dir).with_suffix("").as_posix(): tsv
            for tsv in sorted(pred_dir.rglob("*.tsv"))}


def _bare(name: str) -> str:
    """A clip name without its audio suffix: ``a/clip.flac`` -> ``a/clip``."""
    p = PurePosixPath(name)
    return p.with_suffix("").as_posix() if p.suffix.lower() in AUDIO_EXTENSIONS else p.as_posix()


def match_names(refs, preds) -> tuple[dict[str, str], list[str], list[str]]:
    """Pair reference clip names with prediction keys: same relative path (with or without the
    audio suffix), then one path ending with the other (``dev/clip`` and ``clip``), then a unique
    stem. Each prediction serves one reference.

    Returns
    -------
    pairs : dict of reference name to prediction key
    missing : reference names without a prediction
    extra : prediction keys without a reference
    """
    free = set(preds)
    pairs: dict[str, str] = {}
    rules = (lambda r, k: k in (r, _bare(r)),
             lambda r, k: _bare(r).endswith("/" + k) or k.endswith("/" + _bare(r)),
             lambda r, k: PurePosixPath(k).name in (PurePosixPath(_bare(r)).name,
                                                    PurePosixPath(r).name))
    for rule in rules:
        for r in sorted(refs):
            if r in pairs:
                continue
            found = sorted((k for k in free if rule(r, k)), key=lambda k: (k != r, k))
            if len(found) == 1 or (found and rule is rules[0]):
                pairs[r] = found[0]
                free.discard(found[0])
    missing = sorted(r for r in refs if r not in pairs)
    return pairs, missing, sorted(free)


def _scores_info(tsv: Path) -> tuple[dict | None, Path | None]:
    """The ``.scores.json`` beside a prediction (and its ``.scores.npy`` if present)."""
    side, npy = tsv.with_name(tsv.stem + SCORES_INFO), tsv.with_name(tsv.stem + SCORES)
    if not side.is_file():
        return None, None
    try:
        info = json.loads(side.read_text())
        float(info["fps"]), list(info["classes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{side}: unreadable scores description ({exc})") from None
    return info, npy if npy.is_file() else None


def _load_scores(npy: Path, info: dict, classes: list[str]) -> np.ndarray | None:
    """The scores' columns in ``classes`` order after each class's median filter (the
    ``.scores.json``'s ``median_filter``, none if absent), or None when a class has no column."""
    if any(c not in info["classes"] for c in classes):
        return None
    try:
        sc = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{npy}: unreadable scores ({exc})") from None
    medians = info.get("median_filter") or {}
    try:
        medians = [float(medians.get(c, 0.0)) for c in classes]
        return filter_scores(sc[:, [info["classes"].index(c) for c in classes]], median_filter=medians,
                             fps=float(info["fps"]))
    except (AttributeError, TypeError, ValueError, PipelineError) as exc:
        raise PipelineError(f"{npy.with_name(npy.name[:-len(SCORES)] + SCORES_INFO)}: median_filter "
                            f"{info.get('median_filter')!r} must map each class to seconds >= 0 "
                            f"({exc})") from None


# ---------------------------------------------------------------------------- durations


def _audio_duration(path: Path) -> float:
    """Seconds of a reference audio file, from its header (soundfile), else by decoding."""
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception as exc:  # noqa: BLE001 - libsndfile cannot read it: try the decoder chain
        first = exc
    from .audio import decode

    try:
        y, sr = decode(path)
    except PipelineError as exc:
        raise AudioLoadError(f"{path}: cannot read the reference audio's duration ({first}; {exc})") from None
    return len(y) / sr


def _uem_keys(name: str) -> tuple[str, ...]:
    """The UEM file ids a clip name answers to: itself, without the audio suffix, its stem."""
    return name, _bare(name), PurePosixPath(_bare(name)).name


def _uem_entry(uem: dict, name: str):
    for key in _uem_keys(name):
        if key in uem:
            return uem[key]
    return None


def _uem_files_without_labels(uem: dict, labels: dict) -> list[str]:
    """The UEM's files that no reference clip answers to: files without events in a reference
    form that cannot list them (an RTTM, a DCASE metadata TSV without their empty row)."""
    known = {key for name in labels for key in _uem_keys(name)}
    return sorted(f for f in uem if f not in known)


def _duration(name: str, refs: References, info: dict | None, uem: dict | None):
    """(start, end, source) of one file's scored region."""
    entry = _uem_entry(uem, name) if uem else None
    if entry is not None:
        return entry[0], entry[1], "uem"
    if name in refs.audio:
        return 0.0, _audio_duration(refs.audio[name]), "audio"
    if info is not None and "duration" in info:
        return 0.0, float(info["duration"]), "scores"
    if info is not None and "n_frames" in info:
        return 0.0, max(int(info["n_frames"]) - 1, 0) / float(info["fps"]), "scores"
    return 0.0, None, "labels"


def _crop(segs: list[Segment], start: float, end: float | None) -> list[Segment]:
    if end is None:
        return list(segs)
    out = [Segment(max(s.onset, start), min(s.offset, end), s.label) for s in segs]
    return [s for s in out if s.offset > s.onset or (s.onset == s.offset and start <= s.onset < end)]


# ---------------------------------------------------------------------------- the stage


@dataclass
class Gathered:
    """Everything the metrics need, by reference clip name."""

    refs: dict[str, list[Segment]]
    preds: dict[str, list[Segment]]
    durations: dict[str, float]
    sources: dict[str, str]
    scores: dict[str, np.ndarray]
    fps: dict[str, float]
    pred_paths: dict[str, Path]
    extra: list[str]
    classes: list[str]
    scored_classes: list[str] = field(default_factory=list)  # the classes the scores have
    warnings: list[str] = field(default_factory=list)


def gather(pred_dir: str | Path, ref_spec: str | Path, *, tier: str | None = None,
           uem: str | Path | None = None) -> Gathered:
    """Read references, predictions, scores and durations, matched by name."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise ParameterError(f"--pred {pred_dir}: not a directory of predictions")
    refs = read_references(ref_spec, tier=tier)
    uem_map = read_uem(uem) if uem else None
    if uem_map:  # every file the UEM lists is scored: one the references do not name has no events
        refs.labels.update({f: [] for f in _uem_files_without_labels(uem_map, refs.labels)})
    index = _index_predictions(pred_dir)
    pairs, _, extra = match_names(refs.labels, index)
    g = Gathered({}, {}, {}, {}, {}, {}, {}, extra, [])
    infos = {}
    for name in refs.labels:
        path = index.get(pairs.get(name, ""))
        info, npy = _scores_info(path) if path is not None else (None, None)
        start, end, g.sources[name] = _duration(name, refs, info, uem_map)
        g.refs[name] = _crop(refs.labels[name], start, end)
        if path is not None:
            segs = [s for v in read_dcase(path, default_name=name).values() for s in v]
            g.preds[name], g.pred_paths[name] = _crop(segs, start, end), path
        if end is not None:
            g.durations[name] = end
        if info is not None:
            g.fps[name], infos[name] = float(info["fps"]), (info, npy)
    labels = {s.label for segs in [*g.refs.values(), *g.preds.values()] for s in segs}
    g.classes = sorted(labels)
    model_classes = list(dict.fromkeys(c for info, _ in infos.values() for c in info["classes"]))
    g.scored_classes = [c for c in g.classes if c in model_classes] if infos else list(g.classes)
    unknown = [c for c in g.classes if c not in g.scored_classes]
    if unknown:
        g.warnings.append(
            f"--ref {ref_spec}: label(s) {', '.join(map(repr, unknown))} not among the model's classes "
            f"({', '.join(model_classes)}): scored as classes with nothing predicted; AUC, AP and "
            f"PSDS cover {', '.join(g.scored_classes) or 'no class'}")
    for name, (info, npy) in infos.items():
        sc = (_load_scores(npy, info, g.scored_classes)
              if npy is not None and g.scored_classes else None)
        if sc is not None:
            g.scores[name] = sc
    return g


def evaluate_dir(pred_dir: str | Path, ref_spec: str | Path, *, collar: float = 0.2,
                 segment_length: float = 1.0, tier: str | None = None,
                 uem: str | Path | None = None, ci: bool = False, threshold_free: bool = True,
                 report_dir: str | Path | None = None) -> dict:
    """Evaluate a ``predict --out`` folder against references (see the module docstring).

    Frame scores come from ``.scores.npy`` (+ ``.scores.json``) beside a prediction when present.
    A reference clip without a prediction counts as nothing predicted and is listed under
    ``"missing"``; predictions without a reference under ``"extra"``. With ``report_dir`` the HTML
    page (:func:`pipeline.report.write_report`) is written there too.
    """
    g = gather(pred_dir, ref_spec, tier=tier, uem=uem)
    if not g.classes:
        raise LabelError(f"--ref {ref_spec}: no events in the references nor the predictions; "
                         "nothing to evaluate")
    fps = {n: g.fps.get(n, 100.0) for n in g.refs}
    report = evaluate_files(g.refs, g.preds, classes=g.classes, durations=g.durations, fps=fps,
                            scores=g.scores or None, score_classes=g.scored_classes or None,
                            collar=collar, segment_length=segment_length,
                            threshold_free=threshold_free, ci=ci,
                            with_curves=report_dir is not None)
    report["extra"] = list(g.extra)
    report["warnings"] = list(g.warnings)
    for name, source in g.sources.items():
        report["per_file"][str(name)]["duration_from"] = source
    report["settings"].update(pred=str(pred_dir), ref=str(ref_spec), tier=tier,
                              uem=None if uem is None else str(uem),
                              durations_from=dict(sorted(Counter(g.sources.values()).items())))
    if report_dir is not None:
        from .report import write_report

        report["settings"]["report"] = str(write_report(report_dir, report, g))
    return report


# ---------------------------------------------------------------------------- text
