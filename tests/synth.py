"""Generated labelled audio for the chunk/train/predict tests: tones over noise, with the tone
segments as exact labels (known by construction)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def tone_clip(rng: np.random.Generator, seconds: float, *, sr: int = SR) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Noise with tones at random times; returns the signal and the tone intervals (seconds)."""
    n = int(seconds * sr)
    y = 0.05 * rng.standard_normal(n)
    spans = []
    t = rng.uniform(0.1, 0.8)
    while t < seconds - 0.4:
        d = rng.uniform(0.3, 1.0)
        end = min(t + d, seconds)
        a, b = int(round(t * 100)) * sr // 100, int(round(end * 100)) * sr // 100  # frame-aligned
        f = rng.uniform(300, 2500)
        y[a:b] += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * f * np.arange(b - a) / sr)
        spans.append((a / sr, b / sr))
        t = end + rng.uniform(0.4, 1.5)
    return y.astype(np.float32), spans


def tone_dataset(root: Path, n: int = 12, seconds: float = 6.0, seed: int = 0, label: str = "tone") -> Path:
    """A folder of WAVs with a per-clip DCASE TSV beside each."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        y, spans = tone_clip(rng, seconds)
        sf.write(root / f"clip{i:02d}.wav", y, SR, subtype="FLOAT")
        rows = "".join(f"{a:.3f}\t{b:.3f}\t{label}\n" for a, b in spans)
        (root / f"clip{i:02d}.tsv").write_text("onset\toffset\tevent_label\n" + rows)
    return root


def load_recipe(name: str):
    """A corpus recipe of ``data/recipes`` imported as a module (recipes are scripts, not package
    modules), registered under its name so that sibling recipes import it."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "data" / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def run_recipe(name: str, out: Path, *args: str, env=None):
    """``python data/recipes/<name>.py --out OUT -q ARGS`` as a child process (its result)."""
    import subprocess
    import sys

    path = Path(__file__).resolve().parents[1] / "data" / "recipes" / f"{name}.py"
    return subprocess.run([sys.executable, str(path), "--out", str(out), "-q", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def tree_digests(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (its ``_cache`` folders left out), by relative path."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "_cache" not in p.parts}


def train_tone_model(root: Path, sets: list[str]) -> tuple[Path, Path]:
    """A small model trained on 8 tone clips of 5 s (``--set`` overrides ``sets``), with its
    chunk cache in ``root/cache``: (the dataset, the model directory)."""
    from pipeline.chunks import ensure_chunks
    from pipeline.config import build_config
    from pipeline.dataset import load_dataset
    from pipeline.runner import Settings
    from pipeline.train import fit

    ds = tone_dataset(root / "ds", n=8, seconds=5.0)
    cfg, _, _ = build_config(None, sets)
    entry, _ = ensure_chunks(load_dataset(ds), cfg, Settings(cache_dir=str(root / "cache")))
    fit(entry, cfg, root / "model", log=lambda m: None)
    return ds, root / "model"


def cli_exit(*args) -> int:
    """``python -m pipeline ARGS`` in this process: its exit code (0 when it returns)."""
    from pipeline.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code or 0
    return 0
