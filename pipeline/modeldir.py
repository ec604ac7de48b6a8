"""A model directory's files, without torch: its names, reading and updating ``config.json``,
and the one atomic writer (``nets`` writes the weights through it). Planning a run with a model
(its settings, its cache keys) needs only this, so a run whose scores are all cached never
imports torch."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import ModelError

WEIGHTS_FILE = "model.safetensors"
LEGACY_WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_beside(path: Path, write) -> None:
    """Write beside, then rename: a crash never leaves a half-written file under the final name;
    the file gets the usual mode (0666 less the umask), not mkstemp's 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_model_config(directory: str | Path) -> dict[str, Any]:
    """A model directory's ``config.json`` as a dict (the one reader of the format)."""
    config_path = Path(directory) / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{config_path}: model config not found") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path}: not a readable JSON model config ({exc})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_path}: a model config must be a JSON object")
    return config


def update_model_config(directory: str | Path, changes: Mapping[str, Any]) -> Path:
    """Replace top-level entries of a model's ``config.json`` (atomically); the weights stay."""
    record = {**read_model_config(directory), **changes}
    text = json.dumps(record, indent=2, sort_keys=True)
    path = Path(directory) / CONFIG_FILE
    write_beside(path, lambda p: Path(p).write_text(text + "\n"))
    return path


