"""Frozen configuration dataclasses, one per stage, and the TOML / ``--set`` layering.

Precedence: command line (``--set stage.key=value``), then the config file, then the dataclass
defaults. Unknown sections or keys are errors that name the key. Fields whose metadata says
``key=False`` (device, batch size, workers) never change a stage's output, so they stay out of
cache keys (:func:`key_fields`).

Nothing here imports numpy or torch: the command line builds a :class:`Config` before any heavy
import.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import ParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FEATURE_KINDS = ("stft", "power", "mel", "logmel", "mfcc", "fbank")
CELLS = ("rnn", "lstm", "gru")
TASKS = ("classify", "forecast", "masked")  # masked: pretraining, hidden frames rebuilt (pipeline.train)
ENGINES = ("auto", "onnx", "torch")  # --engine: the network's (pipeline.engine); a run setting, not a key
RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
WINDOWS = ("hamming", "triangular", "hann", "boxcar")  # overlap-add weights (pipeline.stitch)


def nokey(default: Any) -> Any:
    """A field that does not change the output: it stays out of the cache key."""
    return field(default=default, metadata={"key": False})


def scores(default: Any) -> Any:
    """A predict field that changes the network's scores (the rest only post-process them)."""
    return field(default=default, metadata={"scores": True})


def score_fields(pcfg: Any) -> dict[str, Any]:
    """The predict settings that change the scores (cached); see :func:`postprocess_fields`."""
    return {f.name: getattr(pcfg, f.name) for f in fields(pcfg) if f.metadata.get("scores")}


def postprocess_fields(pcfg: Any) -> dict[str, Any]:
    """The predict settings applied to cached scores (thresholds, filters, durations): what ``tune``
    searches and a model's ``config.json`` carries as its tuned post-processing."""
    return {f.name: getattr(pcfg, f.name) for f in fields(pcfg)
            if f.metadata.get("key", True) and not f.metadata.get("scores")}


def require_positive_int(**values: Any) -> None:
    """The one check of "a positive integer" (numpy integers count, booleans do not); the error
    names the setting and the value."""
    for name, value in values.items():
        if not (isinstance(value, int) or _is_numpy_int(value)) or isinstance(value, bool) or value <= 0:
            raise ParameterError(f"{name}={value!r} must be a positive integer")


