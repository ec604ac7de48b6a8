"""The runner: the one place that decides what to compute, and the only writer of the cache.

For each source it builds the key chain (fingerprint -> load key -> features key ...), looks in
the cache, and computes and stores only on a miss. Planning happens in the calling process
(cheap: a stat and a small JSON read per file when the fingerprint memo is warm); only misses are
sent to workers: ``-j N`` spawned processes with one math thread each, a Dask cluster, or, with
``--device cuda``, batches of files on the GPU. A failing file is reported and skipped; the rest
finish.
"""
from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .cache import Cache, CorruptEntry, canonical_json, make_key
from .config import Config, key_fields
from .errors import CacheError, PipelineError
from .inputs import Source
from .stage import version as stage_version

FILE_STAGES = ("load", "features")
FILES_PER_BATCH = 64  # predict: files whose chunks share network calls (a recurrent net is
                      # bound by per-time-step overhead at small batches)
FRAMES_PER_BATCH = 4_000_000  # predict: padded frames held at once (1 GiB of 64-bin float32)


@dataclass(frozen=True)
class Settings:
    """Run settings that never change an output (so they stay out of cache keys)."""

    cache_dir: str | None = None
    jobs: int = 1
    device: str = "cpu"
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


# ------------------------------------------------------------------ keys


def stage_key(stage: str, cfg: Config, inputs: list[str]) -> str:
    """Cache key of a per-file stage from its config section and its inputs' keys."""
    return make_key(stage, stage_version(stage), key_fields(getattr(cfg, stage)), inputs)


def file_keys(cache: Cache, cfg: Config, path: Path, upto: str) -> dict[str, str]:
    """Keys of every per-file stage up to ``upto`` for one source (hashes it if unseen); the
    source's own digest is under ``"source"``."""
    keys: dict[str, str] = {"source": cache.fingerprint(path)}
    inputs = [keys["source"]]
    for stage in FILE_STAGES[: FILE_STAGES.index(upto) + 1]:
        keys[stage] = stage_key(stage, cfg, inputs)
        inputs = [keys[stage]]
    return keys


# ------------------------------------------------------------------ computing one file


def _compute(cache: Cache, cfg: Config, stage: str, keys: dict[str, str], source: str):
    """Return the entry for ``stage``, computing it and its upstream on a miss."""
    from . import audio, features

    key = keys[stage]
    if cache.has(stage, key):
        try:
            return cache.load(stage, key)
        except CorruptEntry:
            pass  # removed and noted in cache.repaired: compute it again below
    t0 = time.perf_counter()
    if stage == "load":
        arrays, meta = audio.compute(cfg.load, Path(source))
        inputs, extra = [keys["source"]], {"source": str(Path(source).resolve())}
    elif stage == "features":
        up = _compute(cache, cfg, "load", keys, source)
        arrays, meta = features.compute(cfg.features, up["y"], up.meta["sr"])
        inputs, extra = [keys["load"]], {}
    else:  # pragma: no cover - FILE_STAGES lists all
        raise ValueError(stage)
    return _store(cache, stage, key, arrays, meta, inputs=inputs, config=key_fields(getattr(cfg, stage)),
                  t0=t0, where=source, **extra)


def check_finite(arrays: dict, *, stage: str, where: str) -> None:
    """Refuse to store NaN or infinity: one absurd file must fail alone, not poison the cache."""
    import numpy as np

    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise PipelineError(f"{where}: {stage} gives {bad} non-finite value(s) in {name!r} (NaN or "
                                f"infinity; is the audio absurdly loud?); nothing stored")


def ensure_entry(cache: Cache, cfg: Config, stage: str, keys: dict[str, str], source: str):
    """The entry of a per-file stage for one source: loaded (and checked) when cached, computed
    and stored when missing or found corrupt."""
    return _compute(cache, cfg, stage, keys, source)


def _store(cache: Cache, stage: str, key: str, arrays: dict, meta: dict, *, inputs: list[str], config: dict,
           t0: float, where: str, **extra):
    """Write one entry with the provenance every entry carries (version, inputs, config, timing),
    after checking its arrays are finite."""
    check_finite(arrays, stage=stage, where=where)
    try:
        return cache.store(stage, key, arrays, {
            **meta, **extra, "version": stage_version(stage), "inputs": inputs, "config": config,
            "seconds": time.perf_counter() - t0, "libraries": _library_versions()})
    except CacheError as exc:  # disk full, a file-size limit: name the input it was for
        raise CacheError(f"{where}: {exc}") from exc


