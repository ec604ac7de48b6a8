"""Speech activity detection: our shipped model beside silero-vad and webrtcvad, same audio.

    python bench/vad.py [--model models/vad]... [--corpus $VAD_CORPUS|/work/corpus/vad]
                        [--split dev] [--threads 1] [--limit N] [--json PATH] [--no-cli]
                        [--peers silero-vad onnx,webrtcvad 3]

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

    @property
    def n_frames(self) -> int:
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


def frames(segs, n_frames: int) -> np.ndarray:
    from pipeline.labels import segments_to_frames

    with warnings.catch_warnings():  # a peer's segment may end a frame past the audio: clipped
        warnings.simplefilter("ignore", UserWarning)
        return segments_to_frames(segs, classes=[LABEL], n_frames=n_frames, fps=FPS)[:, 0] > 0.5


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
        return [[Segment(s.onset, s.offset, LABEL)
                 for s in segments(sc, classes=classes, fps=fps, pcfg=pc, per_class=per_class,
                                   duration=len(y) / lc.sr) if s.label == LABEL]
                for y, sc in zip(ys, score_files(model, Ss, fps=fps, pcfg=pc))]

    def infer(y: np.ndarray) -> list:
        return infer_many([y])[0]

    tuned = {k: getattr(pc, k) for k in ("threshold", "offset_threshold", "median_filter",
                                          "min_duration_on", "min_duration_off", "pad_onset",
                                          "pad_offset")}
    note = (f"{mconf['model'].get('cell')} h={mconf['model'].get('hidden')} "
            f"x{mconf['model'].get('layers')}{' bi' if mconf['model'].get('bidirectional') else ''}, "
            f"{fc.kind} {fc.n_mels}, predict {tuned}")
    return System(name, decode, infer, time.perf_counter() - t0, note, infer_many)


def batched(sys_: System, files: int) -> System:
    """The same system scoring ``files`` files per network batch, as the CLI's predict does."""
    return System(f"{sys_.name} {files}/batch", sys_.decode, sys_.infer, 0.0,
                  f"decode + features per file, {files} files per score_files call "
                  f"(the CLI's batching)", sys_.infer_many, files)


def _silero_segments(ts: list[dict]) -> list:
    from pipeline.labels import Segment

    return [Segment(float(t["start"]), float(t["end"]), LABEL) for t in ts if t["end"] > t["start"]]


def system_silero(onnx: bool, threads: int) -> System:
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
                                       return_seconds=True)
        return _silero_segments(ts)

    ver = getattr(silero_vad, "__version__", "?")
    return System(name, _decode16, infer, time.perf_counter() - t0, f"silero-vad {ver}, {src.name}")


def system_webrtc(mode: int) -> System:
    import webrtcvad

    from pipeline.labels import frames_to_segments

    t0 = time.perf_counter()
    vad = webrtcvad.Vad(mode)
    flen = SR * 30 // 1000  # 480 samples
    fps = 1000.0 / 30

    def infer(y: np.ndarray) -> list:
        pcm = np.clip(np.round(y * 32768.0), -32768, 32767).astype("<i2")
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


PEERS = {  # name -> (factory, pip line)
    "silero-vad jit": (lambda th: system_silero(False, th), "pip install silero-vad"),
    "silero-vad onnx": (lambda th: system_silero(True, th), "pip install silero-vad onnxruntime"),
    **{f"webrtcvad {m}": ((lambda th, m=m: system_webrtc(m)), "pip install webrtcvad-wheels")
       for m in range(4)},
}


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
                preds[c.name] = [s for v in read_dcase(p, default_name=c.name).values()
                                 for s in v if s.label == LABEL]
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
    p.add_argument("--peers", default=",".join(PEERS),
                   help="comma-separated peers to run (empty: none)")
    p.add_argument("--corpus", type=Path, default=Path(os.environ.get("VAD_CORPUS", "/work/corpus/vad")),
                   help="corpus folder with SPLIT.tsv and meta.json ($VAD_CORPUS)")
    p.add_argument("--split", default="dev", help="SPLIT.tsv of the corpus")
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
    peers = [x.strip() for x in a.peers.split(",") if x.strip()]
    for x in peers:
        if x not in PEERS:
            p.error(f"--peers: unknown peer {x!r} (known: {', '.join(PEERS)})")
    ours = ["ours"] if len(a.model) == 1 else [f"ours:{m.resolve().name}" for m in a.model]

    from threadpoolctl import threadpool_limits

    import torch

    torch.set_num_threads(a.threads)
    with threadpool_limits(limits=a.threads):
        clips, has_meta = load_clips(a.corpus, a.split, a.limit)
        if not clips:
            raise SystemExit(f"{a.corpus / (a.split + '.tsv')}: no clips")
        audio_seconds = sum(c.seconds for c in clips)
        res = {"settings": {"model": ", ".join(map(str, a.model)), "corpus": str(a.corpus), "split": a.split,
                            "threads": a.threads, "n_files": len(clips),
                            "audio_seconds": audio_seconds, "fps": FPS, "sr": SR,
                            "python": sys.version.split()[0], "torch": torch.__version__},
               "systems": {}, "skipped": []}
        factories = [(n, lambda th, m=m, n=n: system_ours(m, th, n), None) for n, m in zip(ours, a.model)]
        factories += [(n, f, pip) for n, (f, pip) in PEERS.items() if n in peers]
        todo = []
        for name, factory, pip in factories:
            try:
                todo.append(factory(a.threads))
            except ImportError as exc:
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
                "scores": score(run["preds"], clips, has_meta), "_preds": run["preds"]}
        for name in ours:
            batch = res["systems"].get(f"{name} {CLI_FILES_PER_BATCH}/batch")
            if batch:
                batch["same_frames_as_ours"] = agreement(batch["_preds"], res["systems"][name]["_preds"], clips)
        if not a.no_cli:
            print("ours CLI (cold) ...", file=sys.stderr, flush=True)
            cli = run_cli(a.model[0].resolve(), clips, a.corpus.resolve(), a.split, a.threads,
                          full_split=not a.limit)
            if "preds" in cli:
                preds = cli.pop("preds")
                cli["xrt"] = audio_seconds / cli["seconds"]
                cli["n_files"] = len(preds)
                cli["scores"] = score(preds, clips, False)
                cli["same_frames_as_ours"] = agreement(preds, res["systems"][ours[0]]["_preds"], clips)
            res["cli"] = cli
    for s in res["systems"].values():
        s.pop("_preds")
    print(report(res))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
