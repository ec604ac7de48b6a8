"""Streaming: audio arriving block by block -> segments printed as soon as they are final.

A unidirectional model runs statefully (each frame's score depends on the frames before it
only), the features come block by block (:func:`pipeline.features.spectrogram_blocks`, the
same rows as the whole-file spectrogram), and the post-processing is re-run on a trailing
window of scores (:class:`SegmentStream`), which emits a segment once nothing that can still
arrive may change it. The segments are those ``predict`` writes for the same audio and model,
segment for segment; only *when* each appears is bounded by a look-ahead, derived from the
predict settings (:func:`lookahead_frames`):

- the median filter: frame ``i``'s filtered score needs the scores up to ``i + h``,
  ``h = width // 2`` (``width`` the filter length in frames, made odd as
  :func:`pipeline.postprocess.scores_to_segments` does);
- a segment ending at raw frame ``b`` (the first inactive frame, before padding) can still
  change while a later run could join it: one closer than ``min_duration_off`` (gap filling),
  one closer than ``pad_onset + pad_offset`` (padded segments merge), or a short run not yet
  known to reach ``min_duration_on``; so it is final once the filtered activity is known up to
  ``b + pad_onset + pad_offset + min_duration_on + min_duration_off`` plus one frame.

So a segment is printed at the latest ``Streamer.latency_seconds()`` of audio after its raw end
(``offset - pad_offset``): ``(k - 1) / fps + (frame_length - left_pad) / sr`` with ``k =
lookahead_frames(...) + d`` (``h`` included; ``d``: the model's own look-ahead, ``model.delay``
frames; the last term: a centred STFT frame reads half a window ahead), plus the resampler's
own delay when the input rate is not the model's. A run of at
least ``gap`` frames below the offset threshold finalises everything before it earlier and lets
the window drop the past, so memory and work stay bounded by the longest stretch of activity,
not by the stream's length. Scores agree with predict's to about 1e-6, not bit for bit (the
features and the network see other row batches), so a segment could differ only where a score
sits within that of a threshold; none did on the tests' files or the 90 dev clips.
"""
from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .config import Config, PredictConfig
from .errors import AudioLoadError, ParameterError
from .labels import Segment
from .postprocess import median_filter, median_width

TOL = 1e-6  # seconds; frame times computed two ways differ by float round-off only


# ------------------------------------------------------------------ post-processing, streamed


def median_half_width(seconds: float, fps: float) -> int:
    """``h``: the median filter of ``seconds`` reads ``h`` frames either side (the filter length
    rounded to frames and up to an odd count, as :func:`pipeline.postprocess.scores_to_segments`)."""
    return median_width(seconds, fps) // 2


def lookahead_frames(pcfg: PredictConfig, fps: float, medians: Sequence[float] | None = None) -> int:
    """Frames of scores needed after a segment's raw end (first inactive frame) before it is final:
    the median filter's half width (the longest of ``medians``, per class; default
    ``pcfg.median_filter``) plus ``ceil((pad_onset + pad_offset + min_duration_on +
    min_duration_off) * fps) + 1``."""
    post = pcfg.pad_onset + pcfg.pad_offset + pcfg.min_duration_on + pcfg.min_duration_off
    h = max(median_half_width(m, fps) for m in (medians if medians is not None else [pcfg.median_filter]))
    return h + math.ceil(post * fps - TOL) + 1


