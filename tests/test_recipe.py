"""The VAD corpus recipe (data/recipes/vad_corpus.py): determinism, labels, split hygiene.

The end-to-end tests need the Debian packages the recipe draws from; without them they skip and
name the missing packages. The label and package-check tests run everywhere.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from synth import load_recipe, run_recipe, tree_digests

RECIPE = Path(__file__).resolve().parents[1] / "data" / "recipes" / "vad_corpus.py"


vc = load_recipe('vad_corpus')
MISSING = vc.missing_packages()
needs_packages = pytest.mark.skipif(
    bool(MISSING), reason="missing Debian packages: " + " ".join(MISSING)
    + " (apt-get install -y " + " ".join(MISSING) + ")")


_build = functools.partial(run_recipe, "vad_corpus")  # (out, *args, env=None)


TINY = ("--train-clips", "4", "--dev-clips", "2", "--clip-seconds", "5")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if MISSING:
        pytest.skip("missing Debian packages: " + " ".join(MISSING))
    root = tmp_path_factory.mktemp("vad")
    a, b = root / "a", root / "b"
    for out in (a, b):  # separate caches: the second build renders everything again
        res = _build(out, "--seed", "7", *TINY)
        assert res.returncode == 0, res.stderr
    return a, b


# ----------------------------------------------------------------------------- everywhere

def test_labels_follow_clean_energy_exactly():
    sr, hop = 16000, 160
    rng = np.random.default_rng(0)
    y = np.zeros(sr * 2)

    def burst(t0, t1, amp=0.5):  # noise burst on whole 10 ms frames
        y[int(t0 * sr):int(t1 * sr)] = amp * rng.uniform(-1, 1, int(t1 * sr) - int(t0 * sr))

    burst(0.10, 0.12, 0.3)   # 20 ms click 180 ms before speech: dropped (< 50 ms)
    burst(0.30, 0.60)
    burst(0.70, 0.90)        # 100 ms gap: merged with the previous run
    burst(1.10, 1.50)        # 200 ms gap: a new segment
    burst(1.60, 1.61, 1e-3)  # -54 dB under the peak: below the -40 dB threshold
    u = vc.analyse(y, sr)
    # trimmed to the first kept run minus 2 margin frames (0.28 s)
    start = 28
    assert [(a + start, b + start) for a, b in u.segments] == [(30, 90), (110, 150)]
    assert len(u.y) == (152 - 28) * hop
    assert np.array_equal(u.y, y[28 * hop:152 * hop])
    assert u.threshold_db == -40.0


def test_noisy_recording_raises_threshold():
    sr = 8000
    rng = np.random.default_rng(1)
    y = 0.01 * rng.standard_normal(sr)        # floor -40 dB under the speech
    y[2000:6000] += 0.5 * rng.standard_normal(4000)
    u = vc.analyse(y, sr)
    assert -30.0 < u.threshold_db < -26.0    # floor (-40) - peak (-6) + 6 dB
    assert u.segments == [(2, 52)]           # 2000..6000 samples = frames 25..75, minus trim


def test_split_is_a_fixed_hash_of_the_name():
    names = [f"asterisk:prompt-{i}.wav" for i in range(2000)]
    dev = sum(vc.split_of(n) == "dev" for n in names)
    assert 200 < dev < 400  # ~15 %
    assert [vc.split_of(n) for n in names] == [vc.split_of(n) for n in names]


def test_missing_package_exits_3_and_names_it(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no binaries at all
    res = _build(tmp_path / "out", *TINY, env=env)
    assert res.returncode == 3, res.stderr
    for pkg in ("espeak-ng", "flite", "festival", "fluidsynth"):
        assert pkg in res.stderr
    assert "apt-get install -y" in res.stderr


def test_unknown_allow_missing_is_a_usage_error(tmp_path):
    res = _build(tmp_path / "out", "--allow-missing", "nonesuch", *TINY)
    assert res.returncode == 2
    assert "nonesuch" in res.stderr


# ----------------------------------------------------------------------------- with packages

@needs_packages
def test_same_seed_is_byte_identical(tiny):
    a, b = tiny
    da, db = tree_digests(a), tree_digests(b)
    assert sorted(da) == sorted(db)
    assert len([k for k in da if k.endswith(".wav")]) == 6
    assert {"train.tsv", "dev.tsv", "meta.json"} <= set(da)
    assert da == db


@needs_packages
def test_other_seed_differs(tiny, tmp_path):
    a, _ = tiny
    res = _build(tmp_path / "c", "--seed", "8", *TINY, "--cache-dir", str(a / "_cache"))
    assert res.returncode == 0, res.stderr
    da, dc = tree_digests(a), tree_digests(tmp_path / "c")
    assert all(da[k] != dc[k] for k in da if k.endswith(".wav"))


@needs_packages
def test_tsv_is_dcase_metadata(tiny):
    a, _ = tiny
    meta = json.loads((a / "meta.json").read_text())
    for split in ("train", "dev"):
        with open(a / f"{split}.tsv", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        assert rows[0] == ["filename", "onset", "offset", "event_label"]
        seen = set()
        for name, onset, offset, label in rows[1:]:
            assert name.startswith(f"{split}/clip_") and (a / name).is_file()
            with wave.open(str(a / name)) as w:
                assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
                duration = w.getnframes() / w.getframerate()
            assert duration == pytest.approx(5.0)
            seen.add(name)
            if not label:  # a clip without speech: one row, empty fields
                assert onset == offset == "" and meta["clips"][name]["segments"] == []
                continue
            assert label == "speech"
            assert len(onset.split(".")[1]) == 3 and len(offset.split(".")[1]) == 3
            assert 0 <= float(onset) < float(offset) <= duration + 1e-9
        assert seen == {k for k, m in meta["clips"].items() if m["split"] == split}
    # the pipeline's own reader accepts it
    sys.path.insert(0, str(RECIPE.parents[2]))
    try:
        from pipeline.labels import read_dcase
    except ImportError:
        return
    labels = read_dcase(a / "train.tsv")
    assert len(labels) == 4


@needs_packages
def test_train_and_dev_share_no_source(tiny):
    a, _ = tiny
    meta = json.loads((a / "meta.json").read_text())
    used = {"train": set(), "dev": set()}
    texts = {"train": set(), "dev": set()}
    bgs = {"train": set(), "dev": set()}
    voices = {"train": set(), "dev": set()}
    for m in meta["clips"].values():
        for u in m["utterances"]:
            used[m["split"]].add(u["id"])
            voices[m["split"]].add((u["source"], u["voice"]))
            if "text_id" in u:
                texts[m["split"]].add(u["text_id"])
        bgs[m["split"]].update(m["background"]["sources"])
    assert not used["train"] & used["dev"]
    assert not texts["train"] & texts["dev"]
    assert not bgs["train"] & bgs["dev"]
    held = {(e, v) for e, vs in meta["held_out_voices"].items() for v in vs}
    assert held and not held & voices["train"]


@needs_packages
def test_pools_are_disjoint():
    pools = vc.build_pools([s.name for s in vc.SOURCES], [v.name for v in vc.FESTIVAL_VOICES],
                           16000, "")
    for table in (pools.samples_loop, pools.samples_shot):
        assert not set(table["train"]) & set(table["dev"])
    assert not {c for c, _ in pools.keys["train"]} & {c for c, _ in pools.keys["dev"]}
    for lang in ("en", "es", "fr"):
        tr, dv = pools.asterisk["train"][lang], pools.asterisk["dev"][lang]
        assert tr and dv and not set(tr) & set(dv)
        assert 0.08 < len(dv) / (len(tr) + len(dv)) < 0.25
        assert not any("/silence/" in p or p.endswith("/beep.wav") for p in tr + dv)


@needs_packages
def test_allow_missing_skips_sources(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # hides espeak-ng, flite, festival, fluidsynth
    res = _build(tmp_path / "d", "--train-clips", "1", "--dev-clips", "1", "--clip-seconds",
                 "3", "--allow-missing", "espeak-ng,flite,festival,fluidsynth", env=env)
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert "festival" not in meta["sources"] and "asterisk-en" in meta["sources"]
    for m in meta["clips"].values():
        assert all(u["source"].startswith("asterisk") for u in m["utterances"])
        assert m["background"]["kind"] != "music"
