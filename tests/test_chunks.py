"""The chunk stage: cutting, reassembly, splits, statistics and caching."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.chunks import make_chunks, normalization_stats, reassemble, split_files
from pipeline.config import ChunkConfig, Config
from pipeline.dataset import load_dataset
from pipeline.errors import LabelError, ParameterError
from pipeline.chunks import ensure_chunks
from pipeline.runner import Settings
from synth import tone_dataset


@pytest.mark.parametrize("frames, hop", [(10, 5), (10, 10), (7, 3), (50, 20)])
def test_chunk_then_reassemble_is_identity(frames, hop):
    rng = np.random.default_rng(0)
    lengths = [1, 9, 10, 11, 37, 100]
    feats = [rng.standard_normal((n, 4)).astype(np.float32) for n in lengths]
    targs = [(rng.random((n, 2)) > 0.5).astype(np.float32) for n in lengths]
    out = make_chunks(feats, targs, frames=frames, hop=hop, file_split=np.zeros(len(lengths), np.uint8))
    assert out["X"].shape[1:] == (frames, 4) and out["Y"].dtype == np.uint8
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(reassemble(out["X"], out["index"], i, n), feats[i])
        np.testing.assert_array_equal(reassemble(out["Y"], out["index"], i, n), targs[i])
    # padding is masked and zero; valid frames add up to at least every frame once
    assert not out["X"][~out["mask"]].any()
    assert out["mask"].sum(axis=1).tolist() == out["index"][:, 2].tolist()


def test_split_is_by_file_deterministic_and_order_free():
    names = [f"f{i}" for i in range(20)]
    s1 = split_files(names, valid_fraction=0.2, seed=3)
    assert s1.sum() == 4
    s2 = split_files(names[::-1], valid_fraction=0.2, seed=3)[::-1]
    np.testing.assert_array_equal(s1, s2)  # a file's split does not depend on the order
    assert not np.array_equal(s1, split_files(names, valid_fraction=0.2, seed=4))
    assert split_files(["one"], valid_fraction=0.2, seed=0).tolist() == [0]


def test_stats_come_from_training_files_only():
    feats = [np.zeros((10, 2), np.float32), np.full((10, 2), 100, np.float32)]
    mean, std = normalization_stats(feats, np.array([0, 1]))
    np.testing.assert_array_equal(mean, [0, 0])
    out = make_chunks(feats, None, frames=4, hop=4, file_split=np.array([0, 1], np.uint8))
    assert set(out["split"][out["index"][:, 0] == 1]) == {1}  # never a file in two splits


def test_chunk_stage_cache_hit_and_what_recomputes(tmp_path):
    ds = load_dataset(tone_dataset(tmp_path / "ds", n=4, seconds=3.0))
    settings = Settings(cache_dir=str(tmp_path / "c"))
    cfg = Config().replace(chunk=ChunkConfig(frames=100, hop=50, valid_fraction=0.25))
    e1, r1 = ensure_chunks(ds, cfg, settings)
    assert r1.count("computed") == 4 and e1.meta["classes"] == ["tone"]
    e2, r2 = ensure_chunks(ds, cfg, settings)
    assert e2.key == e1.key and r2.count("cached") == 4
    for name in ("X", "Y", "mask", "index", "split", "mean", "std"):
        np.testing.assert_array_equal(np.asarray(e1[name]), np.asarray(e2[name]))
    # the targets sit where the labels say (frame-aligned: exact)
    f0 = e1.meta["files"].index(next(f for f in e1.meta["files"] if f["name"] == "clip00.wav"))
    y = reassemble(np.asarray(e1["Y"]), np.asarray(e1["index"]), f0, e1.meta["files"][f0]["n_frames"])
    onset, offset = ds.items[0].segments[0][:2]
    assert y[round(onset * 100), 0] == 1 and y[round(onset * 100) - 1, 0] == 0 and y[round(offset * 100), 0] == 0
    # changing T or H recomputes chunks only
    cfg2 = cfg.replace(chunk=ChunkConfig(frames=80, hop=40, valid_fraction=0.25))
    e3, r3 = ensure_chunks(ds, cfg2, settings)
    assert e3.key != e1.key and r3.count("cached") == 4 and e3["X"].shape[1] == 80
    assert len(list((tmp_path / "c" / "chunk").glob("*/*"))) == 2


def test_dataset_errors_name_the_file(tmp_path):
    root = tone_dataset(tmp_path / "ds", n=1, seconds=1.0)
    (root / "meta.tsv").write_text("filename\tonset\toffset\tevent_label\nmissing.wav\t0.1\t0.2\ttone\n")
    with pytest.raises(LabelError, match="missing.wav"):
        load_dataset(root / "meta.tsv")
    (root / "meta.tsv").write_text("filename\tonset\toffset\tevent_label\nclip00.wav\t0.5\t0.2\ttone\n")
    with pytest.raises(LabelError, match=r"meta.tsv: line 2: onset=0.5 > offset=0.2"):
        load_dataset(root / "meta.tsv")
    with pytest.raises(ParameterError, match="dataset is empty"):
        (tmp_path / "empty").mkdir()
        load_dataset(tmp_path / "empty")


def test_valid_set_files_are_told_apart_by_path_and_shared_audio_is_warned(tmp_path):
    """``chunk train/ --valid dev/`` where 12 names occur in both sets: 32 train / 12 valid files
    (not the 12 training files of the same names moved to validation); the same audio in both
    sets (a copy under another name) is one warning line."""
    import shutil

    train = load_dataset(tone_dataset(tmp_path / "train", n=32, seconds=1.0, seed=0))
    dev_root = tone_dataset(tmp_path / "dev", n=12, seconds=1.0, seed=1)  # clip00..clip11 in both
    settings = Settings(cache_dir=str(tmp_path / "c"))
    cfg = Config().replace(chunk=ChunkConfig(frames=50, hop=50))
    logged = []
    entry, _ = ensure_chunks(train, cfg, settings, valid=load_dataset(dev_root), log=logged.append)
    splits = [(f["path"], f["split"]) for f in entry.meta["files"]]
    assert sum(s == "train" for _, s in splits) == 32 and sum(s == "valid" for _, s in splits) == 12
    assert all((s == "valid") == p.startswith(str(dev_root)) for p, s in splits)
    index, split = np.asarray(entry["index"]), np.asarray(entry["split"])
    assert set(index[split == 1, 0]) == set(range(32, 44))  # the chunks follow their files
    assert logged == []
    shutil.copy(tmp_path / "train" / "clip20.wav", dev_root / "copy.wav")
    shutil.copy(tmp_path / "train" / "clip20.tsv", dev_root / "copy.tsv")
    logged.clear()
    entry, _ = ensure_chunks(train, cfg, settings, valid=load_dataset(dev_root), log=logged.append)
    assert sum(f["split"] == "valid" for f in entry.meta["files"]) == 13
    (line,) = logged
    assert line.startswith("WARNING: 1 file(s) of --valid") and "\n" not in line
    assert f"{dev_root / 'copy.wav'} = {tmp_path / 'train' / 'clip20.wav'}" in line