class SegmentStream:
    """Incremental, exact post-processing: push frame scores as they come, get final segments.

    The segments returned, concatenated over all :meth:`push` calls and :meth:`finish`, equal
    :func:`pipeline.predict.segments` of all the scores at once (in the same, sorted, order).

    Parameters
    ----------
    classes : list of str
    fps : float
    pcfg : PredictConfig
        The post-processing settings (threshold, offset_threshold, median_filter, min durations,
        padding, max_duration).
    per_class : dict, optional
        A model's ``predict_per_class`` (per-class threshold and median filter), as predict uses it.
    """

    def __init__(self, classes: Sequence[str], *, fps: float, pcfg: PredictConfig,
                 per_class: dict | None = None) -> None:
        from .predict import class_settings

        if not fps > 0:
            raise ParameterError(f"fps={fps} must be positive")
        self.classes, self.fps, self.pcfg, self.per_class = list(classes), float(fps), pcfg, per_class
        settings = class_settings(per_class, self.classes, pcfg)
        self.medians = settings["median_filter"]
        self.h = max(median_half_width(m, fps) for m in self.medians)
        self.post = pcfg.pad_onset + pcfg.pad_offset + pcfg.min_duration_on + pcfg.min_duration_off + 1.0 / fps
        # a run of `gap` frames below the offset threshold isolates what is before it from what follows
        self.gap = math.ceil(max(pcfg.min_duration_off, pcfg.pad_onset + pcfg.pad_offset) * fps - TOL) + 2
        thr = np.asarray(settings["threshold"], dtype=float)
        self.offset = thr if pcfg.offset_threshold < 0 else np.minimum(pcfg.offset_threshold, thr)  # per class
        self.duration: float | None = None
        self._buf = np.zeros((0, len(self.classes)), dtype=np.float64)  # scores from frame w0 on
        self.w0 = 0  # global index of _buf[0]
        self.n = 0  # frames pushed
        self._skip_before = -math.inf  # groups ending before this time were handled before the last cut
        self._done = {c: -math.inf for c in self.classes}  # end of the last final group per class
        self._pending: list[Segment] = []  # final, held back for the cross-class order
        self.finished = False

    @property
    def latency_frames(self) -> int:
        return lookahead_frames(self.pcfg, self.fps, self.medians)

    def push(self, scores: np.ndarray) -> list[Segment]:
        """Append frame scores [shape=(n, n_classes)]; return the segments that became final."""
        if self.finished:
            raise ParameterError("push() after finish()")
        scores = np.asarray(scores, dtype=np.float64).reshape(-1, len(self.classes))
        if not np.isfinite(scores).all():
            raise ParameterError(f"scores contain {np.count_nonzero(~np.isfinite(scores))} non-finite values")
        if not len(scores):
            return []
        self._buf = np.concatenate([self._buf, scores])
        self.n += len(scores)
        return self._update(end=False)

    def finish(self, duration: float | None = None) -> list[Segment]:
        """The stream ended: every segment left, cut at ``duration`` seconds (the samples' length,
        as predict passes it; default ``n / fps``)."""
        if self.finished:
            return []
        self.finished = True
        self.duration = duration
        out = self._update(end=True)
        return out + self._release(math.inf)

    # -- one update -----------------------------------------------------------------------------
    def _update(self, *, end: bool) -> list[Segment]:
        from .predict import segments as post_process

        fps, t0 = self.fps, self.w0 / self.fps
        final_frames = self.n if end else self.n - self.h  # filtered scores known for frames < this
        cut = None if end else self._find_cut(final_frames)
        duration = None if not end or self.duration is None else self.duration - t0
        local = post_process(self._buf, classes=self.classes, fps=fps, pcfg=self.pcfg, per_class=self.per_class,
                             duration=duration) if len(self._buf) else []
        first_open = math.inf  # earliest onset of a segment that is not final yet
        for label in self.classes:
            for group in _groups([s for s in local if s.label == label]):
                start, stop = group[0].onset + t0, group[-1].offset + t0
                if stop < self._skip_before or stop <= self._done[label] + TOL:
                    continue  # the inexact edge of the window, or emitted already
                raw_end = stop - self.pcfg.pad_offset
                if end or raw_end + self.post <= final_frames / fps + TOL or (cut is not None and stop < cut[1]):
                    self._pending += self._global(group, end=end)
                    self._done[label] = stop
                else:
                    first_open = min(first_open, start)
        if cut is not None:
            self._cut(*cut)
        if end:
            return []
        # a later segment may start no earlier than a run not yet known to survive min_duration_on
        undecided = max((final_frames - 1) / fps - self.pcfg.min_duration_off - self.pcfg.min_duration_on,
                        self._skip_before)
        return self._release(min(first_open, undecided - self.pcfg.pad_onset))

    def _global(self, group: list[Segment], *, end: bool) -> list[Segment]:
        """A group's pieces in the stream's time, computed as predict computes them (frame count /
        fps, then the padding), so that the floats, and hence the sort order, are the same."""
        if self.w0 == 0:
            return group
        fps, w0, p = self.fps, self.w0, self.pcfg
        times = [s.onset for s in group] + [group[-1].offset]
        out = [(round(t * fps) + w0) / fps for t in times]  # split points: frame times
        out[0] = max((round((times[0] + p.pad_onset) * fps) + w0) / fps - p.pad_onset, 0.0)
        duration = self.n / fps if self.duration is None else self.duration
        if end and times[-1] >= duration - self.w0 / fps - TOL:
            out[-1] = duration  # cut at the end of the file, as predict does
        else:
            out[-1] = (round((times[-1] - p.pad_offset) * fps) + w0) / fps + p.pad_offset
        return [Segment(a, b, s.label) for a, b, s in zip(out[:-1], out[1:], group)]

    def _release(self, bound: float) -> list[Segment]:
        """Final segments in sorted order; with several classes, only those that start before
        ``bound`` (no segment still to come can sort before them)."""
        self._pending.sort()
        if len(self.classes) == 1:
            bound = math.inf
        k = 0
        while k < len(self._pending) and self._pending[k].onset < bound - TOL:
            k += 1
        out, self._pending = self._pending[:k], self._pending[k:]
        return out

    def _find_cut(self, final_frames: int) -> tuple[int, float] | None:
        """The latest frame ``j <= final_frames`` after ``gap`` frames below the offset threshold
        (exact filtered scores, all classes), if there is one beyond the window's start; returns
        ``(j, time)``: segments ending before ``time`` are final and isolated from what follows."""
        exact_from = self.w0 + self.h if self.w0 > 0 else 0  # the window's first h frames are edge-affected
        lo, hi = exact_from - self.w0, final_frames - self.w0  # local frame range with exact values
        if hi - lo < self.gap:
            return None
        hs = [median_half_width(m, self.fps) for m in self.medians]
        filtered = np.stack([median_filter(self._buf[:, c], width_frames=2 * h + 1 if h else 0)
                             for c, h in enumerate(hs)], axis=1)[lo:hi]
        below = (filtered < self.offset).all(axis=1)
        # run length of `below` ending at each frame
        idx = np.arange(len(below))
        last_above = np.maximum.accumulate(np.where(below, -1, idx))
        runs = idx - last_above
        ok = np.flatnonzero(runs >= self.gap)
        if not len(ok):
            return None
        j = int(ok[-1]) + lo + self.w0 + 1  # global: frames j - gap .. j - 1 are below
        if j - self.gap - self.h <= self.w0:
            return None  # nothing to drop yet
        return j, j / self.fps - self.pcfg.pad_onset - 1.0 / self.fps

    def _cut(self, j: int, skip_before: float) -> None:
        """Drop the scores that can no longer matter: keep ``h`` edge frames plus the quiet run."""
        new_w0 = max(self.w0, j - self.gap - self.h)
        self._buf = self._buf[new_w0 - self.w0:]
        self.w0 = new_w0
        self._skip_before = max(self._skip_before, skip_before)


