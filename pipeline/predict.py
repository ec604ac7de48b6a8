"""The predict stage: spectrogram + model -> frame scores -> segments and files.

Scores are what the network computes, so they are cached (stage ``predict``, keyed by the
features key, the model's weights digest and the stitching settings). Turning scores into
segments (:mod:`pipeline.postprocess`) is cheap and never cached: retuning thresholds never
reruns the network.

Two ways to run a model over a long file:

- unidirectional models run **statefully**: chunk after chunk, carrying the recurrent state, which
  equals one pass over the whole file (several files step together in one batch; a shorter file's
  zero padding comes after its last frame, which a causal model never sees);
- bidirectional models (or ``predict.stateful=false``) run on **overlapping chunks** of
  ``chunk_duration`` seconds every ``chunk_step`` seconds, batched across files, and the chunk
  scores are averaged with window weights (:func:`pipeline.stitch.overlap_add`). The last chunk
  is moved back to end at the last frame, so no chunk holds padding.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from .config import Config, LoadConfig, FeaturesConfig, PredictConfig, section_from_dict
from .errors import ModelError, ParameterError, PipelineError
from .labels import Segment, write_labels
from .nets import FrameModel
from .outputs import OutputDir, assign_bases
from .postprocess import scores_to_segments
from .stitch import chunk_starts, overlap_add

FORMATS = {"tsv": ".tsv", "rttm": ".rttm", "audacity": ".txt", "json": ".json", "npy": ".scores.npy"}
LABEL_FMT = {"tsv": "dcase", "rttm": "rttm", "audacity": "audacity", "json": "json"}


# ------------------------------------------------------------------ configuration from the model


def config_for_model(model_config: dict[str, Any], cfg: Config, overrides: Iterable[str] = (), *,
                     where: str = "model config.json") -> Config:
    """The run's config with ``load`` and ``features`` rebuilt from the model's ``config.json``.

    ``predict`` settings come from the model (its tuned post-processing) unless the command line
    sets them. A ``--set load...`` or ``--set features...`` that contradicts the model is an
    error: the network only understands the features it was trained on.
    """
    from .config import key_fields, parse_set

    for table in ("load", "features"):
        if not isinstance(model_config.get(table), dict):
            raise ModelError(f"{where}: needs a {table!r} table (the settings the model was trained with)")
    classes = model_config.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise ModelError(f"{where}: needs 'classes', a non-empty list of class names (got {classes!r})")
    load = section_from_dict(LoadConfig, "load", model_config["load"], source="model config.json")
    feats = section_from_dict(FeaturesConfig, "features", model_config["features"], source="model config.json")
    trained = {"load": key_fields(load), "features": key_fields(feats)}  # what the output depends on
    given = set()
    for expr in overrides:
        section, key, _ = parse_set(expr)
        if section == "predict":
            given.add(key)
        elif key in trained.get(section, {}) and getattr(getattr(cfg, section), key) != trained[section][key]:
            raise ParameterError(
                f"--set {expr}: the model was trained with {section}.{key}={trained[section][key]!r}; "
                f"predict rebuilds the model's features and cannot change them")
    tunable = {f.name for f in dataclasses.fields(PredictConfig) if f.metadata.get("key", True)}
    model_predict = {k: v for k, v in model_config.get("predict", {}).items() if k not in given and k in tunable}
    predict = dataclasses.replace(cfg.predict, **model_predict) if model_predict else cfg.predict
    feats = dataclasses.replace(feats, batch_size=cfg.features.batch_size)
    return cfg.replace(load=load, features=feats, predict=predict)


def score_key_fields(model: FrameModel, pcfg: PredictConfig) -> dict[str, Any]:
    """The predict settings that change the scores (not the post-processing)."""
    if not model.cfg.bidirectional and pcfg.stateful:
        return {"mode": "stateful"}
    return {"mode": "overlap", "chunk_duration": pcfg.chunk_duration, "chunk_step": pcfg.chunk_step,
            "window": pcfg.window}


# ------------------------------------------------------------------ scores


def _outputs(model: FrameModel, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Network outputs -> per-frame scores: probabilities (classify) or prediction error (forecast)."""
    if model.cfg.task == "classify":
        return model.probabilities(out)
    err = model.frame_error(x, out)  # (B, T), NaN for the first `horizon` frames
    return torch.nan_to_num(err, nan=0.0)[..., None]


