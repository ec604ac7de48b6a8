"""The runner: the one place that decides what to compute, and the only writer of the cache.

It knows stages only through the table in :mod:`pipeline.stage`. For each source it builds the
key chain of the target stage (fingerprint -> each stage's key from its config and its inputs'
keys), looks in the cache (every entry read is checked; a corrupt one is a miss), and computes
and stores only what is missing. Planning happens in the calling process (a stat and a small
JSON read per file when the fingerprint memo is warm); only misses go out: ``-j N`` spawned
processes with one math thread each, a Dask cluster, or, for a stage with a batched form
(``--device cuda`` features, the network of predict), batches in this process. A failing file is
reported and skipped; the rest finish.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .cache import Cache, CorruptEntry, make_key
from .config import Config
from .errors import CacheError, ParameterError, PipelineError
from .inputs import Source
from .progress import AudioProgress, plural
from .stage import STAGES, chain, key_config


@dataclass(frozen=True)
class Settings:
    """Run settings that never change an output (so they stay out of cache keys)."""

    cache_dir: str | None = None
    jobs: int = 1
    device: str = "cpu"
    engine: str = "auto"  # the network's: onnx (ONNX Runtime) where the model has model.onnx, else torch
    executor: str = "local"
    scheduler: str | None = None
    verbosity: int = 0  # -1 quiet, 0 normal, 1 verbose (tracebacks)

    def cache(self) -> Cache:
        return Cache(self.cache_dir)


@dataclass
class FileResult:
    """What happened to one source in one run."""

    path: str
    status: str  # "computed" | "cached" | "failed"
    keys: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0  # seconds of audio
    error: str = ""
    seconds: float = 0.0  # wall time spent computing
    notes: list[str] = field(default_factory=list)  # e.g. corrupt cache entries found and redone


@dataclass
class Report:
    """All results of one run, with the summary line the CLI prints."""

    stage: str
    results: list[FileResult]
    wall: float
    repaired: list[str] = field(default_factory=list)  # corrupt entries met while planning

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def audio_seconds(self) -> float:
        return sum(r.duration for r in self.results)

    @property
    def notes(self) -> list[str]:
        """Corrupt cache entries found (removed, then recomputed) during the run."""
        return list(dict.fromkeys(self.repaired + [n for r in self.results for n in r.notes]))

    def summary(self, wall: float | None = None) -> str:
        """The run in one line; ``wall``: the seconds to report (the whole command's, from the
        command line), else the runner's own."""
        wall = self.wall if wall is None else wall
        hours = self.audio_seconds / 3600
        speed = self.audio_seconds / wall if wall > 0 else float("inf")
        return (f"{self.stage}: {plural(len(self.results), 'file')}: {self.count('computed')} computed, "
                f"{self.count('cached')} cached, {self.count('failed')} failed; "
                f"{hours:.3f} h of audio in {wall:.2f} s = {speed:,.0f}x real time")


# ------------------------------------------------------------------ keys


def stage_key(stage: str, cfg: Config, inputs: list[str], context: dict | None = None) -> str:
    """Cache key of one stage from its key settings, its inputs' keys and its context digests."""
    st = STAGES[stage]
    extra = [(context or {})[name] for name in st.context_inputs]
    return make_key(stage, st.version, key_config(st, cfg, context), list(inputs) + extra)


def file_keys(cache: Cache, cfg: Config, path: Path, upto: str, context: dict | None = None) -> dict[str, str]:
    """Keys of every per-file stage ``upto`` is built from, for one source (hashes it if unseen);
    the source's own digest is under ``"source"``."""
    keys: dict[str, str] = {"source": cache.fingerprint(path)}
    for stage in chain(upto):
        requires = STAGES[stage].requires
        keys[stage] = stage_key(stage, cfg, [keys[r] for r in requires] or [keys["source"]], context)
    return keys


# ------------------------------------------------------------------ computing one file


def _section(cfg: Config, st):
    """A stage's config section (None for a stage without settings)."""
    return getattr(cfg, st.section) if st.section else None


