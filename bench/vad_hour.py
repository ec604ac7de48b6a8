"""Speed on one hour of real audio: our whole ``predict`` path beside silero-vad ONNX, same run.

    python bench/vad_hour.py [--model models/vad] [--corpus /work/corpus/real] [--split dev]
                             [--clips DIR] [--engine auto] [--hours 1] [--threads 1] [--repeat 2]
                             [--keep PATH] [--json PATH] [--long-pause V]

The recording is the split's clips (``<corpus>/<split>.tsv``, sorted), or with ``--clips DIR`` the
FLAC files of a folder with a DCASE ``.tsv`` beside each (``../shared/benchmarks/speech-v1``, 20
minutes: three times over for an hour; for timing only, never for choosing settings), laid end to
end and looped until it lasts ``--hours``, written once as 16-bit 16 kHz FLAC (``--keep`` keeps it and reuses it);
its reference is the clips' labels shifted by each clip's start. Then, with ``--threads`` threads for every
system (torch, BLAS pools, onnxruntime's session):

- **in-process**, after one untimed warm-up on the first clip:
  - *ours*: ``python -m pipeline --engine ENGINE predict HOUR.flac --model M --out <tmp>`` called
    in-process (``pipeline.cli.main``) with an empty cache each time: decode, features, network
    (ONNX Runtime by default), overlap-add, post-processing, the cache writes and the output file;
  - *silero-vad ONNX*: ``pipeline.audio.load_audio`` (soundfile) then
    ``get_speech_timestamps(wav, model, sampling_rate=16000, return_seconds=True)`` with its
    defaults (the session rebuilt with ``intra_op_num_threads=THREADS``, as ``bench/vad.py``);
  the best of ``--repeat`` runs of each, and the ratio;
- **whole processes** (interpreter, imports, model loading included; wall time and peak RSS): the
  same command as a fresh ``python -m pipeline -q -j THREADS`` process with an empty cache, and ``bench/scale.py``'s
  silero-vad process (a fresh interpreter that imports silero-vad, loads its ONNX model, reads
  the file with soundfile and calls ``get_speech_timestamps``); ``OMP_NUM_THREADS=THREADS`` for
  both, timed by ``bench/scale.py``'s ``timed``; ``--repeat`` runs of each, alternated, the best
  counts (start-up times swing by a second or more from run to run on a shared machine).

``--long-pause V`` lays out another recording instead, for quality rather than speed: six clips with
speech (those numbered 6V to 6V+5 among the split's clips with speech), three before and three
after every clip without speech (V = 0: in order; 1: reversed; 2: every second one, then the
others), so that a long stretch without speech, its backgrounds changing every clip, sits inside
one file: what a whole-file setting such as ``predict.level_db`` measures on a recording that is
mostly not speech. ``--hours`` does not apply; the table adds the share of that stretch called
speech.

Both systems' segments are scored on the hour (frame P/R/F1 at 10 ms, ``bench/vad.py``'s rule), so
a speed figure never hides a broken output. Timing is not a test: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

import vad as bv  # noqa: E402  (bench/vad.py: clips, peers, scoring rule)
from scale import silero_script, timed  # noqa: E402  (bench/scale.py: whole processes)

SR = bv.SR


def placed(clip, t: int, n: int) -> list:
    """``clip``'s reference segments when its first ``n`` samples start at sample ``t`` of the recording."""
    from pipeline.labels import Segment

    a, b = t / SR, (t + n) / SR
    return [Segment(a + s.onset, min(a + s.offset, b), bv.LABEL) for s in clip.ref if a + s.onset < b]


def hour_plan(clips: list, hours: float) -> tuple[list, list]:
    """The clips laid end to end, looped to ``hours``: [(clip, samples taken)] and the reference
    segments shifted by each clip's start (from the clips' lengths: nothing is decoded)."""
    total, t, plan, ref = int(round(hours * 3600 * SR)), 0, [], []
    while t < total:
        for c in clips:
            n = min(c.n_samples, total - t)
            plan.append((c, n))
            ref += placed(c, t, n)
            t += n
            if t >= total:
                break
    return plan, ref


