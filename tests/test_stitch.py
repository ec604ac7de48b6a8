"""Chunk starts cover everything; overlap-add reassembles what the chunks saw."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.stitch import WINDOWS, chunk_starts, overlap_add, window_weights

COMBOS = [  # (n_frames, frames, hop)
    (100, 20, 10), (101, 20, 10), (97, 16, 5), (50, 50, 25), (7, 20, 10), (1, 4, 4),
    (64, 8, 8), (65, 8, 3), (20, 20, 1),
]


def _chunks_of(signal: np.ndarray, starts: np.ndarray, frames: int, pad: float) -> np.ndarray:
    """Slice ``signal`` (T, C) into chunks (n_chunks, frames, C), padding past the end."""
    out = np.full((len(starts), frames, signal.shape[1]), pad)
    for i, s in enumerate(starts):
        piece = signal[s:s + frames]
        out[i, :len(piece)] = piece
    return out


@pytest.mark.parametrize("n_frames,frames,hop", COMBOS)
def test_chunk_starts_cover_everything(n_frames, frames, hop):
    starts = chunk_starts(n_frames, frames=frames, hop=hop)
    assert starts[0] == 0 and starts.dtype == np.int64
    assert (np.diff(starts) == hop).all()
    assert starts[-1] + frames >= n_frames  # the end is covered
    if len(starts) > 1:
        assert starts[-2] + frames < n_frames  # and no chunk is redundant
    covered = np.zeros(n_frames, bool)
    for s in starts:
        covered[s:s + frames] = True
    assert covered.all()


def test_chunk_starts_edge_cases():
    assert chunk_starts(0, frames=10, hop=5).shape == (0,)
    np.testing.assert_array_equal(chunk_starts(10, frames=10, hop=5), [0])
    np.testing.assert_array_equal(chunk_starts(11, frames=10, hop=5), [0, 5])
    with pytest.raises(ParameterError, match="hop=6 must be <= frames=5"):
        chunk_starts(10, frames=5, hop=6)
    with pytest.raises(ParameterError, match="hop=0"):
        chunk_starts(10, frames=5, hop=0)
    with pytest.raises(ParameterError, match="n_frames=-1"):
        chunk_starts(-1, frames=5, hop=5)


@pytest.mark.parametrize("kind", WINDOWS)
@pytest.mark.parametrize("frames", [1, 2, 7, 64])
def test_window_weights(kind, frames):
    w = window_weights(frames, kind)
    assert w.shape == (frames,)
    assert (w > 0).all() and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])
    if kind != "boxcar" and frames >= 7:
        assert w[0] < w[frames // 2] and w[0] >= 1e-3


def test_window_weights_rejects_unknown_kind():
    with pytest.raises(ParameterError, match="window='blackman'"):
        window_weights(10, "blackman")


@pytest.mark.parametrize("kind", WINDOWS)
@pytest.mark.parametrize("n_frames,frames,hop", COMBOS)
def test_constant_scores_stay_constant(kind, n_frames, frames, hop):
    starts = chunk_starts(n_frames, frames=frames, hop=hop)
    scores = np.full((len(starts), frames, 2), 0.3)
    out = overlap_add(scores, starts, n_frames=n_frames, window=kind)
    assert out.shape == (n_frames, 2)
    np.testing.assert_allclose(out, 0.3, rtol=0, atol=1e-12)
    # padding of the last partial chunk is ignored whatever it holds
    scores[-1, n_frames - starts[-1]:] = 1e6
    np.testing.assert_allclose(overlap_add(scores, starts, n_frames=n_frames, window=kind), 0.3,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", WINDOWS)
@pytest.mark.parametrize("n_frames,frames,hop", COMBOS)
def test_slices_of_a_signal_reassemble_it(kind, n_frames, frames, hop):
    t = np.arange(n_frames)
    signal = np.stack([np.sin(t / 3.0), np.cos(t / 7.0) ** 2, t / 10.0], axis=1)  # (T, 3)
    starts = chunk_starts(n_frames, frames=frames, hop=hop)
    for pad in (0.0, np.nan, -5.0):
        out = overlap_add(_chunks_of(signal, starts, frames, pad), starts, n_frames=n_frames, window=kind)
        np.testing.assert_allclose(out, signal, rtol=0, atol=1e-12)


def test_weighted_average_of_disagreeing_chunks():
    frames, hop, n_frames = 10, 5, 20
    starts = chunk_starts(n_frames, frames=frames, hop=hop)  # [0, 5, 10]
    scores = np.stack([np.full((frames, 1), v) for v in (0.0, 1.0, 2.0)])
    w = window_weights(frames, "hamming")
    out = overlap_add(scores, starts, n_frames=n_frames, window="hamming")
    t = 7  # seen by chunk 0 at offset 7 and chunk 1 at offset 2
    assert out[t, 0] == pytest.approx((w[7] * 0.0 + w[2] * 1.0) / (w[7] + w[2]))
    assert out[2, 0] == 0.0 and out[17, 0] == 2.0  # only one chunk covers these
    boxcar = overlap_add(scores, starts, n_frames=n_frames, window="boxcar")
    assert boxcar[t, 0] == pytest.approx(0.5)


def test_explicit_window_and_one_dimensional_scores():
    starts = chunk_starts(23, frames=8, hop=3)
    signal = np.linspace(0, 1, 23)
    chunks = _chunks_of(signal[:, None], starts, 8, 0.0)[..., 0]  # (n_chunks, frames)
    out = overlap_add(chunks.astype(np.float32), starts, n_frames=23, window=np.arange(1.0, 9.0))
    assert out.shape == (23,) and out.dtype == np.float32
    np.testing.assert_allclose(out, signal, atol=1e-6)


def test_nan_scores_are_left_out():
    starts = np.array([0, 4])
    scores = np.ones((2, 8, 1))
    scores[1, :4] = 3.0
    scores[0, 4:6] = np.nan  # frames 4, 5 then rely on chunk 1 only
    out = overlap_add(scores, starts, n_frames=12, window="hann")
    np.testing.assert_allclose(out[4:6, 0], 3.0)
    assert np.isfinite(out).all()
    uncovered = overlap_add(scores[:1], starts[:1], n_frames=12, window="hann")
    assert np.isnan(uncovered[8:]).all() and np.isfinite(uncovered[:4]).all()


def test_overlap_add_rejects_mismatched_inputs():
    with pytest.raises(ParameterError, match="2 starts for 3 chunks"):
        overlap_add(np.zeros((3, 4, 1)), np.array([0, 2]), n_frames=8)
    with pytest.raises(ParameterError, match="window must be 4 positive weights"):
        overlap_add(np.zeros((1, 4, 1)), np.array([0]), n_frames=4, window=np.zeros(4))
