"""A model directory's files, without torch: its names, reading and updating ``config.json``,
the weights' integrity (a sha256 per weights file in ``config.json``), and the one atomic writer
(``nets`` writes the weights through it). Planning a run with a model (its settings, its cache
keys) needs only this, so a run whose scores are all cached never imports torch."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import ModelError, ParameterError

WEIGHTS_FILE = "model.safetensors"
LEGACY_WEIGHTS_FILE = "model.pt"
ONNX_FILE = "model.onnx"
CONFIG_FILE = "config.json"
HASHES = "sha256"  # config.json's table: weights file name -> sha256 of its bytes
PREVIOUS_HASHES = "sha256_replaced"  # while new weights are renamed into place: the old file's,
                                     # still accepted (nets.save_model)


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


def update_model_config(directory: str | Path, changes: Mapping[str, Any], drop: tuple[str, ...] = ()) -> Path:
    """Replace top-level entries of a model's ``config.json`` (atomically), removing those named
    in ``drop``; the weights stay."""
    record = {k: v for k, v in {**read_model_config(directory), **changes}.items() if k not in drop}
    text = json.dumps(record, indent=2, sort_keys=True)
    path = Path(directory) / CONFIG_FILE
    write_beside(path, lambda p: Path(p).write_text(text + "\n"))
    return path


def weights_file(directory: str | Path) -> Path:
    """The weights file a model directory is read from: ``model.safetensors``; a legacy
    ``model.pt`` only where there is no ``model.safetensors``."""
    path = Path(directory) / WEIGHTS_FILE
    legacy = Path(directory) / LEGACY_WEIGHTS_FILE
    return legacy if not path.exists() and legacy.exists() else path


def record_hashes(directory: str | Path, names: tuple[str, ...] = (WEIGHTS_FILE, ONNX_FILE)) -> dict[str, str]:
    """Write the sha256 of each of ``names`` present in ``directory`` into ``config.json``'s
    ``sha256`` table (entries of absent files are dropped; the replaced weights' hashes go);
    returns the table."""
    from .cache import file_digest

    directory = Path(directory)
    table = {name: file_digest(directory / name) for name in names if (directory / name).is_file()}
    update_model_config(directory, {HASHES: table}, drop=(PREVIOUS_HASHES,))
    return table


def check_weights(directory: str | Path, name: str, digest: str | None = None,
                  config: Mapping[str, Any] | None = None) -> Path:
    """The path of weights file ``name`` once its bytes match the sha256 that ``config.json``
    records (``digest``: the file's sha256 when the caller has it already).

    A model directory from before the hashes (no ``sha256`` table) is read unchecked; once the
    table exists, every weights file read must be in it and match (or match the hash of the file
    that new weights are replacing, while ``nets.save_model`` renames them into place).

    Raises
    ------
    ModelError
        The file's bytes differ from the recorded hash (damaged or replaced), or the table does
        not name it.
    """
    from .cache import file_digest

    path = Path(directory) / name
    config = read_model_config(directory) if config is None else config
    table = config.get(HASHES)
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
    previous = config.get(PREVIOUS_HASHES)
    if actual != expected and not (isinstance(previous, dict) and actual == previous.get(name)):
        raise ModelError(f"{path}: sha256 {actual[:12]}... does not match the {expected[:12]}... that "
                         f"config.json records: the weights were changed or damaged; refusing to load them")
    return path


SHIPPED_DIR = Path(__file__).resolve().parent / "models"  # the shipped models (in a clone: ../models)


def pretraining_only(directory: str | Path, what: str) -> ModelError:
    """The one-line refusal of a masked-frame (pretraining) model where scores are wanted
    (``what``: what it lacks or cannot do)."""
    return ModelError(f"{directory}: a masked-frame (pretraining) model scores nothing, so {what}; "
                      f"train a classifier from it: train DATASET --init {directory} --out DIR")


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


def is_shipped(directory: str | Path) -> bool:
    """Whether ``directory`` is a shipped model as :func:`resolve_model_dir` finds it by name
    (inside the package, which the pipeline never writes)."""
    return Path(directory).parent == SHIPPED_DIR


def check_writable(directory: str | Path, what: str, way: str = "") -> None:
    """Refuse, as a one-line usage error, to write a shipped model named by its name or a model
    directory that cannot be written (``what``: the command or option; ``way``: what to do
    instead).

    Raises
    ------
    ParameterError
    """
    directory = Path(directory)
    if is_shipped(directory):
        raise ParameterError(f"{what}: {directory.name} is a shipped model (inside the package), which "
                             f"the pipeline does not write{'; ' + way if way else ''}")
    if directory.is_dir() and not os.access(directory, os.W_OK):
        raise ParameterError(f"{what} {directory}: cannot write there (Permission denied)")


@contextlib.contextmanager
def writing_model_dir(directory: str | Path, what: str, way: str = ""):
    """Around a command's writes into an existing model directory (``export``, ``tune
    --in-place``, tune's new copy): :func:`check_writable` first, an OS error while writing a
    one-line usage error, and afterwards record the files written as the
    pipeline's where the directory has an ownership record (``train --out`` wrote it), so that
    a later ``train --out`` still takes it.

    Raises
    ------
    ParameterError
        A shipped model, or an OS error while writing (read-only, disk full), naming the directory.
    """
    from .outputs import RECORD, OutputDir

    directory = Path(directory)
    check_writable(directory, what, way)
    before = _stats(directory)
    try:
        yield directory
        if (directory / RECORD).is_file():
            out = OutputDir(directory, option=what)
            for name, st in _stats(directory).items():
                if before.get(name) != st:  # written now: config.json, the weights, model.onnx
                    out.record(directory / name)
    except OSError as exc:
        raise ParameterError(f"{what} {directory}: cannot write there ({exc.strerror or exc})") from None


def _stats(directory: Path) -> dict[str, tuple[int, int, int]]:
    """``{name: (inode, size, mtime_ns)}`` of the model files in ``directory``."""
    out = {}
    for name in (CONFIG_FILE, WEIGHTS_FILE, ONNX_FILE):
        try:
            st = (directory / name).stat()
        except OSError:
            continue
        out[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out
