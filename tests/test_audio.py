"""The load stage on real files: formats, channels, resampling, and files that must be refused."""
from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio
from pipeline.config import LoadConfig
from pipeline.errors import AudioLoadError

SR = 16000

# (container extension, subtype, atol against the float source). Integers are read back as
# int / 2**(bits-1) (soundfile's int16 / 32768); libsndfile's float -> int conversion on writing
# does not round to nearest (errors up to one step measured), so allow 1.5 steps. PCM_32 and DOUBLE are limited by
# the float32 we decode to (ulp below 1 is at most 2**-24). FLOAT is bit exact.
LOSSLESS = [
    ("wav", "PCM_U8", 1.5 * 2.0 ** -7),
    ("wav", "PCM_16", 1.5 * 2.0 ** -15),
    ("wav", "PCM_24", 1.5 * 2.0 ** -23),
    ("wav", "PCM_32", 2.0 ** -23),
    ("wav", "FLOAT", 0.0),
    ("wav", "DOUBLE", 2.0 ** -23),
    ("flac", "PCM_16", 1.5 * 2.0 ** -15),
    ("flac", "PCM_24", 1.5 * 2.0 ** -23),
]


def _source(noise, tone) -> np.ndarray:
    """0.7 s of a 440 Hz tone plus noise, in float64 so DOUBLE is written at full precision."""
    return tone(SR, 0.7, 440.0).astype(np.float64) * 0.8 + noise(SR, 0.7, amplitude=0.05)


@pytest.mark.parametrize("ext,subtype,atol", LOSSLESS, ids=[f"{e}-{s}" for e, s, _ in LOSSLESS])
def test_lossless_formats_decode_to_the_source(tmp_path, write_wav, tone, noise, ext, subtype, atol):
    src = _source(noise, tone)
    if subtype == "FLOAT":
        src = src.astype(np.float32)
    path = write_wav(tmp_path, f"a_{subtype}.{ext}", src, SR, subtype)
    y = audio.load_audio(path, sr=SR)
    assert y.dtype == np.float32 and y.shape == src.shape
    np.testing.assert_allclose(y, src, rtol=0, atol=atol)
    # the scale is soundfile's, never renormalised to the peak
    assert abs(np.abs(y).max() - np.abs(src).max()) <= max(atol, 1e-7)


@pytest.mark.parametrize("ext,fmt,subtype", [("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")])
def test_lossy_formats_decode_close_to_the_source(tmp_path, write_wav, tone, ext, fmt, subtype):
    if subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype}")
    # two tones: a codec that kept only the loudest partial would still fail the correlation
    src = tone(SR, 1.0, 440.0) * 0.6 + tone(SR, 1.0, 1250.0) * 0.4
    path = write_wav(tmp_path, f"a.{ext}", src, SR, subtype, format=fmt)
    y = audio.load_audio(path, sr=SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(src)) <= 1152  # at most one MP3 frame of encoder padding
    n = min(len(y), len(src))
    # lossy: compare shapes of waveform, not samples; a 1-sample misalignment still gives > 0.99
    assert np.corrcoef(y[:n], src[:n])[0, 1] > 0.99
    assert np.sqrt(np.mean(y[:n] ** 2)) == pytest.approx(np.sqrt(np.mean(src[:n] ** 2)), rel=0.05)