def _library_versions() -> dict[str, str]:
    import numpy

    versions = {"python": sys.version.split()[0], "numpy": numpy.__version__}
    for name in ("soundfile", "soxr", "scipy", "torch", "torchaudio"):
        mod = sys.modules.get(name)
        if mod is not None:
            versions[name] = getattr(mod, "__version__", "?")
    return versions


def process_file(cache_dir: str, cfg: Config, source: str, keys: dict[str, str], upto: str,
                 verbose: bool = False) -> FileResult:
    """Worker body: make sure ``upto`` exists for one source. Never raises."""
    cache = Cache(cache_dir)
    t0 = time.perf_counter()
    try:
        entry = _compute(cache, cfg, upto, keys, source)
        return FileResult(source, "computed", keys, float(entry.meta.get("duration") or 0.0),
                          seconds=time.perf_counter() - t0, notes=cache.repaired)
    except PipelineError as exc:
        return FileResult(source, "failed", keys, error=str(exc), notes=cache.repaired)
    except (Exception, RecursionError) as exc:  # a bug or an unexpected library error: name the file, go on
        detail = traceback.format_exc() if verbose else f"{type(exc).__name__}: {exc}"
        return FileResult(source, "failed", keys, error=f"{source}: unexpected error: {detail}",
                          notes=cache.repaired)


