"""The output folder (``--out``): where each input's files go, and which files the pipeline owns.

Three rules, each kept here and nowhere else:

- **Inside ``--out`` only.** An input's output name comes from its path relative to its input root
  (:func:`safe_relative`): ``..`` and absolute parts can never lead outside, whatever a manifest
  says, and the final path is checked to resolve inside the folder (a symlink in it cannot lead out
  either).
- **One input, one set of files.** Two inputs whose files would share a name (``rec.wav`` and
  ``rec.flac``; ``a.wav``'s ``a.scores.json`` and ``a.scores.wav``'s ``.json``) both keep the
  extension in their name (``rec.wav.tsv``, ``rec.flac.tsv``); if that still clashes, a short hash
  of the source path is added (:func:`assign_bases`).
- **Never overwrite what it did not write.** Every file written is recorded (path, size, mtime) in
  ``OUT/.pipeline-outputs``; an existing file is replaced only if the record says the pipeline
  wrote it and it is unchanged since. Anything else (reference labels beside the audio when
  ``--out`` is the input folder, a file the user edited) is left alone and that input fails with a
  message naming the file. Files are written beside their final name and renamed into place.
- **Runs at once share the folder.** Renaming a file into place and recording it happen under an
  exclusive lock (``flock`` on ``OUT/.pipeline-outputs.lock``), after reading what other runs
  recorded meanwhile: two runs into one ``--out`` both finish, each overwriting only what the
  pipeline wrote.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from .errors import ParameterError, PipelineError

RECORD = ".pipeline-outputs"
LOCK = ".pipeline-outputs.lock"  # held while a file is renamed into place and recorded
SCORES = ".scores.npy"  # frames x classes float32, beside the segments
SCORES_INFO = ".scores.json"  # its fps, class names, frame count and source
FORMATS = {"tsv": ".tsv", "rttm": ".rttm", "audacity": ".txt", "json": ".json", "textgrid": ".TextGrid",
           "npy": SCORES}
LABEL_FORMATS = {"tsv": "dcase", "rttm": "rttm", "audacity": "audacity", "json": "json",
                 "textgrid": "textgrid"}  # pipeline.labels names


class OutputError(PipelineError):
    """One input's output cannot be written (not ours to overwrite, a clash, an OS error)."""


def safe_relative(rel: str | Path) -> PurePosixPath:
    """A relative path with no way out: ``..`` and ``.`` dropped, anchors and drives removed.

    ``../audio/clip.flac`` -> ``audio/clip.flac``; ``/data/x.wav`` -> ``data/x.wav``;
    ``a/../../b.wav`` -> ``b.wav``. An empty result becomes ``_``.
    """
    parts = []
    for part in PurePosixPath(Path(rel).as_posix()).parts:
        if part in ("", ".", "..", "/") or part.endswith(":") or part.startswith("//"):
            continue
        parts.append(part)
    return PurePosixPath(*parts) if parts else PurePosixPath("_")


def _candidate(rel: PurePosixPath, level: int, source: str) -> PurePosixPath:
    """Output base of one input at a disambiguation level: stem, full name, name + hash."""
    if level == 0:
        return rel.parent / (rel.stem or rel.name)
    if level == 1:
        return rel
    digest = hashlib.sha1(os.fsencode(source)).hexdigest()[:8]
    return rel.parent / f"{rel.name}-{digest}"


def assign_bases(items: Iterable[tuple[str, str | Path]], suffixes: Iterable[str]) -> dict[str, PurePosixPath]:
    """Output base (relative, no suffix) for each ``(source, rel)``, no two inputs sharing a file.

    ``suffixes`` are every suffix that will be added to a base (``.tsv``, ``.scores.json``, ...).
    Inputs involved in a clash move to the next level of :func:`_candidate` until none is left.
    Names are compared case-folded, so the outputs also stay apart on case-insensitive disks.
    """
    items = [(src, safe_relative(rel)) for src, rel in items]
    suffixes = list(dict.fromkeys(suffixes))
    level = {src: 0 for src, _ in items}
    reserved = {RECORD.casefold(), LOCK.casefold()}
    for _ in range(3):
        owners: dict[str, set[str]] = {}
        for src, rel in items:
            base = _candidate(rel, level[src], src)
            for suffix in suffixes:
                owners.setdefault(str(base.with_name(base.name + suffix)).casefold(), set()).add(src)
        clashes = {s for name, srcs in owners.items() if len(srcs) > 1 or name in reserved for s in srcs}
        if not clashes:
            break
        for src in clashes:
            level[src] = min(level[src] + 1, 2)
    return {src: _candidate(rel, level[src], src) for src, rel in items}


