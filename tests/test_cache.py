"""The cache: keys, atomic entries, mmap reads, fingerprints, crash safety and concurrency."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.cache import Cache, make_key
from pipeline.errors import CacheError
from pipeline.maintenance import gc, unreachable, verify_all

ROOT = Path(__file__).resolve().parents[1]


def test_key_is_canonical_and_sensitive():
    a = make_key("features", 1, {"n_mels": 64, "kind": "logmel"}, ["abc"])
    b = make_key("features", 1, {"kind": "logmel", "n_mels": 64}, ["abc"])
    assert a == b  # key order does not matter
    assert len(a) == 64 and set(a) <= set("0123456789abcdef")  # sha256, hex
    assert make_key("features", 2, {"n_mels": 64, "kind": "logmel"}, ["abc"]) != a
    assert make_key("features", 1, {"n_mels": 80, "kind": "logmel"}, ["abc"]) != a
    assert make_key("features", 1, {"n_mels": 64, "kind": "logmel"}, ["abd"]) != a
    assert make_key("load", 1, {"n_mels": 64, "kind": "logmel"}, ["abc"]) != a


def test_store_then_load_equal_and_mmapped(tmp_path):
    cache = Cache(tmp_path)
    x = np.random.default_rng(0).standard_normal((100, 7)).astype(np.float32)
    cache.store("features", "ab" * 32, {"S": x, "idx": np.arange(5)}, {"sr": 16000})
    entry = cache.load("features", "ab" * 32)
    assert isinstance(entry["S"], np.memmap)
    np.testing.assert_array_equal(entry["S"], x)
    np.testing.assert_array_equal(entry["idx"], np.arange(5))
    assert entry.meta["sr"] == 16000 and entry.meta["arrays"]["S"]["shape"] == [100, 7]
    assert cache.verify("features", "ab" * 32) == []
    assert not list((tmp_path / ".tmp").iterdir())  # nothing left behind


def test_missing_entry_and_corruption_are_reported(tmp_path):
    cache = Cache(tmp_path)
    with pytest.raises(CacheError, match="no such cache entry"):
        cache.load("features", "cd" * 32)
    cache.store("features", "cd" * 32, {"S": np.ones((10, 3), np.float32)}, {})
    path = cache.entry_path("features", "cd" * 32) / "S.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last sample
    path.write_bytes(bytes(data))
    problems, n = verify_all(cache)
    assert n == 1 and len(problems) == 1 and "checksum mismatch" in problems[0]


def test_second_store_of_same_key_keeps_first(tmp_path):
    cache = Cache(tmp_path)
    cache.store("load", "ee" * 32, {"y": np.zeros(4, np.float32)}, {"n": 1})
    cache.store("load", "ee" * 32, {"y": np.zeros(4, np.float32)}, {"n": 2})
    assert cache.read_meta("load", "ee" * 32)["n"] == 1
    assert list(cache.keys("load")) == ["ee" * 32]


def test_fingerprint_touch_hits_and_changed_bytes_miss(tmp_path):
    cache = Cache(tmp_path / "c")
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    d1 = cache.fingerprint(f)
    time.sleep(0.01)
    os.utime(f)  # touch: new mtime, same bytes
    assert cache.fingerprint(f) == d1
    f.write_bytes(b"y" * 1000)  # same size, other bytes
    assert cache.fingerprint(f) != d1


def test_gc_removes_entries_of_deleted_sources_and_downstream(tmp_path):
    cache = Cache(tmp_path / "c")
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    digest = cache.fingerprint(f)
    cache.store("load", "11" * 32, {"y": np.zeros(3, np.float32)}, {"source": str(f.resolve()), "inputs": [digest]})
    cache.store("features", "22" * 32, {"S": np.zeros((2, 2), np.float32)}, {"inputs": ["11" * 32]})
    cache.store("features", "33" * 32, {"S": np.zeros((2, 2), np.float32)}, {"inputs": ["99" * 32]})
    assert unreachable(cache) == set()
    f.unlink()
    assert unreachable(cache) == {("load", "11" * 32), ("features", "22" * 32)}
    out = gc(cache)
    assert "unreachable" in out
    assert list(cache.keys("features")) == ["33" * 32] and list(cache.keys("load")) == []


def test_gc_max_size_drops_least_recently_used(tmp_path):
    cache = Cache(tmp_path)
    for i, k in enumerate(["aa", "bb", "cc"]):
        cache.store("features", k * 32, {"S": np.zeros(25_000, np.float32)}, {})
        meta = cache.entry_path("features", k * 32) / "meta.json"
        os.utime(meta, (1000 + i, 1000 + i))
    cache.load("features", "aa" * 32)  # used now: the newest
    gc(cache, max_bytes=250_000)
    assert sorted(cache.keys("features")) == ["aa" * 32, "cc" * 32]


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from pipeline.cache import Cache
    cache = Cache(sys.argv[1])
    big = np.ones(60_000_000, np.float32)  # 240 MB: writing takes long enough to be caught
    for i in range(100):
        cache.store("features", f"{i:064x}", {"S": big}, {"i": i})
""")


def test_sigkill_mid_write_leaves_no_half_entry(tmp_path):
    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(cache_dir)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    tmp = cache_dir / ".tmp"
    deadline = time.time() + 60
    # wait until an entry is being written (its temporary directory holds a partial array)
    while time.time() < deadline:
        if tmp.is_dir() and any(p.is_dir() and any(p.iterdir()) for p in tmp.iterdir()):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    cache = Cache(cache_dir)
    problems, n = verify_all(cache)
    assert problems == []
    for key in cache.keys("features"):  # every visible entry is complete
        assert cache.load("features", key)["S"].shape == (60_000_000,)
    leftovers = cache.stale_temporaries()
    assert leftovers, "the kill should have caught a write in progress"
    # the next run completes the interrupted key, and gc clears the leftovers
    key = f"{n:064x}"
    cache.store("features", key, {"S": np.ones(10, np.float32)}, {})
    assert cache.verify("features", key) == []
    gc(cache, tmp_age=0)
    assert cache.stale_temporaries() == []
