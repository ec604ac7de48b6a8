"""Input level (``predict.level_db``): each file heard at one level before the network, so that a
recording played louder or quieter gets the same scores; the shipped speech model uses it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import pipeline
from pipeline.cli import main
from pipeline.config import Config, FeaturesConfig, PredictConfig
from pipeline.errors import ParameterError
from pipeline.features import Leveled, file_level, level_floor, level_gain, spectrogram
from pipeline.predict import config_for_model

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def speechy(seconds=4.0, seed=0, silence=(1.0, 1.5)):
    """Noise bursts and a tone over a quiet floor, with a stretch of digital silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.003 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    y[int(silence[0] * SR): int(silence[1] * SR)] = 0.0
    return y.astype(np.float32)


@pytest.mark.parametrize("kind", ["logmel", "fbank"])
@pytest.mark.parametrize("gain", [-12.0, 9.0])
def test_a_gain_moves_the_level_by_itself_and_leveling_undoes_it(kind, gain):
    cfg = FeaturesConfig(kind=kind, hop_length=320, win_length=400, n_fft=512, n_mels=40)
    y = speechy()
    quiet, loud = spectrogram(y, sr=SR, cfg=cfg), spectrogram(y * np.float32(10 ** (gain / 20)), sr=SR, cfg=cfg)
    assert file_level(loud, cfg) - file_level(quiet, cfg) == pytest.approx(gain, abs=0.02)
    target = file_level(quiet, cfg) - 5.0  # fbank's levels are Kaldi's (16-bit scale), logmel's dBFS-like
    a = Leveled(quiet, cfg, level_gain(quiet, cfg, target, 30.0))[:]
    b = Leveled(loud, cfg, level_gain(loud, cfg, target, 30.0))[:]
    floor = level_floor(cfg)
    live = (quiet > floor + 1) & (loud > floor + 1)
    assert live.mean() > 0.5
    np.testing.assert_allclose(a[live], b[live], atol=0.02 if kind == "logmel" else 0.005)
    assert file_level(a, cfg) == pytest.approx(target, abs=0.02)


def test_silent_bins_stay_silent_and_the_range_limits_the_gain():
    cfg = FeaturesConfig(kind="logmel", hop_length=320, n_mels=40)
    S = spectrogram(speechy(), sr=SR, cfg=cfg)
    floor = level_floor(cfg)
    silent = S <= floor + 1e-3  # the float32 log lands within round-off of the floor
    assert silent.any(axis=1).sum() >= 20  # the half second of digital silence
    level = file_level(S, cfg)
    up = Leveled(S, cfg, level_gain(S, cfg, level + 50.0, 20.0))
    assert up.gain_db == pytest.approx(20.0)
    rows = up[:]
    assert np.array_equal(rows[silent], S[silent])  # digital silence is not made audible
    np.testing.assert_allclose(rows[~silent], S[~silent] + 20.0, atol=1e-4)
    down = Leveled(S, cfg, level_gain(S, cfg, level - 50.0, 20.0))[:]
    assert down.min() >= floor - 1e-3 and np.allclose(down[S > floor + 25], S[S > floor + 25] - 20.0, atol=1e-4)
    assert len(up) == len(S) and up.shape == S.shape and np.array_equal(up[3:7], rows[3:7])


def test_silence_has_no_level_and_is_left_as_it_is():
    cfg = FeaturesConfig(kind="logmel", hop_length=320)
    S = spectrogram(np.zeros(SR, np.float32), sr=SR, cfg=cfg)
    assert file_level(S, cfg) is None and level_gain(S, cfg, -16.0, 20.0) == 0.0


def test_bad_level_settings_are_refused_with_the_rule():
    with pytest.raises(ParameterError, match="level_db"):
        PredictConfig(level_db=500.0)
    with pytest.raises(ParameterError, match="level_range_db"):
        PredictConfig(level_db=-16.0, level_range_db=0.0)
    mconf = json.loads((ROOT / "models" / "vad" / "config.json").read_text())
    mconf["features"]["kind"] = "mel"
    mconf["predict"]["level_db"] = -16.0
    with pytest.raises(ParameterError, match="log-mel kind"):
        config_for_model(mconf, Config())


@pytest.fixture(scope="module")
def louder(tmp_path_factory):
    """A sample recording and the same recording 12 dB louder (float WAV: nothing clips)."""
    tmp = tmp_path_factory.mktemp("level")
    y, sr = sf.read(ROOT / "data" / "samples" / "music_clip_00012.flac", dtype="float32")
    (tmp / "in").mkdir()
    sf.write(tmp / "in" / "as_is.wav", y, sr, subtype="FLOAT")
    sf.write(tmp / "in" / "louder.wav", y * np.float32(10 ** (12 / 20)), sr, subtype="FLOAT")
    return tmp


def predict(tmp, out, *sets):
    args = ["--cache-dir", str(tmp / "cache"), *[a for s in sets for a in ("--set", s)], "predict",
            str(tmp / "in"), "--model", str(ROOT / "models" / "vad"), "--out", str(tmp / out), "--format", "npy"]
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None)
    return {name: (np.load(tmp / out / f"{name}.scores.npy"), (tmp / out / f"{name}.tsv").read_text())
            for name in ("as_is", "louder")}


LEVEL = "predict.level_db=-16"  # models/vad's own (its training clips' median level)


def test_a_louder_recording_gets_the_same_segments_through_the_cli(louder):
    leveled = predict(louder, "leveled", LEVEL)
    np.testing.assert_allclose(leveled["as_is"][0], leveled["louder"][0], atol=2e-3)
    assert leveled["as_is"][1] == leveled["louder"][1] and leveled["as_is"][1].count("speech") >= 1
    # without it the same cache gives other scores: the setting is part of the scores' key
    plain = predict(louder, "plain", "predict.level_db=0")
    assert np.abs(plain["louder"][0] - plain["as_is"][0]).max() > 0.05
    assert np.abs(plain["louder"][0] - leveled["louder"][0]).max() > 0.05


def test_the_api_levels_arrays_as_the_cli_levels_files(louder):
    vad = pipeline.load_model(ROOT / "models" / "vad", level_db=-16.0)
    y, sr = sf.read(louder / "in" / "louder.wav", dtype="float32")
    want = np.load(louder / "leveled" / "louder.scores.npy") if (louder / "leveled").exists() \
        else predict(louder, "leveled", LEVEL)["louder"][0]
    np.testing.assert_allclose(vad.scores(y, sr), want, atol=1e-5)


def test_a_stream_refuses_a_level_it_cannot_know():
    from pipeline.config import build_config
    from pipeline.stream import open_streamer

    cfg, _, given = build_config(None, ["predict.level_db=-16"])
    with pytest.raises(ParameterError, match="level_db"):
        open_streamer(ROOT / "models" / "vad-stream", cfg, given)


def test_the_shipped_speech_model_levels_its_input_and_records_why():
    mconf = json.loads((ROOT / "models" / "vad" / "config.json").read_text())
    assert mconf["predict"]["level_db"] == -16.0 and mconf["predict"]["level_range_db"] == 20.0
    assert "level_db" in mconf["predict_history"][-1]["by"]  # the replaced settings kept, with the reason
    assert mconf["predict_history"][-1]["predict"].get("level_db", 0.0) == 0.0  # tuned hearing files as they are