@torch.no_grad()
def score_stateful(model: FrameModel, feats: list[np.ndarray], *, chunk_frames: int, device: str) -> list[np.ndarray]:
    """Several files in one batch, chunk by chunk with the state carried: exact one-pass scores."""
    longest = max(len(S) for S in feats)
    x = np.zeros((len(feats), longest, feats[0].shape[1]), dtype=np.float32)
    for i, S in enumerate(feats):
        x[i, : len(S)] = S
    xt = torch.from_numpy(x).to(device)  # (B, T, F)
    outs, state = [], None
    for start in range(0, longest, chunk_frames):
        xc = xt[:, start: start + chunk_frames]
        out, state = model(xc, state)  # (B, t, C)
        outs.append(out)
    out = torch.cat(outs, dim=1)
    scores = _outputs(model, xt, out).float().cpu().numpy()  # (B, T, C)
    return [np.ascontiguousarray(scores[i, : len(S)]) for i, S in enumerate(feats)]


SINGLE_CHUNK_SLACK = 1.25  # a file up to this many chunk lengths runs as one chunk


def chunk_plan(n_frames: int, *, frames: int, hop: int) -> np.ndarray:
    """Chunk starts covering ``n_frames``, the last moved back to end at the last frame.

    A file of at most ``SINGLE_CHUNK_SLACK * frames`` frames is one chunk of its own length
    (returns ``[0]``): a 20.02 s file with 20 s chunks is one pass, not two nearly equal ones.
    """
    if n_frames <= SINGLE_CHUNK_SLACK * frames:
        return np.zeros(1 if n_frames else 0, dtype=np.int64)
    starts = chunk_starts(n_frames, frames=frames, hop=hop)
    starts[-1] = n_frames - frames
    return np.unique(starts)


@torch.no_grad()
def score_overlap(model: FrameModel, feats: list[np.ndarray], *, frames: int, hop: int, window: str,
                  batch_size: int, device: str) -> list[np.ndarray]:
    """Overlapping chunks from all files, batched, then weighted overlap-add per file.

    A file of at most ``SINGLE_CHUNK_SLACK`` chunk lengths is one chunk of its own length; such
    files are batched with others of the same length (no padding: a backward recurrence must not
    see any).
    """
    jobs: dict[int, list[tuple[int, int]]] = {}  # chunk length -> [(file, start)]
    single = [len(S) <= SINGLE_CHUNK_SLACK * frames for S in feats]
    for i, S in enumerate(feats):
        if single[i]:
            jobs.setdefault(len(S), []).append((i, 0))
        else:
            jobs.setdefault(frames, []).extend((i, int(s)) for s in chunk_plan(len(S), frames=frames, hop=hop))
    results: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(len(feats))}
    for length, group_all in jobs.items():
        for b in range(0, len(group_all), batch_size):
            group = group_all[b: b + batch_size]
            x = torch.from_numpy(np.stack([feats[i][s: s + length] for i, s in group]).astype(np.float32))
            x = x.to(device)  # (B, length, F)
            sc = _outputs(model, x, model(x)[0]).float().cpu().numpy()  # (B, length, C)
            for (i, s), chunk in zip(group, sc):
                results[i].append((s, chunk))
    out = []
    for i, S in enumerate(feats):
        if single[i]:
            out.append(results[i][0][1])
            continue
        starts = np.array([s for s, _ in results[i]])
        stacked = np.stack([c for _, c in results[i]])
        out.append(overlap_add(stacked, starts, n_frames=len(S), window=window).astype(np.float32))
    return out


def score_files(model: FrameModel, feats: list[np.ndarray], *, fps: float, pcfg: PredictConfig,
                device: str = "cpu") -> list[np.ndarray]:
    """Frame scores [shape=(n_frames, C)] for each spectrogram, by the model's way of running."""
    frames = max(1, int(round(pcfg.chunk_duration * fps)))
    if not model.cfg.bidirectional and pcfg.stateful:
        return score_stateful(model, feats, chunk_frames=frames, device=device)
    hop = max(1, int(round(pcfg.chunk_step * fps)))
    return score_overlap(model, feats, frames=frames, hop=hop, window=pcfg.window,
                         batch_size=pcfg.batch_size, device=device)


# ------------------------------------------------------------------ segments and files


def segments(scores: np.ndarray, *, classes: list[str], fps: float, pcfg: PredictConfig) -> list[Segment]:
    """Post-process one file's scores with the predict settings."""
    return scores_to_segments(
        scores, classes=classes, fps=fps, threshold=pcfg.threshold,
        offset_threshold=None if pcfg.offset_threshold < 0 else pcfg.offset_threshold,
        median_filter=pcfg.median_filter, min_duration_on=pcfg.min_duration_on,
        min_duration_off=pcfg.min_duration_off, pad_onset=pcfg.pad_onset, pad_offset=pcfg.pad_offset,
        max_duration=pcfg.max_duration)


