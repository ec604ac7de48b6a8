"""Whole jobs above the runner: "score these inputs with this model", then segments and files.

The runner brings stages up to date; a job strings them together for a person's question. One
place loads a model for a run (its features and tuned post-processing become the run's settings,
:func:`open_model`), one place scores inputs with it (:func:`predict_files`, used by ``predict``,
``plot``, ``tune``, ``run`` and the Python API), and one place writes a prediction folder
(:func:`predict_to_dir`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .config import Config
from .errors import PipelineError
from .inputs import Source, expand_inputs
from .labels import Segment
from .outputs import OutputDir, assign_bases, output_suffixes, write_outputs
from .runner import Report, Settings, ensure_entry, run_files


class LazyNetwork:
    """A model directory's network, opened (weights verified, nothing executed) on first use on
    the run's engine (ONNX Runtime where the model has ``model.onnx``, else torch): its ``cfg``
    comes from ``config.json`` at once, which is all that planning and cache keys need, so a run
    whose scores are all cached never opens it. Anything else (``step``, ``whole``, ...) opens it."""

    def __init__(self, directory: Path, cfg, config: dict | None = None, settings: Settings | None = None):
        self.directory, self.cfg, self._net = Path(directory), cfg, None
        self._config, self._settings = config, settings or Settings()

    def network(self):
        """The engine network (:mod:`pipeline.engine`), opened once."""
        if self._net is None:
            from .engine import open_network
            from .modeldir import read_model_config

            s = self._settings
            config = self._config if self._config is not None else read_model_config(self.directory)
            self._net = open_network(self.directory, config, self.cfg, engine=s.engine, device=s.device,
                                     threads=s.jobs)
        return self._net

    def __getattr__(self, name: str):  # only for what the instance does not hold itself
        return getattr(self.network(), name)


@dataclass
class ScoringModel:
    """A model loaded for runs: the network (loaded on first use), its ``config.json``, and its
    weights' digest (which enters the keys of the scores it computes)."""

    model: Any  # LazyNetwork, an engine network, or a torch nets.FrameModel
    config: dict[str, Any]
    directory: Path
    digest: str

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    @property
    def context(self) -> dict[str, Any]:
        """What stage ``predict`` needs beside its features (see :mod:`pipeline.stage`)."""
        return {"model": self.model, "model_digest": self.digest}


def open_model(model_dir: str | Path, cfg: Config, settings: Settings, given: Iterable[str] = ()
               ) -> tuple[ScoringModel, Config]:
    """Open a model directory; returns it and the run's config, whose ``load``/``features`` are the
    model's and whose post-processing is the model's unless the command line set it (``given``).
    Only ``config.json`` is read now; the weights when a score must be computed."""
    from .config import ModelConfig, section_from_dict
    from .errors import ModelError
    from .cache import file_digest
    from .modeldir import (LEGACY_WEIGHTS_FILE, WEIGHTS_FILE, check_weights, pretraining_only, read_model_config,
                           resolve_model_dir, weights_file)
    from .predict import config_for_model

    model_dir = resolve_model_dir(model_dir)  # a path, or a shipped model's name

    where = f"{model_dir}/config.json"
    mconf = read_model_config(model_dir)
    if not isinstance(mconf.get("model"), dict):
        raise ModelError(f"{where}: needs a 'model' table")
    model_cfg = section_from_dict(ModelConfig, "model", mconf["model"], source=where)
    if model_cfg.task == "masked":
        raise pretraining_only(model_dir, "it cannot be run for scores")
    run_cfg = config_for_model(mconf, cfg, given, where=where)
    weights = weights_file(model_dir)
    if not weights.is_file():  # nor a FIFO or a folder by that name, which hashing would block on
        raise ModelError(f"{model_dir}: no {WEIGHTS_FILE} or {LEGACY_WEIGHTS_FILE}")
    cache = settings.cache()
    try:  # the cache memoises the digest where it exists; with nothing cached (stream) the file is
        # hashed, as check_weights would anyway, and no cache folder is created
        digest = cache.fingerprint(weights) if cache.root.is_dir() else file_digest(weights)
    except OSError as exc:
        raise ModelError(f"{weights}: cannot read the weights ({exc.strerror or exc})") from None
    check_weights(model_dir, weights.name, digest, mconf)  # refused before any work
    from .engine import choose_engine

    choose_engine(model_dir, settings.engine, settings.device)  # a missing engine is refused before any work
    return ScoringModel(LazyNetwork(Path(model_dir), model_cfg, mconf, settings), mconf, Path(model_dir),
                        digest), run_cfg


