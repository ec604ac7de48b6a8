"""Audio sequence pipeline: cached decode, spectrograms, chunks and recurrent frame models.

Importing the package is cheap (no numpy, torch or librosa): the command line's ``--help`` and
its planning steps stay fast. The public API (``pipeline.load_model``, ``pipeline.logmel``, ...)
is imported on first use; see :mod:`pipeline.api`.
"""
__version__ = "0.1.0"

from .errors import AudioLoadError, CacheError, LabelError, ParameterError, PipelineError  # noqa: E402

__all__ = ["PipelineError", "ParameterError", "AudioLoadError", "LabelError", "CacheError",
           "__version__", "load_model", "fine_tune", "Model", "Segment", "load_audio",
           "stft", "power", "mel", "logmel", "mfcc", "fbank"]

# the public API, imported on first use so that ``import pipeline`` stays cheap
_LAZY = {"load_model": "api", "fine_tune": "api", "Model": "api", "Segment": "labels", "load_audio": "audio",
         **{kind: "features" for kind in ("stft", "power", "mel", "logmel", "mfcc", "fbank")}}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