class OutputDir:
    """The ``--out`` folder of one run: checked writable up front, then files written one by one.

    ``option``: the command-line option that named the folder, for messages (``--report``);
    ``create=False``: only read what the record says of an existing folder (:meth:`foreign`),
    writing nothing into it.
    """

    def __init__(self, root: str | Path, option: str = "--out", *, create: bool = True):
        self.root, self.option, self._create = Path(root), option, create
        try:
            if create:
                self.root.mkdir(parents=True, exist_ok=True)
                with open(self.root / RECORD, "a", encoding="utf-8"):
                    pass
                with open(self.root / LOCK, "a", encoding="utf-8"):
                    pass
        except OSError as exc:
            raise ParameterError(f"{option} {self.root}: cannot write there ({exc.strerror or exc})") from None
        self._real = Path(os.path.realpath(self.root))
        self._owned: dict[str, tuple[int, int]] = {}
        self._read_at: tuple[int, int] = (-1, 0)  # (inode, offset) of the record read so far
        self._this_run: set[Path] = set()
        with self._locked():
            self._refresh(compact=create)

    @contextlib.contextmanager
    def _locked(self):
        """Exclusive hold of ``OUT/.pipeline-outputs.lock`` among the runs writing into this folder
        (released by the kernel when a run is killed)."""
        try:
            import fcntl
        except ImportError:  # not on POSIX: no lock to take
            yield
            return
        try:
            fh = open(self.root / LOCK, "a+b" if self._create else "rb")
        except OSError:  # a read-only folder cannot be written into anyway: each write says so
            yield
            return
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX)
            except OSError:  # a file system without locks (ENOLCK): as before there were any
                yield
                return
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _refresh(self, compact: bool = False) -> None:
        """Read the lines of the record this run has not seen yet (other runs' files; the whole
        record when it was rewritten); ``compact``: rewrite a record that reruns made long."""
        try:
            with open(self.root / RECORD, "rb") as fh:
                st = os.fstat(fh.fileno())
                inode = st.st_ino
                start = self._read_at[1] if inode == self._read_at[0] and st.st_size >= self._read_at[1] else 0
                if start == 0:
                    self._owned = {}
                fh.seek(start)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a torn last line of a killed run is read once it is ended
        lines = data[:end].decode("utf-8", errors="replace").splitlines()
        for line in lines:
            try:
                row = json.loads(line)
                self._owned[row["path"]] = (int(row["size"]), int(row["mtime_ns"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn line of a killed run: that file is simply not ours
        self._read_at = (inode, start + end)
        if compact and start == 0 and len(lines) > 2 * len(self._owned) + 64:  # reruns append
            text = "".join(json.dumps({"path": p, "size": n, "mtime_ns": t}, ensure_ascii=True) + "\n"
                           for p, (n, t) in self._owned.items())
            tmp = self.root / f".{RECORD}.{uuid.uuid4().hex[:8]}"
            try:
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.root / RECORD)
                self._read_at = (os.stat(self.root / RECORD).st_ino, len(text.encode()))
            except OSError:
                pass  # the long record still works

    def path(self, base: PurePosixPath, suffix: str) -> Path:
        """``OUT/base+suffix``, checked to resolve inside ``OUT``."""
        target = self.root / base.parent / (base.name + suffix)
        real = Path(os.path.realpath(target))
        if real != self._real and self._real not in real.parents:
            raise OutputError(f"{target}: resolves to {real}, outside {self.option} {self.root}; not written")
        return target

    def _check_ours(self, target: Path) -> None:
        rel = target.relative_to(self.root).as_posix()
        if target in self._this_run:
            raise OutputError(f"{target}: already written by another input of this run; not overwritten")
        if not os.path.lexists(target):
            return
        try:
            st = target.stat()
        except OSError as exc:
            raise OutputError(f"{target}: exists and cannot be checked ({exc.strerror}); not overwritten") from None
        if self._owned.get(rel) != (st.st_size, st.st_mtime_ns):
            why = "was changed since the pipeline wrote it" if rel in self._owned else "was not written by the pipeline"
            raise OutputError(f"{target}: exists and {why}; not overwritten (move it away or choose another "
                              f"{self.option})")

    def write(self, target: Path, write: Callable[[Path], None]) -> Path:
        """Write one file through ``write(tmp_path)`` (the temporary keeps the final suffix), then
        rename it into place and record it. Raises :class:`OutputError` naming the file."""
        with self._locked():  # before the work (a plot takes a while); checked again before the rename
            self._refresh()
            self._check_ours(target)
        # short (a name near the 255-byte limit must still have a temporary) and with the final
        # suffix, which np.save and savefig go by
        tmp = target.with_name(f".{uuid.uuid4().hex[:12]}.part{target.suffix}")
        try:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                write(tmp)
            except OSError as exc:
                raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
            with self._locked():  # another run may have written this name since: its record says
                self._refresh()
                self._check_ours(target)
                try:
                    os.replace(tmp, target)
                    st = target.stat()
                except OSError as exc:
                    raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
                rel = target.relative_to(self.root).as_posix()
                self._owned[rel] = (st.st_size, st.st_mtime_ns)
                self._this_run.add(target)
                self._append_record(rel, st)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        return target

    def record(self, target: Path) -> None:
        """Record a file written into the folder other than by :meth:`write` (a model directory's
        files, written where they must go: ``nets.save_model``, ``export``) as the pipeline's."""
        with self._locked():
            self._refresh()
            st = target.stat()
            rel = target.relative_to(self.root).as_posix()
            self._owned[rel] = (st.st_size, st.st_mtime_ns)
            self._append_record(rel, st)

    def foreign(self) -> str | None:
        """The first entry of the folder that the pipeline did not write or that changed since,
        with why (hidden names are the pipeline's record and temporaries, or a user's: never
        written); ``None`` when every entry is the pipeline's and unchanged."""
        with self._locked():
            self._refresh()
        for p in sorted(self.root.iterdir()):
            if p.name.startswith("."):
                continue
            try:
                st = p.lstat()
            except OSError:
                continue
            if self._owned.get(p.name) == (st.st_size, st.st_mtime_ns) and p.is_file() and not p.is_symlink():
                continue
            why = "changed since the pipeline wrote it" if p.name in self._owned else "was not written by the pipeline"
            return f"{p.name} {why}"
        return None

    def _append_record(self, rel: str, st: os.stat_result) -> None:
        line = json.dumps({"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, ensure_ascii=True)
        with open(self.root / RECORD, "a+b") as fh:  # one short append per file
            torn = False
            if fh.seek(0, os.SEEK_END) > 0:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
            fh.write((("\n" if torn else "") + line + "\n").encode())  # a killed run's torn line stays alone
            end = fh.tell()
        if self._read_at[1] == end - len(line) - 1 - torn:  # nothing of another run's in between
            self._read_at = (self._read_at[0], end)


def parse_formats(text: str) -> list[str]:
    """``"rttm,npy"`` -> ``["rttm", "npy"]``, each checked against :data:`FORMATS`."""
    fmts = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise ParameterError(f"--format {bad[0]!r} must be among {', '.join(FORMATS)}")
    return fmts


def output_suffixes(formats: Iterable[str], plot: bool = False) -> list[str]:
    """Every suffix one input's outputs get: ``.tsv`` always, the formats asked for, the plot."""
    formats = list(formats)
    suffixes = [FORMATS[f] for f in dict.fromkeys(["tsv", *formats])]
    if "npy" in formats:
        suffixes.append(SCORES_INFO)
    return suffixes + ([".png"] if plot else [])


def write_outputs(out: OutputDir, base: PurePosixPath, segs: list, scores, *, fps: float, classes: list[str],
                  formats: Iterable[str], name: str, duration: float | None = None,
                  median_filter: dict[str, float] | None = None) -> list[Path]:
    """Write the requested formats of one input beside each other (``.tsv`` always) under ``base``;
    ``median_filter`` (seconds per class, the segments' own) goes into the ``.scores.json``, so that
    ``evaluate`` computes PSDS, AUC and AP on the scores the thresholds saw."""
    import numpy as np

    from .labels import write_labels

    written = []
    for fmt in dict.fromkeys(["tsv", *formats]):
        if fmt == "npy":
            info = json.dumps({"fps": fps, "classes": classes, "n_frames": int(len(scores)), "source": name,
                               "duration": duration, "median_filter": median_filter}, indent=1) + "\n"
            written.append(out.write(out.path(base, SCORES), lambda p: np.save(p, np.asarray(scores, dtype=np.float32))))
            written.append(out.write(out.path(base, SCORES_INFO), lambda p: p.write_text(info)))
        else:
            written.append(out.write(out.path(base, FORMATS[fmt]), lambda p, f=fmt: write_labels(
                list(segs), p, fmt=LABEL_FORMATS[f], name=Path(name).stem, duration=duration)))
    return written
