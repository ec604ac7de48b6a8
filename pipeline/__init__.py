"""Audio sequence pipeline: cached decode, spectrograms, chunks and recurrent frame models.

Importing the package is cheap (no numpy, torch or librosa): the command line's ``--help`` and
its planning steps stay fast. Import the stage modules (``pipeline.audio``,
``pipeline.features``, ...) for the computations.
"""
__version__ = "0.1.0"

from .errors import AudioLoadError, CacheError, LabelError, ParameterError, PipelineError  # noqa: E402

__all__ = ["PipelineError", "ParameterError", "AudioLoadError", "LabelError", "CacheError",
           "__version__"]