def output_suffixes(formats: Iterable[str], plot: bool = False) -> list[str]:
    """Every suffix one input's outputs get: ``.tsv`` always, the formats asked for, the plot."""
    suffixes = [FORMATS[f] for f in dict.fromkeys(["tsv", *formats])]
    if "npy" in formats:
        suffixes.append(".scores.json")
    return suffixes + ([".png"] if plot else [])


def write_outputs(out, base, segs: list[Segment], scores: np.ndarray, *, fps: float, classes: list[str],
                  formats: Iterable[str], name: str) -> list[Path]:
    """Write the requested formats beside each other (``.tsv`` always) through ``out``
    (:class:`pipeline.outputs.OutputDir`), under the relative ``base`` name."""
    written = []
    for fmt in dict.fromkeys(["tsv", *formats]):
        if fmt == "npy":
            side = json.dumps({"fps": fps, "classes": classes, "n_frames": int(len(scores)), "source": name},
                              indent=1) + "\n"
            written.append(out.write(out.path(base, FORMATS[fmt]),
                                     lambda p: np.save(p, np.asarray(scores, dtype=np.float32))))
            written.append(out.write(out.path(base, ".scores.json"), lambda p: p.write_text(side)))
        else:
            written.append(out.write(out.path(base, FORMATS[fmt]), lambda p, f=fmt: write_labels(
                list(segs), p, fmt=LABEL_FMT[f], name=Path(name).stem)))
    return written


def parse_formats(text: str) -> list[str]:
    fmts = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise ParameterError(f"--format {bad[0]!r} must be among {', '.join(FORMATS)}")
    return fmts


# ------------------------------------------------------------------ the whole job


def predict_to_dir(inputs, model_dir: str | Path, out_dir: str | Path, cfg: Config, settings, *,
                   overrides: Iterable[str] = (), formats: Iterable[str] = (), plot: bool = False,
                   reference: dict[str, list[Segment]] | None = None):
    """Scores (cached) -> segments -> files in ``out_dir`` mirroring the inputs, and plots.

    Returns the run's :class:`pipeline.runner.Report` and the config used (the model's features
    and post-processing, with the command line's predict overrides).
    """
    from .inputs import expand_inputs
    from .nets import WEIGHTS_FILE, load_model
    from .runner import predict_files

    model, mconf = load_model(model_dir)
    cfg = config_for_model(mconf, cfg, overrides, where=f"{model_dir}/config.json")
    formats = list(formats)
    out = OutputDir(out_dir)  # checked writable before any work
    cache = settings.cache()
    digest = cache.fingerprint(Path(model_dir) / WEIGHTS_FILE)
    sources, problems = expand_inputs(inputs)
    report = predict_files(sources, model, digest, cfg, settings, problems=problems)
    classes = list(mconf["classes"])
    by_path = {str(s.path): s for s in sources}
    bases = assign_bases([(str(s.path), s.rel) for s in sources], output_suffixes(formats, plot))
    for r in report.results:
        if r.status == "failed":
            continue
        src = by_path[r.path]
        try:
            _write_one(out, bases[r.path], src, r, cache, cfg, classes, formats, plot, reference)
        except PipelineError as exc:  # this input's outputs only; the others go on
            r.status, r.error = "failed", str(exc)
    return report, cfg


def _write_one(out, base, src, r, cache, cfg: Config, classes: list[str], formats: list[str], plot: bool,
               reference: dict[str, list[Segment]] | None) -> None:
    """Segments of one input's cached scores, written in every format asked for (and its plot)."""
    entry = cache.load("predict", r.keys["predict"])
    fps = float(entry.meta["fps"])
    scores = np.asarray(entry["scores"])
    segs = segments(scores, classes=classes, fps=fps, pcfg=cfg.predict)
    write_outputs(out, base, segs, scores, fps=fps, classes=classes, formats=formats, name=src.rel.as_posix())
    if plot:
        from .plot import plot_file
        from .runner import ensure_entry

        ref = None
        if reference is not None:
            ref = reference.get(src.rel.as_posix(), reference.get(src.path.name))
        S = np.asarray(ensure_entry(cache, cfg, "features", r.keys, str(src.path))["S"])
        out.write(out.path(base, ".png"), lambda p: plot_file(
            p, S=S, fps=fps, scores=scores, classes=classes, segments=segs, reference=ref,
            threshold=cfg.predict.threshold, title=f"{src.rel.as_posix()}  ({len(segs)} segments)",
            kind=cfg.features.kind))
