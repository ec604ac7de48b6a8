"""The features stage against librosa and Kaldi (torchaudio), batch == item by item, frame timing."""
from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import torch
from torchaudio.compliance import kaldi

from pipeline import features
from pipeline.config import FeaturesConfig
from pipeline.errors import ParameterError

SR = 16000

# Tolerances. Both sides compute in float32; the measured worst case against librosa is about
# 4e-7 of the spectrum's peak and 6e-5 dB, so these leave a margin of 25x or more while still
# catching a wrong window, filter edge or normalisation (those move values by percents).
LINEAR_RTOL = 1e-4  # stft, power, mel: relative, plus an absolute floor of...
LINEAR_ATOL = 1e-5  # ... this fraction of the reference's peak (bins near zero)
DB_ATOL = 1e-3  # logmel, in dB
MFCC_ATOL = 1e-3  # mfcc, in the units of the orthonormal DCT of dB values
FBANK_ATOL = 1e-3  # fbank, natural log of the energy, where the energy is not near the floor:
FBANK_RANGE = np.log(1e5)  # within 50 dB of the frame's loudest bin (float32 FFT noise is ~1e-7
# of the frame's energy, so a bin 70 dB down can be off by percents in both implementations)
FILTERBANK_ATOL = 1e-6  # mel_filterbank: fraction of the largest weight (float32 weights)


def assert_feature_close(kind: str, S: np.ndarray, R: np.ndarray, *, scale: float = 1.0) -> None:
    """``S`` equals reference ``R`` [shape=(n_frames, n_bins)] within the tolerance of ``kind``
    (times ``scale``)."""
    assert S.shape == R.shape
    assert S.dtype == np.float32
    if kind in ("stft", "power", "mel"):
        np.testing.assert_allclose(S, R, rtol=LINEAR_RTOL * scale,
                                   atol=LINEAR_ATOL * scale * float(np.abs(R).max()))
    elif kind == "logmel":
        np.testing.assert_allclose(S, R, rtol=0, atol=DB_ATOL * scale)
    elif kind == "mfcc":
        np.testing.assert_allclose(S, R, rtol=0, atol=MFCC_ATOL * scale)
    else:
        live = R > R.max(axis=1, keepdims=True) - FBANK_RANGE
        assert live.mean() > 0.9  # the comparison below is not vacuous
        np.testing.assert_allclose(S[live], R[live], rtol=0, atol=FBANK_ATOL * scale)


@pytest.fixture
def speechy(tone, noise):
    """``speechy(sr)``: 1.5 s (+37 samples: not a multiple of the hop) of two partials over
    white noise, made at ``sr`` so that every band has energy."""
    def make(sr: int = SR) -> np.ndarray:
        n = int(1.5 * sr) + 37
        y = tone(sr, 1.6, 440.0)[:n] * 0.6 + tone(sr, 1.6, 2200.0)[:n] * 0.2
        return y + noise(sr, 1.6, amplitude=0.05)[:n]

    return make


# --------------------------------------------------------------------------- librosa parity


def librosa_features(y: np.ndarray, sr: int, cfg: FeaturesConfig) -> dict[str, np.ndarray]:
    """Each kind computed with librosa, transposed to (frames, bins)."""
    stft_kw = dict(n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
                   window=cfg.window, center=True, pad_mode=cfg.pad_mode)
    mag = np.abs(librosa.stft(y, **stft_kw))
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, power=2.0, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax or None, htk=cfg.htk,
        norm="slaney" if cfg.norm == "slaney" else None, **stft_kw)
    logmel = librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=None)
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=cfg.n_mfcc)
    return {"stft": mag.T, "power": (mag ** 2).T, "mel": mel.T, "logmel": logmel.T, "mfcc": mfcc.T}