def pause_plan(clips: list, variant: int) -> tuple[list, list, tuple[float, float]]:
    """``--long-pause``: three clips with speech, every clip without speech, three clips with speech
    (:func:`hour_plan`'s plan and reference), and the span of the stretch without speech (s)."""
    with_speech, quiet = [c for c in clips if c.ref], [c for c in clips if not c.ref]
    speech = with_speech[6 * variant: 6 * variant + 6]
    if len(speech) < 6 or not quiet:
        raise SystemExit(f"--long-pause {variant}: needs six clips with speech from number {6 * variant} "
                         f"and one without (the split has {len(with_speech)} and {len(quiet)})")
    quiet = {0: quiet, 1: quiet[::-1], 2: quiet[1::2] + quiet[0::2]}[variant % 3]
    t, plan, ref = 0, [], []
    for c in speech[:3] + quiet + speech[3:]:
        plan.append((c, c.n_samples))
        ref += placed(c, t, c.n_samples)
        t += c.n_samples
    start = sum(c.n_samples for c in speech[:3]) / SR
    return plan, ref, (start, start + sum(c.n_samples for c in quiet) / SR)


def called_speech(segs: list, span: tuple[float, float]) -> float:
    """The share of ``span`` (s) that ``segs`` call speech."""
    a, b = span
    return sum(max(0.0, min(s.offset, b) - max(s.onset, a)) for s in segs) / (b - a)


def write_hour(plan: list, path: Path) -> None:
    import soundfile as sf

    from pipeline.audio import load_audio

    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16", format="FLAC") as f:
        for c, n in plan:
            f.write(load_audio(c.path, sr=SR)[:n])


def scores(segs: list, ref: list, n_samples: int) -> dict:
    from pipeline.metrics import frame_metrics

    n = 1 + n_samples // bv.HOP
    m = frame_metrics(bv.frames(ref, n)[:, None], bv.frames(segs, n)[:, None], classes=[bv.LABEL])["overall"]
    return {k: float(m[k]) for k in ("precision", "recall", "f1")}


def folder_clips(folder: Path) -> list:
    """Clips from a folder of FLAC files, each with its DCASE ``.tsv`` beside it (``speech`` rows)."""
    from pipeline.audio import load_audio
    from pipeline.labels import read_dcase

    clips = []
    for f in sorted(folder.glob("*.flac")):
        segs = [s for v in read_dcase(f.with_suffix(".tsv"), default_name=f.name).values() for s in v
                if s.label == bv.LABEL]
        clips.append(bv.Clip(f.name, f, segs, n_samples=len(load_audio(f, sr=SR))))
    if not clips:
        raise SystemExit(f"{folder}: no .flac files")
    return clips