def predict_files(sources: list[Source], model, model_digest: str, cfg: Config, settings: Settings, *,
                  problems: Iterable[str] = (), cache=None) -> Report:
    """Frame scores of every source (stage ``predict``, cached), features computed as needed.

    Misses are scored in this process, several files per network call, on ``settings.engine``
    and ``settings.device`` (``-j`` sets the engine's threads and the feature workers).
    """
    return run_files(sources, cfg, settings, upto="predict", problems=problems, cache=cache,
                     context={"model": model, "model_digest": model_digest, "features": cfg.features})


def predict_to_dir(inputs, model_dir: str | Path, out_dir: str | Path, cfg: Config, settings: Settings, *,
                   given: Iterable[str] = (), formats: Iterable[str] = (), plot: bool = False,
                   reference: dict[str, list[Segment]] | None = None, shard: tuple[int, int] | None = None
                   ) -> tuple[Report, Config]:
    """Scores (cached) -> segments -> files in ``out_dir`` mirroring the inputs, and plots.

    Returns the run's report (an input whose files cannot be written is failed in it) and the
    config used (the model's features and post-processing, with the command line's overrides).
    """
    scoring, cfg = open_model(model_dir, cfg, settings, given)
    formats = list(formats)
    out = OutputDir(out_dir)  # checked writable before any work
    cache = settings.cache()
    sources, problems = expand_inputs(inputs, shard=shard)
    report = predict_files(sources, scoring.model, scoring.digest, cfg, settings, problems=problems, cache=cache)
    by_path = {str(s.path): s for s in sources}
    bases = assign_bases([(str(s.path), s.rel) for s in sources], output_suffixes(formats, plot))
    for r in report.results:
        if r.status == "failed":
            continue
        try:
            _write_one(out, bases[r.path], by_path[r.path], r, cache, cfg, scoring.classes, formats, plot, reference,
                       scoring.config.get("predict_per_class"))
        except PipelineError as exc:  # this input's outputs only; the others go on
            r.status, r.error = "failed", str(exc)
    return report, cfg


def _write_one(out: OutputDir, base, src: Source, r, cache, cfg: Config, classes: list[str], formats: list[str],
               plot: bool, reference: dict[str, list[Segment]] | None, per_class: dict | None = None) -> None:
    """Segments of one input's cached scores, written in every format asked for (and its plot)."""
    import numpy as np

    from .predict import class_settings, segments

    entry = cache.load("predict", r.keys["predict"])
    fps = float(entry.meta["fps"])
    scores = np.asarray(entry["scores"])
    duration = float(entry.meta["duration"])
    segs = segments(scores, classes=classes, fps=fps, pcfg=cfg.predict, per_class=per_class, duration=duration)
    chosen = class_settings(per_class, classes, cfg.predict)  # as segments() used them
    medians = dict(zip(classes, chosen["median_filter"]))
    write_outputs(out, base, segs, scores, fps=fps, classes=classes, formats=formats, name=src.rel.as_posix(),
                  duration=duration, median_filter=medians)
    if plot:
        from .plot import plot_file

        ref = None
        if reference is not None:
            ref = reference.get(src.rel.as_posix(), reference.get(src.path.name))
        # rows read a block at a time: a memory map would count every page of a long file in RSS
        S = ensure_entry(cache, cfg, "features", r.keys, str(src.path)).rows("S")
        out.write(out.path(base, ".png"), lambda p: plot_file(
            p, S=S, fps=fps, scores=scores, classes=classes, segments=segs, reference=ref,
            threshold=chosen["threshold"], title=f"{src.rel.as_posix()}  ({len(segs)} segments)",
            kind=cfg.features.kind))
