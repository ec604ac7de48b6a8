"""Features throughput beside the peers, same audio, same number of worker processes.

    python bench/features.py [--hours 2.0] [--files 24] [-j 2]

Generates 16-bit 16 kHz WAV files (noise plus tones, ``--hours`` in all), then times in fresh
processes:

- ours cold: ``python -m pipeline -j N features DIR`` into an empty cache (decode + log-mel +
  store, and the fingerprints);
- ours warm: the same command again (every file a cache hit, each entry's checksums checked);
- ours warm, no check on read: the same with the crc32 check switched off (what the check costs);
- librosa: ``soundfile.read`` + ``melspectrogram`` + ``power_to_db`` per file, N processes;
- torchaudio: ``MelSpectrogram`` + ``AmplitudeToDB`` (one thread per process), N processes;
- lhotse (when installed): ``Fbank`` per file, N processes.

Prints wall seconds, x real time, peak RSS and the ratio to librosa. Timing is not a test: the
figures go to the README and the issue notes.
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

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
N_FFT, WIN, HOP, N_MELS = 512, 400, 160, 64


def make_audio(folder: Path, hours: float, files: int) -> float:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    seconds = hours * 3600 / files
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    for i in range(files):
        y = 0.05 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)
        sf.write(folder / f"clip{i:03d}.wav", y.astype(np.float32), SR, subtype="PCM_16")
    return files * len(t) / SR


# ----------------------------------------------------------------------- peers (one file each)


def _librosa(path: str) -> int:
    import librosa
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=N_FFT, win_length=WIN, hop_length=HOP, n_mels=N_MELS)
    return librosa.power_to_db(S, ref=1.0, top_db=None).shape[1]


def _torchaudio(path: str) -> int:
    import soundfile as sf
    import torch
    import torchaudio

    torch.set_num_threads(1)
    y, sr = sf.read(path, dtype="float32")
    mel = torchaudio.transforms.MelSpectrogram(sr, n_fft=N_FFT, win_length=WIN, hop_length=HOP, n_mels=N_MELS)
    db = torchaudio.transforms.AmplitudeToDB("power")
    with torch.inference_mode():
        return db(mel(torch.from_numpy(y))).shape[1]


def _lhotse(path: str) -> int:
    import soundfile as sf
    from lhotse.features import Fbank, FbankConfig

    y, sr = sf.read(path, dtype="float32")
    return Fbank(FbankConfig(num_mel_bins=N_MELS)).extract(y, sr).shape[0]


PEERS = {"librosa": _librosa, "torchaudio": _torchaudio, "lhotse": _lhotse}


def _init_one_thread() -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def run_peer(name: str, folder: Path, jobs: int) -> None:
    """Body of a child process: run one peer over the folder with ``jobs`` processes."""
    import multiprocessing as mp

    files = sorted(str(p) for p in folder.glob("*.wav"))
    with mp.get_context("spawn").Pool(jobs, initializer=_init_one_thread) as pool:
        frames = sum(pool.map(PEERS[name], files, chunksize=1))
    assert frames > 0


# ----------------------------------------------------------------------- measuring


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, bool, str]:
    """Wall seconds, peak RSS (MiB, largest process), success and last output line of a command."""
    code = ("import resource, subprocess, sys, time, json; t=time.perf_counter(); "
            "r=subprocess.run(sys.argv[1:], capture_output=True); "
            "w=time.perf_counter()-t; "
            "print(json.dumps([w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, r.returncode, "
            "r.stderr.decode()[-400:], r.stdout.decode().strip()[-300:]]))")
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=env)
    wall, rss, rc, err, last = json.loads(out.stdout)
    if rc != 0:
        print(f"  ({cmd[2] if len(cmd) > 2 else cmd}: exit {rc}: {err.strip()})", file=sys.stderr)
    return wall, rss, rc == 0, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        return run_peer(args.peer, Path(args.folder), args.jobs)

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        tmp = Path(tmp)
        audio = make_audio(tmp / "audio", args.hours, args.files)
        print(f"{args.files} files, {audio / 3600:.2f} h of 16 kHz audio, {args.jobs} processes, "
              f"log-mel n_fft={N_FFT} win={WIN} hop={HOP} n_mels={N_MELS}")
        ours = [sys.executable, "-m", "pipeline", "-q", "-j", str(args.jobs), "--cache-dir", str(tmp / "cache"),
                "features", str(tmp / "audio")]
        rows = {}
        rows["ours cold (decode+logmel+store)"] = timed(ours, env)
        rows["ours warm (all cache hits)"] = timed(ours, env)
        # the same warm run with the check on read switched off, to show what the check costs
        unchecked = [sys.executable, "-c", "import sys, pipeline.cache as c; load = c.Cache.load; "
                     "c.Cache.load = lambda self, *a, **k: load(self, *a, **{**k, 'verify': False}); "
                     "from pipeline.cli import main; main(sys.argv[1:])", *ours[3:]]
        rows["ours warm, no check on read"] = timed(unchecked, env)
        for name in PEERS:
            if name == "lhotse":
                try:
                    import lhotse  # noqa: F401
                except ImportError:
                    print("  (lhotse not installed: skipped)")
                    continue
            rows[name] = timed([sys.executable, __file__, "--peer", name, "--folder", str(tmp / "audio"),
                                "-j", str(args.jobs)], env)
    base = audio / rows["librosa"][0] if rows["librosa"][2] else float("nan")
    print(f"{'':34} {'wall s':>8} {'x real time':>12} {'peak RSS MiB':>13} {'vs librosa':>11}")
    for name, (wall, rss, ok, _) in rows.items():
        speed = audio / wall
        print(f"{name:34} {wall:8.2f} {speed:12,.0f} {rss:13.0f} {speed / base:10.2f}x" + ("" if ok else "  FAILED"))
    cold, warm = rows["ours cold (decode+logmel+store)"][0], rows["ours warm (all cache hits)"][0]
    print(f"warm / cold speed-up: {cold / warm:.1f}x (whole commands; a warm run is mostly interpreter "
          f"start-up, so the ratio grows with the audio)")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, env=env, check=True)
    print(f"python -m pipeline --help: {time.perf_counter() - t0:.2f} s (start-up; numpy and torch are not imported)")
    print(f"  cold summary: {rows['ours cold (decode+logmel+store)'][3]}")
    print(f"  warm summary: {rows['ours warm (all cache hits)'][3]}")


if __name__ == "__main__":
    main()