def ours_in_process(model: Path, audio: Path, threads: int, tmp: Path, tag: str,
                    engine: str = "auto") -> tuple[float, list]:
    from pipeline.cli import main as cli_main
    from pipeline.labels import read_dcase

    out = tmp / f"out-{tag}"
    t0 = time.perf_counter()
    try:
        cli_main(["-q", "-j", str(threads), "--engine", engine, "--cache-dir", str(tmp / f"cache-{tag}"), "predict", str(audio),
                  "--model", str(model), "--out", str(out)])
    except SystemExit as exc:  # main exits only when something failed
        raise SystemExit(f"ours: predict exited {exc.code}") from None
    seconds = time.perf_counter() - t0
    tsv = next(out.rglob("*.tsv"))
    return seconds, [s for v in read_dcase(tsv, default_name=audio.name).values() for s in v if s.label == bv.LABEL]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models" / "vad")
    p.add_argument("--corpus", type=Path, default=Path(os.environ.get("VAD_CORPUS", "/work/corpus/real")))
    p.add_argument("--split", default="dev")
    p.add_argument("--clips", type=Path, default=None,
                   help="a folder of FLAC + .tsv clips instead of the corpus (e.g. ../shared/benchmarks/speech-v1)")
    p.add_argument("--engine", default="auto", choices=["auto", "onnx", "torch"])
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=2, help="runs of each, in-process and as whole processes; the best counts")
    p.add_argument("--keep", type=Path, default=None, help="write (or reuse) the recording here")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--long-pause", type=int, default=None, metavar="V",
                   help="instead of the hour: six clips with speech around every clip without speech (V: 0, 1, 2 "
                        "orders and speech clips); scores a long stretch without speech inside one file")
    a = p.parse_args(argv)
    if a.threads < 1 or a.repeat < 1 or not a.hours > 0:
        p.error("--threads and --repeat must be >= 1, --hours > 0")
    if a.long_pause is not None and a.long_pause < 0:
        p.error("--long-pause must be >= 0")

    from threadpoolctl import threadpool_limits

    import torch

    clips = folder_clips(a.clips) if a.clips else bv.load_clips(a.corpus, a.split, None)[0]
    source = str(a.clips) if a.clips else f"{a.corpus}/{a.split}.tsv"
    with tempfile.TemporaryDirectory(prefix="vadhour-") as tmp:
        tmp = Path(tmp)
        span = None
        if a.long_pause is None:
            audio = a.keep or tmp / f"{a.split}_{a.hours:g}h.flac"
            plan, ref = hour_plan(clips, a.hours)
        else:
            audio = a.keep or tmp / f"{a.split}_pause{a.long_pause}.flac"
            plan, ref, span = pause_plan(clips, a.long_pause)
        if a.keep and audio.exists():
            print(f"reusing {audio}", file=sys.stderr)
        else:
            write_hour(plan, audio)
        import soundfile as sf

        n_samples = sf.info(str(audio)).frames
        hours = n_samples / SR / 3600
        layout = f"looped to {hours:g} h" if span is None else f"--long-pause {a.long_pause}, {hours * 60:.1f} min"
        res = {"settings": {"model": str(a.model), "audio": f"{source} {layout}",
                            "engine": a.engine, "threads": a.threads, "repeat": a.repeat,
                            "torch": torch.__version__}}
        silero = bv.system_silero(True, a.threads)  # sets torch's threads to 1 on import: set again
        torch.set_num_threads(a.threads)
        with threadpool_limits(limits=a.threads):
            ours_in_process(a.model, clips[0].path, a.threads, tmp, "warm", a.engine)  # imports, first-call set-up
            silero.infer(silero.decode(clips[0].path))
            runs = {"ours": [], "silero-vad onnx": []}
            for r in range(a.repeat):
                print(f"run {r + 1}/{a.repeat} ...", file=sys.stderr, flush=True)
                sec, segs_ours = ours_in_process(a.model, audio, a.threads, tmp, f"r{r}", a.engine)
                runs["ours"].append(sec)
                t0 = time.perf_counter()
                segs_silero = silero.infer(silero.decode(audio))
                runs["silero-vad onnx"].append(time.perf_counter() - t0)
        res["in_process"] = {name: {"seconds": min(v), "runs": v, "xrt": hours * 3600 / min(v),
                                    "scores": {**scores(segs, ref, n_samples),
                                               **({} if span is None else {"pause_called_speech": called_speech(segs, span)})}}
                             for (name, v), segs in zip(runs.items(), (segs_ours, segs_silero))}
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        env.pop("PIPELINE_CACHE_DIR", None)
        print("whole processes ...", file=sys.stderr, flush=True)
        procs = {"ours": [], "silero-vad onnx": []}
        for r in range(a.repeat):
            print(f"process {r + 1}/{a.repeat} ...", file=sys.stderr, flush=True)
            procs["ours"].append(timed(
                [sys.executable, "-m", "pipeline", "-q", "-j", str(a.threads), "--engine", a.engine, "--cache-dir",
                 str(tmp / f"cache-proc{r}"), "predict", str(audio), "--model", str(a.model),
                 "--out", str(tmp / f"out-proc{r}")], env))
            procs["silero-vad onnx"].append(timed(silero_script(audio, a.threads), env))
        res["whole_process"] = {name: {**min(v, key=lambda x: (x["rc"] != 0, x["wall"])),
                                       "walls": [x["wall"] for x in v]}
                                for name, v in procs.items()}
    ip, wp = res["in_process"], res["whole_process"]
    print(f"{res['settings']['audio']}: {hours:g} h, {a.threads} thread(s), model {a.model}, engine {a.engine}")
    pause = " the pause called speech" if span else ""
    print(f"{'':28} {'seconds':>8} {'x real time':>12} {'P':>6} {'R':>6} {'F1':>6}{pause}")
    for name, r in ip.items():
        s = r["scores"]
        print(f"{name + ', in-process':28} {r['seconds']:8.2f} {r['xrt']:12,.0f} {s['precision']:6.3f} "
              f"{s['recall']:6.3f} {s['f1']:6.3f}"
              + (f" {100 * s['pause_called_speech']:23.2f} %" if span else ""))
    for name, r in wp.items():
        print(f"{name + ', whole process':28} {r['wall']:8.2f} {hours * 3600 / r['wall']:12,.0f}"
              f"  peak RSS {r['rss']:.0f} MiB" + ("" if r["rc"] == 0 else f"  FAILED: {r['err']}")
              + f"  (runs: {', '.join(f'{w:.2f}' for w in r['walls'])} s)")
    print(f"ours / silero-vad ONNX: in-process {ip['silero-vad onnx']['seconds'] / ip['ours']['seconds']:.1f}x "
          f"faster, whole process {wp['silero-vad onnx']['wall'] / wp['ours']['wall']:.1f}x faster")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
