"""The chunk stage: a dataset's spectrograms cut into fixed chunks of T frames every H frames.

Output arrays, stored contiguously so that training reads are sequential (mmap):

- ``X`` [shape=(n_chunks, T, F)] features, zero past the end of a file;
- ``Y`` [shape=(n_chunks, T, C), uint8] frame targets (C = 0 without labels);
- ``mask`` [shape=(n_chunks, T), bool] the valid (non-padding) frames;
- ``index`` [shape=(n_chunks, 3), int64] rows of (file number, start frame, valid frames);
- ``split`` [shape=(n_chunks,), uint8] 0 train, 1 validation (by file, never both);
- ``mean``, ``std`` [shape=(F,), float32] per-bin statistics of the training split's valid frames.

A chunk starts every ``hop`` frames until one reaches the end of the file (the last one is
padded), so every frame is in at least one chunk and :func:`reassemble` returns the original
features and targets exactly.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .errors import ParameterError
from .stitch import chunk_starts


def split_files(names: list[str], *, valid_fraction: float, seed: int) -> np.ndarray:
    """Deterministic file-level split: 1 for validation, 0 for training, in ``names`` order.

    Files are ranked by ``sha256(seed:name)``; the first ``round(valid_fraction * n)`` (at least
    one when the fraction is positive and there are two or more files) go to validation, so a
    file's split does not depend on the other files' order.
    """
    n = len(names)
    n_valid = int(round(valid_fraction * n))
    if valid_fraction > 0 and n >= 2:
        n_valid = min(max(n_valid, 1), n - 1)
    else:
        n_valid = 0
    rank = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{names[i]}".encode()).hexdigest())
    split = np.zeros(n, dtype=np.uint8)
    split[rank[:n_valid]] = 1
    return split


def make_chunks(features: list[np.ndarray], targets: list[np.ndarray] | None, *, frames: int, hop: int,
                file_split: np.ndarray) -> dict[str, np.ndarray]:
    """Cut every file's features (and targets) into chunks; see the module docstring for arrays.

    Parameters
    ----------
    features : list of np.ndarray [shape=(n_frames_i, F)]
    targets : list of np.ndarray [shape=(n_frames_i, C)] or None
    file_split : np.ndarray [shape=(n_files,)], 0 train / 1 validation
    """
    if not features:
        raise ParameterError("no files to chunk")
    n_bins = features[0].shape[1]
    n_cls = targets[0].shape[1] if targets else 0
    spans = []
    for i, S in enumerate(features):
        if S.shape[1] != n_bins:
            raise ParameterError(f"file {i} has {S.shape[1]} bins, the first file {n_bins}")
        for start in chunk_starts(S.shape[0], frames=frames, hop=hop):
            spans.append((i, int(start), int(min(frames, S.shape[0] - start))))
    n = len(spans)
    X = np.zeros((n, frames, n_bins), dtype=features[0].dtype)
    Y = np.zeros((n, frames, n_cls), dtype=np.uint8)
    mask = np.zeros((n, frames), dtype=bool)
    for c, (i, start, valid) in enumerate(spans):
        X[c, :valid] = features[i][start: start + valid]
        if targets:
            Y[c, :valid] = targets[i][start: start + valid] > 0.5
        mask[c, :valid] = True
    index = np.asarray(spans, dtype=np.int64).reshape(n, 3)
    split = file_split[index[:, 0]].astype(np.uint8)
    mean, std = normalization_stats(features, file_split)
    return {"X": X, "Y": Y, "mask": mask, "index": index, "split": split, "mean": mean, "std": std}


def normalization_stats(features: list[np.ndarray], file_split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std over every frame of the training files (float64 sums; std >= 1e-5)."""
    train = [S for S, s in zip(features, file_split) if s == 0] or features
    n = sum(S.shape[0] for S in train)
    total = sum(S.sum(axis=0, dtype=np.float64) for S in train)
    mean = total / n
    var = sum(((S - mean) ** 2).sum(axis=0) for S in train) / n
    return mean.astype(np.float32), np.sqrt(np.maximum(var, 1e-10)).astype(np.float32)


def reassemble(arr: np.ndarray, index: np.ndarray, file: int, n_frames: int) -> np.ndarray:
    """Undo the chunking for one file: ``arr`` chunks [shape=(n_chunks, T, ...)] -> (n_frames, ...)."""
    out = np.zeros((n_frames,) + arr.shape[2:], dtype=arr.dtype)
    for c in np.flatnonzero(index[:, 0] == file):
        _, start, valid = index[c]
        out[start: start + valid] = arr[c, :valid]
    return out


