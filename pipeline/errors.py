"""One family of errors, each message naming the thing, the value and the rule broken.

The command line turns a :class:`PipelineError` into one line and exit code 1 (2 for usage
errors); ``-v`` shows the traceback. Nothing here imports numpy or torch.
"""


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ParameterError(PipelineError, ValueError):
    """A setting or argument breaks a rule: ``"hop_length=0 must be a positive integer"``."""


class AudioLoadError(PipelineError):
    """A file cannot be decoded, or decodes to audio that breaks a rule (empty, non-finite)."""


class LabelError(PipelineError):
    """A label file is malformed; the message names the file and the line."""


class TierError(LabelError, ParameterError):
    """A TextGrid lacks the tier that ``--tier`` asked for: the option's fault (exit code 2)."""


class CacheError(PipelineError):
    """A cache entry is missing, corrupt, or cannot be written."""


class ModelError(ParameterError):
    """A model directory is missing, malformed or unsafe; a usage error (exit code 2)."""
