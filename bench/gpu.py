"""GPU path: features and predict on many hours with ``--device cuda``, beside the CPU.

    python bench/gpu.py [--hours 10] [--files 40]

Generates ``--files`` FLAC recordings (``--hours`` in all, as bench/scale.py makes them), then as
whole processes: ``features`` and ``predict`` (models/vad) with ``--device cuda``, and the same
on the CPU for a tenth of the files; prints x real time for each and the largest difference of the
scores between the two runs on the shared files. ``--device cuda`` runs features and the network
in torch (``--engine auto`` picks torch on a GPU; the train extra installs it); the CPU run is the
default ONNX Runtime engine, so the difference covers both device and engine. Without torch or a
CUDA device it says so and exits 0 (this project's CI machines have none; the ``device`` tool
lends one to some sessions).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from scale import make_recording  # noqa: E402


def run(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pipeline", "-q", *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def largest_difference(a: Path, b: Path, stems: list[str]) -> float:
    """The largest |score| difference between two ``predict --format npy`` folders over ``stems``
    (files of different lengths are a failure, not a difference)."""
    worst = 0.0
    for stem in stems:
        x, y = np.load(a / f"{stem}.scores.npy"), np.load(b / f"{stem}.scores.npy")
        if x.shape != y.shape:
            raise SystemExit(f"{stem}: scores of shape {x.shape} against {y.shape}")
        worst = max(worst, float(np.abs(x - y).max()) if x.size else 0.0)
    return worst


def cuda_device() -> str | None:
    """The CUDA device's name, or None (no torch, or no device) with the reason printed."""
    try:
        import torch
    except ImportError:
        print("torch is not installed (pip install 'audio-seq-pipeline[train]'): nothing measured")
        return None
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run this where `device` lends a GPU)")
        return None
    return torch.cuda.get_device_name(0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=10.0)
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args(argv)
    name = cuda_device()
    if name is None:
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        tmp = Path(tmp)
        audio = tmp / "audio"
        audio.mkdir()
        per = args.hours / args.files
        for i in range(args.files):
            make_recording(audio / f"r{i:03d}.flac", per, seed=i)
        seconds = args.hours * 3600
        model = str(ROOT / "models" / "vad")
        gpu_f = run(["--device", "cuda", "--cache-dir", str(tmp / "g"), "features", str(audio)], env)
        gpu_p = run(["--device", "cuda", "--cache-dir", str(tmp / "g"), "predict", str(audio), "--model", model,
                     "--out", str(tmp / "og"), "--format", "npy"], env)
        shared = sorted(audio.iterdir())[: max(1, args.files // 10)]
        (tmp / "cpu").mkdir()
        for p in shared:
            (tmp / "cpu" / p.name).symlink_to(p)
        cpu_p = run(["--cache-dir", str(tmp / "c"), "predict", str(tmp / "cpu"), "--model", model, "--out",
                     str(tmp / "oc"), "--format", "npy"], env)
        diff = largest_difference(tmp / "og", tmp / "oc", [p.stem for p in shared])
        print(f"{name}: {args.hours:g} h in {args.files} files")
        print(f"  features, cuda: {gpu_f:.1f} s = {seconds / gpu_f:,.0f}x real time")
        print(f"  predict (features cached), cuda: {gpu_p:.1f} s = {seconds / gpu_p:,.0f}x real time")
        cpu_seconds = seconds * len(shared) / args.files
        print(f"  predict from scratch, cpu, {len(shared)} files: {cpu_p:.1f} s = {cpu_seconds / cpu_p:,.0f}x real time")
        print(f"  largest |score cuda (torch) - score cpu (onnx)| on those files: {diff:.2e}")


if __name__ == "__main__":
    main()
