"""The stage table: keys stay pinned for fixed settings, and a new stage is one module plus one
row (a toy stage goes through the runner, the cache, ``cache status`` and ``cache gc``)."""
from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline import stage as stage_mod
from pipeline.cache import Cache
from pipeline.config import Config
from pipeline.inputs import expand_inputs
from pipeline.maintenance import gc, status
from pipeline.runner import Settings, file_keys, run_files

ROOT = Path(__file__).resolve().parents[1]


def fixed_wav(path: Path) -> Path:
    """0.1 s of a fixed 16-bit ramp, written by the stdlib (the same bytes everywhere)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(struct.pack("<1600h", *[(i * 37) % 2000 - 1000 for i in range(1600)]))
    return path


def test_cache_keys_are_pinned(tmp_path):
    """The keys of a fixed file and config, as they were before the stage table: a change here
    recomputes every user's cache, so it must come with a version bump (and a README line)."""
    cache = Cache(tmp_path / "c")
    keys = file_keys(cache, Config(), fixed_wav(tmp_path / "a.wav"), "features")
    assert keys == {"source": "7e88f40f949a13a179d1c77e5de2194047aa8892d9bda3ed0b27dd0e7a49c9d5",
                    "load": "36c6d224522921e88ab7133bdeac61514925c66b8e1aeb881a91129a2ff12373",
                    "features": "bbefd4e8dd0151da8c3e7625b451dab0cde180ce77dfc3cdc38bc429d00af551"}
    # the shipped model's settings when the keys were pinned (hop 320, 20 s chunks every 16 s), a
    # bidirectional network, and its weights' digest then: the predict key depends on nothing else
    from pipeline.config import FeaturesConfig, ModelConfig, PredictConfig
    from pipeline.nets import FrameModel

    cfg = Config().replace(features=FeaturesConfig(hop_length=320),
                           predict=PredictConfig(chunk_duration=20.0, chunk_step=16.0, threshold=0.65,
                                                 median_filter=0.2))
    context = {"model": FrameModel(ModelConfig(bidirectional=True), n_features=64, n_outputs=1),
               "model_digest": "d1c8692862094f252cde364f3cdade6f2ef2476f80273b2363bdd7196c26b678"}
    keys = file_keys(cache, cfg, tmp_path / "a.wav", "predict", context)
    assert keys["features"] == "a5708d42d406f25657b68ca100d4f550d5187ada7bbfe0080bb8a9cac1de99e1"
    assert keys["predict"] == "bb106430e5ac0d286b214a3a92edfeb97c37f6e5a64b8e0d400fbf34d0674245"


def test_chunk_key_is_pinned(tmp_path):
    from pipeline.chunks import ensure_chunks
    from pipeline.dataset import load_dataset

    d = tmp_path / "ds"
    d.mkdir()
    fixed_wav(d / "a.wav")
    (d / "a.tsv").write_text("onset\toffset\tevent_label\n0.010\t0.050\tspeech\n")
    entry, _ = ensure_chunks(load_dataset(str(d)), Config(), Settings(cache_dir=str(tmp_path / "c")), log=print)
    assert entry.key == "eceb510d4e7645951f8a22b814fe0b44e70977392465b2c56b4bbec00d847602"


def test_chain_and_table():
    assert stage_mod.chain("predict") == ["load", "features", "predict"]
    assert stage_mod.file_stages() == ["load", "features"]
    assert stage_mod.file_stages(context_free=False) == ["load", "features", "predict"]
    with pytest.raises(ValueError, match="unknown stage"):
        stage_mod.register(stage_mod.Stage("orphan", 1, None, ("nothing",), None))


# ---------------------------------------------------------------- a toy stage, end to end


def energy(cfg, load, **_):
    """Toy stage: RMS of each 0.1 s block of the waveform (no settings)."""
    y = np.asarray(load["y"])
    n = load.meta["sr"] // 10
    blocks = y[: len(y) // n * n].reshape(-1, n)
    return {"rms": np.sqrt((blocks ** 2).mean(axis=1)).astype(np.float32)}, {"duration": load.meta["duration"]}


@pytest.fixture
def toy_stage(monkeypatch):
    monkeypatch.setattr(stage_mod, "STAGES", dict(stage_mod.STAGES))
    import pipeline.runner as runner_mod
    import pipeline.maintenance as maint_mod

    monkeypatch.setattr(runner_mod, "STAGES", stage_mod.STAGES)
    monkeypatch.setattr(maint_mod, "STAGES", stage_mod.STAGES)
    return stage_mod.register(stage_mod.Stage("energy", 1, None, ("load",), f"{__name__}:energy"))


def test_a_toy_stage_runs_through_runner_cache_status_and_gc(tmp_path, toy_stage):
    import soundfile as sf

    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        sf.write(d / f"f{i}.wav", np.full(8000, 0.1 * (i + 1), np.float32), 16000, subtype="FLOAT")
    settings = Settings(cache_dir=str(tmp_path / "c"))
    sources, _ = expand_inputs([str(d)])
    report = run_files(sources, Config(), settings, upto="energy")
    assert report.count("computed") == 3
    cache = settings.cache()
    for r in report.results:
        rms = cache.load("energy", r.keys["energy"])["rms"]
        i = int(Path(r.path).stem[1:])
        np.testing.assert_allclose(rms, 0.1 * (i + 1), rtol=1e-6)
        assert cache.read_meta("energy", r.keys["energy"])["inputs"] == [r.keys["load"]]
    assert run_files(sources, Config(), settings, upto="energy").count("cached") == 3
    text = status(cache, Config(), sources, upto="energy")
    assert "energy    3 cached, 0 to compute" in text and "load      3 cached" in text
    (d / "f0.wav").unlink()
    out = gc(cache)
    assert out.count("(unreachable: source gone or changed)") == 2  # its load and energy entries
    assert len(list(cache.keys("energy"))) == 2 and len(list(cache.keys("load"))) == 2