def _is_numpy_int(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("i", "u") and getattr(value, "ndim", 1) == 0


def _positive(section: str, **values: Any) -> None:
    require_positive_int(**{f"{section}.{name}": value for name, value in values.items()})


def _choice(section: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ParameterError(f"{section}.{name}={value!r} must be one of {', '.join(map(str, choices))}")


def _in_range(section: str, name: str, value: Any, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise ParameterError(f"{section}.{name}={value!r} must be between {lo} and {hi}")


@dataclass(frozen=True)
class LoadConfig:
    """Decoding: target rate, channel handling, resampler quality."""

    sr: int = 16000
    mono: bool = True
    channel: int = -1  # -1: mean of all channels; k >= 0: keep channel k
    resample_quality: str = "HQ"  # soxr quality recipe

    def __post_init__(self) -> None:
        _positive("load", sr=self.sr)
        _choice("load", "resample_quality", self.resample_quality, RESAMPLE_QUALITIES)
        if self.channel < -1:
            raise ParameterError(f"load.channel={self.channel} must be -1 (mean) or a channel index >= 0")


@dataclass(frozen=True)
class FeaturesConfig:
    """Spectrogram settings. Frame i is centred at ``i * hop_length / sr`` seconds.

    ``fmax=0`` means ``sr / 2``. ``fbank`` is Kaldi-compatible (povey window, pre-emphasis,
    DC removal, natural log) and uses ``win_length``/``hop_length``/``n_mels``; its frames
    follow the same centring convention (the signal is padded by ``win_length // 2``).
    """

    kind: str = "logmel"
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 0.0
    n_mfcc: int = 20
    window: str = "hann"
    center: bool = True  # must stay True: frame i is centred at i * hop / sr (labels rely on it)
    pad_mode: str = "constant"
    htk: bool = False
    norm: str = "slaney"  # mel filter normalisation: "slaney" or "none"
    amin: float = 1e-10
    dtype: str = "float32"  # storage dtype: float32 or float16
    batch_size: int = nokey(16)  # files per GPU batch

    def __post_init__(self) -> None:
        _choice("features", "kind", self.kind, FEATURE_KINDS)
        _positive("features", n_fft=self.n_fft, win_length=self.win_length,
                  hop_length=self.hop_length, n_mels=self.n_mels, n_mfcc=self.n_mfcc,
                  batch_size=self.batch_size)
        if self.win_length > self.n_fft and self.kind != "fbank":
            raise ParameterError(
                f"features.win_length={self.win_length} must be <= features.n_fft={self.n_fft}")
        if self.fmin < 0 or self.fmax < 0 or (self.fmax and self.fmax <= self.fmin):
            raise ParameterError(
                f"features.fmin={self.fmin}, fmax={self.fmax}: need 0 <= fmin < fmax (fmax=0 means sr/2)")
        if self.n_mfcc > self.n_mels:
            raise ParameterError(f"features.n_mfcc={self.n_mfcc} must be <= features.n_mels={self.n_mels}")
        _choice("features", "window", self.window, ("hann", "hamming", "povey", "blackman"))
        if self.center is not True:
            raise ParameterError("features.center=false is not supported: frames are always centred "
                                 "(frame i at i * hop_length / sr), which labels and segment times rely on; "
                                 "features.pad_mode chooses how the edges are padded")
        _choice("features", "pad_mode", self.pad_mode, ("constant", "reflect"))
        _choice("features", "norm", self.norm, ("slaney", "none"))
        _choice("features", "dtype", self.dtype, ("float32", "float16"))
        if self.amin <= 0:
            raise ParameterError(f"features.amin={self.amin} must be > 0")

    @property
    def n_bins(self) -> int:
        """Width of one frame of this feature kind."""
        if self.kind in ("stft", "power"):
            return self.n_fft // 2 + 1
        if self.kind == "mfcc":
            return self.n_mfcc
        return self.n_mels


@dataclass(frozen=True)
class ChunkConfig:
    """Fixed chunks of ``frames`` frames every ``hop`` frames, and the file-level split."""

    frames: int = 800  # 8 s at 100 fps
    hop: int = 400  # 50 % overlap
    valid_fraction: float = 0.1
    split_seed: int = 0

    def __post_init__(self) -> None:
        _positive("chunk", frames=self.frames, hop=self.hop)
        if self.hop > self.frames:
            raise ParameterError(f"chunk.hop={self.hop} must be <= chunk.frames={self.frames} (no gaps)")
        _in_range("chunk", "valid_fraction", self.valid_fraction, 0.0, 0.9)


@dataclass(frozen=True)
class ModelConfig:
    """A frame-level recurrent network: optional conv front end, RNN cell, a head per task."""

    cell: str = "gru"
    hidden: int = 64
    layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.1
    conv_channels: int = 0  # 0: no conv front end
    stack: int = 1  # frames per recurrent step (bidirectional classifiers): k-fold fewer steps
    delay: int = 0  # look-ahead (unidirectional classifiers): frame t's output comes after frame t + delay
    task: str = "classify"
    multi_label: bool = True  # classify: sigmoid per class (True) or softmax over classes
    horizon: int = 1  # forecast: predict the frame this many steps ahead
    # task "masked" (pretraining on unlabelled audio): spans of frames are hidden from the input
    # and the network rebuilds them (train.mask_fraction, train.mask_span); it scores nothing
    # itself, ``train --init`` turns it into a classifier

    def __post_init__(self) -> None:
        _choice("model", "cell", self.cell, CELLS)
        _choice("model", "task", self.task, TASKS)
        _positive("model", hidden=self.hidden, layers=self.layers, horizon=self.horizon)
        _in_range("model", "dropout", self.dropout, 0.0, 0.9)
        if self.conv_channels < 0:
            raise ParameterError(f"model.conv_channels={self.conv_channels} must be >= 0")
        _positive("model", stack=self.stack)
        if self.stack > 1 and not (self.bidirectional and self.task in ("classify", "masked")):
            raise ParameterError(f"model.stack={self.stack} needs model.bidirectional=true and "
                                 "model.task='classify' or 'masked' (a streaming model steps one frame at a time)")
        if self.delay:  # 0, or a positive integer for a unidirectional classifier
            _positive("model", delay=self.delay)
            if self.bidirectional or self.task != "classify":
                raise ParameterError(f"model.delay={self.delay} needs model.bidirectional=false and "
                                     "model.task='classify' (a bidirectional model already reads the whole chunk)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. ``seed`` fixes initialisation and batch order."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0
    patience: int = 5  # early stopping: epochs without improvement of the validation loss
    grad_clip: float = 1.0
    warmup_epochs: int = 1
    amp: bool = nokey(True)  # mixed precision on cuda
    # SpecAugment (Park et al. 2019) on training batches only: this many masks per chunk, each of
    # up to ``*_mask_width`` bins / frames, set to the feature's training mean; 0 masks = off
    freq_masks: int = 0
    freq_mask_width: int = 8
    time_masks: int = 0
    time_mask_width: int = 10
    # random level (classify, logmel / fbank features): each training chunk's frames are shifted
    # as if its audio were g dB louder, g uniform in [-gain_db, gain_db], before SpecAugment;
    # frames at the floor (digital silence) stay there. 0 = off
    gain_db: float = 0.0
    # knowledge distillation (``train --teacher DIR``): the training targets are
    # ``(1 - distill) * labels + distill * the teacher's probabilities``; validation stays on the labels
    distill: float = 0.5
    # model.task="masked": about this share of each chunk's frames is hidden from the network, in
    # spans of ``mask_span`` frames (set to the training mean), and the loss is on those frames only
    mask_fraction: float = 0.3
    mask_span: int = 10

    @property
    def mask(self) -> tuple[float, int]:
        """``(mask_fraction, mask_span)``: what a masked-frame model hides (pipeline.train.hidden_frames)."""
        return self.mask_fraction, self.mask_span

    def __post_init__(self) -> None:
        _positive("train", epochs=self.epochs, batch_size=self.batch_size, patience=self.patience,
                  mask_span=self.mask_span)
        if not 0.0 < self.mask_fraction < 1.0:
            raise ParameterError(f"train.mask_fraction={self.mask_fraction} must be in (0, 1) "
                                 "(the share of frames hidden from a masked-frame model)")
        if not 0.0 <= self.distill <= 1.0:
            raise ParameterError(f"train.distill={self.distill} must be in [0, 1] (the teacher's weight in the targets)")
        if not self.lr > 0:
            raise ParameterError(f"train.lr={self.lr} must be > 0")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ParameterError("train.grad_clip, train.weight_decay and train.warmup_epochs must be >= 0")
        if not 0.0 <= self.gain_db <= 60.0:
            raise ParameterError(f"train.gain_db={self.gain_db} must be in [0, 60] (dB of random level)")
        if min(self.freq_masks, self.freq_mask_width, self.time_masks, self.time_mask_width) < 0:
            raise ParameterError("train.freq_masks, train.freq_mask_width, train.time_masks and "
                                 "train.time_mask_width must be >= 0")


@dataclass(frozen=True)
class PredictConfig:
    """Inference and post-processing. Durations in seconds; ``offset_threshold=-1`` = threshold."""

    threshold: float = 0.5
    offset_threshold: float = -1.0
    median_filter: float = 0.0
    min_duration_on: float = 0.0
    min_duration_off: float = 0.0
    pad_onset: float = 0.0
    pad_offset: float = 0.0
    max_duration: float = 0.0  # 0: no limit
    chunk_duration: float = scores(8.0)
    chunk_step: float = scores(4.0)
    window: str = scores("hamming")
    stateful: bool = scores(True)  # unidirectional models carry the state across chunks
    # each file heard at this level (dB, pipeline.features.file_level) before the network; 0: as it is
    level_db: float = scores(0.0)
    level_range_db: float = scores(20.0)  # the most the level moves a file, either way
    batch_size: int = nokey(128)  # chunks per network call, at most the engine's call_frames frames in all

    def __post_init__(self) -> None:
        _in_range("predict", "threshold", self.threshold, 0.0, 1.0)
        if self.offset_threshold != -1.0:
            _in_range("predict", "offset_threshold", self.offset_threshold, 0.0, 1.0)
            if self.offset_threshold > self.threshold:
                raise ParameterError(f"predict.offset_threshold={self.offset_threshold} must be <= "
                                     f"predict.threshold={self.threshold} (hysteresis)")
        for name in ("median_filter", "min_duration_on", "min_duration_off", "pad_onset",
                     "pad_offset", "max_duration"):
            if getattr(self, name) < 0:
                raise ParameterError(f"predict.{name}={getattr(self, name)} must be >= 0")
        if not (0 < self.chunk_step <= self.chunk_duration):
            raise ParameterError(
                f"predict.chunk_step={self.chunk_step} must be > 0 and <= chunk_duration={self.chunk_duration}")
        _choice("predict", "window", self.window, WINDOWS)
        _positive("predict", batch_size=self.batch_size)
        if not (-200.0 <= self.level_db <= 100.0):
            raise ParameterError(f"predict.level_db={self.level_db} must lie in -200..100 dB (0: off)")
        if not (0 < self.level_range_db <= 100.0):
            raise ParameterError(f"predict.level_range_db={self.level_range_db} must be > 0 and <= 100 dB")


SECTIONS: dict[str, type] = {
    "load": LoadConfig,
    "features": FeaturesConfig,
    "chunk": ChunkConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "predict": PredictConfig,
}


@dataclass(frozen=True)
class Config:
    """All stage configs together; the unit the command line, files and models exchange."""

    load: LoadConfig = field(default_factory=LoadConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> "Config":
        """Build from ``{section: {key: value}}``; unknown sections or keys are errors."""
        unknown = set(data) - set(SECTIONS)
        if unknown:
            raise ParameterError(
                f"{source}: unknown section {sorted(unknown)[0]!r} (known: {', '.join(SECTIONS)})")
        parts = {}
        for name, klass in SECTIONS.items():
            values = data.get(name, {})
            if not isinstance(values, Mapping):
                raise ParameterError(f"{source}: section {name!r} must be a table, got {values!r}")
            parts[name] = section_from_dict(klass, name, values, source=source)
        return cls(**parts)

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def _field_types(klass: type) -> dict[str, Any]:
    hints = typing.get_type_hints(klass)
    return {f.name: hints[f.name] for f in fields(klass)}


def coerce(section: str, key: str, value: Any, kind: Any) -> Any:
    """Convert ``value`` (from TOML or a ``--set`` string) to the field type, or say why not."""
    where = f"{section}.{key}={value!r}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ParameterError(f"{where} must be true or false")
    if kind is int:
        if isinstance(value, bool):
            raise ParameterError(f"{where} must be an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value), 10)
        except ValueError:
            raise ParameterError(f"{where} must be an integer") from None
    if kind is float:
        if isinstance(value, bool):
            raise ParameterError(f"{where} must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{where} must be a number") from None
        if not math.isfinite(number):  # nan slips through every comparison; inf through most
            raise ParameterError(f"{where} must be a finite number")
        return number
    if kind is str:
        if not isinstance(value, str):
            raise ParameterError(f"{where} must be a string")
        return value
    return value  # pragma: no cover - every field above is bool/int/float/str


def section_from_dict(klass: type, section: str, values: Mapping[str, Any], *,
                      base: Any = None, source: str = "config") -> Any:
    """Build one section's dataclass from ``values`` over ``base`` (or the defaults)."""
    types = _field_types(klass)
    for key in values:
        if key not in types:
            raise ParameterError(
                f"{source}: unknown key '{section}.{key}' (known: {', '.join(types)})")
    try:
        converted = {k: coerce(section, k, v, types[k]) for k, v in values.items()}
        return klass(**converted) if base is None else dataclasses.replace(base, **converted)
    except ParameterError as exc:  # the rule broken, and where the value came from
        raise ParameterError(f"{source}: {exc}") from None


def key_fields(cfg: Any) -> dict[str, Any]:
    """The fields of a stage config that change its output (the ones in the cache key)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.metadata.get("key", True)}


def parse_set(expr: str) -> tuple[str, str, Any]:
    """Split ``stage.key=value``; the value is read as a TOML literal, else kept as a string."""
    if "=" not in expr or "." not in expr.split("=", 1)[0]:
        raise ParameterError(f"--set {expr!r} must look like stage.key=value")
    lhs, raw = expr.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ParameterError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:  # a folder, a FIFO, no permission
        raise ParameterError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None


def build_config(config_file: str | Path | None = None, overrides: tuple[str, ...] | list[str] = (),
                 base: Config | None = None, sources: dict[str, str] | None = None
                 ) -> tuple[Config, dict[str, Any], frozenset[str]]:
    """Layer defaults (or ``base``), the TOML file and ``--set`` overrides.

    Returns the config, the file's non-stage tables (e.g. ``[run]``) for the caller, and the
    ``"section.key"`` names the overrides set (so nothing needs to parse ``--set`` again).
    ``sources``, when given, is filled with where each setting the user gave came from:
    ``"section.key"`` -> the config file's name or ``"--set"`` (the latter wins).
    """
    data: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if config_file is not None:
        raw = load_toml(config_file)
        for name, values in raw.items():
            if not isinstance(values, Mapping):
                raise ParameterError(f"{config_file}: {name!r} must be a table ([{name}]), "
                                     f"got {values!r}")
            (data if name in SECTIONS else extra)[name] = values
    unknown_extra = set(extra) - {"run"}
    if unknown_extra:
        raise ParameterError(
            f"{config_file}: unknown section {sorted(unknown_extra)[0]!r} "
            f"(known: {', '.join(SECTIONS)}, run)")
    for expr in overrides:
        section, key, value = parse_set(expr)
        if section not in SECTIONS:
            raise ParameterError(
                f"--set {expr!r}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
        data.setdefault(section, {})[key] = value
    base = base or Config()
    parts = {}
    for name, klass in SECTIONS.items():
        src = "command line" if not config_file else f"{config_file} / --set"
        parts[name] = section_from_dict(klass, name, data.get(name, {}), base=getattr(base, name),
                                        source=src)
    given = frozenset(f"{section}.{key}" for section, key, _ in map(parse_set, overrides))
    if sources is not None:
        sources.update({f"{section}.{key}": str(config_file) for section, table in raw.items()
                        if section in SECTIONS for key in table} if config_file is not None else {})
        sources.update({name: "--set" for name in given})
    return Config(**parts), extra, given