def ensure_entry(cache: Cache, cfg: Config, stage: str, keys: dict[str, str], source: str,
                 context: dict | None = None):
    """The entry of a per-file stage for one source: loaded (and checked) when cached, computed
    with its upstream and stored when missing or found corrupt."""
    key = keys[stage]
    if cache.has(stage, key):
        try:
            return cache.load(stage, key)
        except CorruptEntry:
            pass  # removed and noted in cache.repaired: compute it again below
    st = STAGES[stage]
    if st.streaming and all(not STAGES[r].requires and not cache.has(r, keys[r]) for r in st.requires):
        return _compute_streaming(cache, cfg, stage, keys, source, context)
    if st.compute is None:
        raise PipelineError(f"{source}: stage {stage!r} is computed in batches only (no per-file form)")
    t0 = time.perf_counter()
    upstream = [ensure_entry(cache, cfg, r, keys, source, context) for r in st.requires] or [Path(source)]
    arrays, meta = st.function()(_section(cfg, st), *upstream, **(context or {}))
    extra = {} if st.requires else {"source": str(Path(source).resolve())}
    return store(cache, cfg, stage, keys, arrays, {**meta, **extra}, t0=t0, where=source, context=context)


def _compute_streaming(cache: Cache, cfg: Config, stage: str, keys: dict[str, str], source: str,
                       context: dict | None):
    """A stage straight from its source file, rows appended to the entry as they come (the
    upstream stages, which only read the file, are not stored)."""
    st = STAGES[stage]
    t0 = time.perf_counter()
    upstream = [_section(cfg, STAGES[r]) for r in st.requires]
    pieces = st.function("streaming")(_section(cfg, st), Path(source), *upstream)
    try:
        with cache.writer(stage, keys[stage]) as w:
            while True:
                try:
                    name, rows = next(pieces)
                except StopIteration as stop:
                    meta = stop.value
                    break
                check_finite({name: rows}, stage=stage, where=source)
                w.append(name, rows)
            inputs = [keys[r] for r in st.requires] + [(context or {})[n] for n in st.context_inputs]
            return w.finish({**meta, "source": str(Path(source).resolve()), "source_sha256": keys["source"],
                             **_provenance(stage, inputs, key_config(st, cfg, context), t0)})
    except CacheError as exc:  # disk full, a file-size limit: name the input it was for
        raise CacheError(f"{source}: {exc}") from exc


def check_finite(arrays: dict, *, stage: str, where: str) -> None:
    """Refuse to store NaN or infinity: one absurd file must fail alone, not poison the cache."""
    import numpy as np

    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise PipelineError(f"{where}: {stage} gives {bad} non-finite value(s) in {name!r} (NaN or "
                                f"infinity; is the audio absurdly loud?); nothing stored")


def store(cache: Cache, cfg: Config, stage: str, keys: dict[str, str], arrays: dict, meta: dict, *,
          t0: float, where: str, context: dict | None = None):
    """Write the entry of a per-file stage with the provenance every entry carries."""
    st = STAGES[stage]
    inputs = [keys[r] for r in st.requires] or [keys["source"]]
    inputs += [(context or {})[name] for name in st.context_inputs]
    return store_entry(cache, stage, keys[stage], arrays, meta, inputs=inputs,
                       config=key_config(st, cfg, context), t0=t0, where=where)


def store_entry(cache: Cache, stage: str, key: str, arrays: dict, meta: dict, *, inputs: list[str],
                config: dict, t0: float, where: str):
    """Write one entry (version, inputs, config, timing, libraries) after checking its arrays are
    finite; a failure to write names ``where`` (the input it was for)."""
    check_finite(arrays, stage=stage, where=where)
    try:
        return cache.store(stage, key, arrays, {**meta, **_provenance(stage, inputs, config, t0)})
    except CacheError as exc:  # disk full, a file-size limit
        raise CacheError(f"{where}: {exc}") from exc


def ensure_dataset_entry(cache: Cache, stage: str, config: dict, inputs: list[str],
                         build: Callable[[], tuple[dict, dict]], *, where: str):
    """The entry of a dataset stage (one for many inputs): loaded when cached (and sound), else
    ``build()`` -> (arrays, meta) and stored."""
    key = make_key(stage, STAGES[stage].version, config, inputs)
    if cache.has(stage, key):
        try:
            return cache.load(stage, key)
        except CorruptEntry:
            pass
    t0 = time.perf_counter()
    arrays, meta = build()
    return store_entry(cache, stage, key, arrays, meta, inputs=inputs, config=config, t0=t0, where=where)


def _provenance(stage: str, inputs: list[str], config: dict, t0: float) -> dict:
    """What every entry records of how it was made: version, inputs, settings, time, libraries."""
    return {"version": STAGES[stage].version, "inputs": inputs, "config": config,
            "seconds": time.perf_counter() - t0, "libraries": _library_versions()}