# --------------------------------------------------------------------------- channels


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_mono_is_the_mean_of_the_channels(tmp_path, write_wav, noise, channels):
    src = noise(SR, 0.5, amplitude=0.2, channels=channels)
    path = write_wav(tmp_path, f"c{channels}.wav", src, SR, "FLOAT")
    y = audio.load_audio(path, sr=SR)
    assert y.shape == (len(src),)
    np.testing.assert_allclose(y, src.mean(axis=1), rtol=0, atol=1e-7)
    kept = audio.load_audio(path, sr=SR, mono=False)
    assert kept.shape == src.shape
    np.testing.assert_array_equal(kept, src)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channel_k_picks_channel_k(tmp_path, write_wav, noise, channels):
    src = noise(SR, 0.5, amplitude=0.2, channels=channels)  # independent noise per channel
    path = write_wav(tmp_path, f"c{channels}.wav", src, SR, "FLOAT")
    for k in range(channels):
        np.testing.assert_array_equal(audio.load_audio(path, sr=SR, channel=k), src[:, k])
        assert audio.load_audio(path, sr=SR, mono=False, channel=k).shape == (len(src), 1)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channel_out_of_range_names_the_file(tmp_path, write_wav, noise, channels):
    path = write_wav(tmp_path, f"only{channels}.wav", noise(SR, 0.2, channels=channels), SR, "PCM_16")
    rule = rf"{re.escape(path.name)}: load\.channel={channels} but the file has {channels} channel"
    with pytest.raises(AudioLoadError, match=rule):
        audio.load_audio(path, sr=SR, channel=channels)
    with pytest.raises(AudioLoadError, match=rule):
        audio.compute(LoadConfig(channel=channels), path)


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("orig_sr", [44100, 22050, 8000])
def test_resampling_keeps_length_and_frequency(tmp_path, write_wav, tone, orig_sr):
    src = tone(orig_sr, 1.3, 440.0)
    path = write_wav(tmp_path, f"t{orig_sr}.wav", src, orig_sr, "FLOAT")
    y = audio.load_audio(path, sr=SR)
    assert y.dtype == np.float32
    assert abs(len(y) - round(len(src) * SR / orig_sr)) <= 1
    # FFT peak over exactly 1 s of the output: 1 Hz bins, so 440 Hz must land on bin 440 +- 1
    seg = y[1000: 1000 + SR] * np.hanning(SR)
    peak_hz = np.argmax(np.abs(np.fft.rfft(seg))) * SR / len(seg)
    assert abs(peak_hz - 440.0) <= 1.0
    # and the amplitude survives (soxr HQ passband is flat); edges excluded
    rms = np.sqrt(np.mean(y[800:-800] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_same_rate_is_not_resampled(tmp_path, write_wav, noise):
    src = noise(SR, 0.3)
    path = write_wav(tmp_path, "same.wav", src, SR, "FLOAT")
    np.testing.assert_array_equal(audio.load_audio(path, sr=SR), src)


# --------------------------------------------------------------------------- bad inputs


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioLoadError, match=r"empty\.wav: empty file \(0 bytes\)"):
        audio.load_audio(path)


def test_truncated_header_is_refused(tmp_path, write_wav, tone):
    good = write_wav(tmp_path, "good.wav", tone(SR, 0.2, 440.0), SR, "PCM_16")
    path = tmp_path / "truncated.wav"
    path.write_bytes(good.read_bytes()[:20])
    with pytest.raises(AudioLoadError, match=r"truncated\.wav: not a readable audio file \(soundfile: "):
        audio.load_audio(path)


def test_a_truncated_flac_is_refused_where_its_decoding_stopped(tmp_path):
    """10 s of noise cut after 60 % of its bytes: about 6 s decode, and the message says so (it said
    "after 0.00 s" when the first 30 s block failed as a whole)."""
    y = (0.3 * np.random.default_rng(0).standard_normal(SR * 10)).astype(np.float32)
    sf.write(tmp_path / "full.flac", y, SR)
    data = (tmp_path / "full.flac").read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[:int(len(data) * 0.6)])
    with pytest.raises(AudioLoadError, match=r"cut\.flac: not a readable audio file after ") as err:
        list(audio.stream_audio(path, sr=SR))
    reached = float(re.search(r"after ([\d.]+) s", str(err.value)).group(1))
    assert 5.0 <= reached <= 6.5, str(err.value)
    with pytest.raises(AudioLoadError, match=f"after {reached:.2f} s"):  # whatever the block size
        list(audio.stream_audio(path, sr=SR, block_seconds=1.0))


def test_text_file_named_wav_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are meeting notes, not audio\n" * 20)
    with pytest.raises(AudioLoadError, match=r"notes\.wav: not a readable audio file \(soundfile: .*audioread: "):
        audio.load_audio(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(AudioLoadError, match=r"ghost\.wav: no such file"):
        audio.load_audio(tmp_path / "ghost.wav")


def test_nan_samples_are_refused(tmp_path, write_wav, tone):
    y = tone(SR, 0.2, 440.0)
    y[[10, 500, 777]] = np.nan
    path = write_wav(tmp_path, "nan.wav", y, SR, "FLOAT")
    with pytest.raises(AudioLoadError, match=r"nan\.wav: 3 non-finite samples .*must be finite"):
        audio.load_audio(path)


def test_wav_with_zero_frames_is_refused(tmp_path, write_wav):
    path = write_wav(tmp_path, "silent_header.wav", np.zeros((0, 1), np.float32), SR, "PCM_16")
    assert path.stat().st_size > 0 and sf.info(str(path)).frames == 0  # a valid header, no data
    with pytest.raises(AudioLoadError, match=r"silent_header\.wav: no audio samples"):
        audio.load_audio(path)


# --------------------------------------------------------------------------- stage body


def test_compute_returns_y_and_meta(tmp_path, write_wav, noise):
    path = write_wav(tmp_path, "stereo.wav", noise(44100, 1.5, channels=2), 44100, "PCM_16")
    arrays, meta = audio.compute(LoadConfig(sr=SR), path)
    assert set(arrays) == {"y"}
    y = arrays["y"]
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    assert abs(len(y) - round(1.5 * SR)) <= 1
    assert meta == {"sr": SR, "n_samples": len(y), "duration": len(y) / SR}
    assert meta["duration"] == pytest.approx(1.5, abs=1 / SR)


@pytest.mark.parametrize("sr_in, channels, subtype", [(16000, 1, "PCM_16"), (44100, 2, "PCM_24"), (8000, 1, "FLOAT")])
def test_streamed_decoding_equals_the_whole_file(tmp_path, sr_in, channels, subtype):
    """Blocks of soundfile + soxr's streaming resampler give load_audio's samples exactly."""
    from pipeline.audio import load_audio, stream_audio

    y = (0.1 * np.random.default_rng(0).standard_normal((sr_in * 31 + 17, channels))).astype(np.float32)
    path = tmp_path / ("x.wav" if subtype == "FLOAT" else "x.flac")
    sf.write(path, y, sr_in, subtype=subtype)
    streamed = np.concatenate(list(stream_audio(path, sr=16000, block_seconds=3.7)))
    np.testing.assert_array_equal(streamed, load_audio(path, sr=16000))
