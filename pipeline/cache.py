"""The on-disk stage cache: content keys, atomic entries, mmap reads, and maintenance.

Layout::

    <root>/<stage>/<key[:2]>/<key>/meta.json     # config, inputs, arrays (shape, dtype, crc32), ...
    <root>/<stage>/<key[:2]>/<key>/<name>.npy    # one file per array, read with mmap
    <root>/fingerprints/<h[:2]>/<h>.json         # path, size, mtime_ns, inode -> sha256 of the bytes
    <root>/.tmp/                                 # entries being written (never read as entries)

An entry exists only once complete: it is written into ``.tmp/`` and renamed into place in one
``rename``. A run killed mid-write leaves a directory in ``.tmp/`` that no reader sees (``gc``
removes it); two runs computing the same key both succeed, and the second rename loses quietly.

This module imports numpy lazily so that key planning on the command line stays cheap.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat as stat_mod
import shutil
import socket
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import CacheError, ParameterError


class CorruptEntry(CacheError):
    """An entry failed its check on read (checksum, shape, unreadable file). It has already been
    removed from the cache, so the caller can recompute it as a miss."""

META = "meta.json"
TMP = ".tmp"
FINGERPRINTS = "fingerprints"
_HASH_BLOCK = 1 << 22


def default_cache_dir() -> Path:
    """``$PIPELINE_CACHE_DIR``, else ``.pipeline-cache`` in the working directory."""
    return Path(os.environ.get("PIPELINE_CACHE_DIR") or ".pipeline-cache")


def canonical_json(obj: Any) -> str:
    """Stable JSON: sorted keys, no spaces, floats as Python's repr; the bytes keys are made of."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def make_key(stage: str, version: int, config: dict[str, Any], inputs: list[str]) -> str:
    """sha256 of the canonical JSON of everything that determines a stage's output."""
    doc = {"stage": stage, "version": int(version), "config": config, "inputs": list(inputs)}
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


_HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"


