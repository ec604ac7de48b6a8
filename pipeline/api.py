"""A small Python API over the jobs, for notebooks and other programs.

    import pipeline
    vad = pipeline.load_model("vad")              # a shipped model by name, or a directory
    scores = vad.scores(y, sr)                    # (n_frames, n_classes), at vad.fps
    for seg in vad.segments("meeting.flac"):      # the CLI's numbers, segment for segment
        print(seg.onset, seg.offset, seg.label)
    pipeline.fine_tune("my_recordings/", "models/vad", "models/vad-mine")   # train --init

Arrays are computed directly (nothing cached); paths go through the same stages as the command
line, cached in ``cache_dir`` when one is given (``cache_dir=None``: decoded and computed here,
with the same results).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .labels import Segment


class Model:
    """A trained model with the settings it was trained and tuned with; see :func:`load_model`."""

    def __init__(self, directory: str | Path, *, device: str = "cpu", threads: int = 1,
                 cache_dir: str | Path | None = None, engine: str = "auto", **predict: Any):
        from .config import section_from_dict
        from .engine import resolve_device
        from .jobs import open_model
        from .runner import Settings

        self.settings = Settings(cache_dir=str(cache_dir) if cache_dir is not None else None, jobs=threads,
                                 device=resolve_device(device), engine=engine)
        cfg = Config()
        if predict:  # keyword overrides of the model's post-processing, as --set predict.KEY=...
            cfg = cfg.replace(predict=section_from_dict(type(cfg.predict), "predict", predict))
        self._scoring, self.config = open_model(directory, cfg, self.settings,
                                                given=[f"predict.{k}" for k in predict])
        self.directory = self._scoring.directory
        self._cached = cache_dir is not None

    @property
    def classes(self) -> list[str]:
        return self._scoring.classes

    @property
    def fps(self) -> float:
        return self.config.load.sr / self.config.features.hop_length

    def scores(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Frame scores [shape=(n_frames, n_classes)] of a signal [shape=(n,) or (n, channels)]."""
        from .audio import resample, to_mono

        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 1:
            y = y[:, None]
        lc = self.config.load
        y = to_mono(y, channel=lc.channel) if lc.mono or lc.channel >= 0 else y
        y = resample(y, orig_sr=int(sr), target_sr=lc.sr, quality=lc.resample_quality)
        return self._score_waveform(np.ascontiguousarray(y, dtype=np.float32))

    def _score_waveform(self, y: np.ndarray) -> np.ndarray:
        from .features import features_of
        from .predict import score_files

        arrays, meta = features_of(y, self.config.load.sr, self.config.features)
        S = np.asarray(arrays["S"], dtype=np.float32)
        return score_files(self._scoring.model, [S], fps=meta["fps"], pcfg=self.config.predict,
                           features=self.config.features,
                           device=self.settings.device)[0]

    def file_scores(self, path: str | Path, *, with_duration: bool = False):
        """Frame scores of an audio file (through the cache when the model has one); with
        ``with_duration``, also the file's duration in seconds."""
        if self._cached:
            from .inputs import Source
            from .jobs import predict_files

            report = predict_files([Source(Path(path), Path(Path(path).name))], self._scoring.model,
                                   self._scoring.digest, self.config, self.settings)
            r = report.results[0]
            if r.status == "failed":
                from .errors import PipelineError

                raise PipelineError(r.error)
            entry = self.settings.cache().load("predict", r.keys["predict"])
            scores, duration = np.asarray(entry["scores"]), float(entry.meta["duration"])
        else:
            from .audio import load_audio

            lc = self.config.load
            y = load_audio(path, sr=lc.sr, mono=lc.mono, channel=lc.channel, resample_quality=lc.resample_quality)
            scores, duration = self._score_waveform(y), len(y) / lc.sr
        return (scores, duration) if with_duration else scores

    def segments(self, audio: str | Path | np.ndarray, sr: int | None = None) -> list[Segment]:
        """Segments of a file (path) or a signal (array with ``sr``), post-processed with the
        model's tuned settings: the rows of ``predict``'s ``.tsv``."""
        from .predict import segments

        if isinstance(audio, (str, Path)):
            scores, duration = self.file_scores(audio, with_duration=True)
        else:
            if sr is None:
                raise TypeError("segments(array) needs sr=")
            scores, duration = self.scores(audio, sr), len(audio) / sr
        return segments(scores, classes=self.classes, fps=self.fps, pcfg=self.config.predict,
                        per_class=self._scoring.config.get("predict_per_class"), duration=duration)


def load_model(directory: str | Path, *, device: str = "cpu", threads: int = 1,
               cache_dir: str | Path | None = None, engine: str = "auto", **predict: Any) -> Model:
    """Load a model directory, or a shipped model by name (``"vad"``, ``"vad-stream"``; an
    existing path of that name wins), for scoring in Python (weights only, verified against their
    sha256, nothing executed from files).

    ``engine``: ``"onnx"`` (ONNX Runtime; the default where the model has ``model.onnx`` and
    ``device="cpu"``: torch is then never imported) or ``"torch"``. ``predict`` keywords override
    the model's post-processing (``threshold=0.7``, ``median_filter=0.1``, ...), as ``--set
    predict.KEY=VALUE`` does on the command line.
    """
    return Model(directory, device=device, threads=threads, cache_dir=cache_dir, engine=engine, **predict)


def fine_tune(dataset: str | Path, model_dir: str | Path, out_dir: str | Path, *, valid: str | Path | None = None,
              sets: tuple[str, ...] | list[str] = (), cache_dir: str | Path | None = None, device: str = "cpu",
              threads: int = 1, log=print, teacher: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune ``model_dir`` on a labelled DATASET into the new model directory ``out_dir``, as
    ``python -m pipeline train DATASET --init MODEL_DIR --out OUT_DIR`` does: the model's own
    settings, a tenth of its learning rate, early stopping on ``valid`` or the chunk split. With
    ``teacher`` (a model directory), the targets mix its probabilities into the labels, as
    ``--teacher`` does (weight ``train.distill``).

    ``sets`` are ``--set`` expressions (``"train.epochs=5"``). Features and chunks go through the
    cache (``cache_dir``, else ``$PIPELINE_CACHE_DIR`` or ``.pipeline-cache``). Returns the best
    epoch's figures (epoch 0: the model as it was).
    """
    from .config import build_config
    from .runner import Settings
    from .train import train_dataset

    cfg, _, given = build_config(None, list(sets))
    settings = Settings(cache_dir=None if cache_dir is None else str(cache_dir), jobs=threads, device=device)
    best, _ = train_dataset(dataset, out_dir, cfg, settings, valid_spec=valid, init=model_dir,
                            explicit={name: "sets" for name in given}, log=log, teacher=teacher)
    return best
