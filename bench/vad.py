"""Speech activity detection: our shipped model beside silero-vad, TEN-VAD and webrtcvad, same audio.

    python bench/vad.py [--model models/vad]... [--corpus $VAD_CORPUS|/work/corpus/vad]
                        [--split dev] [--threads 1] [--limit N] [--json PATH] [--no-cli]
                        [--peers silero-vad onnx,webrtcvad 3] [--out DIR]
    python bench/vad.py --benchmark ../shared/benchmarks/speech-v1 [--model M]... [--out DIR]

``--benchmark DIR`` scores any folder laid out like speech-v1 (``meta.csv`` with clip, kind,
bg_class, snr_db, n_frames; ``<clip>.flac|.wav``; ``<clip>.frames.npy`` at 100 fps or
``<clip>.tsv``; optional ``.tight.npy`` / ``.uncertain.npy``) with the figures of speech-v1's
``score.py`` and the same counts (segments as a TSV holds them, 3 decimals; a frame is speech
when a segment covers its centre): pooled P / R / F1 over the generated clips, per background
class, per SNR, the share of frames called speech on the clips without speech, F1 on the
conversation, music F1 where a model writes ``music`` rows; also the false-positive rate, F1 on
tight labels and on certain frames. Peers there by default: silero-vad ONNX with sample-exact
boundaries (as ``peers_dir.py``), TEN-VAD (hop 256, threshold 0.5), webrtcvad mode 3 and every
frame speech (the floor). ``--out DIR`` writes ``DIR/<system>/<clip>.tsv`` (score.py reads them).

What it measures, in one process, on the clips of ``<corpus>/<split>.tsv`` (the DCASE metadata
written by ``data/recipes/vad_corpus.py`` or ``data/recipes/real_corpus.py``; ``<corpus>/meta.json``
gives the per-clip SNR, background kind and packages, reverberation, telephone flag and utterance
sources for the breakdowns). ``--model`` may be given several times: each model is a row
(``ours`` for a single one, else ``ours:<folder name>``), and the cold CLI run uses the first.

- **ours**: the whole path of one file in-process, ``pipeline.audio.load_audio`` (the model's
  load settings) -> ``pipeline.features.features_of`` (``spectrogram`` + the storage dtype, with the
  model's features settings from ``config.json``) -> ``pipeline.predict.score_files`` (the network
  on predict's default engine: ONNX Runtime where the model has ``model.onnx``) ->
  ``pipeline.predict.segments`` with the model's tuned predict settings
  (``pipeline.predict.config_for_model``). No cache is involved.
- **ours N/batch**: the same, but N files per ``score_files`` call (``pipeline.predict.FILES_PER_BATCH``) (decode and features still
  per file), as ``predict`` on the command line batches them: a recurrent network at batch 1 is
  bound by per-time-step overhead, so this row shows what batching buys.
- **ours CLI (cold)**: ``python -m pipeline -q -j THREADS --cache-dir <empty> predict <split dir>
  --model M --out <tmp>`` as a subprocess: interpreter start-up, model loading,
  fingerprints and cache writes included. Its segments are read back from the ``.tsv`` files,
  scored like the rest and compared with the in-process ones.
- **silero-vad** TorchScript and ONNX (the model files shipped inside the ``silero-vad`` wheel;
  nothing is downloaded): ``get_speech_timestamps(wav, model, sampling_rate=16000,
  return_seconds=True)`` with its defaults, under ``torch.no_grad()``. Note that
  ``return_seconds=True`` rounds the boundaries to 0.1 s (``time_resolution=1``); sample-exact
  boundaries score about +0.002 F1 on the reference corpus.
- **webrtcvad** modes 0-3: 30 ms frames of 16-bit PCM at 16 kHz (the last partial frame
  zero-padded), ``is_speech`` per frame, consecutive speech frames merged into segments with
  nothing else (no smoothing, no padding).

Every system gets the same audio (``pipeline.audio.load_audio``: soundfile, mono, soxr to 16 kHz
when a file is not 16 kHz) and the same thread count: ``torch.set_num_threads(THREADS)`` (set
again after importing silero-vad, whose import sets it to 1), BLAS/OpenMP pools limited with
threadpoolctl, and an onnxruntime session rebuilt with ``intra_op_num_threads=THREADS``
(silero's ``OnnxWrapper`` hard-codes 1). Timed per file: decode to segments. Not timed: loading
each model once, and one warm-up call on the first 3 s of the first clip (TorchScript's profiling
runs and onnxruntime's first-run allocations). Files are read once beforehand so every system
finds them in the page cache.

Scores: frame precision, recall and F1 of the class ``speech`` at 10 ms frames with the
project's convention (``pipeline.labels.segments_to_frames``, fps=100, ``1 + n_samples // 160``
frames at 16 kHz; ``pipeline.metrics.frame_metrics``), counts pooled over all files (micro).
Breakdowns (from ``meta.json``): F1 per SNR band (clips with speech and a background), on clips
without background ("no bg"), and the false-alarm rate on clips without speech; F1 per
background kind (all clips of that kind); F1 wideband / telephone; F1 dry / reverberant (the
recipe's simulated rooms); recall per utterance source (reference frames inside utterances of
that source; ``asterisk`` is the real speech of vad_corpus, recorded at 8 kHz; sources whose voice
or speech group the training split never saw get `` (held out)``); F1 and false alarms per
background package (every clip whose background uses it; `` (held out)`` likewise). Speed: x real
time = audio seconds / processing seconds, over the files.

Run from the repository root, after ``pip install -e '.[vad-bench]'`` (or the three packages below)::

    nice -n 5 python bench/vad.py --split dev --threads 1 --json bench/vad-dev.json
    python bench/vad.py --model /tmp/my_model --limit 5 --no-cli      # a quick look

Prints one table (systems as rows) and the breakdown tables; ``--json PATH`` writes the same.
Timing is not a test: run on an otherwise idle machine, and rerun for figures you quote.

The peers are benchmark-only and imported lazily; a missing one prints
``skipped: pip install ...`` and the rest runs. They need (the ``vad-bench`` extra):

    silero-vad>=6.0        (TorchScript + ONNX models inside the wheel)
    onnxruntime>=1.16      (silero-vad ONNX)
    webrtcvad-wheels>=2.0.14  (import name ``webrtcvad``)
    ten-vad>=1.0.6         (needs the C++ runtime: apt-get install libc++1)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SR = 16000
FPS = 100.0
HOP = SR // 100
LABEL = "speech"
WARMUP_SECONDS = 3.0
from pipeline.predict import FILES_PER_BATCH as CLI_FILES_PER_BATCH  # noqa: E402  (the CLI's batching)
SNR_BANDS = ((">=20", 20.0, math.inf), ("10..20", 10.0, 20.0), ("0..10", 0.0, 10.0),
             ("<0", -math.inf, 0.0))


# ----------------------------------------------------------------------------- data


@dataclass
class Clip:
    name: str          # as in the TSV (relative to the TSV's folder)
    path: Path
    ref: list          # list[Segment]
    n_samples: int = 0  # at 16 kHz
    meta: dict = field(default_factory=dict)
    bench: dict | None = None  # --benchmark: meta.csv row + reference frame arrays

    @property
    def n_frames(self) -> int:
        if self.bench is not None:  # the benchmark's own frame count (meta.csv n_frames)
            return int(self.bench["row"]["n_frames"])
        return 1 + self.n_samples // HOP

    @property
    def seconds(self) -> float:
        return self.n_samples / SR


def load_clips(corpus: Path, split: str, limit: int | None) -> tuple[list[Clip], bool]:
    from pipeline.audio import load_audio
    from pipeline.labels import read_dcase

    tsv = corpus / f"{split}.tsv"
    if not tsv.is_file():
        raise SystemExit(f"{tsv}: no such file (build the corpus with data/recipes/vad_corpus.py "
                         f"or pass --corpus / set $VAD_CORPUS)")
    labels = read_dcase(tsv)
    meta_path = corpus / "meta.json"
    metas = json.loads(meta_path.read_text())["clips"] if meta_path.is_file() else {}
    names = sorted(labels)
    if limit:
        names = names[:limit]
    clips = []
    for name in names:
        segs = [s for s in labels[name] if s.label == LABEL]
        clips.append(Clip(name, tsv.parent / name, segs, meta=metas.get(name, {})))
    for c in clips:  # untimed: the length at 16 kHz, and every file into the page cache
        c.n_samples = len(load_audio(c.path, sr=SR))
    return clips, bool(metas)


def load_benchmark(folder: Path, limit: int | None, reference: str = "frames") -> list[Clip]:
    """The clips of a folder laid out like ``speech-v1``: ``meta.csv`` (clip, kind, bg_class,
    snr_db, n_frames, ...), ``<clip>.flac`` or ``.wav``, ``<clip>.frames.npy`` (uint8 at 100 fps,
    primary labels; else ``<clip>.tsv`` rasterised the same way), optional ``<clip>.tight.npy``
    and ``<clip>.uncertain.npy``. ``reference``: the labels are ``<clip>.<reference>.npy``
    (another label rule of the same clips; tight and uncertain frames are then not used)."""
    import csv

    from pipeline.audio import load_audio
    from pipeline.labels import read_dcase

    meta_csv = folder / "meta.csv"
    if not meta_csv.is_file():
        raise SystemExit(f"--benchmark {folder}: no meta.csv (a benchmark folder has meta.csv, "
                         f"<clip>.flac|.wav and <clip>.frames.npy or <clip>.tsv)")
    with open(meta_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"clip", "kind", "bg_class", "snr_db", "n_frames"}
    if rows and not need <= set(rows[0]):
        raise SystemExit(f"{meta_csv}: columns {sorted(need - set(rows[0]))} missing")
    clips = []
    for row in rows[:limit] if limit else rows:
        name, n = row["clip"], int(row["n_frames"])
        audio = next((folder / (name + ext) for ext in (".flac", ".wav")
                      if (folder / (name + ext)).is_file()), None)
        if audio is None:
            raise SystemExit(f"{folder}: clip {name!r} of meta.csv has no {name}.flac or {name}.wav")
        arrays = {}
        for key in ("frames", "tight", "uncertain") if reference == "frames" else ("frames",):
            f = folder / f"{name}.{reference if key == 'frames' else key}.npy"
            if f.is_file():
                a = np.load(f, allow_pickle=False).astype(bool)
                if len(a) != n:
                    raise SystemExit(f"{f}: {len(a)} frames, meta.csv says n_frames={n}")
                arrays[key] = a
        if "frames" not in arrays and reference != "frames":
            raise SystemExit(f"{folder}: clip {name!r} has no {name}.{reference}.npy (--reference)")
        if "frames" not in arrays:
            tsv = folder / f"{name}.tsv"
            if not tsv.is_file():
                raise SystemExit(f"{folder}: clip {name!r} has neither {name}.frames.npy nor {name}.tsv")
            arrays["frames"] = raster([s for v in read_dcase(tsv, default_name=name).values()
                                       for s in v], n)
        clips.append(Clip(name, audio, [], bench={"row": row, **arrays}))
    for c in clips:  # untimed: the length at 16 kHz, and every file into the page cache
        c.n_samples = len(load_audio(c.path, sr=SR))
    return clips


def raster(segs, n_frames: int, label: str = LABEL) -> np.ndarray:
    """speech-v1's rule (its score.py): ``[on, off)`` marks frames ``round(100 on)`` ..
    ``round(100 off) - 1``, i.e. a 10 ms frame is active when the segment covers its centre."""
    m = np.zeros(n_frames, bool)
    for s in segs:
        if s.label == label:  # times as a TSV holds them (3 decimals), then score.py's rounding
            on, off = round(s.onset, 3), round(s.offset, 3)
            a, b = max(0, int(round(on * FPS))), min(n_frames, int(round(off * FPS)))
            if b > a:
                m[a:b] = True
    return m


def frames(segs, n_frames: int) -> np.ndarray:
    from pipeline.labels import segments_to_frames

    with warnings.catch_warnings():  # a peer's segment may end a frame past the audio: clipped
        warnings.simplefilter("ignore", UserWarning)
        return segments_to_frames([s for s in segs if s.label == LABEL], classes=[LABEL],
                                  n_frames=n_frames, fps=FPS)[:, 0] > 0.5


# ----------------------------------------------------------------------------- systems


@dataclass
class System:
    name: str
    decode: Callable[[Path], np.ndarray]
    infer: Callable[[np.ndarray], list]   # audio -> list of Segment(onset, offset, "speech")
    load_seconds: float = 0.0
    note: str = ""
    infer_many: Callable[[list], list] | None = None  # several files per network batch
    batch: int = 1


def _decode16(path: Path) -> np.ndarray:
    from pipeline.audio import load_audio

    return load_audio(path, sr=SR)  # soundfile, mono, soxr when the file is not 16 kHz


def system_ours(model_dir: Path, threads: int, name: str = "ours") -> System:
    from pipeline import features
    from pipeline.audio import load_audio
    from pipeline.config import Config, ModelConfig, section_from_dict
    from pipeline.engine import open_network
    from pipeline.labels import Segment
    from pipeline.modeldir import read_model_config
    from pipeline.predict import config_for_model, score_files, segments

    t0 = time.perf_counter()
    mconf = read_model_config(model_dir)  # the network on predict's engine (ONNX Runtime where it can)
    model = open_network(model_dir, mconf, section_from_dict(ModelConfig, "model", mconf["model"]),
                         threads=threads)
    cfg = config_for_model(mconf, Config())
    classes = list(mconf["classes"])
    if LABEL not in classes:
        raise SystemExit(f"{model_dir}: the model's classes {classes} have no {LABEL!r}")
    lc, fc, pc = cfg.load, cfg.features, cfg.predict
    fps = features.fps(fc, lc.sr)

    def decode(path: Path) -> np.ndarray:
        return load_audio(path, sr=lc.sr, mono=lc.mono, channel=lc.channel,
                          resample_quality=lc.resample_quality)

    per_class = mconf.get("predict_per_class")

    def infer_many(ys: list) -> list:
        Ss = []
        for y in ys:
            arrays, _ = features.features_of(y, lc.sr, fc)  # spectrogram + storage dtype, as the stage
            Ss.append(np.asarray(arrays["S"], dtype=np.float32))
        # every class's segments: speech is scored, music too where a benchmark has it
        return [segments(sc, classes=classes, fps=fps, pcfg=pc, per_class=per_class,
                         duration=len(y) / lc.sr)
                for y, sc in zip(ys, score_files(model, Ss, fps=fps, pcfg=pc, features=fc))]

    def infer(y: np.ndarray) -> list:
        return infer_many([y])[0]

    tuned = {k: getattr(pc, k) for k in ("threshold", "offset_threshold", "median_filter",
                                          "min_duration_on", "min_duration_off", "pad_onset",
                                          "pad_offset", "level_db")}
    note = (f"{mconf['model'].get('cell')} h={mconf['model'].get('hidden')} "
            f"x{mconf['model'].get('layers')}{' bi' if mconf['model'].get('bidirectional') else ''}, "
            f"{fc.kind} {fc.n_mels}, predict {tuned}"
            + (f", per class {per_class}" if per_class else ""))
    return System(name, decode, infer, time.perf_counter() - t0, note, infer_many)


def batched(sys_: System, files: int) -> System:
    """The same system scoring ``files`` files per network batch, as the CLI's predict does."""
    return System(f"{sys_.name} {files}/batch", sys_.decode, sys_.infer, 0.0,
                  f"decode + features per file, {files} files per score_files call "
                  f"(the CLI's batching)", sys_.infer_many, files)


