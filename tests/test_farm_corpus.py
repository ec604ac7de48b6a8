"""data/recipes/farm_corpus.py: whispered and spoken sentences over farm-animal ambiences, the
README's fine-tuning example. Needs widelands-data and espeak-ng (skipped without them)."""
from __future__ import annotations

import os
import shutil

import pytest

from pipeline.dataset import load_dataset
from synth import load_recipe, run_recipe, tree_digests

fc = load_recipe("farm_corpus")
pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and os.path.isdir(fc.SOUNDS)),
                                reason="needs the Debian packages espeak-ng and widelands-data")


def test_splits_share_no_animal_recording_and_no_voice():
    assert fc.animal_pool("train") and fc.animal_pool("test")
    names = sorted(os.path.relpath(os.path.join(d, f), fc.SOUNDS) for d, _, fs in os.walk(fc.SOUNDS)
                   for f in fs if f.endswith(".ogg") and d.split("/")[-1] in ("farm", "animals"))
    sides = [fc.split_of(n) for n in names]  # each recording on one side only, both sides used
    assert set(sides) == {"train", "test"} and 0.2 < sides.count("test") / len(sides) < 0.5
    assert not set(fc.VARIANTS["train"]) & set(fc.VARIANTS["test"])
    assert fc.WHISPER["train"] != fc.WHISPER["test"]


def test_same_seed_same_files_and_a_labelled_dataset(tmp_path):
    args = ("--train", "3", "--valid", "1", "--test", "2", "--seed", "4")
    for run in ("a", "b"):
        res = run_recipe("farm_corpus", tmp_path / run, *args)
        assert res.returncode == 0, res.stderr
    assert tree_digests(tmp_path / "a") == tree_digests(tmp_path / "b")
    for split, n in (("train", 3), ("valid", 1), ("test", 2)):
        ds = load_dataset(tmp_path / "a" / split)
        assert len(ds.items) == n and set(ds.classes) <= {"speech"}
        for item in ds.items:
            assert all(0 <= s.onset < s.offset <= fc.CLIP_SECONDS for s in item.segments)
    res = run_recipe("farm_corpus", tmp_path / "c", "--train", "-1")
    assert res.returncode == 2