def _library_versions() -> dict[str, str]:
    import numpy

    versions = {"python": sys.version.split()[0], "numpy": numpy.__version__}
    for name in ("soundfile", "soxr", "scipy", "torch", "torchaudio"):
        mod = sys.modules.get(name)
        if mod is not None:
            versions[name] = getattr(mod, "__version__", "?")
    return versions


def _failure(source: str, keys: dict, exc: BaseException, verbose: bool, notes: list[str]) -> FileResult:
    if isinstance(exc, PipelineError):
        return FileResult(source, "failed", keys, error=str(exc), notes=notes)
    detail = traceback.format_exc() if verbose else f"{type(exc).__name__}: {exc}"
    return FileResult(source, "failed", keys, error=f"{source}: unexpected error: {detail}", notes=notes)


def process_file(cache_dir: str, cfg: Config, source: str, keys: dict[str, str], upto: str,
                 verbose: bool = False) -> FileResult:
    """Worker body: make sure ``upto`` exists for one source. Never raises."""
    cache = Cache(cache_dir)
    t0 = time.perf_counter()
    try:
        entry = ensure_entry(cache, cfg, upto, keys, source)
        return FileResult(source, "computed", keys, float(entry.meta.get("duration") or 0.0),
                          seconds=time.perf_counter() - t0, notes=cache.repaired)
    except (Exception, RecursionError) as exc:  # a bad input or a bug: name the file, go on
        return _failure(source, keys, exc, verbose, cache.repaired)


_STARTED = None  # in a pool worker: where it tells the parent which file it takes up