def _silero_segments(ts: list[dict]) -> list:
    from pipeline.labels import Segment

    return [Segment(float(t["start"]), float(t["end"]), LABEL) for t in ts if t["end"] > t["start"]]


def system_silero(onnx: bool, threads: int, exact: bool = False) -> System:
    """``exact``: boundaries in samples (as ``peers_dir.py`` writes speech-v1's peer rows), not
    ``return_seconds=True``'s 0.1 s rounding."""
    import silero_vad  # noqa: F401  (its import sets torch.set_num_threads(1))
    import silero_vad.model as sm
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    # load_silero_vad must read the model shipped in the wheel: record the path it opens
    seen: list[str] = []
    jit0, onnx0 = sm.init_jit_model, sm.OnnxWrapper
    sm.init_jit_model = lambda path, *a, **k: (seen.append(str(path)), jit0(path, *a, **k))[1]
    sm.OnnxWrapper = lambda path, *a, **k: (seen.append(str(path)), onnx0(path, *a, **k))[1]
    t0 = time.perf_counter()
    try:
        model = load_silero_vad(onnx=onnx)
    finally:
        sm.init_jit_model, sm.OnnxWrapper = jit0, onnx0
    pkg = Path(silero_vad.__file__).parent.resolve()
    if len(seen) != 1 or not Path(seen[0]).resolve().is_relative_to(pkg):
        raise RuntimeError(f"silero-vad loaded {seen}, not a file of its package {pkg}")
    src = Path(seen[0])
    torch.set_num_threads(threads)
    name = "silero-vad onnx" if onnx else "silero-vad jit"
    if onnx:  # OnnxWrapper fixes intra_op_num_threads=1: the same session with our thread count
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        model.session = onnxruntime.InferenceSession(str(src), providers=["CPUExecutionProvider"],
                                                     sess_options=opts)

    def infer(y: np.ndarray) -> list:
        with torch.no_grad():
            ts = get_speech_timestamps(torch.from_numpy(y), model, sampling_rate=SR,
                                       return_seconds=not exact)
        if exact:
            ts = [{"start": t["start"] / SR, "end": t["end"] / SR} for t in ts]
        return _silero_segments(ts)

    ver = getattr(silero_vad, "__version__", "?")
    return System(name, _decode16, infer, time.perf_counter() - t0,
                  f"silero-vad {ver}, {src.name}, {'sample-exact' if exact else '0.1 s'} boundaries")


