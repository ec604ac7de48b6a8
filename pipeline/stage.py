"""The stage table: every stage declares itself here, and the runner reads nothing else.

A stage is its name, its output ``version``, the config section whose key fields enter its cache
key, the stages it needs, and where its computation lives (``"module:function"``, imported only
when something is computed, so that planning a run (keys and cache look-ups) imports neither numpy
nor torch). In the spirit of Luigi's ``requires``/``output`` and lhotse's ``FeatureExtractor``:

- ``compute(config, *upstream, **context) -> (arrays, meta)``: pure, one input. ``config`` is the
  stage's config section; ``upstream`` the entries of ``requires`` in order (the source file's
  path for a stage that requires nothing); ``context`` the job's objects (a loaded model).
- ``batched(config, [upstream, ...], *, device, **context)``: optional, many inputs at once (GPU
  features, network calls); yields ``(i, arrays, meta)`` as each group finishes.
- ``streaming(config, source, *upstream_configs)``: optional, the stage straight from the source
  file (its upstream stages then are not stored): a generator of ``(array, rows)`` that returns
  the entry's metadata; memory stays bounded whatever the file's length.
- ``in_process``: its inputs are never sent to worker processes (it needs a model in memory).
- ``key_config``: optional ``"module:function"`` ``(config, context) -> dict`` when the key is not
  simply the section's key fields (predict: only the settings that change the scores).
- ``context_inputs``: names of context values (digests) that enter the key beside the upstream
  keys (predict: the model's weights digest).

``version`` is part of every cache key: bump it in the same commit as any code change that
changes the stage's output (a new default, a bug fix in the maths), and exactly those entries and
everything downstream are recomputed. Adding a per-file stage is one module plus :func:`register`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Stage:
    name: str
    version: int
    section: str | None  # the config section whose key fields enter the key (None: no settings)
    requires: tuple[str, ...]  # upstream stages; () = the source file itself
    compute: str | None  # "module:function", see the module docstring
    per: str = "file"  # "file" (one entry per input) or "dataset" (one entry for many)
    batched: str | None = None
    streaming: str | None = None
    in_process: bool = False
    key_config: str | None = None
    context_inputs: tuple[str, ...] = ()

    def function(self, which: str = "compute") -> Callable:
        """The stage's ``compute``/``batched``/``key_config`` function, imported now."""
        path = getattr(self, which)
        if path is None:
            raise LookupError(f"stage {self.name!r} has no {which} function")
        module, name = path.split(":")
        return getattr(importlib.import_module(module), name)


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add (or replace) a stage in the table; its ``requires`` must be registered already."""
    missing = [r for r in stage.requires if r not in STAGES]
    if missing:
        raise ValueError(f"stage {stage.name!r} requires unknown stage(s) {missing}")
    STAGES[stage.name] = stage
    return stage


register(Stage("load", 1, "load", (), "pipeline.audio:compute"))
register(Stage("features", 1, "features", ("load",), "pipeline.features:compute",
               batched="pipeline.features:compute_batched", streaming="pipeline.features:compute_streaming"))
register(Stage("chunk", 1, "chunk", ("features",), None, per="dataset"))  # built by pipeline.chunks.ensure_chunks
register(Stage("predict", 1, "predict", ("features",), None, batched="pipeline.predict:compute_batched",
               in_process=True, key_config="pipeline.predict:key_config", context_inputs=("model_digest",)))


def version(stage: str) -> int:
    return STAGES[stage].version


def chain(target: str) -> list[str]:
    """The per-file stages ``target`` is built from, upstream first, ``target`` last."""
    order: list[str] = []

    def visit(name: str) -> None:
        for req in STAGES[name].requires:
            visit(req)
        if name not in order:
            order.append(name)
    visit(target)
    return order


def stored_chain(target: str) -> list[str]:
    """The stages of ``chain(target)`` that a run stores: a stage read from the file whose only
    consumer in the chain streams from the file itself (features from the source) is not."""
    names = chain(target)
    streamed = {r for s in names if STAGES[s].streaming
                for r in STAGES[s].requires if not STAGES[r].requires and r != target}
    return [n for n in names if n not in streamed]


def file_stages(*, context_free: bool = True) -> list[str]:
    """Per-file stages (in table order); ``context_free``: only those whose key needs no job context
    (no model), i.e. what ``cache status`` and ``run --to`` can plan from a config alone."""
    return [s.name for s in STAGES.values()
            if s.per == "file" and not (context_free and (s.context_inputs or s.key_config))]


def key_config(stage: Stage, cfg: Any, context: dict | None = None) -> dict[str, Any]:
    """The settings of ``stage`` that enter its key (see :class:`Stage`)."""
    section = getattr(cfg, stage.section) if stage.section else None
    if stage.key_config:
        return stage.function("key_config")(section, context or {})
    from .config import key_fields

    return key_fields(section) if section is not None else {}