def _init_worker(parent: int) -> None:
    """One math thread per worker process (the parallelism is across files); Ctrl-C is the
    parent's to handle; a worker whose parent is gone (even by SIGKILL) exits by itself."""
    # set before numpy/torch load (spawned workers start bare); torch reads OMP_NUM_THREADS at
    # import, so workers that never need torch never pay for importing it
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """Poll the parent's pid; when it is gone we are re-parented, so leave at once (no cleanup to
    do: an entry being written lives in the cache's .tmp/ until renamed)."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(3)


# ------------------------------------------------------------------ the run


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

    def summary(self) -> str:
        hours = self.audio_seconds / 3600
        speed = self.audio_seconds / self.wall if self.wall > 0 else float("inf")
        return (f"{self.stage}: {len(self.results)} files: {self.count('computed')} computed, "
                f"{self.count('cached')} cached, {self.count('failed')} failed; "
                f"{hours:.3f} h of audio in {self.wall:.2f} s = {speed:,.0f}x real time")


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=quiet or not sys.stderr.isatty(),
                leave=False, file=sys.stderr)


def _plan(cache: Cache, cfg: Config, sources: Iterable[Source], problems: Iterable[str], *, target: str,
          upto: str, extra_key: Callable[[dict[str, str]], str] | None = None):
    """Keys of every source, split into cached results and the sources still to compute.

    ``extra_key`` builds the key of a ``target`` stage beyond the per-file chain (predict).
    Unreadable sources and ``problems`` (inputs that named nothing) become failed results.
    """
    results: list[FileResult] = [FileResult(p.split(":")[0], "failed", error=p) for p in problems]
    todo: list[tuple[Source, dict[str, str]]] = []
    for src in sources:
        path = str(src.path)
        try:
            keys = file_keys(cache, cfg, src.path, upto)
        except OSError as exc:
            results.append(FileResult(path, "failed", error=f"{path}: cannot read ({exc.strerror or exc})"))
            continue
        if extra_key is not None:
            keys[target] = extra_key(keys)
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
              problems: Iterable[str] = (), cache: Cache | None = None) -> Report:
    """Bring stage ``upto`` up to date for every source; returns the per-file results.

    ``problems`` (inputs that named nothing) are reported as failed results. ``cache``: the
    caller's instance, so entries it already checked are not checked again.
    """
    t0 = time.perf_counter()
    cache = cache or settings.cache()
    results, todo = _plan(cache, cfg, sources, problems, target=upto, upto=upto)
    if todo:
        results.extend(_dispatch([(str(s.path), k) for s, k in todo], cfg, settings, upto))
    return Report(upto, results, time.perf_counter() - t0, repaired=cache.repaired)


def _dispatch(todo: list[tuple[str, dict[str, str]]], cfg: Config, settings: Settings,
              upto: str) -> list[FileResult]:
    cache_dir = str(settings.cache().root)
    verbose = settings.verbosity > 0
    quiet = settings.verbosity < 0
    if settings.device.startswith("cuda") and upto == "features":
        return _run_batched_gpu(todo, cfg, settings)
    if settings.executor == "dask":
        return _run_dask(todo, cfg, settings, upto)
    results = []
    bar = _progress(len(todo), upto, quiet)
    if settings.jobs <= 1 or len(todo) == 1:
        for path, keys in todo:
            results.append(process_file(cache_dir, cfg, path, keys, upto, verbose))
            bar.update()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        pool = ProcessPoolExecutor(max_workers=min(settings.jobs, len(todo)), mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(os.getpid(),))
        try:
            futures = [pool.submit(process_file, cache_dir, cfg, path, keys, upto, verbose)
                       for path, keys in todo]
            for fut in as_completed(futures):
                results.append(fut.result())
                bar.update()
        except BaseException:  # Ctrl-C, or the pool broke: no worker outlives the run
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    bar.close()
    return results


def _run_dask(todo, cfg: Config, settings: Settings, upto: str) -> list[FileResult]:
    """Send the misses to a Dask cluster whose workers share the cache directory."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise PipelineError("--executor dask needs the 'dask' extra: pip install 'audio-seq-pipeline[dask]'") from None
    cache_dir = str(settings.cache().root.resolve())
    verbose = settings.verbosity > 0
    if settings.scheduler:
        client, cluster = Client(settings.scheduler), None
    else:
        cluster = LocalCluster(n_workers=max(1, settings.jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(process_file, cache_dir, cfg, str(Path(p).resolve()), keys, upto, verbose,
                                 pure=False) for p, keys in todo]
        results = client.gather(futures)
        for r, (p, _) in zip(results, todo):
            r.path = p
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_batched_gpu(todo, cfg: Config, settings: Settings) -> list[FileResult]:
    """Features for many files per torch call on the GPU; load runs in this process."""
    from . import features

    cache = settings.cache()
    results: list[FileResult] = []
    batch = max(1, cfg.features.batch_size)
    for i in range(0, len(todo), batch):
        group, ys = [], []
        for path, keys in todo[i: i + batch]:
            t0 = time.perf_counter()
            try:
                up = _compute(cache, cfg, "load", keys, path)
                group.append((path, keys, up, t0))
                ys.append(up["y"])
            except PipelineError as exc:
                results.append(FileResult(path, "failed", keys, error=str(exc)))
        if not group:
            continue
        sr = group[0][2].meta["sr"]
        outs = features.spectrogram_batch(ys, sr=sr, cfg=cfg.features, device=settings.device)
        for (path, keys, up, t0), S in zip(group, outs):
            arrays, meta = features.finish(S, cfg.features, sr, up.meta["duration"])
            try:
                _store(cache, "features", keys["features"], arrays, meta, inputs=[keys["load"]],
                       config=key_fields(cfg.features), t0=t0, where=path, device=settings.device)
            except PipelineError as exc:
                results.append(FileResult(path, "failed", keys, error=str(exc)))
                continue
            results.append(FileResult(path, "computed", keys, up.meta["duration"],
                                      seconds=time.perf_counter() - t0))
    return results


# ------------------------------------------------------------------ dataset stages


def ensure_chunks(dataset, cfg: Config, settings: Settings, *, valid=None, log=print):
    """Features for every clip (cached, fanned out), then the chunk entry (cached).

    ``valid`` is an optional second dataset used as the validation split; otherwise files are
    split by ``chunk.valid_fraction`` and ``chunk.split_seed``. Files that fail are named by
    ``log`` and left out.

    Returns
    -------
    entry : cache.Entry of stage "chunk"
    report : Report of the features run (its ``failed`` list names the files left out)
    """
    import numpy as np

    from . import chunks
    from .labels import segments_to_frames

    items = list(dataset.items) + (list(valid.items) if valid is not None else [])
    report = run_files([i.source for i in items], cfg, settings, upto="features")
    by_path = {r.path: r for r in report.results}
    ok = [(i, by_path[str(i.source.path)]) for i in items if by_path[str(i.source.path)].status != "failed"]
    for r in report.failed:
        log(f"FAILED {r.error} (left out of the dataset)")
    if not ok:
        raise PipelineError(f"{dataset.origin}: no file of the dataset could be read")
    names = [i.name for i, _ in ok]
    if valid is not None:
        valid_names = {i.name for i in valid.items}
        file_split = np.array([n in valid_names for n in names], dtype=np.uint8)
    else:
        file_split = chunks.split_files(names, valid_fraction=cfg.chunk.valid_fraction, seed=cfg.chunk.split_seed)
    classes = list(dataset.classes)
    fkeys = [r.keys["features"] for _, r in ok]
    labels_doc = hashlib.sha256(canonical_json(
        [[n, [list(s) for s in i.segments]] for n, (i, _) in zip(names, ok)]).encode()).hexdigest()
    config = {**key_fields(cfg.chunk), "classes": classes, "split": file_split.tolist()}
    key = make_key("chunk", stage_version("chunk"), config, fkeys + [labels_doc])
    cache = settings.cache()
    if cache.has("chunk", key):
        return cache.load("chunk", key), report
    t0 = time.perf_counter()
    feats, targets, files = [], [], []
    for (item, r), split in zip(ok, file_split):
        entry = cache.load("features", r.keys["features"])
        S = entry["S"]
        feats.append(S)
        targets.append(segments_to_frames(item.segments, classes=classes, n_frames=S.shape[0],
                                          fps=entry.meta["fps"], path=str(item.source.path)))
        files.append({"name": item.name, "path": str(item.source.path), "features": r.keys["features"],
                      "n_frames": int(S.shape[0]), "split": "valid" if split else "train"})
    arrays = chunks.make_chunks(feats, targets, frames=cfg.chunk.frames, hop=cfg.chunk.hop, file_split=file_split)
    fps = cache.read_meta("features", fkeys[0])["fps"]
    meta = {"classes": classes, "files": files, "fps": fps, "n_bins": int(arrays["X"].shape[2]),
            "duration": sum(f["n_frames"] for f in files) / fps}
    return _store(cache, "chunk", key, arrays, meta, inputs=fkeys + [labels_doc], config=config, t0=t0,
                  where=str(dataset.origin)), report


def _length_batches(items: list, lengths: list[int], max_files: int, max_frames: int = FRAMES_PER_BATCH):
    """Groups of items of similar length (sorted), each at most ``max_files`` long and padded to
    at most ``max_frames`` frames in all (``len(group) * longest``), so that one long recording
    neither pads many short ones nor blows the memory."""
    order = sorted(range(len(items)), key=lambda i: lengths[i])
    group: list[int] = []
    for i in order:
        if group and (len(group) >= max_files or (len(group) + 1) * lengths[i] > max_frames):
            yield [items[j] for j in group]
            group = []
        group.append(i)
    if group:
        yield [items[j] for j in group]


def predict_files(sources: list[Source], model, model_digest: str, cfg: Config, settings: Settings, *,
                  problems: Iterable[str] = (), files_per_batch: int = 0) -> Report:
    """Frame scores of every source (stage ``predict``, cached), features computed as needed.

    Misses are scored in this process, several files per network batch, on ``settings.device``
    (``-j`` sets the torch threads and the feature workers).
    """
    import numpy as np
    import torch

    from . import predict

    files_per_batch = files_per_batch or FILES_PER_BATCH
    t0 = time.perf_counter()
    cache = settings.cache()
    score_cfg = predict.score_key_fields(model, cfg.predict)
    results, todo = _plan(cache, cfg, sources, problems, target="predict", upto="features",
                          extra_key=lambda k: make_key("predict", stage_version("predict"), score_cfg,
                                                       [k["features"], model_digest]))
    if todo:
        feat_report = run_files([s for s, _ in todo], cfg, settings, upto="features", cache=cache)
        failed = {r.path: r for r in feat_report.failed}
        results.extend(failed.values())
        ready = [(s, k) for s, k in todo if str(s.path) not in failed]
        torch.set_num_threads(max(1, settings.jobs))
        model.to(settings.device).eval()
        bar = _progress(len(ready), "predict", settings.verbosity < 0)
        lengths = [cache.read_meta("features", k["features"])["n_frames"] for _, k in ready]
        for group in _length_batches(ready, lengths, files_per_batch):
            t1 = time.perf_counter()
            # through _compute: a features entry found corrupt here is recomputed, not used
            entries = [_compute(cache, cfg, "features", k, str(src.path)) for src, k in group]
            fps = entries[0].meta["fps"]
            scores = predict.score_files(model, [np.asarray(e["S"], dtype=np.float32) for e in entries], fps=fps,
                                         pcfg=cfg.predict, device=settings.device)
            for (src, keys), e, sc in zip(group, entries, scores):
                path = str(src.path)
                try:
                    _store(cache, "predict", keys["predict"], {"scores": sc},
                           {"fps": fps, "duration": e.meta["duration"], "device": settings.device},
                           inputs=[keys["features"], model_digest], config=score_cfg, t0=t1, where=path)
                except PipelineError as exc:  # e.g. non-finite scores: this file fails, alone
                    results.append(FileResult(path, "failed", keys, error=str(exc)))
                    continue
                results.append(FileResult(path, "computed", keys, e.meta["duration"],
                                          seconds=(time.perf_counter() - t1) / len(group)))
            bar.update(len(group))
        bar.close()
    order = {str(s.path): i for i, s in enumerate(sources)}
    results.sort(key=lambda r: order.get(r.path, -1))
    return Report("predict", results, time.perf_counter() - t0,
                  repaired=list(dict.fromkeys(cache.repaired + (feat_report.notes if todo else []))))
