"""A model directory's files, without torch: its names, reading and updating ``config.json``,
the weights' integrity (a sha256 per weights file in ``config.json``), and the one atomic writer
(``nets`` writes the weights through it). Planning a run with a model (its settings, its cache
keys) needs only this, so a run whose scores are all cached never imports torch."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import ModelError

WEIGHTS_FILE = "model.safetensors"
LEGACY_WEIGHTS_FILE = "model.pt"
ONNX_FILE = "model.onnx"
CONFIG_FILE = "config.json"
HASHES = "sha256"  # config.json's table: weights file name -> sha256 of its bytes


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




def record_hashes(directory: str | Path, names: tuple[str, ...] = (WEIGHTS_FILE, ONNX_FILE)) -> dict[str, str]:
    """Write the sha256 of each of ``names`` present in ``directory`` into ``config.json``'s
    ``sha256`` table (entries of absent files are dropped); returns the table."""
    from .cache import file_digest

    directory = Path(directory)
    table = {name: file_digest(directory / name) for name in names if (directory / name).is_file()}
    update_model_config(directory, {HASHES: table})
    return table


def check_weights(directory: str | Path, name: str, digest: str | None = None,
                  config: Mapping[str, Any] | None = None) -> Path:
    """The path of weights file ``name`` once its bytes match the sha256 that ``config.json``
    records (``digest``: the file's sha256 when the caller has it already).

    A model directory from before the hashes (no ``sha256`` table) is read unchecked; once the
    table exists, every weights file read must be in it and match.

    Raises
    ------
    ModelError
        The file's bytes differ from the recorded hash (damaged or replaced), or the table does
        not name it.
    """
    from .cache import file_digest

    path = Path(directory) / name
    table = (read_model_config(directory) if config is None else config).get(HASHES)
    if table is None:
        return path
    expected = table.get(name) if isinstance(table, dict) else None
    if not isinstance(expected, str):
        raise ModelError(f"{path}: config.json records no sha256 for it; refusing unverified weights "
                         f"(python -m pipeline export {directory} rewrites model.onnx and the hashes)")
    try:
        actual = digest or file_digest(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the weights ({exc.strerror or exc})") from None
    if actual != expected:
        raise ModelError(f"{path}: sha256 {actual[:12]}... does not match the {expected[:12]}... that "
                         f"config.json records: the weights were changed or damaged; refusing to load them")
    return path


SHIPPED_DIR = Path(__file__).resolve().parent / "models"  # the shipped models (in a clone: ../models)


def shipped_models() -> list[str]:
    """Names of the models shipped with the package (``vad``, ``vad-stream``, ...)."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / CONFIG_FILE).is_file())


def resolve_model_dir(spec: str | Path) -> Path:
    """A model directory from a path or the name of a shipped model: an existing path wins (a
    folder ``vad`` in the working directory is that folder), then a shipped name; anything else
    comes back as given, for the reader to report as not found."""
    path = Path(spec)
    if path.exists() or path.name != str(spec):  # a path, or something with a folder in it
        return path
    shipped = SHIPPED_DIR / str(spec)
    return shipped if (shipped / CONFIG_FILE).is_file() else path
