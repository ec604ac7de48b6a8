"""The predict stage: spectrogram + model -> frame scores -> segments and files.

Scores are what the network computes, so they are cached (stage ``predict``, keyed by the
features key, the model's weights digest and the stitching settings). Turning scores into
segments (:mod:`pipeline.postprocess`) is cheap and never cached: retuning thresholds never
reruns the network.

The network runs through an engine on numpy arrays (:mod:`pipeline.engine`): ONNX Runtime where
the model has ``model.onnx`` (torch is then never imported), else torch; both give the same scores
to about 1e-6, so the engine stays out of the cache key, as the device does.

Two ways to run a model over a long file:

- unidirectional models run **statefully**: chunk after chunk, carrying the recurrent state, which
  equals one pass over the whole file (several files step together in one batch; a shorter file's
  padding comes after its last frame, made of the end frames a look-ahead model reads there);
- bidirectional models (or ``predict.stateful=false``) run on **overlapping chunks** of
  ``chunk_duration`` seconds every ``chunk_step`` seconds, batched across files, and the chunk
  scores are averaged with window weights (:func:`pipeline.stitch.overlap_add`). The last chunk
  is moved back to end at the last frame, so no chunk holds padding.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np

from .config import (Config, FeaturesConfig, LoadConfig, PredictConfig, key_fields, score_fields,
                     section_from_dict)
from .errors import ModelError, ParameterError
from .labels import Segment

from .postprocess import scores_to_segments
from .stitch import chunk_starts, overlap_add

FILES_PER_BATCH = 64  # files whose chunks share network calls (a recurrent net is bound by
                      # per-time-step overhead at small batches)
FRAMES_PER_BATCH = 4_000_000  # padded frames held at once (1 GiB of 64-bin float32)


# ------------------------------------------------------------------ configuration from the model


def config_for_model(model_config: dict[str, Any], cfg: Config, given: Iterable[str] = (), *,
                     where: str = "model config.json") -> Config:
    """The run's config with ``load`` and ``features`` rebuilt from the model's ``config.json``.

    ``predict`` settings (how it is run, its tuned post-processing) come from the model unless the
    command line set them (``given``: the ``"section.key"`` names it set, from :func:`pipeline.config.build_config`).
    A ``load``/``features`` setting given on the command line that contradicts the model is an
    error: the network only understands the features it was trained on.
    """
    for table in ("load", "features"):
        if not isinstance(model_config.get(table), dict):
            raise ModelError(f"{where}: needs a {table!r} table (the settings the model was trained with)")
    classes = model_config.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise ModelError(f"{where}: needs 'classes', a non-empty list of class names (got {classes!r})")
    load = section_from_dict(LoadConfig, "load", model_config["load"], source=where)
    feats = section_from_dict(FeaturesConfig, "features", model_config["features"], source=where)
    trained = {"load": key_fields(load), "features": key_fields(feats)}  # what the output depends on
    given = set(given)
    for name in sorted(given):
        section, key = name.split(".", 1)
        if key in trained.get(section, {}) and getattr(getattr(cfg, section), key) != trained[section][key]:
            raise ParameterError(
                f"--set {name}={getattr(getattr(cfg, section), key)!r}: the model was trained with "
                f"{name}={trained[section][key]!r}; predict rebuilds the model's features and cannot change them")
    stored = key_fields(cfg.predict)  # how the model is run and post-processed (not batch sizes)
    model_predict = {k: v for k, v in model_config.get("predict", {}).items()
                     if k in stored and f"predict.{k}" not in given}
    predict = dataclasses.replace(cfg.predict, **model_predict) if model_predict else cfg.predict
    feats = dataclasses.replace(feats, batch_size=cfg.features.batch_size)
    if predict.level_db:
        from .features import level_floor

        level_floor(feats)  # a kind that a gain does not move by a constant is refused here
    return cfg.replace(load=load, features=feats, predict=predict)


def runs_stateful(model, pcfg: PredictConfig) -> bool:
    """Whether the scores come from one stateful pass (unidirectional model, ``stateful``), not
    from overlapping chunks."""
    return not model.cfg.bidirectional and pcfg.stateful


def key_config(pcfg: PredictConfig, context: dict) -> dict[str, Any]:
    """Stage ``predict``'s key settings: the ones that change the scores for this model."""
    # the input level enters only when set: the scores of a model without it keep their keys
    level = {"level_db": pcfg.level_db, "level_range_db": pcfg.level_range_db} if pcfg.level_db else {}
    if runs_stateful(context["model"], pcfg):
        return {"mode": "stateful", **level}
    return {"mode": "overlap", **{k: v for k, v in score_fields(pcfg).items()
                                  if k != "stateful" and not k.startswith("level_")}, **level}


# ------------------------------------------------------------------ scores
# ``model`` below: an engine network, a lazily opened model directory (jobs.LazyNetwork) or a
# torch FrameModel (engine.as_network turns each into an engine network)