def _init_worker(parent: int, started=None) -> None:
    """One math thread per worker process (the parallelism is across files); Ctrl-C is the
    parent's to handle; a worker whose parent is gone (even by SIGKILL) exits by itself.
    ``started``: a queue to the parent (see :func:`_process_in_worker`)."""
    global _STARTED
    # set before numpy/torch load (spawned workers start bare); torch reads OMP_NUM_THREADS at
    # import, so workers that never need torch never pay for importing it
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _STARTED = started
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _process_in_worker(cache_dir: str, cfg: Config, source: str, keys: dict[str, str], upto: str,
                       verbose: bool = False) -> FileResult:
    """:func:`process_file` in a pool worker, which first tells the parent ``(pid, source)``: when a
    worker dies (a decoder's segfault), the parent knows the file it died on."""
    if _STARTED is not None:
        _STARTED.put((os.getpid(), source))  # a SimpleQueue writes to its pipe at once, before the work
    return process_file(cache_dir, cfg, source, keys, upto, verbose)


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """Poll the parent's pid; when it is gone we are re-parented, so leave at once (no cleanup to
    do: an entry being written lives in the cache's .tmp/ until renamed)."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(3)


# ------------------------------------------------------------------ the run


def _audio_seconds(paths: Iterable[str]) -> float:
    """Seconds of audio in these files, from their headers (0 for what cannot be read)."""
    import soundfile as sf

    total = 0.0
    for p in paths:
        try:
            total += float(sf.info(p).duration)
        except Exception:  # noqa: BLE001 - it fails later, by name
            pass
    return total


def _progress(paths: list[str], desc: str, settings: Settings) -> AudioProgress:
    quiet = settings.verbosity < 0
    return AudioProgress(desc, total_seconds=0.0 if quiet else _audio_seconds(paths), files=len(paths), quiet=quiet)


def _plan(cache: Cache, cfg: Config, sources: Iterable[Source], problems: Iterable[str], *, target: str,
          context: dict | None = None):
    """Keys of every source, split into cached results and the sources still to compute.

    Unreadable sources and ``problems`` (inputs that named nothing) become failed results.
    """
    results: list[FileResult] = [FileResult(p.split(":")[0], "failed", error=p) for p in problems]
    todo: list[tuple[Source, dict[str, str]]] = []
    for src in sources:
        path = str(src.path)
        try:
            keys = file_keys(cache, cfg, src.path, target, context)
        except OSError as exc:
            results.append(FileResult(path, "failed", error=f"{path}: cannot read ({exc.strerror or exc})"))
            continue
        entry = None
        if cache.has(target, keys[target]):
            try:
                entry = cache.load(target, keys[target])  # checked: a bad entry is a miss
            except CorruptEntry:
                pass  # removed, and noted in cache.repaired
        if entry is not None:
            results.append(FileResult(path, "cached", keys, float(entry.meta.get("duration") or 0.0)))
        else:
            todo.append((src, keys))
    return results, todo


def run_files(sources: Iterable[Source], cfg: Config, settings: Settings, *, upto: str,
              problems: Iterable[str] = (), cache: Cache | None = None, context: dict | None = None) -> Report:
    """Bring stage ``upto`` up to date for every source; returns the per-file results.

    ``problems`` (inputs that named nothing) are reported as failed results. ``cache``: the
    caller's instance, so entries it already checked are not checked again. ``context``: the job's
    objects a stage needs (a loaded model and its digest for predict).
    """
    t0 = time.perf_counter()
    sources = list(sources)
    cache = cache or settings.cache()
    results, todo = _plan(cache, cfg, sources, problems, target=upto, context=context)
    if todo:
        cache.check_writable()  # once, before any work: not every input failing for the same reason
        results.extend(_dispatch(cache, todo, cfg, settings, upto, context))
    order = {str(s.path): i for i, s in enumerate(sources)}
    results.sort(key=lambda r: order.get(r.path, -1))
    notes = [n for r in results for n in r.notes]
    return Report(upto, results, time.perf_counter() - t0, repaired=list(dict.fromkeys(cache.repaired + notes)))


def _dispatch(cache: Cache, todo: list[tuple[Source, dict[str, str]]], cfg: Config, settings: Settings,
              upto: str, context: dict | None) -> list[FileResult]:
    st = STAGES[upto]
    if st.batched and (st.in_process or settings.device.startswith("cuda")):
        return _run_batched(cache, todo, cfg, settings, upto, context)
    jobs = [(str(s.path), k) for s, k in todo]
    if settings.executor == "dask":
        return _run_dask(jobs, cfg, settings, upto)
    return _run_local(jobs, cfg, settings, upto)


def _run_local(todo: list[tuple[str, dict[str, str]]], cfg: Config, settings: Settings, upto: str) -> list[FileResult]:
    """In this process (``-j 1``) or in spawned worker processes that die with this one; a worker
    that dies on a file (a segfault) fails that file, and a fresh pool takes the rest."""
    cache_dir, verbose = str(settings.cache().root), settings.verbosity > 0
    results = []
    with _progress([p for p, _ in todo], upto, settings) as bar:
        if settings.jobs <= 1 or len(todo) == 1:  # in this process: long files advance block by block
            for path, keys in todo:
                before = bar.done
                results.append(process_file(cache_dir, cfg, path, keys, upto, verbose))
                bar.file_done(results[-1].duration, bar.done - before)
            return results
        pending, jobs = list(todo), settings.jobs
        while pending:  # a fresh pool after each crash, for what the broken one left unfinished
            done, crashed, pending = _pool_round(pending, cfg, settings, upto, jobs, bar)
            results += done + crashed
            if pending and not crashed:  # a crash not pinned on a file: one worker at a time pins it
                if jobs == 1 and not done:  # workers die before taking up any file
                    results += [FileResult(p, "failed", k, error=f"{p}: not processed: worker processes kept "
                                                                  f"dying before taking up a file") for p, k in pending]
                    break
                jobs = 1
    return results


def _pool_round(todo: list[tuple[str, dict[str, str]]], cfg: Config, settings: Settings, upto: str, jobs: int,
                bar: AudioProgress) -> tuple[list[FileResult], list[FileResult], list[tuple[str, dict[str, str]]]]:
    """``todo`` over a pool of ``jobs`` spawned workers that die with this process.

    Returns the files' results, a failure for each file whose worker died while handling it (a
    segfault in a decoder breaks the whole pool), and the files the broken pool left unfinished.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    cache_dir, verbose = str(settings.cache().root), settings.verbosity > 0
    ctx = mp.get_context("spawn")
    started = ctx.SimpleQueue()
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(), started))
    results, unfinished, last = [], [], {}  # last: pid -> the file it took up last

    def drain():  # after each result, so the pipe never fills and blocks a worker's put
        while not started.empty():
            pid, path = started.get()
            last[pid] = path
    try:
        futures = {pool.submit(_process_in_worker, cache_dir, cfg, path, keys, upto, verbose): (path, keys)
                   for path, keys in todo}
        for fut in as_completed(futures):
            drain()
            if isinstance(fut.exception(), BrokenProcessPool):
                unfinished.append(futures[fut])
                continue
            results.append(fut.result())
            bar.file_done(results[-1].duration, 0.0)
        workers = list((getattr(pool, "_processes", None) or {}).values())  # before shutdown drops them
    except BaseException:  # Ctrl-C: no worker outlives the run
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()  # a broken pool has terminated (SIGTERM) and joined the workers still alive
    drain()
    started.close()
    if not unfinished:
        return results, [], []
    # the one that broke the pool died by itself (a signal other than the pool's SIGTERM, or an exit code)
    died = {p.pid: p.exitcode for p in workers if p.exitcode not in (None, 0, -signal.SIGTERM)}
    culprits = {last[pid]: code for pid, code in died.items() if pid in last}
    crashed = []
    for path, keys in unfinished:
        if path in culprits:
            code = culprits[path]
            how = signal.Signals(-code).name if code < 0 and -code in signal.valid_signals() else f"exit code {code}"
            crashed.append(FileResult(path, "failed", keys, error=f"{path}: the worker process handling it died "
                                                                  f"({how}); the other inputs went on"))
            bar.file_done(0.0, 0.0)
    return results, crashed, [(p, k) for p, k in unfinished if p not in culprits]


