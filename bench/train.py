"""Training throughput (frames/s) of the recurrent models on this machine.

    python bench/train.py [--threads 1 2] [--steps 10]

Times forward + backward + AdamW step on batches of 32 chunks x 800 frames x 64 log-mel bins
(the training defaults) for GRU 2x64 and LSTM 2x128, unidirectional and bidirectional, after two
warm-up steps. Prints frames per second and peak RSS.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from pipeline.config import ModelConfig
from pipeline.nets import FrameModel

CONFIGS = [("gru", 64, False), ("lstm", 128, False), ("gru", 64, True), ("lstm", 128, True)]


def measure(cell: str, hidden: int, bidirectional: bool, *, threads: int, steps: int, batch: int = 32,
            frames: int = 800, bins: int = 64) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = FrameModel(ModelConfig(cell=cell, hidden=hidden, layers=2, bidirectional=bidirectional),
                       n_features=bins, n_outputs=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, frames, bins)  # (B, T, F)
    y = (torch.rand(batch, frames, 1) > 0.5).float()  # (B, T, C)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        out, _ = model(x)
        loss = model.loss(out, y, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch * frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    print(f"{'model':26} " + " ".join(f"{f'{t} thread(s)':>14}" for t in args.threads) + "   (frames/s, training)")
    for cell, hidden, bi in CONFIGS:
        name = f"{cell.upper()} 2x{hidden}{' bidirectional' if bi else ''}"
        rates = [measure(cell, hidden, bi, threads=t, steps=args.steps) for t in args.threads]
        print(f"{name:26} " + " ".join(f"{r:14,.0f}" for r in rates))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
