"""Progress in seconds of audio: a bar on a terminal, a plain line every few seconds in a log.

One :class:`AudioProgress` per run step. It counts seconds of audio (with an ETA), advanced block
by block by a stage that streams a long file (through :func:`advance`, which reaches the progress
of the current step in this process) or file by file otherwise. With stderr not a terminal it
writes ``features: 1,234 of 10,800 s of audio (11%), 2/10 files, 950x real time, ETA 0:00:10``
every ``every`` seconds, for the logs of batch jobs; ``-q`` shows nothing.
"""
from __future__ import annotations

import contextvars
import os
import sys
import time

_CURRENT: contextvars.ContextVar["AudioProgress | None"] = contextvars.ContextVar("progress", default=None)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 files``: a count with its noun in the right number (``nouns``:
    an irregular plural, ``entries``)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def advance(seconds: float) -> None:
    """Advance the current step's progress by ``seconds`` of audio (no-op outside a step)."""
    p = _CURRENT.get()
    if p is not None:
        p.update(seconds=seconds)


class AudioProgress:
    def __init__(self, desc: str, *, total_seconds: float, files: int, quiet: bool = False,
                 every: float | None = None, stream=None):
        every = float(os.environ.get("PIPELINE_PROGRESS_EVERY", 10.0)) if every is None else every
        self.desc, self.total, self.files, self.every = desc, float(total_seconds), files, every
        self.stream = stream or sys.stderr
        self.done, self.files_done = 0.0, 0
        self.t0 = self._last = time.monotonic()
        self._bar = None
        self._log = not quiet and not self.stream.isatty()
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=round(self.total, 1), desc=desc, unit="s audio", leave=False, file=self.stream,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:,.0f}/{total:,.0f} s of audio "
                                        "[{elapsed}<{remaining}, {postfix}]")
        self._token = None

    def __enter__(self) -> "AudioProgress":
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self._token)
        if self._bar is not None:
            self._bar.close()

    def update(self, *, seconds: float = 0.0, files: int = 0) -> None:
        self.done = min(self.total, self.done + seconds) if self.total else self.done + seconds
        self.files_done += files
        now = time.monotonic()
        if self._bar is not None:
            self._bar.n = round(self.done, 1)
            self._bar.set_postfix_str(f"{self.files_done}/{plural(self.files, 'file')}", refresh=False)
            self._bar.refresh()
        elif self._log and (now - self._last >= self.every or self.files_done == self.files and files):
            self._last = now
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def file_done(self, seconds_total: float, seconds_advanced: float) -> None:
        """A file finished: count it, and the part of its audio not yet advanced block by block."""
        self.update(seconds=max(0.0, seconds_total - seconds_advanced), files=1)

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.t0
        speed = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / speed if speed > 0 else float("nan")
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if left == left else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.desc}: {self.done:,.0f} of {self.total:,.0f} s of audio ({pct:.0f}%), "
                f"{self.files_done}/{plural(self.files, 'file')}, {speed:,.0f}x real time, ETA {eta}")
