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


# ---------------------------------------------------------------- per-class thresholds (issue 21, item 5)


def _threshold_lines(ax) -> dict[float, str]:
    """The horizontal lines across an axes: {y: colour}."""
    from matplotlib.colors import to_hex

    return {float(line.get_ydata()[0]): to_hex(line.get_color()) for line in ax.lines
            if list(line.get_xdata()) == [0, 1] and len(set(line.get_ydata())) == 1}


def test_each_class_is_drawn_in_its_own_lane_against_its_own_threshold():
    from matplotlib.colors import to_hex

    from pipeline.plot import figure

    n = 400
    scores = np.random.default_rng(1).random((n, 2)).astype(np.float32)
    scores[:, 1] *= 0.5  # music's scores stay under 0.5
    fig = figure(S=np.zeros((n, 8), np.float32), fps=50.0, scores=scores, classes=["speech", "music"],
                 segments=[Segment(1.0, 2.0, "music")], threshold=[0.8, 0.4])
    assert len(fig.axes) == 4  # spectrogram, a score lane per class, the segment lanes
    speech, music = fig.axes[1], fig.axes[2]
    assert _threshold_lines(speech) == {0.8: to_hex("k")} and _threshold_lines(music) == {0.4: to_hex("k")}
    for ax, cls, colour, i in ((speech, "speech", "C0", 0), (music, "music", "C1", 1)):
        assert [t.get_text() for t in ax.get_legend().get_texts()][0] == cls and cls in ax.get_ylabel()
        drawn = np.concatenate([line.get_ydata() for line in ax.lines if len(line.get_xdata()) > 2])
        assert ax.lines[0].get_color() == colour and drawn.max() == scores[:, i].max()
    same = figure(S=np.zeros((n, 8), np.float32), fps=50.0, scores=scores, classes=["speech", "music"],
                  segments=[], threshold=0.5)
    assert _threshold_lines(same.axes[1]) == _threshold_lines(same.axes[2]) == {0.5: to_hex("k")}
    one = figure(S=np.zeros((n, 8), np.float32), fps=50.0, scores=scores[:, :1], classes=["speech"],
                 segments=[], threshold=0.5)
    assert len(one.axes) == 3 and one.axes[1].get_ylabel() == "score"


def test_plot_draws_a_tuned_models_per_class_threshold(tmp_path, monkeypatch):
    """``plot`` with a model whose ``predict_per_class`` (as ``tune`` writes it) differs from its
    ``predict.threshold``: the figure shows the threshold its segments were cut at."""
    import json
    import shutil
    from pathlib import Path

    from click.testing import CliRunner
    from matplotlib.figure import Figure

    from pipeline.cli import cli

    root = Path(__file__).resolve().parents[1]
    model = tmp_path / "tuned"
    shutil.copytree(root / "models" / "vad", model)
    conf = json.loads((model / "config.json").read_text())
    assert conf["predict"]["threshold"] != 0.8
    conf["predict_per_class"] = {"speech": {"threshold": 0.8, "median_filter": 0.05}}
    (model / "config.json").write_text(json.dumps(conf, indent=1))
    saved = []
    real_savefig = Figure.savefig

    def savefig(self, *args, **kwargs):  # the real figure and the real file; only remember the figure
        saved.append(self)
        return real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    clip = root / "data" / "samples" / "music_clip_00012.flac"
    r = CliRunner().invoke(cli, ["-q", "--cache-dir", str(tmp_path / "cache"), "plot", str(clip), "--model",
                                 str(model), "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "music_clip_00012.png").stat().st_size > 1000
    assert len(saved) == 1 and list(_threshold_lines(saved[0].axes[1])) == [0.8]


# ---------------------------------------------------------------- long files (issue 21, item 14)


def _columns(x: np.ndarray, edges: np.ndarray, fn) -> np.ndarray:
    return np.stack([fn(x[a:b], axis=0) for a, b in zip(edges[:-1], edges[1:])])


def test_a_long_file_is_drawn_from_its_min_max_envelope_one_column_per_pixel():
    from pipeline.plot import column_edges, figure

    fps, n = 50.0, 50 * 3600  # an hour of frames
    rng = np.random.default_rng(0)
    S = rng.standard_normal((n, 16)).astype(np.float32)
    scores = (0.3 * rng.random((n, 2))).astype(np.float32)
    scores[123_457, 0] = 1.0  # a one-frame burst: decimation would drop it, the envelope keeps it
    S[99_999, 5] = 40.0
    fig = figure(S=S, fps=fps, scores=scores, classes=["speech", "music"], segments=[], threshold=0.5)
    ax_img = fig.axes[0]
    width_px = ax_img.get_position().width * fig.get_figwidth() * fig.dpi
    img = np.asarray(ax_img.images[0].get_array())
    m = img.shape[1]
    assert img.shape[0] == 16 and width_px - 1 <= m <= width_px  # one column per pixel of the axes, not per frame
    edges = column_edges(n, m)
    assert edges[0] == 0 and edges[-1] == n and np.all(np.diff(edges) >= n // m)
    np.testing.assert_array_equal(img, _columns(S, edges, np.max).T)
    assert img.max() == 40.0
    for i in range(2):  # a lane per class; fill_between: start, lows, end, highs reversed
        coll, = fig.axes[1 + i].collections
        v = coll.get_paths()[0].vertices
        assert len(v) <= 2 * m + 3
        lo, hi = v[1:m + 1, 1], v[m + 2:2 * m + 2, 1][::-1]
        np.testing.assert_allclose(lo, _columns(scores[:, i], edges, np.min))
        np.testing.assert_allclose(hi, _columns(scores[:, i], edges, np.max))
    assert fig.axes[1].collections[0].get_paths()[0].vertices[:, 1].max() == 1.0


def test_plotting_memory_does_not_grow_with_the_files_length(tmp_path):
    """Peak traced memory of a 2-hour figure (read from the cache's row reader) is that of a
    10-minute one: the frames are reduced a block at a time."""
    import tracemalloc

    from pipeline.cache import Rows

    peaks, sizes = {}, {}
    for minutes in (10, 120):
        n = 50 * 60 * minutes
        S = np.lib.format.open_memmap(tmp_path / f"S{minutes}.npy", mode="w+", dtype=np.float32, shape=(n, 16))
        for a in range(0, n, 100_000):
            S[a:a + 100_000] = np.random.default_rng(a).standard_normal((min(100_000, n - a), 16))
        S.flush()
        rows = Rows(tmp_path / f"S{minutes}.npy", S.shape, S.dtype, S.offset)
        sizes[minutes] = S.nbytes
        del S
        scores = np.random.default_rng(minutes).random((n, 1)).astype(np.float32)
        tracemalloc.start()
        plot_file(tmp_path / f"p{minutes}.png", S=rows, fps=50.0, scores=scores, classes=["speech"],
                  segments=[Segment(1.0, 2.0, "speech")], threshold=0.5, kind="logmel")
        peaks[minutes] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # 21 MB more features (16 bins) cost the figure next to nothing: no copy of them is held
    assert peaks[120] - peaks[10] < 0.05 * (sizes[120] - sizes[10]), (peaks, sizes)