def _outputs(net, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Engine scores -> per-frame scores: probabilities (classify) or prediction error (forecast)."""
    if net.cfg.task == "classify":
        return out
    from .engine import frame_error

    return frame_error(net, x, out)  # (B, T, 1)


def score_stateful(model, feats: list[np.ndarray], *, chunk_frames: int, device: str = "cpu") -> list[np.ndarray]:
    """Several files in one batch, chunk by chunk with the state carried: exact one-pass scores.

    Only one chunk of features per file is in memory at a time (a shorter file's padding comes
    after its last frame: a causal model never sees it, and a look-ahead model reads the end frames
    it would read after the file alone); the forecast task compares each
    frame with a later one, so it takes the whole sequence at once.
    """
    from .engine import as_network, stream_chunks

    net = as_network(model, device)
    longest = max(len(S) for S in feats)
    if net.cfg.task != "classify":
        x = np.zeros((len(feats), longest, feats[0].shape[1]), dtype=np.float32)
        for i, S in enumerate(feats):
            x[i, : len(S)] = S[0: len(S)]
        out = np.concatenate(list(stream_chunks(net, (x[:, s: s + chunk_frames]
                                                      for s in range(0, longest, chunk_frames)))), axis=1)
        scores = _outputs(net, x, out)
        return [np.ascontiguousarray(scores[i, : len(S)]) for i, S in enumerate(feats)]

    end = net.end_frames(1, 1)[0, 0]  # a look-ahead model reads these after a file

    def chunks():
        for start in range(0, longest, chunk_frames):
            xc = np.empty((len(feats), min(chunk_frames, longest - start), feats[0].shape[1]), dtype=np.float32)
            for i, S in enumerate(feats):
                part = S[start: start + chunk_frames]
                xc[i, : len(part)] = part
                xc[i, len(part):] = end
            yield xc  # (B, t, F)
    out = np.zeros((len(feats), longest, net.n_outputs), dtype=np.float32)
    start = 0
    for o in stream_chunks(net, chunks()):
        out[:, start: start + o.shape[1]] = o
        start += o.shape[1]
    return [np.ascontiguousarray(out[i, : len(S)]) for i, S in enumerate(feats)]


SINGLE_CHUNK_SLACK = 1.25  # a file up to this many chunk lengths runs as one chunk


def single_chunk(n_frames: int, frames: int) -> bool:
    """A file of at most ``SINGLE_CHUNK_SLACK`` chunk lengths runs as one chunk of its own length."""
    return n_frames <= SINGLE_CHUNK_SLACK * frames


def chunk_plan(n_frames: int, *, frames: int, hop: int) -> np.ndarray:
    """Chunk starts covering ``n_frames``, the last moved back to end at the last frame.

    A file of at most ``SINGLE_CHUNK_SLACK * frames`` frames is one chunk of its own length
    (returns ``[0]``): a 20.02 s file with 20 s chunks is one pass, not two nearly equal ones.
    """
    if single_chunk(n_frames, frames):
        return np.zeros(1 if n_frames else 0, dtype=np.int64)
    starts = chunk_starts(n_frames, frames=frames, hop=hop)
    starts[-1] = n_frames - frames
    return np.unique(starts)


def score_overlap(model, feats: list[np.ndarray], *, frames: int, hop: int, window: str,
                  batch_size: int, device: str = "cpu") -> list[np.ndarray]:
    """Overlapping chunks from all files, batched, then weighted overlap-add per file.

    A file of at most ``SINGLE_CHUNK_SLACK`` chunk lengths is one chunk of its own length; such
    files are batched with others of the same length (no padding: a backward recurrence must not
    see any). A call holds at most the engine's ``call_frames`` frames (bounded activations).
    """
    from .engine import as_network

    net = as_network(model, device)
    jobs: dict[int, list[tuple[int, int]]] = {}  # chunk length -> [(file, start)]
    single = [single_chunk(len(S), frames) for S in feats]
    for i, S in enumerate(feats):
        if single[i]:
            jobs.setdefault(len(S), []).append((i, 0))
        else:
            jobs.setdefault(frames, []).extend((i, int(s)) for s in chunk_plan(len(S), frames=frames, hop=hop))
    results: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(len(feats))}
    for length, group_all in jobs.items():
        per_call = max(1, min(batch_size, net.call_frames // max(1, length)))
        for b in range(0, len(group_all), per_call):
            group = group_all[b: b + per_call]
            x = np.stack([feats[i][s: s + length] for i, s in group]).astype(np.float32, copy=False)  # (B, length, F)
            sc = _outputs(net, x, net.whole(x))  # (B, length, C)
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


def score_files(model, feats: list[np.ndarray], *, fps: float, pcfg: PredictConfig,
                device: str = "cpu", features: FeaturesConfig | None = None) -> list[np.ndarray]:
    """Frame scores [shape=(n_frames, C)] for each spectrogram, by the model's way of running.

    With ``pcfg.level_db`` (not 0) each file is first moved to that level
    (:func:`pipeline.features.leveled`, which needs the model's ``features`` settings)."""
    if pcfg.level_db:
        feats = level_inputs(feats, pcfg, features)
    frames = max(1, int(round(pcfg.chunk_duration * fps)))
    if runs_stateful(model, pcfg):
        return score_stateful(model, feats, chunk_frames=frames, device=device)
    hop = max(1, int(round(pcfg.chunk_step * fps)))
    return score_overlap(model, feats, frames=frames, hop=hop, window=pcfg.window,
                         batch_size=pcfg.batch_size, device=device)


def level_inputs(feats: list, pcfg: PredictConfig, features: FeaturesConfig | None) -> list:
    """Each file's rows moved to ``pcfg.level_db`` (at most ``pcfg.level_range_db`` either way)."""
    from .features import leveled

    if features is None:
        raise ParameterError("predict.level_db: scoring needs the model's features settings to move "
                             "the input level (score_files(..., features=...))")
    return [leveled(S, features, pcfg.level_db, pcfg.level_range_db) for S in feats]


# ------------------------------------------------------------------ segments and files


def class_settings(per_class: dict | None, classes: list[str], pcfg: PredictConfig) -> dict[str, list[float]]:
    """``threshold`` and ``median_filter`` per class: a model's ``predict_per_class`` (written by
    ``tune``) where it names a class, else ``pcfg``'s."""
    per = per_class or {}
    return {"threshold": [float(per.get(c, {}).get("threshold", pcfg.threshold)) for c in classes],
            "median_filter": [float(per.get(c, {}).get("median_filter", pcfg.median_filter)) for c in classes]}


def segments(scores: np.ndarray, *, classes: list[str], fps: float, pcfg: PredictConfig,
             per_class: dict | None = None, duration: float | None = None,
             threshold=None, median_filter=None) -> list[Segment]:
    """Post-process one file's scores with the predict settings (the one place that does).

    ``per_class``: a model's per-class threshold and median filter; ``threshold``/``median_filter``
    (one value or one per class) override both; ``duration`` (seconds): no segment ends after it.
    The offset threshold is capped at each class's threshold.
    """
    settings = class_settings(per_class, classes, pcfg)
    thr = np.broadcast_to(np.asarray(settings["threshold"] if threshold is None else threshold, dtype=float),
                          (len(classes),))
    off = None if pcfg.offset_threshold < 0 else np.minimum(pcfg.offset_threshold, thr)
    return scores_to_segments(
        scores, classes=classes, fps=fps, threshold=thr, offset_threshold=off,
        median_filter=settings["median_filter"] if median_filter is None else median_filter,
        min_duration_on=pcfg.min_duration_on, min_duration_off=pcfg.min_duration_off,
        pad_onset=pcfg.pad_onset, pad_offset=pcfg.pad_offset, max_duration=pcfg.max_duration, duration=duration)


def length_batches(items: list, lengths: list[int], max_files: int = FILES_PER_BATCH,
                   max_frames: int = FRAMES_PER_BATCH):
    """Groups of items of similar length (sorted), each at most ``max_files`` long and padded to
    at most ``max_frames`` frames in all (``len(group) * longest``), so that one long recording
    neither pads many short ones nor blows the memory."""
    order = sorted(range(len(items)), key=lambda i: lengths[i])
    group: list[int] = []
    for i in order:
        if group and (len(group) >= max_files or (len(group) + 1) * lengths[i] > max_frames):
            yield [items[j] for j in group]
            group = []
        group.append(i)
    if group:
        yield [items[j] for j in group]


def compute_batched(pcfg: PredictConfig, inputs: list, *, model, device: str = "cpu",
                    threads: int = 1, files_per_batch: int = FILES_PER_BATCH,
                    features: FeaturesConfig | None = None, **_):
    """Stage ``predict``: frame scores of many features entries, several files per network call
    (files of similar length together); yields ``(i, ({"scores": ...}, meta))`` per input.
    ``model``: the run's network (``jobs.LazyNetwork``: opened on its engine now), or a torch
    ``FrameModel``."""
    from .engine import as_network

    model = as_network(model, device, threads)
    lengths = [int(up[0].meta["n_frames"]) for up in inputs]
    for group in length_batches(list(range(len(inputs))), lengths, files_per_batch):
        entries = [inputs[i][0] for i in group]
        fps = float(entries[0].meta["fps"])
        # rows read as the chunks need them: memory does not grow with a file's length
        scores = score_files(model, [e.rows("S") for e in entries], fps=fps, pcfg=pcfg, device=device,
                             features=features)
        for i, e, sc in zip(group, entries, scores):
            yield i, ({"scores": sc}, {"fps": fps, "duration": e.meta["duration"], "device": device})
