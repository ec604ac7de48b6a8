"""Scale: memory against a recording's length, cache bytes per hour, executors, and silero-vad.

    python bench/scale.py [--lengths 0.1667,1,3,10] [--skip-executors] [--skip-silero]

Generates 16-bit 16 kHz FLAC recordings (speech-like harmonic bursts over a quiet noise floor,
so FLAC compresses them about as it does speech), then, each as a whole fresh process with one
thread unless said otherwise:

- ``predict`` with the shipped model (models/vad, on ONNX Runtime: the default engine) on one
  file of each length: wall seconds, x real time, peak RSS, and the bytes the run left in the
  cache against the FLAC's bytes;
- ``features`` on the same 2 h (24 files of 5 min) with ``-j 1``, ``-j 2`` and the Dask executor
  with two local workers;
- silero-vad ONNX (``get_speech_timestamps``, default settings, one thread) on the 1-hour file as a
  whole process beside ours, when the ``vad-bench`` extra is installed.

Timing is not a test: the figures go to the README and the issue notes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
MODEL = ROOT / "models" / "vad"


def make_recording(path: Path, hours: float, seed: int = 0) -> float:
    """Speech-like bursts (a few harmonics, 1-4 s on, 0.3-2 s off) over noise at -50 dB, written
    a minute at a time."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(hours * 3600 * SR)
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16", format="FLAC") as f:
        done, on, t_next = 0, False, 0
        while done < total:
            n = min(60 * SR, total - done)
            t = (done + np.arange(n)) / SR
            gate = np.zeros(n, dtype=np.float32)
            pos = done
            while pos < done + n:
                if pos >= t_next:
                    on = not on
                    t_next = pos + int(rng.uniform(1.0, 4.0) * SR if on else rng.uniform(0.3, 2.0) * SR)
                end = min(t_next, done + n)
                gate[pos - done: end - done] = 1.0 if on else 0.0
                pos = end
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
            voice = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
            y = 0.1 * voice * gate + 0.003 * rng.standard_normal(n)
            f.write(y.astype(np.float32))
            done += n
    return total / SR


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run a command as a child; its wall time, peak RSS (MiB) and exit code."""
    code = ("import resource, subprocess, sys, time, json; t=time.perf_counter(); "
            "r=subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps({'wall': time.perf_counter()-t, 'rc': r.returncode, "
            "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, 'err': r.stderr[-400:]}))")
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ours(tmp: Path, audio: Path, tag: str, env: dict) -> dict:
    cache, out = tmp / f"cache-{tag}", tmp / f"out-{tag}"
    r = timed([sys.executable, "-m", "pipeline", "-q", "--cache-dir", str(cache), "predict", str(audio), "--model",
               str(MODEL), "--out", str(out)], env)
    r["cache_bytes"] = tree_bytes(cache) if cache.exists() else 0
    return r


def silero_script(audio: Path, threads: int = 1) -> list[str]:
    """silero-vad ONNX on a 16 kHz mono file as a whole process (``get_speech_timestamps``)."""
    code = ("import sys, torch, soundfile as sf, numpy as np; torch.set_num_threads(int(sys.argv[2])); "
            "from silero_vad import load_silero_vad, get_speech_timestamps; "
            "m = load_silero_vad(onnx=True); y, sr = sf.read(sys.argv[1], dtype='float32'); "
            "ts = get_speech_timestamps(torch.from_numpy(y), m, sampling_rate=sr); print(len(ts))")
    return [sys.executable, "-c", code, str(audio), str(threads)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="0.1667,1,3,10", help="hours, comma-separated")
    ap.add_argument("--skip-executors", action="store_true")
    ap.add_argument("--skip-silero", action="store_true")
    ap.add_argument("--keep", default=None, help="folder for the generated audio (kept between runs)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        audio_dir = Path(args.keep) if args.keep else tmp / "audio"
        audio_dir.mkdir(parents=True, exist_ok=True)
        print(f"{'predict, models/vad, 1 thread':32} {'hours':>6} {'wall s':>8} {'x real time':>12} "
              f"{'peak RSS MiB':>13} {'cache MB':>9} {'FLAC MB':>8} {'cache/FLAC':>10}")
        rows = {}
        for hours in [float(h) for h in args.lengths.split(",")]:
            audio = audio_dir / f"rec_{hours:g}h.flac"
            if not audio.exists():
                make_recording(audio, hours)
            r = ours(tmp, audio, f"{hours:g}", env)
            flac = audio.stat().st_size
            rows[hours] = r
            print(f"{'ours':32} {hours:6.3g} {r['wall']:8.1f} {hours * 3600 / r['wall']:12,.0f} {r['rss']:13.0f} "
                  f"{r['cache_bytes'] / 1e6:9.1f} {flac / 1e6:8.1f} {r['cache_bytes'] / flac:10.2f}"
                  + ("" if r["rc"] == 0 else f"  FAILED {r['err']}"))
        short = min(rows)
        for hours, r in rows.items():
            if hours != short:
                print(f"  peak RSS {hours:g} h / {short:g} h: {r['rss'] / rows[short]['rss']:.2f}x")
        one = audio_dir / "rec_1h.flac"
        if not args.skip_silero and one.exists():
            try:
                import silero_vad  # noqa: F401
            except ImportError:
                print("silero-vad not installed (pip install '.[vad-bench]'): skipped")
            else:
                s = timed(silero_script(one), env)
                o = rows.get(1.0) or ours(tmp, one, "1b", env)
                print(f"whole process on 1 h, 1 thread: ours {o['wall']:.1f} s ({o['rss']:.0f} MiB), silero-vad "
                      f"ONNX {s['wall']:.1f} s ({s['rss']:.0f} MiB): ours {s['wall'] / o['wall']:.1f}x faster")
        if not args.skip_executors:
            folder = audio_dir / "many"
            folder.mkdir(exist_ok=True)
            for i in range(24):
                if not (folder / f"f{i:02d}.flac").exists():
                    make_recording(folder / f"f{i:02d}.flac", 5 / 60, seed=i + 1)
            hours = 24 * 5 / 60
            for name, extra in (("-j 1", ["-j", "1"]), ("-j 2", ["-j", "2"]),
                                ("dask, 2 local workers", ["-j", "2", "--executor", "dask"])):
                r = timed([sys.executable, "-m", "pipeline", "-q", *extra, "--cache-dir", str(tmp / f"c-{name}"),
                           "features", str(folder)], env)
                print(f"features {name:24} {hours:.1f} h in {r['wall']:6.1f} s = {hours * 3600 / r['wall']:8,.0f}x "
                      f"real time, peak RSS {r['rss']:.0f} MiB" + ("" if r["rc"] == 0 else f"  FAILED {r['err']}"))


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s in all)")