def _groups(segs: list[Segment]) -> Iterator[list[Segment]]:
    """One class's sorted segments grouped into the padded intervals they came from (``max_duration``
    splits an interval into touching pieces; distinct intervals never touch)."""
    group: list[Segment] = []
    for s in segs:
        if group and s.onset != group[-1].offset:
            yield group
            group = []
        group.append(s)
    if group:
        yield group


# ------------------------------------------------------------------ audio from a byte stream


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved PCM samples: rate, channels and numpy dtype (``"<i3"`` for 24-bit)."""

    sr: int
    channels: int
    dtype: str

    @property
    def frame_bytes(self) -> int:
        return self.channels * (3 if self.dtype == "<i3" else np.dtype(self.dtype).itemsize)


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    out = b""
    while len(out) < n:
        b = read(n - len(out))
        if not b:
            break
        out += b
    return out


_SUBFORMAT_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_* after the tag


def read_wav_header(read: Callable[[int], bytes], *, where: str = "stdin") -> tuple[PcmFormat, int | None]:
    """Parse a RIFF/WAVE header from a byte stream up to the ``data`` chunk's payload.

    Returns the sample format and the number of data bytes (``None``: until the stream ends, as
    written by streaming tools that put 0 or 0xFFFFFFFF there). PCM 8/16/24/32-bit and IEEE float
    32/64, plain or WAVE_FORMAT_EXTENSIBLE.

    Raises
    ------
    AudioLoadError
        not a WAV stream, or a format it does not handle (the message says which).
    """
    head = _read_exact(read, 12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise AudioLoadError(f"{where}: not a WAV stream (no RIFF/WAVE header; for raw 16-bit PCM give --rate)")
    fmt = None
    while True:
        ch = _read_exact(read, 8)
        if len(ch) < 8:
            raise AudioLoadError(f"{where}: WAV stream ended before its data chunk")
        cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
        if cid == b"data":
            if fmt is None:
                raise AudioLoadError(f"{where}: WAV data chunk before its fmt chunk")
            return fmt, None if size in (0, 0xFFFFFFFF) or head[:4] == b"RF64" else size
        body = _read_exact(read, size + (size & 1))
        if len(body) < size:
            raise AudioLoadError(f"{where}: WAV stream ended inside its {cid!r} chunk")
        if cid == b"fmt ":
            fmt = _pcm_format(body, where)


def _pcm_format(body: bytes, where: str) -> PcmFormat:
    if len(body) < 16:
        raise AudioLoadError(f"{where}: WAV fmt chunk of {len(body)} bytes is too short")
    tag, channels, sr, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 40 and body[26:40] == _SUBFORMAT_TAIL:
        tag = struct.unpack("<H", body[24:26])[0]
    dtype = {(1, 8): "u1", (1, 16): "<i2", (1, 24): "<i3", (1, 32): "<i4",  # PCM
             (3, 32): "<f4", (3, 64): "<f8"}.get((tag, bits))  # IEEE float
    if dtype is None or channels < 1 or sr < 1:
        raise AudioLoadError(f"{where}: WAV format tag {tag:#x} with {bits}-bit samples, {channels} channel(s) "
                             f"at {sr} Hz is not supported (PCM 8/16/24/32-bit or float 32/64)")
    return PcmFormat(int(sr), int(channels), dtype)


def pcm_to_float(data: bytes, fmt: PcmFormat) -> np.ndarray:
    """Whole frames of PCM bytes -> float32 [shape=(n, channels)], scaled as libsndfile
    (soundfile) scales them, so the samples equal ``soundfile.read(..., dtype="float32")``."""
    if fmt.dtype == "<i3":
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)).astype(np.float32) * np.float32(2.0 ** -31)
    else:
        raw = np.frombuffer(data, dtype=fmt.dtype)
        if fmt.dtype == "u1":
            x = (raw.astype(np.float32) - 128.0) * np.float32(1 / 128)
        elif fmt.dtype in ("<f4", "<f8"):
            x = raw.astype(np.float32)
        else:
            x = raw.astype(np.float32) * np.float32(2.0 ** -(8 * raw.itemsize - 1))
    return x.reshape(-1, fmt.channels)


def pcm_blocks(read: Callable[[int], bytes], fmt: PcmFormat, n_bytes: int | None = None, *,
               block_bytes: int = 1 << 16, where: str = "stdin",
               warn: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Blocks of float32 samples [shape=(n, channels)] from a byte stream, as they arrive (whatever
    ``read`` returns, cut at whole frames); stops after ``n_bytes`` or at the end of the stream.

    A stream that ends before its header's ``n_bytes`` gives the samples it has, as a file cut short
    is read by ``predict``, and says so once through ``warn`` (default: :func:`warnings.warn`).

    Raises
    ------
    AudioLoadError
        non-finite float samples (the message gives the time of the first).
    """
    fb, rest, seen, frames = fmt.frame_bytes, b"", 0, 0
    while n_bytes is None or seen < n_bytes:
        want = block_bytes if n_bytes is None else min(block_bytes, n_bytes - seen)
        b = read(want)
        if not b:
            break
        seen += len(b)
        b = rest + b
        whole = len(b) - len(b) % fb
        b, rest = b[:whole], b[whole:]
        if b:
            y = pcm_to_float(b, fmt)
            finite = np.isfinite(y).all(axis=1)
            if not finite.all():
                first = frames + int(np.argmin(finite))
                raise AudioLoadError(f"{where}: {np.count_nonzero(~np.isfinite(y))} non-finite samples (NaN or "
                                     f"inf), the first at {first / fmt.sr:.3f} s; audio must be finite")
            frames += len(y)
            yield y
    if n_bytes is not None and seen < n_bytes:
        msg = (f"{where}: the WAV stream ended after {seen // fb / fmt.sr:.3f} s of audio, but its header "
               f"announces {n_bytes // fb / fmt.sr:.3f} s ({seen} of {n_bytes} data bytes); the segments cover "
               f"the audio received")
        if warn is None:
            import warnings

            warnings.warn(msg, stacklevel=2)
        else:
            warn(msg)


