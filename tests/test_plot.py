"""plot_file: one PNG with the spectrogram, the scores against the threshold, and the segment lanes."""
from __future__ import annotations

import numpy as np

from pipeline.labels import Segment
from pipeline.plot import plot_file


def test_plot_file_draws_all_panels(tmp_path):
    import matplotlib.image as mpimg

    fps = 50.0
    S = np.random.default_rng(0).standard_normal((500, 64)).astype(np.float32)
    scores = np.clip(np.sin(np.arange(500) / 40.0)[:, None], 0, 1).astype(np.float32)
    path = tmp_path / "p.png"
    plot_file(path, S=S, fps=fps, scores=scores, classes=["speech"], segments=[Segment(1.0, 3.0, "speech")],
              reference=[Segment(1.1, 3.2, "speech")], threshold=0.5, title="t", kind="logmel")
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[1] > img.shape[0] > 300  # a wide figure of stacked panels
    assert img[..., :3].std() > 0.05  # not blank
    # without a reference the figure still draws
    plot_file(tmp_path / "q.png", S=S, fps=fps, scores=scores, classes=["speech"], segments=[], reference=None,
              threshold=0.5, title="t", kind="logmel")
    assert (tmp_path / "q.png").stat().st_size > 1000
