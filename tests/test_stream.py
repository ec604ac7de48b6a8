"""Streaming: exact incremental post-processing, WAV/PCM from a byte stream, and ``stream`` ==
``predict`` segment for segment whatever the block sizes, in-process and as a real process."""
from __future__ import annotations

import io
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import PredictConfig, build_config
from pipeline.errors import AudioLoadError, ParameterError
from pipeline.predict import segments
from pipeline.stream import (SegmentStream, lookahead_frames, mono_blocks, open_streamer, pcm_to_float,
                             read_wav_header)
from synth import tone_clip, train_tone_model

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["chunk.frames=100", "chunk.hop=50", "model.hidden=16", "model.layers=2", "train.batch_size=8",
         "train.lr=0.01", "train.epochs=4", "features.n_mels=32", "features.hop_length=320"]
# post-processing that exercises every step (hysteresis, median, gaps, short runs, padding, splits)
POST = ["predict.threshold=0.6", "predict.offset_threshold=0.4", "predict.median_filter=0.1",
        "predict.min_duration_off=0.1", "predict.min_duration_on=0.06", "predict.pad_onset=0.02",
        "predict.pad_offset=0.04", "predict.max_duration=0.5"]
SETS = [a for s in POST for a in ("--set", s)]


# ------------------------------------------------------------------ SegmentStream (pure)


def _random_case(rng):
    n_classes = int(rng.choice([1, 1, 2]))
    n = int(rng.integers(0, 500))
    fps = float(rng.choice([50.0, 100.0, 31.25]))
    walk = rng.standard_normal((n, n_classes)).cumsum(0) * 0.3
    x = 1 / (1 + np.exp(-(walk - walk.mean(0)))) if n else walk
    if rng.random() < 0.3:
        x = np.round(x, 1)  # ties: the split point and the median see equal values
    thr = float(rng.choice([0.4, 0.5, 0.6]))
    pcfg = PredictConfig(
        threshold=thr, offset_threshold=float(rng.choice([-1.0, thr - 0.1, thr])),
        median_filter=float(rng.choice([0, 0.05, 0.1, 0.2])), min_duration_on=float(rng.choice([0, 0.1, 0.3])),
        min_duration_off=float(rng.choice([0, 0.1, 0.25])), pad_onset=float(rng.choice([0, 0.05, 0.2])),
        pad_offset=float(rng.choice([0, 0.05, 0.3])), max_duration=float(rng.choice([0, 0.5, 1.3])))
    per_class = {"c0": {"threshold": 0.7, "median_filter": 0.3}} if rng.random() < 0.3 else None
    duration = (n - 1 + rng.random()) / fps if n and rng.random() < 0.7 else None  # n_samples / sr
    return x, [f"c{i}" for i in range(n_classes)], fps, pcfg, per_class, duration


def _group_ends(segs):
    """Each segment's padded interval end (max_duration pieces of one interval touch)."""
    ends = [s.offset for s in segs]
    for j in range(len(segs) - 2, -1, -1):
        if segs[j].offset == segs[j + 1].onset and segs[j].label == segs[j + 1].label:
            ends[j] = ends[j + 1]
    return ends


@pytest.mark.parametrize("seed", range(3))
def test_incremental_postprocessing_equals_whole_and_is_never_late(seed):
    rng = np.random.default_rng(seed)
    for _ in range(150):
        x, classes, fps, pcfg, per_class, duration = _random_case(rng)
        whole = (segments(x, classes=classes, fps=fps, pcfg=pcfg, per_class=per_class, duration=duration)
                 if len(x) else [])
        ss = SegmentStream(classes, fps=fps, pcfg=pcfg, per_class=per_class)
        got, pushed_before, i = [], [], 0
        while i < len(x):
            k = int(rng.choice([1, 1, 2, 3, 7, 50, 200]))
            new = ss.push(x[i:i + k])
            got += new
            pushed_before += [i] * len(new)
            i += k
        fin = ss.finish(duration)
        got += fin
        pushed_before += [len(x)] * len(fin)
        assert [tuple(s) for s in got] == [tuple(s) for s in whole], (classes, fps, pcfg)  # floats and order
        if len(classes) == 1:  # several classes may hold a final segment back for the sorted order
            for s, before, end in zip(got, pushed_before, _group_ends(got)):
                due = (end - pcfg.pad_offset) * fps + ss.latency_frames  # frames needed, at most
                assert before < due + 1e-6 or end >= (duration or len(x) / fps) - 1e-9, (s, before, due, pcfg)