# ------------------------------------------------------------------ the dataset stage


def ensure_chunks(dataset, cfg, settings, *, valid=None, log=print):
    """Features for every clip (cached, fanned out), then the chunk entry (cached).

    ``valid`` is an optional second dataset used as the validation split (its files, told apart
    from the training set's by path, not name: ``a/x.wav`` and ``b/x.wav`` are two files); otherwise
    files are split by ``chunk.valid_fraction`` and ``chunk.split_seed``. The same audio (content
    hash) in both sets is warned about in one line through ``log``. Files that fail are named by
    ``log`` and left out.

    Returns
    -------
    entry : cache.Entry of stage "chunk"
    report : runner.Report of the features run (its ``failed`` list names the files left out)
    """
    from .cache import canonical_json
    from .config import key_fields
    from .errors import PipelineError
    from .runner import ensure_dataset_entry, run_files

    items = list(dataset.items) + (list(valid.items) if valid is not None else [])
    in_valid = [False] * len(dataset.items) + [True] * (len(items) - len(dataset.items))
    cache = settings.cache()
    report = run_files([i.source for i in items], cfg, settings, upto="features", cache=cache)
    by_path = {r.path: r for r in report.results}
    kept = [(i, by_path[str(i.source.path)], v) for i, v in zip(items, in_valid)
            if by_path[str(i.source.path)].status != "failed"]
    ok = [(i, r) for i, r, _ in kept]
    for r in report.failed:
        log(f"FAILED {r.error} (left out of the dataset)")
    if not ok:
        raise PipelineError(f"{dataset.origin}: no file of the dataset could be read")
    names = [i.name for i, _ in ok]
    if valid is not None:  # by the set a file came from: a name may occur in both sets
        file_split = np.array([v for _, _, v in kept], dtype=np.uint8)
        shared = _same_audio(kept)
        if shared:
            log(f"WARNING: {len(shared)} file(s) of --valid {valid.origin} have the same audio as "
                f"training files ({', '.join(f'{v} = {t}' for v, t in shared[:3])}"
                f"{', ...' if len(shared) > 3 else ''}): validation scores them on training data")
    else:
        file_split = split_files(names, valid_fraction=cfg.chunk.valid_fraction, seed=cfg.chunk.split_seed)
    classes = list(dataset.classes)
    fkeys = [r.keys["features"] for _, r in ok]
    labels_doc = hashlib.sha256(canonical_json(
        [[n, [list(s) for s in i.segments]] for n, (i, _) in zip(names, ok)]).encode()).hexdigest()
    config = {**key_fields(cfg.chunk), "classes": classes, "split": file_split.tolist()}
    return ensure_dataset_entry(
        cache, "chunk", config, fkeys + [labels_doc], where=str(dataset.origin),
        build=lambda: _assemble(cache, cfg, ok, file_split, classes)), report


def _same_audio(kept) -> list[tuple[str, str]]:
    """(validation path, training path) pairs of files with the same content hash."""
    train = {}
    for item, r, v in kept:
        if not v:
            train.setdefault(r.keys["source"], str(item.source.path))
    return [(str(item.source.path), train[r.keys["source"]]) for item, r, v in kept
            if v and r.keys["source"] in train]


def _assemble(cache, cfg, ok, file_split: np.ndarray, classes: list[str]) -> tuple[dict, dict]:
    """Chunk arrays and metadata from the cached features and the items' labels."""
    from .labels import segments_to_frames

    feats, targets, files = [], [], []
    for (item, r), split in zip(ok, file_split):
        entry = cache.load("features", r.keys["features"])
        S = entry["S"]
        feats.append(S)
        targets.append(segments_to_frames(item.segments, classes=classes, n_frames=S.shape[0],
                                          fps=entry.meta["fps"], path=str(item.source.path)))
        files.append({"name": item.name, "path": str(item.source.path), "features": r.keys["features"],
                      "n_frames": int(S.shape[0]), "split": "valid" if split else "train"})
    arrays = make_chunks(feats, targets, frames=cfg.chunk.frames, hop=cfg.chunk.hop, file_split=file_split)
    fps = cache.read_meta("features", ok[0][1].keys["features"])["fps"]
    meta = {"classes": classes, "files": files, "fps": fps, "n_bins": int(arrays["X"].shape[2]),
            "duration": sum(f["n_frames"] for f in files) / fps}
    return arrays, meta