def system_webrtc(mode: int) -> System:
    import webrtcvad

    from pipeline.labels import frames_to_segments

    t0 = time.perf_counter()
    webrtcvad.Vad(mode)
    flen = SR * 30 // 1000  # 480 samples
    fps = 1000.0 / 30

    def infer(y: np.ndarray) -> list:
        vad = webrtcvad.Vad(mode)  # a fresh state per file: it adapts to what it has heard
        pcm = _pcm16(y).astype("<i2")
        n = -(-len(pcm) // flen)
        pcm = np.pad(pcm, (0, n * flen - len(pcm))).tobytes()
        step = flen * 2
        active = np.fromiter((vad.is_speech(pcm[i * step:(i + 1) * step], SR) for i in range(n)),
                             dtype=bool, count=n)
        end = len(y) / SR
        return [s._replace(offset=min(s.offset, end))
                for s in frames_to_segments(active[:, None], classes=[LABEL], fps=fps)]

    return System(f"webrtcvad {mode}", _decode16, infer, time.perf_counter() - t0,
                  "30 ms frames, runs merged")


def _pcm16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def system_ten(hop: int = 256, threshold: float = 0.5) -> System:
    """TEN-VAD as the issue runs it: hop 256 (16 ms), threshold 0.5, its own per-frame flags
    joined into segments (the last partial hop is not scored: no flag)."""
    from importlib.metadata import version

    from ten_vad import TenVad

    from pipeline.labels import Segment

    t0 = time.perf_counter()
    TenVad(hop, threshold)  # import and library load, untimed like the other models

    def infer(y: np.ndarray) -> list:
        pcm, vad = _pcm16(y), TenVad(hop, threshold)  # a fresh state per file
        flags = np.array([vad.process(np.ascontiguousarray(pcm[i:i + hop]))[1]
                          for i in range(0, len(pcm) - hop + 1, hop)], dtype=int)
        d = np.diff(np.r_[0, flags, 0])
        return [Segment(a * hop / SR, b * hop / SR, LABEL)
                for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]

    return System("ten-vad", _decode16, infer, time.perf_counter() - t0,
                  f"TEN-VAD {version('ten-vad')}, hop {hop}, threshold {threshold}")


def system_all_speech() -> System:
    """The floor: every frame speech."""
    from pipeline.labels import Segment

    return System("all speech", _decode16, lambda y: [Segment(0.0, len(y) / SR, LABEL)], 0.0,
                  "every frame called speech (the floor)")


PEERS = {  # name -> (factory(threads, exact), pip line)
    "silero-vad jit": (lambda th, ex: system_silero(False, th, ex), "pip install silero-vad"),
    "silero-vad onnx": (lambda th, ex: system_silero(True, th, ex), "pip install silero-vad onnxruntime"),
    "ten-vad": (lambda th, ex: system_ten(), "pip install ten-vad (and apt-get install libc++1)"),
    **{f"webrtcvad {m}": ((lambda th, ex, m=m: system_webrtc(m)), "pip install webrtcvad-wheels")
       for m in range(4)},
    "all speech": (lambda th, ex: system_all_speech(), ""),
}
BENCHMARK_PEERS = "silero-vad onnx,ten-vad,webrtcvad 3,all speech"


# ----------------------------------------------------------------------------- running


def run_system(sys_: System, clips: list[Clip], threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    y0 = sys_.decode(clips[0].path)
    sys_.infer(np.ascontiguousarray(y0[: int(WARMUP_SECONDS * SR)]))  # warm-up, untimed
    preds, total = {}, 0.0
    for b in range(0, len(clips), sys_.batch):
        group = clips[b: b + sys_.batch]
        t0 = time.perf_counter()
        ys = [sys_.decode(c.path) for c in group]
        segs = sys_.infer_many(ys) if sys_.batch > 1 else [sys_.infer(ys[0])]
        total += time.perf_counter() - t0
        for c, y, sg in zip(group, ys, segs):
            if sys_.decode is _decode16 and len(y) != c.n_samples:
                raise RuntimeError(f"{c.path}: decoded {len(y)} samples, expected {c.n_samples}")
            preds[c.name] = sg
    return {"preds": preds, "seconds": total}


def run_cli(model_dir: Path, clips: list[Clip], corpus: Path, split: str, threads: int,
            full_split: bool) -> dict:
    """The whole command, cold: a fresh interpreter and an empty cache."""
    from pipeline.labels import read_dcase

    with tempfile.TemporaryDirectory(prefix="vadbench-") as tmp:
        tmp = Path(tmp)
        if full_split:
            inputs = str(corpus / split)
        else:
            manifest = tmp / "inputs.txt"
            manifest.write_text("".join(f"{c.path.resolve()}\n" for c in clips))
            inputs = str(manifest)
        cmd = [sys.executable, "-m", "pipeline", "-q", "-j", str(threads), "--cache-dir",
               str(tmp / "cache"), "predict", inputs, "--model", str(model_dir), "--out",
               str(tmp / "out")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        env.pop("PIPELINE_CACHE_DIR", None)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}",
                    "seconds": seconds, "command": " ".join(cmd)}
        by_stem = {p.stem: p for p in (tmp / "out").rglob("*.tsv")}
        preds = {}
        for c in clips:
            p = by_stem.get(Path(c.name).stem)
            if p is not None:
                preds[c.name] = [s for v in read_dcase(p, default_name=c.name).values() for s in v]
        shown = [("<tmp>/" + Path(a).name if a.startswith(str(tmp)) else a) for a in cmd[1:]]
        return {"preds": preds, "seconds": seconds,
                "command": "python " + " ".join(shown)}


# ----------------------------------------------------------------------------- scoring


def score(preds: dict, clips: list[Clip], has_meta: bool) -> dict:
    from pipeline.metrics import frame_metrics

    refs, hyps = {}, {}
    for c in clips:
        refs[c.name] = frames(c.ref, c.n_frames)
        hyps[c.name] = frames(preds.get(c.name, []), c.n_frames)

    def pooled(names: list[str]) -> dict:
        if not names:
            return {"n_files": 0, "precision": None, "recall": None, "f1": None}
        r = np.concatenate([refs[n] for n in names])[:, None]
        h = np.concatenate([hyps[n] for n in names])[:, None]
        m = frame_metrics(r, h, classes=[LABEL])["overall"]
        out = {k: m[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")}
        out["n_files"] = len(names)
        out["false_alarm"] = float(h[~r].mean()) if (~r).any() else None
        return out

    result = {"overall": pooled([c.name for c in clips])}
    if not has_meta:
        return result
    by_snr, by_bg, by_chan = {}, {}, {}
    speechy = [c for c in clips if c.ref]
    for label, lo, hi in SNR_BANDS:
        by_snr[label] = pooled([c.name for c in speechy if c.meta.get("snr_db") is not None
                                and lo <= c.meta["snr_db"] < hi])
    by_snr["no bg"] = pooled([c.name for c in speechy if _kind(c) == "none"])
    by_snr["no speech"] = pooled([c.name for c in clips if not c.ref])
    for kind in sorted({_kind(c) for c in clips}):
        by_bg[kind] = pooled([c.name for c in clips if _kind(c) == kind])
    by_chan["wideband"] = pooled([c.name for c in clips if not c.meta.get("telephone")])
    by_chan["telephone"] = pooled([c.name for c in clips if c.meta.get("telephone")])
    by_chan["tel. mu-law"] = pooled([c.name for c in clips if c.meta.get("telephone")
                                     and (c.meta.get("telephone_detail") or {}).get("mulaw")])
    # recall per utterance source: reference frames inside that source's utterances
    by_src: dict[str, list[int]] = {}
    for c in clips:
        ref, hyp = refs[c.name], hyps[c.name]
        for u in c.meta.get("utterances", []):
            a, b = int(round(u["start"] * FPS)), int(round(u["end"] * FPS))
            sel = ref[a:b]
            tp, n = int((sel & hyp[a:b]).sum()), int(sel.sum())
            src = "asterisk" if u["source"].startswith("asterisk") else u["source"]
            acc = by_src.setdefault(src, [0, 0])
            acc[0] += tp
            acc[1] += n
    if any(c.meta.get("augment") for c in clips):  # real_corpus: simulated rooms
        by_chan["dry"] = pooled([c.name for c in clips if not (c.meta.get("augment") or {}).get("reverb")])
        by_chan["reverberant"] = pooled([c.name for c in clips if (c.meta.get("augment") or {}).get("reverb")])
    for c in clips:  # speech sources the training split never saw are marked
        for u in c.meta.get("utterances", []):
            if u.get("held_out"):
                src = u["source"] + " (held out)"
                ref, hyp = refs[c.name], hyps[c.name]
                a, b = int(round(u["start"] * FPS)), int(round(u["end"] * FPS))
                acc = by_src.setdefault(src, [0, 0])
                acc[0] += int((ref[a:b] & hyp[a:b]).sum())
                acc[1] += int(ref[a:b].sum())
    by_pkg: dict[str, list[str]] = {}
    for c in clips:
        bg = c.meta.get("background") or {}
        for pkg in bg.get("packages", []):
            by_pkg.setdefault(pkg + (" (held out)" if bg.get("held_out") else ""), []).append(c.name)
    result.update(by_snr=by_snr, by_background=by_bg, by_channel=by_chan,
                  recall_by_source={s: {"recall": (tp / n if n else None), "ref_frames": n}
                                    for s, (tp, n) in sorted(by_src.items())})
    if by_pkg:
        result["by_background_package"] = {k: pooled(v) for k, v in sorted(by_pkg.items())}
    return result


NEAR_BOUNDARY_S = 0.1  # "where the errors are": within this of a reference speech boundary


def boundary_distance(ref: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Seconds from each frame's centre to the nearest onset or offset of ``ref`` (boundaries lie
    between frames; the clip's own start and end are not boundaries); inf where ``ref`` has none."""
    n = len(ref)
    p = np.flatnonzero(np.diff(np.r_[0, ref.astype(np.int8), 0]))
    p = p[(p > 0) & (p < n)]
    if not len(p):
        return np.full(n, np.inf)
    centre = np.arange(n) + 0.5
    i = np.searchsorted(p, centre)
    left, right = p[np.clip(i - 1, 0, len(p) - 1)], p[np.clip(i, 0, len(p) - 1)]
    return np.minimum(np.abs(centre - left), np.abs(centre - right)) / fps


def score_benchmark(preds: dict, clips: list[Clip]) -> dict:
    """speech-v1's figures (its ``score.py``, the same counts): pooled frame P / R / F1 over the
    generated clips (the conversation kept apart) with the false-positive rate, F1 against the
    tight labels and on certain frames; per background class and per SNR over the clips with
    speech; the share of frames called speech on the clips without speech (FA); F1 on the
    conversation; music P / R / F1 where a system writes ``music`` rows (music, noise and clean
    clips; music is present throughout a music clip). ``errors``: the generated clips' missed and
    false speech frames, and the share of each within :data:`NEAR_BOUNDARY_S` of a reference onset
    or offset (edges that a shift of the boundaries explains) against further away (missed speech,
    bridged pauses, false alarms away from speech)."""
    def counts(ref, hyp, keep=None):
        if keep is not None:
            ref, hyp = ref[keep], hyp[keep]
        return np.array([np.sum(ref & hyp), np.sum(~ref & hyp), np.sum(ref & ~hyp),
                         np.sum(~ref & ~hyp)], np.int64)

    def summary(c):
        tp, fp, fn = (int(x) for x in c[:3])
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                "frames": int(c.sum()), "speech_frames": tp + fn}

    zero = lambda: np.zeros(4, np.int64)  # noqa: E731
    tot = {k: zero() for k in ("all", "tight", "certain", "nonspeech", "conv", "music")}
    by_class, by_snr, music_rows = {}, {}, False
    near_err = np.zeros(2, np.int64)  # missed and false frames near a reference boundary
    for c in clips:
        row, ref, n = c.bench["row"], c.bench["frames"], c.n_frames
        segs = preds.get(c.name, [])
        hyp = raster(segs, n)
        cnt = counts(ref, hyp)
        if row["bg_class"] in ("music", "noise", "none"):
            mus = raster(segs, n, "music")
            music_rows |= any(s.label == "music" for s in segs)
            tot["music"] += counts(np.full(n, row["bg_class"] == "music"), mus)
        if row["kind"] == "conversation":
            tot["conv"] += cnt
            continue
        tot["all"] += cnt
        near = boundary_distance(ref) < NEAR_BOUNDARY_S
        near_err += [np.sum(ref & ~hyp & near), np.sum(~ref & hyp & near)]
        if "tight" in c.bench:
            tot["tight"] += counts(c.bench["tight"], hyp)
        tot["certain"] += counts(ref, hyp, ~c.bench["uncertain"] if "uncertain" in c.bench else None)
        if row["kind"] == "nonspeech":
            tot["nonspeech"] += cnt
        else:
            by_class[row["bg_class"]] = by_class.get(row["bg_class"], zero()) + cnt
            by_snr[row["snr_db"]] = by_snr.get(row["snr_db"], zero()) + cnt
    overall = summary(tot["all"])
    a = tot["all"]
    ns = tot["nonspeech"]
    overall.update(fpr=float(a[1] / max(1, a[1] + a[3])), f1_tight=summary(tot["tight"])["f1"],
                   f1_certain=summary(tot["certain"])["f1"])
    return {"overall": overall,
            "by_class": {k: summary(v) for k, v in sorted(by_class.items())},
            "by_snr": {k: summary(by_snr[k]) for k in sorted(by_snr, key=lambda x: -float(x))},
            "nonspeech": {"clips": sum(c.bench["row"]["kind"] == "nonspeech" for c in clips),
                          "false_alarm": float(ns[1] / max(1, ns.sum())) if ns.sum() else None},
            "conversation": summary(tot["conv"]) if tot["conv"].sum() else None,
            "music": summary(tot["music"]) if music_rows else None,
            "errors": {"near_s": NEAR_BOUNDARY_S, "missed": int(a[2]), "false": int(a[1]),
                       "missed_near": float(near_err[0] / a[2]) if a[2] else None,
                       "false_near": float(near_err[1] / a[1]) if a[1] else None}}


def report_benchmark(res: dict) -> str:
    """speech-v1's README table (one row per system) and the per-SNR table."""
    systems, st = res["systems"], res["settings"]
    first = next(iter(systems.values()))["scores"]
    classes = list(first["by_class"])
    snrs = list(first["by_snr"])
    head = (["system", "F1", "P", "R"] + classes + [f"{s} dB" for s in snrs if s != "inf"]
            + ["FA %", "conv F1", "music F1", "x RT"])
    rows = []
    for name, s in systems.items():
        sc = s["scores"]
        o = sc["overall"]
        rows.append([name, _f(o["f1"]), _f(o["precision"]), _f(o["recall"])]
                    + [_f(sc["by_class"].get(k, {}).get("f1")) for k in classes]
                    + [_f(sc["by_snr"].get(k, {}).get("f1")) for k in snrs if k != "inf"]
                    + [_f(sc["nonspeech"]["false_alarm"], pct=True),
                       _f((sc["conversation"] or {}).get("f1")),
                       _f((sc["music"] or {}).get("f1")), f"{s['xrt']:.0f}"])
    n_gen = sum(1 for c in st["clips"] if c != "conversation")
    out = [f"{st['benchmark']} (labels <clip>.{st.get('reference', 'frames')}.npy): {st['n_files']} clips ({n_gen} generated scored pooled, "
           f"{st['clips'].count('nonspeech')} without speech, {st['clips'].count('conversation')} "
           f"conversation), {st['audio_seconds'] / 60:.1f} min, frame metrics at 10 ms as its score.py",
           table(head, rows)]
    for name, s in systems.items():
        if s.get("note"):
            out.append(f"  {name}: {s['note']}")
    out += res.get("skipped", [])
    out.append("\nOverall false-positive rate, F1 on tight labels, F1 on certain frames")
    out.append(table(["system", "FPR", "F1 tight", "F1 certain"],
                     [[n, _f(s["scores"]["overall"]["fpr"]), _f(s["scores"]["overall"]["f1_tight"]),
                       _f(s["scores"]["overall"]["f1_certain"])] for n, s in systems.items()]))
    errs = {n: s["scores"].get("errors") for n, s in systems.items()}
    if all(errs.values()):
        near = int(round(next(iter(errs.values()))["near_s"] * 1000))
        out.append(f"\nWhere the errors are (10 ms frames; near: within {near} ms of a reference onset "
                   "or offset)")
        out.append(table(["system", "missed", "near %", "false", "near %"],
                         [[n, str(e["missed"]), _f(e["missed_near"], pct=True), str(e["false"]),
                           _f(e["false_near"], pct=True)] for n, e in errs.items()]))
    cli = res.get("cli")
    if cli:
        o = cli.get("scores", {}).get("overall")
        out.append(f"\nours CLI (cold): failed, {cli['error']}" if "error" in cli else
                   f"\nours CLI (cold, separate process, empty cache): {cli['seconds']:.2f} s wall, "
                   f"F1 {_f(o['f1'])}; frames identical to in-process on "
                   f"{cli['same_frames_as_ours']}/{st['n_files']} files\n  {cli['command']}")
    return "\n".join(out)


def write_tsvs(out: Path, preds: dict, clips: list[Clip]) -> None:
    """One DCASE TSV per clip, as ``predict`` writes them (speech-v1's score.py reads these)."""
    out.mkdir(parents=True, exist_ok=True)
    for c in clips:
        with open(out / (Path(c.name).stem + ".tsv"), "w") as fh:
            fh.write("onset\toffset\tevent_label\n")
            for sg in preds.get(c.name, []):
                fh.write(f"{sg.onset:.3f}\t{sg.offset:.3f}\t{sg.label}\n")


def _kind(c: Clip) -> str:
    return (c.meta.get("background") or {}).get("kind", "?")


def agreement(a: dict, b: dict, clips: list[Clip]) -> int:
    """Files whose two predictions give identical 10 ms frames."""
    return sum(np.array_equal(frames(a.get(c.name, []), c.n_frames), frames(b.get(c.name, []), c.n_frames))
               for c in clips)


# ----------------------------------------------------------------------------- printing


def _f(x, pct=False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def line(r):
        return "  ".join([r[0].ljust(widths[0])] + [x.rjust(w) for x, w in zip(r[1:], widths[1:])])
    return "\n".join([line(head), "-" * len(line(head))] + [line(r) for r in rows])


def _transpose(table_fn, head: list[str], rows: list[list[str]]) -> str:
    """Many columns read better as rows: one row per column of ``head[1:]``."""
    cols = [r[0] for r in rows]
    return table_fn([head[0] + " \\ package"] + cols, [[h] + [r[i + 1] for r in rows] for i, h in enumerate(head[1:])])


def report(res: dict) -> str:
    systems = res["systems"]
    out = []
    rows = []
    for name, s in systems.items():
        o = s["scores"]["overall"]
        rows.append([name, _f(o["precision"]), _f(o["recall"]), _f(o["f1"]),
                     f"{s['seconds']:.2f}", f"{s['xrt']:.0f}", str(s["n_files"]),
                     f"{s.get('load_seconds', 0):.2f}"])
    st = res["settings"]
    out.append(f"{st['n_files']} files, {st['audio_seconds'] / 60:.1f} min of audio, "
               f"{st['threads']} thread(s), frame metrics at 10 ms pooled over files")
    out.append(table(["system", "P", "R", "F1", "seconds", "x RT", "files", "load s"], rows))
    for name, s in systems.items():
        if s.get("note"):
            same = (f"; frames identical to 'ours' on {s['same_frames_as_ours']}/{s['n_files']} files"
                    if "same_frames_as_ours" in s else "")
            out.append(f"  {name}: {s['note']}{same}")
    for line in res.get("skipped", []):
        out.append(line)
    first = next(iter(systems.values()), None)
    if first and "by_snr" in first["scores"]:
        def sub(key, title, value="f1", pct_cols=()):
            cols = list(first["scores"][key])
            head = [title] + [f"{c} ({first['scores'][key][c]['n_files']})" for c in cols]
            rws = []
            for name, s in systems.items():
                cells = []
                for c in cols:
                    m = s["scores"][key][c]
                    cells.append(_f(m.get("false_alarm"), pct=True) + "%" if c in pct_cols
                                 and m.get("false_alarm") is not None
                                 else _f(m.get(value)) if c not in pct_cols else "-")
                rws.append([name] + cells)
            return table(head, rws)
        out.append("\nF1 per SNR band (files); 'no speech': % of frames called speech")
        out.append(sub("by_snr", "SNR dB", pct_cols=("no speech",)))
        out.append("\nF1 per background kind (files, incl. clips without speech)")
        out.append(sub("by_background", "background"))
        out.append("\nF1 per channel (files)")
        out.append(sub("by_channel", "channel"))
        srcs = list(first["scores"]["recall_by_source"])
        head = ["recall by source"] + [f"{s} ({first['scores']['recall_by_source'][s]['ref_frames'] / FPS:.0f} s)"
                                       for s in srcs]
        rws = [[name] + [_f(s["scores"]["recall_by_source"][k]["recall"]) for k in srcs]
               for name, s in systems.items()]
        out.append("\nRecall per utterance source (seconds of reference speech)")
        out.append(table(head, rws))
        if "by_background_package" in first["scores"]:
            pk = first["scores"]["by_background_package"]
            head = ["system"] + [f"{k} ({pk[k]['n_files']})" for k in pk]
            rws = [[name] + [f"{_f(s['scores']['by_background_package'][k]['f1'])} / "
                             f"{_f(s['scores']['by_background_package'][k]['false_alarm'], pct=True)}%"
                             for k in pk] for name, s in systems.items()]
            out.append("\nPer background package (files): F1 / % of non-speech frames called speech")
            out.append(_transpose(table, head, rws))
    cli = res.get("cli")
    if cli:
        out.append("")
        if "error" in cli:
            out.append(f"ours CLI (cold): failed, {cli['error']}")
        else:
            o = cli["scores"]["overall"]
            out.append(f"ours CLI (cold, separate process, empty cache): {cli['seconds']:.2f} s wall, "
                       f"{cli['xrt']:.0f} x RT, P {_f(o['precision'])} R {_f(o['recall'])} "
                       f"F1 {_f(o['f1'])}; frames identical to in-process on "
                       f"{cli['same_frames_as_ours']}/{st['n_files']} files")
            out.append(f"  {cli['command']}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", type=Path, action="append", default=None,
                   help="model directory (repeat to compare several) [default: models/vad]")
    p.add_argument("--peers", default=None,
                   help="comma-separated peers to run (empty: none) [default: all of "
                        f"{', '.join(PEERS)}; with --benchmark: {BENCHMARK_PEERS}]")
    p.add_argument("--corpus", type=Path, default=Path(os.environ.get("VAD_CORPUS", "/work/corpus/vad")),
                   help="corpus folder with SPLIT.tsv and meta.json ($VAD_CORPUS)")
    p.add_argument("--split", default="dev", help="SPLIT.tsv of the corpus")
    p.add_argument("--benchmark", type=Path, default=None,
                   help="score a folder laid out like speech-v1 (meta.csv, <clip>.flac, "
                        "<clip>.frames.npy) with its score.py's figures, instead of --corpus")
    p.add_argument("--reference", default="frames",
                   help="with --benchmark: score against <clip>.REFERENCE.npy (another label "
                        "rule of the same clips, e.g. 'ours' in a dev_continuous.py build)")
    p.add_argument("--out", type=Path, default=None,
                   help="also write each system's segments here, OUT/<system>/<clip>.tsv")
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime / BLAS threads")
    p.add_argument("--limit", type=int, default=None, help="only the first N files (sorted)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--no-cli", action="store_true", help="skip the cold end-to-end CLI run")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be >= 1")
    a.model = a.model or [ROOT / "models" / "vad"]
    for m in a.model:
        if not (m / "config.json").is_file():
            p.error(f"--model {m}: no config.json (train one with python -m pipeline train)")
    if a.peers is None:
        a.peers = BENCHMARK_PEERS if a.benchmark else ",".join(PEERS)
    peers = [x.strip() for x in a.peers.split(",") if x.strip()]
    for x in peers:
        if x not in PEERS:
            p.error(f"--peers: unknown peer {x!r} (known: {', '.join(PEERS)})")
    ours = ["ours"] if len(a.model) == 1 else [f"ours:{m.resolve().name}" for m in a.model]

    from threadpoolctl import threadpool_limits

    import torch

    torch.set_num_threads(a.threads)
    with threadpool_limits(limits=a.threads):
        if a.benchmark:
            clips, has_meta = load_benchmark(a.benchmark, a.limit, a.reference), False
            if not clips:
                raise SystemExit(f"{a.benchmark / 'meta.csv'}: no clips")
            scorer = lambda preds: score_benchmark(preds, clips)  # noqa: E731
        else:
            clips, has_meta = load_clips(a.corpus, a.split, a.limit)
            if not clips:
                raise SystemExit(f"{a.corpus / (a.split + '.tsv')}: no clips")
            scorer = lambda preds: score(preds, clips, has_meta)  # noqa: E731
        audio_seconds = sum(c.seconds for c in clips)
        res = {"settings": {"model": ", ".join(map(str, a.model)), "corpus": str(a.corpus), "split": a.split,
                            "threads": a.threads, "n_files": len(clips),
                            "audio_seconds": audio_seconds, "fps": FPS, "sr": SR,
                            "python": sys.version.split()[0], "torch": torch.__version__},
               "systems": {}, "skipped": []}
        if a.benchmark:
            res["settings"].update(benchmark=str(a.benchmark), corpus=None, split=None,
                                   reference=a.reference,
                                   clips=[c.bench["row"]["kind"] for c in clips])
        factories = [(n, lambda th, m=m, n=n: system_ours(m, th, n), None) for n, m in zip(ours, a.model)]
        exact = a.benchmark is not None  # silero's boundaries in samples, as speech-v1's peer rows
        factories += [(n, lambda th, f=f: f(th, exact), pip) for n, (f, pip) in PEERS.items()
                      if n in peers]
        todo = []
        for name, factory, pip in factories:
            try:
                todo.append(factory(a.threads))
            except (ImportError, OSError) as exc:  # OSError: TEN-VAD's library without libc++1
                line = f"{name}: skipped: {pip} ({exc})"
                res["skipped"].append(line)
                print(line, file=sys.stderr, flush=True)
            if name in ours:
                todo.append(batched(todo[-1], CLI_FILES_PER_BATCH))
        for sys_ in todo:
            print(f"{sys_.name} ...", file=sys.stderr, flush=True)
            run = run_system(sys_, clips, a.threads)
            res["systems"][sys_.name] = {
                "seconds": run["seconds"], "xrt": audio_seconds / run["seconds"],
                "n_files": len(clips), "load_seconds": sys_.load_seconds, "note": sys_.note,
                "scores": scorer(run["preds"]), "_preds": run["preds"]}
            if a.out:
                write_tsvs(a.out / sys_.name.replace(" ", "_").replace("/", "-").replace(":", "-"),
                           run["preds"], clips)
        for name in ours:
            batch = res["systems"].get(f"{name} {CLI_FILES_PER_BATCH}/batch")
            if batch:
                batch["same_frames_as_ours"] = agreement(batch["_preds"], res["systems"][name]["_preds"], clips)
        if not a.no_cli:
            print("ours CLI (cold) ...", file=sys.stderr, flush=True)
            cli = run_cli(a.model[0].resolve(), clips, a.corpus.resolve(), a.split, a.threads,
                          full_split=not (a.limit or a.benchmark))
            if "preds" in cli:
                preds = cli.pop("preds")
                cli["xrt"] = audio_seconds / cli["seconds"]
                cli["n_files"] = len(preds)
                cli["scores"] = (scorer(preds) if a.benchmark else score(preds, clips, False))
                cli["same_frames_as_ours"] = agreement(preds, res["systems"][ours[0]]["_preds"], clips)
            res["cli"] = cli
    for s in res["systems"].values():
        s.pop("_preds")
    print(report_benchmark(res) if a.benchmark else report(res))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