def _writer_gone(name: str) -> bool:
    """Whether the temporary ``<stage>-<key>-<host>-<pid>-<uuid>`` was left by a process of this
    host that no longer runs (``kill(pid, 0)``: no such process)."""
    parts = name.split("-")
    if len(parts) != 5 or parts[2] != _HOST or not parts[3].isdigit():
        return False
    try:
        os.kill(int(parts[3]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def _crc32(arr) -> str:
    import numpy as np

    data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def _file_crc32(path: Path, offset: int, arr) -> str:
    """crc32 of an array's bytes read from its file in blocks (a memory map is not touched, so
    checking a long entry does not grow the process's RSS); in-memory arrays are hashed directly."""
    import numpy as np

    if not isinstance(arr, np.memmap):
        return _crc32(arr)
    crc, left = 0, int(arr.nbytes)
    with open(path, "rb") as fh:
        fh.seek(offset)
        while left > 0:
            block = fh.read(min(left, _HASH_BLOCK))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            left -= len(block)
    return f"{crc & 0xFFFFFFFF:08x}"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Entry:
    """A complete cache entry: its arrays (mmapped on read) and its metadata."""

    stage: str
    key: str
    path: Path
    meta: dict[str, Any]
    arrays: dict[str, Any]

    def __getitem__(self, name: str):
        return self.arrays[name]

    def rows(self, name: str) -> "Rows":
        """Array ``name`` read a slice of rows at a time from its file (not mapped): memory holds
        only the rows asked for, however long the entry."""
        arr = self.arrays[name]
        return Rows(self.path / self.meta["arrays"][name]["file"], arr.shape, arr.dtype, int(getattr(arr, "offset", 0)))


class Rows:
    """Rows of a stored ``.npy`` array, read on demand with ``pread`` (``rows[a:b]`` -> ndarray).
    A memory map of a long entry would count every page it touched in the process's RSS."""

    def __init__(self, path: Path, shape: tuple, dtype, offset: int):
        import numpy as np

        self.path, self.shape, self.dtype, self.offset = Path(path), tuple(shape), np.dtype(dtype), offset
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        import numpy as np

        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("Rows supports contiguous slices only")
        start, stop, _ = key.indices(self.shape[0])
        n = max(0, stop - start)
        buf = bytearray(n * self._row_bytes)
        with open(self.path, "rb", buffering=0) as fh:
            got = os.preadv(fh.fileno(), [buf], self.offset + start * self._row_bytes) if n else 0
        if got != len(buf):
            raise CacheError(f"{self.path}: short read ({got} of {len(buf)} bytes)")
        return np.frombuffer(buf, dtype=self.dtype).reshape((n, *self.shape[1:]))


class Cache:
    """The stage cache rooted at ``root`` (created on first write)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self._verified: set[tuple[str, str]] = set()  # checked once per process, then trusted
        self.repaired: list[str] = []  # corrupt entries found (and removed) by this instance

    # ---------------------------------------------------------------- sources

    def fingerprint(self, path: str | Path) -> str:
        """sha256 of a source file's bytes, memoised on (path, size, mtime_ns, inode).

        ``touch`` changes mtime, so the bytes are hashed again, but the digest (and so every key
        built on it) stays the same; changed bytes give a new digest.
        """
        path = Path(os.path.realpath(path))  # realpath: a symlink loop is an OSError below
        st = path.stat()
        if not stat_mod.S_ISREG(st.st_mode):  # never open a FIFO or a device (it may block)
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        stamp = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
        h = hashlib.sha1(str(path).encode()).hexdigest()
        memo = self.root / FINGERPRINTS / h[:2] / f"{h}.json"
        try:
            saved = json.loads(memo.read_text())
            if all(saved.get(k) == v for k, v in stamp.items()):
                return saved["sha256"]
        except (OSError, ValueError):
            pass
        digest = file_digest(path)
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(memo, canonical_json({**stamp, "sha256": digest}))
        except OSError:
            pass  # a read-only cache still works, it just hashes again next time
        return digest

    # ---------------------------------------------------------------- entries

    def entry_path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def has(self, stage: str, key: str) -> bool:
        return (self.entry_path(stage, key) / META).is_file()

    def read_meta(self, stage: str, key: str) -> dict[str, Any]:
        path = self.entry_path(stage, key) / META
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            raise CacheError(f"{stage}/{key}: no such cache entry") from None
        except (OSError, ValueError) as exc:
            raise CorruptEntry(f"{path}: corrupt meta.json ({exc})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("arrays", {}), dict):
            raise CorruptEntry(f"{path}: meta.json is not an entry description")
        return meta

    def load(self, stage: str, key: str, *, mmap: bool = True, verify: bool = True, touch: bool = True,
             remove_bad: bool = True) -> Entry:
        """Read an entry; arrays are memory-mapped read-only unless ``mmap=False``.

        With ``verify`` (the default) every array is checked against the crc32 stored when it was
        written, once per process and entry (about 1 GB/s: an hour of 64-bin features is 92 MB).
        A bad entry is removed and :class:`CorruptEntry` raised: the caller treats it as a miss.
        """
        import numpy as np

        bad = self._discard if remove_bad else (lambda stage, key, why: CorruptEntry(why))
        try:
            meta = self.read_meta(stage, key)
        except CorruptEntry as exc:
            raise bad(stage, key, str(exc)) from None
        path = self.entry_path(stage, key)
        check = verify and (stage, key) not in self._verified
        arrays = {}
        for name, info in meta.get("arrays", {}).items():
            try:
                arr = np.load(path / info["file"], mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise bad(stage, key, f"{path}/{name}: unreadable array ({exc})") from None
            if list(arr.shape) != info.get("shape") or str(arr.dtype) != info.get("dtype"):
                raise bad(stage, key, f"{path / info['file']}: shape/dtype {arr.shape}/{arr.dtype} "
                                                f"do not match meta.json {info.get('shape')}/{info.get('dtype')}")
            if check and _file_crc32(path / info["file"], int(getattr(arr, "offset", 0)), arr) != info.get("crc32"):
                raise bad(stage, key, f"{path / info['file']}: checksum mismatch "
                                                f"(crc32 {info.get('crc32')} expected)")
            arrays[name] = arr
        if check:
            self._verified.add((stage, key))
        if touch:
            try:
                os.utime(path / META)  # last use, for gc --max-size (least recently used go first)
            except OSError:
                pass
        return Entry(stage, key, path, meta, arrays)

    def _discard(self, stage: str, key: str, why: str) -> CorruptEntry:
        """Remove a bad entry (so the next look-up is a miss) and return the error to raise."""
        self.remove(stage, key)
        self._verified.discard((stage, key))
        msg = f"{why}: corrupt {stage} entry removed; it is recomputed as a miss"
        self.repaired.append(msg)
        return CorruptEntry(msg)

    def store(self, stage: str, key: str, arrays: dict[str, Any], meta: dict[str, Any]) -> Entry:
        """Write an entry atomically; if another process wrote the same key first, keep theirs."""
        with self.writer(stage, key) as w:
            for name, arr in arrays.items():
                w.append(name, arr, whole=True)
            return w.finish(meta)

    def writer(self, stage: str, key: str) -> "EntryWriter":
        """An entry written piece by piece (rows appended to each array), made visible at once by
        :meth:`EntryWriter.finish`; leaving the ``with`` block without finishing removes it."""
        return EntryWriter(self, stage, key)

    def check_writable(self) -> None:
        """Make sure entries can be stored here (the root and its ``.tmp/`` created, a temporary
        directory made and removed), so that a run whose misses could never be stored stops once,
        before any work, instead of failing every input.

        Raises
        ------
        ParameterError
            naming the directory and the operating system's reason (a setting to change: exit 2).
        """
        # named as writers name theirs, so gc knows a leftover of a killed run for what it is
        probe = self.root / TMP / f"probe-writable-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir(parents=True)
            probe.rmdir()
        except OSError as exc:
            raise ParameterError(f"cache directory {self.root}: cannot write there ({exc.strerror or exc}); "
                                 "give a writable --cache-dir (or $PIPELINE_CACHE_DIR)") from None

    # ---------------------------------------------------------------- maintenance

    def stages(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and p.name not in (TMP, FINGERPRINTS))

    def keys(self, stage: str) -> Iterator[str]:
        base = self.root / stage
        if not base.is_dir():
            return
        for prefix in sorted(base.iterdir()):
            if prefix.is_dir():
                for entry in sorted(prefix.iterdir()):
                    if entry.is_dir():
                        yield entry.name

    def entry_size(self, stage: str, key: str) -> int:
        return sum(f.stat().st_size for f in self.entry_path(stage, key).iterdir() if f.is_file())

    def verify(self, stage: str, key: str) -> list[str]:
        """Problems of one entry: missing meta or arrays, shape/dtype mismatch, wrong checksum.
        Only reads (a bad entry is reported, not removed: ``gc`` removes it)."""
        path = self.entry_path(stage, key)
        if not (path / META).is_file():
            return [f"{path}: no meta.json (not a complete entry)"]
        self._verified.discard((stage, key))  # check it now, even if this process did before
        try:
            entry = self.load(stage, key, mmap=True, verify=True, touch=False, remove_bad=False)
        except CacheError as exc:
            return [str(exc)]
        if entry.meta.get("key") != key:
            return [f"{path}: meta.json names key {entry.meta.get('key')!r}"]
        return []

    def stale_temporaries(self, older_than: float = 3600.0) -> list[Path]:
        """Temporaries no writer will finish: removals in progress (``rm-*``), those whose writer
        ran on this host and is gone (at any age), and any older than ``older_than`` seconds
        (writers on other hosts of a shared cache cannot be asked)."""
        tmp = self.root / TMP
        if not tmp.is_dir():
            return []
        now, stale = time.time(), []
        for p in tmp.iterdir():
            try:
                age = now - p.lstat().st_mtime
            except OSError:
                continue
            if p.name.startswith("rm-") or age >= older_than or _writer_gone(p.name):
                stale.append(p)
        return stale

    def remove(self, stage: str, key: str) -> int:
        path = self.entry_path(stage, key)
        size = self.entry_size(stage, key) if path.is_dir() else 0
        # rename out of the tree first, so a reader never sees a half-deleted entry
        trash = self.root / TMP / f"rm-{key[:16]}-{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return 0
        shutil.rmtree(trash, ignore_errors=True)
        return size

    def clear(self, stage: str | None = None) -> int:
        """Remove every entry (of one stage, or all stages and the fingerprint memo)."""
        if stage is not None and (stage in (TMP, FINGERPRINTS) or not stage.isidentifier()):
            raise CacheError(f"cache clear: stage {stage!r} is not a stage name")
        removed = 0
        for name in [stage] if stage else self.stages():
            for key in list(self.keys(name)):
                self.remove(name, key)
                removed += 1
            shutil.rmtree(self.root / name, ignore_errors=True)
        if stage is None:
            shutil.rmtree(self.root / FINGERPRINTS, ignore_errors=True)
            shutil.rmtree(self.root / TMP, ignore_errors=True)
        return removed


class EntryWriter:
    """Builds one entry in ``.tmp/``: arrays grow by rows (``append``), each ``.npy`` header is
    written with room for any final shape and rewritten at the end, and the crc32 is taken as the
    bytes go out; so a long recording's features never sit in memory whole."""

    _HEADER = 128  # bytes reserved for each .npy header (magic, length and the padded dict)

    def __init__(self, cache: Cache, stage: str, key: str):
        self.cache, self.stage, self.key = cache, stage, key
        self.tmp = cache.root / TMP / f"{stage}-{key[:16]}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._arrays: dict[str, dict[str, Any]] = {}
        self._done = False

    def __enter__(self) -> "EntryWriter":
        try:
            self.tmp.mkdir(parents=True)
        except OSError as exc:
            raise self._error(exc) from exc
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._done:
            for a in self._arrays.values():
                a["fh"].close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _error(self, exc: OSError) -> CacheError:
        return CacheError(f"{self.cache.root}: cannot store a {self.stage} entry ({exc.strerror or exc}); "
                          "nothing half-written is left")

    def append(self, name: str, rows, *, whole: bool = False) -> None:
        """Add rows (along the first axis) to array ``name``; ``whole``: ``rows`` is the whole array
        (it may be 0-d)."""
        import numpy as np

        rows = np.ascontiguousarray(rows)
        a = self._arrays.get(name)
        try:
            if a is None:
                fh = open(self.tmp / f"{name}.npy", "wb")
                a = self._arrays[name] = {"fh": fh, "dtype": rows.dtype, "tail": rows.shape[1:], "n": 0, "crc": 0,
                                          "shape": rows.shape if whole else None}
                fh.write(b"\0" * self._HEADER)
            elif rows.dtype != a["dtype"] or rows.shape[1:] != a["tail"] or a["shape"] is not None:
                raise ValueError(f"{name}: rows {rows.dtype}{rows.shape} do not continue {a['dtype']}{a['tail']}")
            data = rows.reshape(-1).view(np.uint8) if rows.size else b""
            a["fh"].write(data)
            a["crc"] = zlib.crc32(data, a["crc"])
            a["n"] += rows.shape[0] if rows.ndim else 1
        except OSError as exc:
            raise self._error(exc) from exc

    def finish(self, meta: dict[str, Any]) -> Entry:
        """Write the headers and ``meta.json``, then rename into place (another process's entry of
        the same key, if it got there first, is kept)."""
        import numpy as np

        described = {}
        try:
            for name, a in self._arrays.items():
                shape = a["shape"] if a["shape"] is not None else (a["n"], *a["tail"])
                header = _npy_header(a["dtype"], shape, self._HEADER)
                a["fh"].seek(0)
                a["fh"].write(header)
                a["fh"].close()
                described[name] = {"file": f"{name}.npy", "shape": list(shape), "dtype": str(np.dtype(a["dtype"])),
                                   "crc32": f"{a['crc'] & 0xFFFFFFFF:08x}",
                                   "bytes": int(np.prod(shape, dtype=np.int64)) * np.dtype(a["dtype"]).itemsize}
            full = {**meta, "stage": self.stage, "key": self.key, "arrays": described,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (self.tmp / META).write_text(json.dumps(full, indent=1, sort_keys=True, default=str))
            final = self.cache.entry_path(self.stage, self.key)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self.tmp, final)
            except OSError:
                if not self.cache.has(self.stage, self.key):
                    raise
                shutil.rmtree(self.tmp, ignore_errors=True)  # a concurrent run finished it first
        except OSError as exc:
            raise self._error(exc) from exc
        self._done = True
        self.cache._verified.add((self.stage, self.key))  # just written, checksummed on the way out
        return self.cache.load(self.stage, self.key)


def _npy_header(dtype, shape: tuple, size: int) -> bytes:
    """A version 1.0 ``.npy`` header padded with spaces to exactly ``size`` bytes."""
    import numpy as np

    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(int(d) for d in shape)})
    body = text.encode("latin1")
    pad = size - 10 - len(body) - 1
    if pad < 0:
        raise ValueError(f"npy header for shape {shape} longer than {size} bytes")
    return b"\x93NUMPY\x01\x00" + (size - 10).to_bytes(2, "little") + body + b" " * pad + b"\n"