PARITY = {  # id: (sr, config)
    "default": (SR, FeaturesConfig()),
    "htk-no-norm": (SR, FeaturesConfig(htk=True, norm="none")),
    "fmin-fmax": (SR, FeaturesConfig(fmin=50.0, fmax=7000.0, n_mels=40)),
    "htk-band": (SR, FeaturesConfig(htk=True, fmin=125.0, fmax=7500.0, n_mfcc=13)),
    "nfft1024-hop256": (22050, FeaturesConfig(n_fft=1024, win_length=1024, hop_length=256, n_mels=80)),
    "nfft256-hop80": (SR, FeaturesConfig(n_fft=256, win_length=200, hop_length=80, n_mels=40)),
    "hamming-reflect": (SR, FeaturesConfig(window="hamming", pad_mode="reflect")),
    "blackman-odd-window": (SR, FeaturesConfig(window="blackman", win_length=333, hop_length=100)),
}


@pytest.mark.parametrize("name", list(PARITY))
def test_spectrogram_equals_librosa(speechy, name):
    sr, cfg = PARITY[name]
    y = speechy(sr)
    ref = librosa_features(y, sr, cfg)
    for kind, R in ref.items():
        S = features.spectrogram(y, sr=sr, cfg=dataclasses.replace(cfg, kind=kind))
        assert S.shape == (features.n_frames(len(y), cfg.hop_length), dataclasses.replace(cfg, kind=kind).n_bins)
        assert_feature_close(kind, S, R)


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,htk,norm", [
    (16000, 512, 64, 0.0, 0.0, False, "slaney"),
    (16000, 512, 64, 0.0, 0.0, True, "none"),
    (16000, 400, 40, 20.0, 7600.0, False, "slaney"),
    (22050, 2048, 128, 30.0, 0.0, True, "slaney"),
    (8000, 256, 32, 0.0, 3000.0, False, "none"),
])
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    fb = features.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax or None, htk=htk,
                              norm="slaney" if norm == "slaney" else None)
    assert fb.shape == ref.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == np.float32
    np.testing.assert_allclose(fb, ref, rtol=0, atol=FILTERBANK_ATOL * float(ref.max()))


@pytest.mark.parametrize("n", [16000, 16001, 16159, 16160, 16161])
@pytest.mark.parametrize("n_fft,win_length,hop_length", [(512, 400, 160), (1024, 1024, 256),
                                                         (401, 400, 160), (511, 511, 128)])