# ------------------------------------------------------------------ the whole stream


class Streamer:
    """A loaded unidirectional classify model, run block by block with its predict settings.

    Parameters
    ----------
    model : engine network (:mod:`pipeline.engine`) or nets.FrameModel
        Unidirectional, ``task="classify"``.
    classes : list of str
    cfg : Config
        The run's config as :func:`pipeline.predict.config_for_model` builds it (the model's
        ``load``, ``features`` and tuned ``predict``).
    per_class : dict, optional
        The model's ``predict_per_class`` (per-class threshold and median filter).
    """

    def __init__(self, model, classes: Sequence[str], cfg: Config, *, per_class: dict | None = None,
                 device: str = "cpu") -> None:
        from .features import fps as features_fps
        from .predict import runs_stateful

        if model.cfg.bidirectional:
            raise ParameterError("a bidirectional model cannot stream (it needs the frames after each "
                                 "one); use a unidirectional model such as models/vad-stream")
        if model.cfg.task != "classify":
            raise ParameterError(f"stream needs a classify model, this one is model.task={model.cfg.task!r}")
        if not runs_stateful(model, cfg.predict):
            raise ParameterError("predict.stateful=false: predict scores this model on overlapping chunks, "
                                 "which a stream cannot reproduce; use predict.stateful=true")
        if not cfg.load.mono and cfg.load.channel < 0:
            raise ParameterError("stream needs a mono signal (load.mono=true or load.channel)")
        if cfg.predict.level_db:
            raise ParameterError(f"predict.level_db={cfg.predict.level_db}: a stream cannot know a recording's "
                                 "level before its end (predict measures the whole file); stream it with "
                                 "--set predict.level_db=0, or run predict")
        from .engine import as_network

        self.model, self.cfg, self.device = as_network(model, device), cfg, device
        self.classes, self.per_class = list(classes), per_class
        self.sr = cfg.load.sr
        self.fps = features_fps(cfg.features, self.sr)

    def latency_seconds(self) -> float:
        """Audio after a segment's raw end (``offset - pad_offset``) that the stream reads before it
        prints the segment, at most (not counting a resampler's delay): the post-processing's
        look-ahead, the model's (``model.delay`` frames) and half an STFT window."""
        from .features import _centre_pad, frame_length

        L = frame_length(self.cfg.features)
        left, _ = _centre_pad(L)
        k = SegmentStream(self.classes, fps=self.fps, pcfg=self.cfg.predict, per_class=self.per_class).latency_frames
        return (k - 1 + self.model.cfg.delay) / self.fps + (L - left) / self.sr

    def scores(self, blocks: Iterable[np.ndarray], *, sr: int) -> Iterator[np.ndarray]:
        """Frame scores [shape=(n, n_classes)] of mono float32 sample blocks at ``sr``, as they become
        available (the rows of predict's stateful pass over the whole signal). Returns (through
        ``StopIteration.value``) the number of samples at the model's rate."""
        from .audio import resample_blocks
        from .engine import stream_chunks
        from .features import finish, spectrogram_blocks

        feats = self.cfg.features
        rows_iter = spectrogram_blocks(
            resample_blocks(blocks, orig_sr=sr, target_sr=self.sr, quality=self.cfg.load.resample_quality),
            sr=self.sr, cfg=feats, frames_per_block=1)
        done = {}

        def chunks():  # (1, n, F) per block of rows, in the stored dtype as predict reads it
            while True:
                try:
                    rows = next(rows_iter)
                except StopIteration as stop:
                    done["n"] = stop.value
                    return
                S = finish(rows, feats, self.sr, 0.0)[0]["S"]
                yield np.asarray(S, dtype=np.float32)[None]
        for out in stream_chunks(self.model, chunks()):  # the state carried, as predict's stateful pass
            yield out[0]  # (n, C) probabilities
        return done["n"]

    def segments(self, blocks: Iterable[np.ndarray], *, sr: int) -> Iterator[Segment]:
        """Final segments of a signal given as consecutive mono float32 blocks at ``sr``, each as soon
        as nothing still to come can change it; together, ``predict``'s segments of the signal."""
        post = SegmentStream(self.classes, fps=self.fps, pcfg=self.cfg.predict, per_class=self.per_class)
        blocks = iter(blocks)
        first = next((b for b in blocks if len(b)), None)  # waits for the first sample
        if first is None:
            raise AudioLoadError("stdin: no audio samples (empty audio)")
        scores = self.scores(itertools.chain([first], blocks), sr=sr)
        while True:
            try:
                sc = next(scores)
            except StopIteration as stop:
                n_samples = stop.value
                break
            yield from post.push(sc)
        yield from post.finish(duration=n_samples / self.sr)  # as predict cuts segments at the file's end