def _run_dask(todo, cfg: Config, settings: Settings, upto: str) -> list[FileResult]:
    """Send the misses to a Dask cluster whose workers share the cache directory."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ParameterError("--executor dask needs the 'dask' extra, which is not installed here: "
                             "pip install 'audio-seq-pipeline[dask]'") from None
    cache_dir = str(settings.cache().root.resolve())
    verbose = settings.verbosity > 0
    if settings.scheduler:
        client, cluster = Client(settings.scheduler), None
    else:
        cluster = LocalCluster(n_workers=max(1, settings.jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        from dask.distributed import as_completed

        futures = {client.submit(process_file, cache_dir, cfg, str(Path(p).resolve()), keys, upto, verbose,
                                 pure=False): p for p, keys in todo}
        results = []
        with _progress([p for p, _ in todo], upto, settings) as bar:
            for fut in as_completed(futures):
                r = fut.result()
                r.path = futures[fut]
                results.append(r)
                bar.file_done(r.duration, 0.0)
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_batched(cache: Cache, todo: list[tuple[Source, dict[str, str]]], cfg: Config, settings: Settings,
                 upto: str, context: dict | None) -> list[FileResult]:
    """A stage's batched form in this process: upstream first (fanned out as usual), then the
    stage over every ready input at once; each result is stored as its group finishes."""
    st = STAGES[upto]
    results: list[FileResult] = []
    ready = todo
    for req in st.requires:  # upstream entries, cached or computed by the usual executors
        up = run_files([s for s, _ in ready], cfg, settings, upto=req, cache=cache, context=context)
        failed = {r.path: r for r in up.failed}
        results.extend(failed.values())
        cache.repaired.extend(n for n in up.notes if n not in cache.repaired)
        ready = [(s, k) for s, k in ready if str(s.path) not in failed]
    inputs, kept = [], []
    for src, keys in ready:
        try:  # through ensure_entry: an upstream entry found corrupt now is recomputed, not used
            inputs.append(tuple(ensure_entry(cache, cfg, r, keys, str(src.path), context) for r in st.requires))
            kept.append((src, keys))
        except Exception as exc:  # noqa: BLE001 - that input fails, the others go on
            results.append(_failure(str(src.path), keys, exc, settings.verbosity > 0, []))
    with _progress([str(src.path) for src, _ in kept], upto, settings) as bar:
        t1 = time.perf_counter()
        section = _section(cfg, st)
        for i, out in st.function("batched")(section, inputs, device=settings.device, threads=settings.jobs,
                                             **(context or {})):
            src, keys = kept[i]
            path = str(src.path)
            try:
                if isinstance(out, BaseException):
                    raise out
                arrays, meta = out
                entry = store(cache, cfg, upto, keys, arrays, meta, t0=t1, where=path, context=context)
                results.append(FileResult(path, "computed", keys, float(entry.meta.get("duration") or 0.0),
                                          seconds=time.perf_counter() - t1))
            except Exception as exc:  # noqa: BLE001 - e.g. non-finite scores: this file fails, alone
                results.append(_failure(path, keys, exc, settings.verbosity > 0, []))
            t1 = time.perf_counter()
            bar.file_done(results[-1].duration, 0.0)
    return results