def test_window_stays_short_over_a_long_stream():
    rng = np.random.default_rng(0)
    pcfg = PredictConfig(threshold=0.5, median_filter=0.2, min_duration_off=0.3, pad_offset=0.1)
    ss = SegmentStream(["speech"], fps=50.0, pcfg=pcfg)
    longest, n = 0, 0
    for _ in range(300):  # 5 minutes: 2 s of speech, then 0.5 to 2 s of silence
        on = np.full((100, 1), 0.9) + 0.05 * rng.standard_normal((100, 1))
        off = np.full((int(rng.integers(25, 100)), 1), 0.1)
        for block in (on, off):
            n += len(block)
            ss.push(block)
            longest = max(longest, len(ss._buf))
    assert n > 14_000 and longest < 300  # bounded by the longest stretch of activity, not the stream


def test_lookahead_follows_the_settings():
    assert lookahead_frames(PredictConfig(), 50.0) == 1
    # median 0.2 s -> 11 frames (h = 5); 0.1 + 0.3 + 0.2 + 0.1 s = 20 frames; + 1
    p = PredictConfig(median_filter=0.2, min_duration_on=0.1, min_duration_off=0.3, pad_onset=0.2, pad_offset=0.1)
    assert lookahead_frames(p, 50.0) == 5 + 35 + 1


# ------------------------------------------------------------------ bytes -> samples


@pytest.mark.parametrize("subtype,channels", [("PCM_16", 1), ("PCM_24", 2), ("PCM_32", 1), ("FLOAT", 3),
                                              ("DOUBLE", 1), ("PCM_U8", 1)])
def test_wav_stream_samples_equal_soundfile(tmp_path, subtype, channels):
    y = (0.4 * np.random.default_rng(1).standard_normal((3001, channels))).clip(-1, 0.99).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, y, 22050, subtype=subtype)
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    f = open(path, "rb")
    sr, blocks = mono_blocks(lambda n: f.read(min(n, 7)), rate=None, channel=0)  # 7 bytes at a time
    got = np.concatenate(list(blocks))
    assert sr == 22050
    np.testing.assert_array_equal(got, expected[:, 0])


def test_streaming_wav_header_without_length_and_bad_streams():
    y = np.arange(-5, 5, dtype=np.int16)
    b = io.BytesIO()
    sf.write(b, y, 8000, format="WAV", subtype="PCM_16")
    raw = bytearray(b.getvalue())
    raw[raw.index(b"data") + 4: raw.index(b"data") + 8] = b"\xff\xff\xff\xff"  # as ffmpeg writes to a pipe
    read = io.BytesIO(bytes(raw) + b"\x01").read  # and an odd trailing byte: dropped
    fmt, n = read_wav_header(read)
    assert (fmt.sr, fmt.channels, n) == (8000, 1, None)
    with pytest.raises(AudioLoadError, match="not a WAV stream.*--rate"):
        read_wav_header(io.BytesIO(b"\x00" * 64).read)
    with pytest.raises(AudioLoadError, match="ended before its data"):
        read_wav_header(io.BytesIO(bytes(raw[:36])).read)
    np.testing.assert_array_equal(pcm_to_float(y.tobytes(), fmt)[:, 0], y / 32768.0)