def open_streamer(model_dir, cfg: Config, given: Iterable[str] = (), *, device: str = "cpu",
                  engine: str = "auto", threads: int = 1) -> Streamer:
    """Load a model directory for streaming on its engine (ONNX Runtime where it has
    ``model.onnx``): its features and tuned post-processing, with the command line's ``--set
    predict.*`` overrides (``given``), as ``predict`` builds them."""
    from .jobs import open_model
    from .runner import Settings

    scoring, run_cfg = open_model(model_dir, cfg, Settings(device=device, engine=engine, jobs=threads), given)
    return Streamer(scoring.model.network(), scoring.classes, run_cfg,
                    per_class=scoring.config.get("predict_per_class"), device=device)


def mono_blocks(read: Callable[[int], bytes], *, rate: int | None, channel: int = -1,
                where: str = "stdin", warn: Callable[[str], None] | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """The input rate and mono float32 blocks of a byte stream: a WAV stream, or raw 16-bit
    little-endian mono PCM at ``rate`` Hz when ``rate`` is given. ``warn``: see :func:`pcm_blocks`."""
    from .audio import to_mono

    if rate is not None:
        fmt, n_bytes = PcmFormat(int(rate), 1, "<i2"), None
    else:
        fmt, n_bytes = read_wav_header(read, where=where)
    blocks = (to_mono(y, channel=channel, path=where) for y in pcm_blocks(read, fmt, n_bytes, where=where, warn=warn))
    return fmt.sr, blocks
