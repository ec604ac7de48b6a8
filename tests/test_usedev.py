"""The use-like dev split (data/recipes/vadcorpus/usedev.py, dev_continuous.py): label rules,
the clip plan, and (with the Debian packages) a tiny build that is deterministic and laid out like
speech-v1."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

RECIPES = Path(__file__).resolve().parents[1] / "data" / "recipes"
sys.path.insert(0, str(RECIPES))
from vadcorpus import usedev  # noqa: E402


def test_fill_gaps_joins_then_drops_islands():
    m = np.zeros(100, bool)
    m[10:20] = m[30:40] = True   # 10-frame gap: joined when gap > 10
    m[60:62] = True              # a 2-frame island
    assert np.flatnonzero(np.diff(np.r_[0, usedev.fill_gaps(m, 11, 3), 0])).tolist() == [10, 40]
    assert usedev.fill_gaps(m, 5, 3)[30:40].all() and not usedev.fill_gaps(m, 5, 3)[20:30].any()
    assert not usedev.fill_gaps(m, 5, 3)[60:62].any() and usedev.fill_gaps(m, 5, 1)[60:62].all()


def test_v1_rule_counts_quiet_frames_only_near_loud_ones():
    sr, hop = 16000, 160
    rng = np.random.default_rng(0)
    y = np.zeros(sr * 3)

    def burst(t0, t1, amp):
        y[int(t0 * sr):int(t1 * sr)] = amp * rng.uniform(-1, 1, int(t1 * sr) - int(t0 * sr))

    burst(0.50, 1.50, 0.3)   # the utterance
    burst(1.50, 1.60, 0.01)  # -30 dB: above p95 - 35 dB, within 200 ms of a loud frame
    burst(2.50, 2.60, 0.01)  # the same level 1 s away: not counted
    primary, strict = usedev.v1_frames(y)
    assert primary[50:150].all() and primary[150:160].all()
    assert not primary[250:260].any() and not primary[:50].any()
    assert not strict[150:160].any()  # -30 dB is under the strict rule's p95 - 25 dB: uncertain
    assert len(primary) == len(y) // hop


def test_clip_plan_covers_every_class_and_snr():
    plan = usedev.clip_plan(2, 3, 4)
    mixed = [(c, s) for k, c, s in plan if k == "mixed"]
    assert len(mixed) == 2 * len(usedev.CLASSES) * len(usedev.SNRS_DB)
    assert {(c, s) for c, s in mixed} == {(c, float(s)) for c in usedev.CLASSES
                                         for s in usedev.SNRS_DB}
    assert [k for k, _, _ in plan].count("clean") == 3
    assert [c for k, c, _ in plan if k == "nonspeech"] == ["music", "events", "noise", "music"]


NEEDS = [usedev.REAL_BY_NAME[s].check for s in ("hedgewars", "tuxpaint", "neverball",
                                                  "frozen-bubble", "openttd")]


@pytest.mark.skipif(not all(Path(p).exists() for p in NEEDS),
                    reason="the Debian packages of dev_continuous.py are not installed")
def test_tiny_build_is_deterministic_and_scorable(tmp_path):
    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        res = subprocess.run([sys.executable, str(RECIPES / "dev_continuous.py"), "--out", str(out),
                              "-q", "--per-cell", "0", "--clean", "2", "--nonspeech", "1"],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        digests.append({p.name: p.read_bytes() for p in sorted(out.glob("use_*"))})
    assert digests[0] == digests[1] and len(digests[0]) == 3 * 6
    rows = list(csv.DictReader(open(tmp_path / "a" / "meta.csv")))
    assert [r["kind"] for r in rows] == ["clean", "clean", "nonspeech"]
    for r in rows:
        frames = np.load(tmp_path / "a" / f"{r['clip']}.frames.npy")
        assert len(frames) == int(r["n_frames"]) == 3000
        assert (frames.mean() > 0.2) == (r["kind"] == "clean")
        assert abs(frames.mean() - float(r["speech_frac"])) < 1e-3
