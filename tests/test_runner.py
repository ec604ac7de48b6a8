"""The runner over real files: hits equal recomputes, what recomputes when, failures, workers."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import features as features_mod
from pipeline.config import Config, FeaturesConfig
from pipeline.inputs import expand_inputs
from pipeline.runner import Settings, run_files

ROOT = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n: int = 3, seconds: float = 1.0, bad: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        sr = (16000, 22050, 8000)[i % 3]
        y = (0.1 * rng.standard_normal(int(sr * seconds * (i + 1)))).astype(np.float32)
        sf.write(root / f"f{i}.wav", y, sr, subtype="PCM_16")
    if bad:
        (root / "zz_bad.wav").write_text("not audio at all")
    return root


def run(folder, cfg=None, cache=None, upto="features", **settings):
    sources, problems = expand_inputs([str(folder)])
    return run_files(sources, cfg or Config(), Settings(cache_dir=str(cache), **settings), upto=upto,
                     problems=problems)


def arrays(cache_dir, report, stage="features", name="S"):
    from pipeline.cache import Cache

    c = Cache(cache_dir)
    return {r.path: np.array(c.load(stage, r.keys[stage])[name]) for r in report.results if r.status != "failed"}


def test_hit_equals_first_compute(tmp_path):
    folder = make_folder(tmp_path / "in")
    first = run(folder, cache=tmp_path / "c")
    assert first.count("computed") == 3 and not first.failed
    a1 = arrays(tmp_path / "c", first)
    second = run(folder, cache=tmp_path / "c")
    assert second.count("cached") == 3 and second.count("computed") == 0
    a2 = arrays(tmp_path / "c", second)
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k])
    # and equal to a recompute from scratch
    y, sr = sf.read(folder / "f0.wav", dtype="float32")
    fresh = features_mod.spectrogram(y, sr=sr, cfg=FeaturesConfig())
    np.testing.assert_array_equal(a1[str(folder / "f0.wav")], fresh)


def test_changed_features_setting_recomputes_features_only(tmp_path):
    folder = make_folder(tmp_path / "in")
    run(folder, cache=tmp_path / "c", upto="load")  # stored load entries are used, never rewritten
    run(folder, cache=tmp_path / "c")
    load_mtimes = sorted(p.stat().st_mtime_ns for p in (tmp_path / "c" / "load").rglob("y.npy"))
    cfg = Config().replace(features=FeaturesConfig(n_mels=40))
    report = run(folder, cfg, cache=tmp_path / "c")
    assert report.count("computed") == 3
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "c" / "load").rglob("y.npy")) == load_mtimes
    assert len(list((tmp_path / "c" / "load").glob("*/*"))) == 3  # no new load entries
    assert len(list((tmp_path / "c" / "features").glob("*/*"))) == 6
    assert all(a.shape[1] == 40 for a in arrays(tmp_path / "c", report).values())
    # a setting that does not change the output stays out of the key: all hits
    cfg2 = Config().replace(features=FeaturesConfig(n_mels=40, batch_size=3))
    assert run(folder, cfg2, cache=tmp_path / "c").count("cached") == 3


def test_bumped_stage_version_recomputes_that_stage(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "in", n=2)
    run(folder, cache=tmp_path / "c", upto="load")
    run(folder, cache=tmp_path / "c")
    from pipeline import stage

    bumped = replace(stage.STAGES["features"], version=stage.STAGES["features"].version + 1)
    monkeypatch.setitem(stage.STAGES, "features", bumped)
    report = run(folder, cache=tmp_path / "c")
    assert report.count("computed") == 2
    assert len(list((tmp_path / "c" / "load").glob("*/*"))) == 2  # load untouched


def test_touch_hits_changed_bytes_miss(tmp_path):
    folder = make_folder(tmp_path / "in", n=2)
    run(folder, cache=tmp_path / "c")
    os.utime(folder / "f0.wav")
    assert run(folder, cache=tmp_path / "c").count("cached") == 2
    y, sr = sf.read(folder / "f1.wav", dtype="float32")
    sf.write(folder / "f1.wav", y * 0.5, sr, subtype="PCM_16")
    report = run(folder, cache=tmp_path / "c")
    assert report.count("cached") == 1 and report.count("computed") == 1
    assert [r.path for r in report.results if r.status == "computed"] == [str(folder / "f1.wav")]


def test_bad_file_is_named_and_the_rest_finish(tmp_path):
    folder = make_folder(tmp_path / "in", n=2, bad=True)
    report = run(folder, cache=tmp_path / "c")
    assert report.count("computed") == 2 and len(report.failed) == 1
    assert "zz_bad.wav" in report.failed[0].error and "not a readable audio file" in report.failed[0].error
    assert "1 failed" in report.summary()
    assert not list((tmp_path / "c" / ".tmp").iterdir())


@pytest.mark.slow
def test_workers_give_the_same_arrays(tmp_path):
    folder = make_folder(tmp_path / "in", n=4)
    serial = arrays(tmp_path / "c1", run(folder, cache=tmp_path / "c1"))
    par_report = run(folder, cache=tmp_path / "c2", jobs=2)
    assert par_report.count("computed") == 4
    parallel = arrays(tmp_path / "c2", par_report)
    for k in serial:
        np.testing.assert_array_equal(serial[k], parallel[k])


@pytest.mark.slow
def test_many_files_with_long_names_through_workers_finish(tmp_path):
    """1,200 short files with 120-character names on -j 2: each worker tells the parent which file it
    takes up (to name the file when it crashes), and those messages (300 KB here) must never fill
    the pipe and stall the run (a run like this hung before the parent read them as it went)."""
    d = tmp_path / ("a-folder-name-long-enough-that-every-message-about-a-file-carries-some-weight-" + "x" * 40)
    d.mkdir()
    y = (0.1 * np.random.default_rng(0).standard_normal(800)).astype(np.float32)
    for i in range(1200):
        sf.write(d / f"file_number_{i:05d}.wav", y, 16000)
    cmd = [sys.executable, "-m", "pipeline", "-q", "--cache-dir", str(tmp_path / "c"), "-j", "2", "features", str(d)]
    r = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "features: 1200 files: 1200 computed, 0 cached, 0 failed" in r.stdout


@pytest.mark.slow
def test_two_processes_same_keys_both_succeed(tmp_path):
    folder = make_folder(tmp_path / "in", n=6, seconds=2.0)
    cmd = [sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "c"), "features", str(folder)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(list((tmp_path / "c" / "features").glob("*/*"))) == 6
    assert not (tmp_path / "c" / "load").exists()  # features read the files themselves
    assert not list((tmp_path / "c" / ".tmp").iterdir())


@pytest.mark.slow
def test_dask_executor_local_cluster(tmp_path):
    pytest.importorskip("dask.distributed")
    folder = make_folder(tmp_path / "in", n=3)
    serial = arrays(tmp_path / "c1", run(folder, cache=tmp_path / "c1"))
    report = run(folder, cache=tmp_path / "c2", executor="dask", jobs=2)
    assert report.count("computed") == 3, [r.error for r in report.failed]
    for k, v in arrays(tmp_path / "c2", report).items():
        np.testing.assert_array_equal(serial[k], v)


def test_features_stream_from_the_file_and_equal_the_load_path(tmp_path):
    """Without a stored load entry, features decode and resample the file block by block (no
    waveform stored); the rows equal those computed from a stored load entry."""
    folder = make_folder(tmp_path / "in")
    streamed = run(folder, cache=tmp_path / "a")
    assert not (tmp_path / "a" / "load").exists()
    run(folder, cache=tmp_path / "b", upto="load")
    from_load = run(folder, cache=tmp_path / "b")
    a, b = arrays(tmp_path / "a", streamed), arrays(tmp_path / "b", from_load)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dask_cluster_started_apart_survives_a_killed_worker(tmp_path):
    """A scheduler and two workers started as separate processes (as on a cluster); one worker is
    SIGKILLed mid-run; the run completes, every entry verifies, and features and predict outputs
    equal a local run's."""
    pytest.importorskip("dask.distributed")
    import signal
    import time

    from pipeline.cache import Cache

    folder = make_folder(tmp_path / "in", n=24, seconds=8.0)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(dask + ["worker", address, "--nthreads", "1", "--no-dashboard",
                                                  "--no-nanny"], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        run = subprocess.Popen([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "dask"), "--executor",
                                "dask", "--scheduler", address, "features", str(folder)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list((tmp_path / "dask").glob("features/*/*"))) < 3:
            time.sleep(0.05)
        done_at_kill = len(list((tmp_path / "dask").glob("features/*/*")))
        assert run.poll() is None and done_at_kill < 24  # really mid-run
        procs[1].send_signal(signal.SIGKILL)  # a worker dies mid-run
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert "24 files: 24 computed" in out + err
        cache = Cache(tmp_path / "dask")
        assert not any(cache.verify(s, k) for s in cache.stages() for k in cache.keys(s))
        local = run_files(expand_inputs([str(folder)])[0], Config(), Settings(cache_dir=str(tmp_path / "local")),
                          upto="features")
        for r in local.results:
            np.testing.assert_array_equal(np.asarray(cache.load("features", r.keys["features"])["S"]),
                                          np.asarray(Cache(tmp_path / "local").load("features", r.keys["features"])["S"]))
        # predict through the same cluster: features there (cached now), scores here
        model = ROOT / "models" / "vad"
        outs = {}
        for name, extra in (("dask", ["--executor", "dask", "--scheduler", address]), ("local", [])):
            r = subprocess.run([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / name), *extra,
                                "predict", str(folder), "--model", str(model), "--out", str(tmp_path / f"o-{name}")],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            outs[name] = {p.name: p.read_bytes() for p in (tmp_path / f"o-{name}").glob("*.tsv")}
        assert len(outs["dask"]) == 24 and outs["dask"] == outs["local"]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)
