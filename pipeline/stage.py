"""The stage table: each stage's name, output version, config section and granularity.

``version`` is part of every cache key: bump it in the same commit as any code change that
changes the stage's output (a new default, a bug fix in the maths), and exactly those entries
and everything downstream are recomputed. The table lives apart from the stage modules so that
planning a run (keys and cache lookups) imports neither numpy nor torch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageInfo:
    name: str
    version: int
    section: str  # the config section whose key fields enter the key
    per: str  # "file" or "dataset"
    module: str  # where the computation lives


STAGES: dict[str, StageInfo] = {
    "load": StageInfo("load", 1, "load", "file", "pipeline.audio"),
    "features": StageInfo("features", 1, "features", "file", "pipeline.features"),
    "chunk": StageInfo("chunk", 1, "chunk", "dataset", "pipeline.chunks"),
    "predict": StageInfo("predict", 1, "predict", "file", "pipeline.predict"),
}


def version(stage: str) -> int:
    return STAGES[stage].version