def test_frame_count_is_one_plus_n_over_hop(noise, n, n_fft, win_length, hop_length):
    y = noise(SR, 1.1)[:n]
    cfg = FeaturesConfig(kind="stft", n_fft=n_fft, win_length=win_length, hop_length=hop_length)
    S = features.spectrogram(y, sr=SR, cfg=cfg)
    assert S.shape == (1 + n // hop_length, n_fft // 2 + 1)
    # librosa pads n_fft // 2 on both sides, so with an odd n_fft it has 1 + (n - 1) // hop
    # frames (one fewer when hop divides n); every frame it does have must be ours.
    R = np.abs(librosa.stft(y, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
                            pad_mode="constant")).T
    assert len(R) == (1 + (n - 1) // hop_length if n_fft % 2 else len(S))
    assert_feature_close("stft", S[: len(R)], R)
    batch = features.spectrogram_batch([y[: n // 2], y], sr=SR, cfg=cfg, device="cpu")
    assert [len(b) for b in batch] == [1 + (n // 2) // hop_length, 1 + n // hop_length]
    assert_feature_close("stft", batch[1], S)


# --------------------------------------------------------------------------- Kaldi fbank parity


def kaldi_fbank(y: np.ndarray, sr: int, cfg: FeaturesConfig) -> np.ndarray:
    """torchaudio's Kaldi fbank on the signal padded by win_length // 2 (the module's centring)."""
    padded = np.pad(y, cfg.win_length // 2)
    return kaldi.fbank(torch.from_numpy(padded * 32768)[None], num_mel_bins=cfg.n_mels, frame_length=25,
                       frame_shift=10, sample_frequency=sr, dither=0.0, low_freq=cfg.fmin,
                       high_freq=cfg.fmax or 0.0, snip_edges=True).numpy()


FBANK = {  # id: (sr, config); win/hop are Kaldi's 25 ms / 10 ms at that rate
    "default": (SR, FeaturesConfig(kind="fbank")),
    "23-bins-band": (SR, FeaturesConfig(kind="fbank", n_mels=23, fmin=20.0, fmax=7600.0)),
    "80-bins-fmin": (SR, FeaturesConfig(kind="fbank", n_mels=80, fmin=64.0)),
    "8k": (8000, FeaturesConfig(kind="fbank", win_length=200, hop_length=80, n_mels=40)),
    "22k-odd-window": (22050, FeaturesConfig(kind="fbank", win_length=551, hop_length=220, n_mels=64)),
}


@pytest.mark.parametrize("name", list(FBANK))
def test_fbank_equals_kaldi(speechy, name):
    sr, cfg = FBANK[name]
    y = speechy(sr)
    S = features.spectrogram(y, sr=sr, cfg=cfg)
    assert S.shape == (features.n_frames(len(y), cfg.hop_length), cfg.n_mels)
    R = kaldi_fbank(y, sr, cfg)
    # with an odd win_length the symmetric win // 2 padding can give Kaldi one frame fewer
    assert len(R) == len(S) or (cfg.win_length % 2 and len(R) == len(S) - 1)
    assert_feature_close("fbank", S[: len(R)], R)


# --------------------------------------------------------------------------- batch == item by item


BATCH = {
    "logmel": FeaturesConfig(kind="logmel"),
    "mfcc": FeaturesConfig(kind="mfcc", n_mfcc=13),
    "stft": FeaturesConfig(kind="stft"),
    "power-odd-nfft": FeaturesConfig(kind="power", n_fft=401, win_length=400),
    "fbank": FeaturesConfig(kind="fbank"),
    "logmel-reflect": FeaturesConfig(kind="logmel", pad_mode="reflect"),
    "fbank-reflect": FeaturesConfig(kind="fbank", pad_mode="reflect"),
    "mel-htk-band": FeaturesConfig(kind="mel", htk=True, norm="none", fmin=100.0, fmax=6000.0),
}


def three_files(tone, noise) -> list[np.ndarray]:
    """Three signals of different lengths (one a multiple of the hop, two not)."""
    return [tone(SR, 1.0, 300.0) + noise(SR, 1.0, seed=1),
            tone(SR, 1.3, 1000.0)[:20037] + noise(SR, 1.3, seed=2)[:20037],
            noise(SR, 0.6, amplitude=0.3, seed=3)[:9001]]


@pytest.mark.parametrize("name", list(BATCH))
def test_batch_equals_item_by_item(tone, noise, name):
    cfg = BATCH[name]
    ys = three_files(tone, noise)
    batch = features.spectrogram_batch(ys, sr=SR, cfg=cfg, device="cpu")
    assert len(batch) == len(ys)
    for y, S in zip(ys, batch):
        alone = features.spectrogram(y, sr=SR, cfg=cfg)
        assert alone.shape == (1 + len(y) // cfg.hop_length, cfg.n_bins)
        assert_feature_close(cfg.kind, S, alone)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(BATCH))
def test_cuda_equals_cpu(tone, noise, name):
    cfg = BATCH[name]
    ys = three_files(tone, noise)
    cpu = features.spectrogram_batch(ys, sr=SR, cfg=cfg, device="cpu")
    gpu = features.spectrogram_batch(ys, sr=SR, cfg=cfg, device="cuda")
    for a, b in zip(cpu, gpu):
        # cuFFT and the GPU matmul sum in another order: allow 10x the CPU tolerances
        assert_feature_close(cfg.kind, b, a, scale=10.0)


# --------------------------------------------------------------------------- storage, timing


def test_finish_float16_is_close_to_float32(speechy):
    cfg32 = FeaturesConfig(kind="logmel")
    cfg16 = dataclasses.replace(cfg32, dtype="float16")
    y = speechy(SR)
    S = features.spectrogram(y, sr=SR, cfg=cfg32)
    (arrays32, meta32), (arrays16, meta16) = (features.finish(S, c, SR, len(y) / SR)
                                              for c in (cfg32, cfg16))
    assert arrays16["S"].dtype == np.float16 and arrays32["S"].dtype == np.float32
    # float16 keeps 11 significant bits: relative rounding error at most 2**-11
    np.testing.assert_allclose(arrays16["S"].astype(np.float32), S, rtol=2.0 ** -11, atol=1e-7)
    assert not np.array_equal(arrays16["S"].astype(np.float32), S)  # it really was rounded
    assert meta16 == meta32 == {"sr": SR, "hop_length": 160, "fps": 100.0, "n_frames": len(S),
                                "n_bins": 64, "kind": "logmel", "duration": len(y) / SR}


def test_finish_float16_refuses_values_it_cannot_hold(tone):
    cfg = FeaturesConfig(kind="power", n_fft=2048, win_length=2048, dtype="float16")
    S = features.spectrogram(tone(SR, 0.5, 1000.0) * 2, sr=SR, cfg=cfg)  # peak |X|**2 ~ 1e6
    with pytest.raises(ParameterError, match=r"features\.dtype=float16 .*kind='power'.*65504"):
        features.finish(S, cfg, SR, 0.5)


@pytest.mark.parametrize("kind,n_fft,win_length,hop_length", [
    ("stft", 512, 400, 160), ("mel", 512, 400, 160), ("logmel", 512, 400, 160), ("fbank", 512, 400, 160),
    ("stft", 1024, 1024, 256), ("logmel", 1024, 1024, 256), ("power", 401, 400, 160),
])
def test_click_lands_on_its_frame(kind, n_fft, win_length, hop_length):
    """Frame i is centred at i * hop_length: a click at 1.0 s peaks in frame 100 (hop 160)."""
    y = np.zeros(2 * SR, np.float32)
    at = SR if hop_length == 160 else 50 * hop_length
    y[at] = 1.0
    cfg = FeaturesConfig(kind=kind, n_fft=n_fft, win_length=win_length, hop_length=hop_length)
    for S in (features.spectrogram(y, sr=SR, cfg=cfg),
              features.spectrogram_batch([y, y[:SR]], sr=SR, cfg=cfg, device="cpu")[0]):
        energy = S.sum(axis=1)
        assert int(np.argmax(energy)) == at // hop_length
        assert at // hop_length / features.fps(cfg, SR) == pytest.approx(at / SR)


def test_spectrogram_needs_mono(noise):
    with pytest.raises(ParameterError, match=r"mono signal, got shape \(8000, 2\)"):
        features.spectrogram(noise(SR, 0.5, channels=2), sr=SR, cfg=FeaturesConfig())


@pytest.mark.parametrize("kind", ["logmel", "stft", "power", "mel", "mfcc", "fbank"])
@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_blocks_equal_the_whole_signal(kind, pad_mode):
    """Features of a signal fed in random blocks (boundaries inside frames) equal the whole-file
    path: bit for bit, except mfcc's final DCT (a matrix product over other row counts)."""
    from pipeline.features import spectrogram_blocks

    rng = np.random.default_rng(1)
    cfg = FeaturesConfig(kind=kind, pad_mode=pad_mode)
    for n in (7, 399, 16000 * 13 + 321):
        y = (0.1 * rng.standard_normal(n)).astype(np.float32)
        cuts = np.sort(rng.integers(0, n, size=40))
        blocks = np.split(y, cuts)
        got = list(spectrogram_blocks(iter(blocks), sr=16000, cfg=cfg, frames_per_block=256))
        got = np.concatenate(got) if got else np.zeros((0, cfg.n_bins), np.float32)
        whole = features.spectrogram(y, sr=16000, cfg=cfg)
        assert got.shape == whole.shape
        if kind == "mfcc":
            np.testing.assert_allclose(got, whole, atol=1e-3)
        else:
            np.testing.assert_array_equal(got, whole)


def test_the_rows_fft_is_scipys_bit_for_bit_without_importing_scipy_fft():
    """The spectra's FFT is scipy's pocketfft kernel loaded from its file: the same bits as
    scipy.fft.rfft, and a features run in a fresh process never imports the scipy.fft package
    (0.25-0.3 s of start-up)."""
    import subprocess
    import sys

    import scipy.fft

    x = np.random.default_rng(0).standard_normal((300, 512)).astype(np.float32)
    np.testing.assert_array_equal(features._rfft_rows()(x), scipy.fft.rfft(x, axis=1))
    code = ("import sys, numpy as np; from pipeline import features; "
            "S = features.logmel(np.random.default_rng(0).standard_normal(16000).astype(np.float32), sr=16000); "
            "print(S.shape[0] > 0, 'scipy.fft' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False"]
