"""bench/vad.py --benchmark: a folder laid out like speech-v1, scored with its score.py's figures."""
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.labels import Segment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vad():
    spec = importlib.util.spec_from_file_location("bench_vad", ROOT / "bench" / "vad.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_vad"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def make_benchmark(folder: Path) -> dict:
    """Four 2 s clips at 16 kHz: mixed music 0 dB, clean, no speech, a conversation."""
    rows, refs = [], {}
    spec = [("m0", "mixed", "music", "0", (50, 120)), ("c0", "clean", "none", "inf", (20, 60)),
            ("n0", "nonspeech", "music", "", None), ("conv", "conversation", "none", "inf", (0, 150))]
    rng = np.random.default_rng(0)
    for clip, kind, bg, snr, span in spec:
        ref = np.zeros(200, np.uint8)
        if span:
            ref[span[0]:span[1]] = 1
        refs[clip] = ref.astype(bool)
        np.save(folder / f"{clip}.frames.npy", ref)
        sf.write(folder / f"{clip}.flac", (0.01 * rng.standard_normal(32000)).astype(np.float32), 16000)
        rows.append(dict(clip=clip, kind=kind, bg_class=bg, snr_db=snr, n_frames=200))
    uncertain = np.zeros(200, np.uint8)
    uncertain[50:60] = 1  # the first 100 ms of m0's speech are uncertain
    np.save(folder / "m0.uncertain.npy", uncertain)
    with open(folder / "meta.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return refs


def test_benchmark_scores_as_score_py(vad, tmp_path):
    make_benchmark(tmp_path)
    clips = vad.load_benchmark(tmp_path, None)
    assert [c.name for c in clips] == ["m0", "c0", "n0", "conv"] and clips[0].n_frames == 200
    preds = {  # m0: 0.40-1.00 s (frames 40..99: 50 hits, 10 early); c0: exact; n0: 0.1 s false
        "m0": [Segment(0.40, 1.00, "speech"), Segment(0.0, 2.0, "music")],
        "c0": [Segment(0.20, 0.60, "speech")],
        "n0": [Segment(1.0, 1.1, "speech")],
        "conv": [Segment(0.0, 0.75, "speech")],
    }
    res = vad.score_benchmark(preds, clips)
    tp, fp, fn = 50 + 40, 10 + 10, 20
    assert res["overall"]["precision"] == pytest.approx(tp / (tp + fp))
    assert res["overall"]["recall"] == pytest.approx(tp / (tp + fn))
    assert res["by_class"]["music"]["recall"] == pytest.approx(50 / 70)
    assert res["by_class"]["none"]["f1"] == pytest.approx(1.0)
    assert set(res["by_snr"]) == {"0", "inf"}  # the no-speech clip has no SNR row
    assert res["nonspeech"]["false_alarm"] == pytest.approx(10 / 200)
    assert res["conversation"]["recall"] == pytest.approx(75 / 150)
    # certain frames: m0's frames 50..59 left out -> 40 hits of m0, recall (40 + 40) / (60 + 40)
    tpc, fnc = 40 + 40, 20
    pc = tpc / (tpc + fp)
    assert res["overall"]["f1_certain"] == pytest.approx(2 * pc * 0.8 / (pc + 0.8))
    # music rows over music/noise/clean clips (conversation left out): m0 all music, c0 none
    assert res["music"]["precision"] == pytest.approx(1.0)
    assert res["music"]["recall"] == pytest.approx(200 / 400)  # n0 is music too, not predicted
    # where the errors are (conversation left out): m0's 10 early frames (0.40-0.50 s) all lie within
    # 100 ms of its onset; of its 20 missed frames (1.00-1.20 s), the last 10 are within 100 ms of
    # its offset; n0's 10 false frames have no speech near them
    e = res["errors"]
    assert (e["missed"], e["false"]) == (20, 20)
    assert e["missed_near"] == pytest.approx(10 / 20) and e["false_near"] == pytest.approx(10 / 20)
    # a system without music rows reports none
    assert vad.score_benchmark({"c0": [Segment(0.2, 0.6, "speech")]}, clips)["music"] is None


def test_boundary_distance(vad):
    ref = np.zeros(20, bool)
    ref[5:8] = True  # onset between frames 4 and 5, offset between 7 and 8
    d = vad.boundary_distance(ref, fps=100.0)
    assert d[4] == pytest.approx(0.005) and d[5] == pytest.approx(0.005)
    assert d[6] == pytest.approx(0.015) and d[7] == pytest.approx(0.005)
    assert d[19] == pytest.approx(0.115) and d[0] == pytest.approx(0.045)
    # speech from the clip's first frame: the clip's start is no boundary
    assert np.isinf(vad.boundary_distance(np.ones(5, bool))).all()
    assert np.isinf(vad.boundary_distance(np.zeros(5, bool))).all()
    starts = np.r_[np.ones(3, bool), np.zeros(3, bool)]
    assert vad.boundary_distance(starts, fps=100.0)[0] == pytest.approx(0.025)


def test_benchmark_rasterises_frame_centres(vad):
    # score.py's rule: [on, off) marks round(100 on) .. round(100 off) - 1
    m = vad.raster([Segment(0.004, 0.026, "speech"), Segment(0.5, 0.6, "music")], 10)
    assert m.tolist() == [True, True, True] + [False] * 7


def test_benchmark_folder_errors(vad, tmp_path):
    with pytest.raises(SystemExit, match="no meta.csv"):
        vad.load_benchmark(tmp_path, None)
    make_benchmark(tmp_path)
    np.save(tmp_path / "c0.frames.npy", np.zeros(150, np.uint8))
    with pytest.raises(SystemExit, match=r"c0.frames.npy: 150 frames, meta.csv says n_frames=200"):
        vad.load_benchmark(tmp_path, None)


def test_benchmark_command_floor(tmp_path):
    """End to end: the all-speech floor's precision is the speech share of the generated clips."""
    bench = tmp_path / "set"
    bench.mkdir()
    refs = make_benchmark(bench)
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "vad.py"), "--benchmark", str(bench),
                          "--peers", "all speech", "--no-cli", "--json", str(tmp_path / "r.json"),
                          "--out", str(tmp_path / "tsv")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    floor = res["systems"]["all speech"]["scores"]
    speech = sum(int(refs[c].sum()) for c in ("m0", "c0", "n0"))
    assert floor["overall"]["precision"] == pytest.approx(speech / 600)
    assert floor["nonspeech"]["false_alarm"] == pytest.approx(1.0)
    assert "ours" in res["systems"] and "all speech" in out.stdout
    assert (tmp_path / "tsv" / "all_speech" / "m0.tsv").read_text().splitlines()[1] == "0.000\t2.000\tspeech"


def test_webrtcvad_file_result_does_not_depend_on_the_previous_file(vad):
    pytest.importorskip("webrtcvad")
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 4) / 16000
    voiced = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    loud = (0.5 * rng.standard_normal(16000 * 4)).astype(np.float32)
    wr = vad.system_webrtc(3)
    first = wr.infer(voiced)
    wr.infer(loud)  # a noisy file in between: its adaptation must not leak
    assert wr.infer(voiced) == first