def test_a_nan_is_reported_at_its_own_time():
    """One NaN at 0.31 s of a 2 s float WAV read in 64 KiB blocks (1.02 s each): its time, not the end
    of the block it came in."""
    y = np.zeros(2 * 16000, dtype=np.float32)
    y[int(0.31 * 16000)] = np.nan
    b = io.BytesIO()
    sf.write(b, y, 16000, format="WAV", subtype="FLOAT")
    sr, blocks = mono_blocks(io.BytesIO(b.getvalue()).read, rate=None)
    with pytest.raises(AudioLoadError, match=r"stdin: 1 non-finite samples \(NaN or inf\), the first at 0\.310 s"):
        list(blocks)
    y[int(0.31 * 16000)] = 0.0
    y[int(1.5 * 16000) + 3] = np.inf  # in the second block
    b = io.BytesIO()
    sf.write(b, y, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(AudioLoadError, match=r"the first at 1\.500 s"):
        list(mono_blocks(io.BytesIO(b.getvalue()).read, rate=None)[1])


def test_a_wav_stream_shorter_than_its_header_warns_once_and_gives_what_came():
    """Cut after 0.6 s of a 1 s WAV: the samples received, and one warning naming both lengths
    (exit 0 from the command line, as predict reads a WAV file cut short)."""
    y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    b = io.BytesIO()
    sf.write(b, y, 16000, format="WAV", subtype="PCM_16")
    raw = b.getvalue()
    cut = raw[:raw.index(b"data") + 8 + 2 * 9600]
    said = []
    sr, blocks = mono_blocks(io.BytesIO(cut).read, rate=None, warn=said.append)
    assert len(np.concatenate(list(blocks))) == 9600
    assert said == ["stdin: the WAV stream ended after 0.600 s of audio, but its header announces 1.000 s "
                    "(19200 of 32000 data bytes); the segments cover the audio received"]
    said.clear()
    list(mono_blocks(io.BytesIO(raw).read, rate=None, warn=said.append)[1])
    assert said == []  # whole: no warning


# ------------------------------------------------------------------ stream == predict


@pytest.fixture(scope="module", params=[0, 7], ids=["causal", "delay7"])
def model(request, tmp_path_factory):
    """A small unidirectional GRU trained on tones (causal, or reading 7 frames ahead), and clips
    it never saw."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stream")
    train_tone_model(root, SMALL + [f"model.delay={request.param}"])
    rng = np.random.default_rng(7)
    clips = root / "clips"
    clips.mkdir()
    y, _ = tone_clip(rng, 6.0)
    sf.write(clips / "a16k.wav", y, 16000, subtype="PCM_16")
    y, _ = tone_clip(rng, 5.0)
    y = soxr.resample(y, 16000, 44100)
    sf.write(clips / "b44k.wav", np.stack([y, 0.5 * y], axis=1), 44100, subtype="FLOAT")  # stereo, resampled
    y, _ = tone_clip(rng, 5.0)
    sf.write(clips / "c8k.wav", soxr.resample(y, 16000, 8000), 8000, subtype="PCM_16")  # goes in as raw PCM
    r = CliRunner().invoke(cli, ["--cache-dir", str(root / "cache"), *SETS, "predict", str(clips), "--model",
                                 str(root / "model"), "--out", str(root / "pred")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root / "model", clips, root / "pred"


def _rows(segs):
    return [f"{s.onset:.3f}\t{s.offset:.3f}\t{s.label}" for s in segs]


def _predicted(pred: Path, name: str) -> list[str]:
    return (pred / (Path(name).stem + ".tsv")).read_text().splitlines()[1:]


@pytest.mark.parametrize("block", [1, 997, None])
def test_in_process_blocks_give_predicts_segments(model, block):
    model_dir, clips, pred = model
    cfg, _, given = build_config(None, POST)
    streamer = open_streamer(model_dir, cfg, given)
    delay = streamer.model.cfg.delay
    assert streamer.latency_seconds() == pytest.approx((lookahead_frames(streamer.cfg.predict, 50.0) - 1 + delay) / 50
                                                       + 256 / 16000)
    for name in ("a16k.wav", "b44k.wav"):
        y, sr = sf.read(clips / name, dtype="float32", always_2d=True)
        y = y.mean(axis=1, dtype=np.float32)
        step = block or len(y)
        got = _rows(streamer.segments((y[i:i + step] for i in range(0, len(y), step)), sr=sr))
        assert got == _predicted(pred, name) and got, (name, block)


def test_cli_raw_pcm_at_another_rate_and_no_header(model):
    model_dir, clips, pred = model
    y, sr = sf.read(clips / "c8k.wav", dtype="int16")
    r = CliRunner().invoke(cli, [*SETS, "stream", "--model", str(model_dir), "--rate", str(sr), "--no-header"],
                           input=y.astype("<i2").tobytes(), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == _predicted(pred, "c8k.wav")


def test_cli_warns_of_a_wav_cut_short_and_exits_0(model):
    model_dir, clips, pred = model
    raw = (clips / "a16k.wav").read_bytes()
    cut = raw[:raw.index(b"data") + 8 + 2 * 16000 * 3]  # 3 of its 6 s
    r = CliRunner().invoke(cli, [*SETS, "stream", "--model", str(model_dir)], input=cut, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    warned = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
    assert warned == ["WARNING stdin: the WAV stream ended after 3.000 s of audio, but its header announces "
                      "6.000 s (96000 of 192000 data bytes); the segments cover the audio received"]
    assert r.stdout.splitlines()[0] == "onset\toffset\tevent_label"


def test_cli_refuses_what_cannot_stream(model, tmp_path):
    model_dir, clips, _ = model
    r = CliRunner().invoke(cli, ["stream", "--model", str(model_dir)], input=b"not a wav file at all")
    assert r.exit_code != 0 and "not a WAV stream" in str(r.exception or r.output)
    r = CliRunner().invoke(cli, ["stream", "--model", str(model_dir), "--rate", "16000"], input=b"")
    assert r.exit_code != 0 and "no audio samples" in str(r.exception or r.output)
    from pipeline.nets import load_model

    net, mconf = load_model(model_dir)
    bi = build_config(None, ["model.bidirectional=true", "model.hidden=16", "model.layers=2"])[0]
    from pipeline.nets import FrameModel, save_model

    save_model(FrameModel(bi.model, n_features=net.n_features, n_outputs=net.n_outputs), tmp_path / "bi",
               {**mconf, "model": {**mconf["model"], "bidirectional": True}})
    with pytest.raises(ParameterError, match="bidirectional model cannot stream"):
        open_streamer(tmp_path / "bi", build_config(None, [])[0])


def test_subprocess_prints_segments_while_the_audio_is_still_coming(model):
    """A real process fed in 997-sample writes: its stdout is predict's .tsv, byte for byte, and the
    first segment is on stdout before the rest of the audio has been written."""
    model_dir, clips, pred = model
    data = (clips / "a16k.wav").read_bytes()
    first_end = float(_predicted(pred, "a16k.wav")[0].split("\t")[1])
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "-v", *SETS, "stream", "--model", str(model_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in iter(proc.stdout.readline, b""):
            lines.put(line.decode())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    header = 44
    half = header + 2 * int((first_end + 1.0) * 16000)  # a second of audio after the first segment's end
    for i in range(0, half, 2 * 997):
        proc.stdin.write(data[i:min(i + 2 * 997, half)])
        proc.stdin.flush()
    out = [lines.get(timeout=60), lines.get(timeout=60)]  # header and the first segment, stdin still open
    proc.stdin.write(data[half:])
    proc.stdin.close()
    while (line := lines.get(timeout=60)) is not None:
        out.append(line)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "".join(out) == (pred / "a16k.tsv").read_text()
    assert "printed at most" in err and "x real time" in err


@pytest.mark.slow
def test_shipped_streaming_model_equals_predict(tmp_path):
    model_dir = ROOT / "models" / "vad-stream"
    if not (model_dir / "config.json").is_file():
        pytest.skip("models/vad-stream is not there")
    sample = sorted((ROOT / "data" / "samples").glob("*.flac"))[0]
    r = CliRunner().invoke(cli, ["--cache-dir", str(tmp_path / "c"), "predict", str(sample), "--model", str(model_dir),
                                 "--out", str(tmp_path / "o")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    y, sr = sf.read(sample, dtype="float32", always_2d=True)
    wav = io.BytesIO()
    sf.write(wav, y, sr, format="WAV", subtype="FLOAT")
    r = CliRunner().invoke(cli, ["stream", "--model", str(model_dir)], input=wav.getvalue(), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stdout == (tmp_path / "o" / (sample.stem + ".tsv")).read_text()


def test_stream_needs_no_cache(model, tmp_path, monkeypatch):
    """Streaming scores as they come: it creates no .pipeline-cache in the working directory."""
    model_dir, clips, pred = model
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPELINE_CACHE_DIR", raising=False)
    data = (clips / "a16k.wav").read_bytes()
    r = CliRunner().invoke(cli, [*SETS, "stream", "--model", str(model_dir)], input=data, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1:] == _predicted(pred, "a16k.wav")
    assert list(tmp_path.iterdir()) == []
