"""One family of errors, and the exit code each kind maps to on the command line."""
from __future__ import annotations

import pytest

from pipeline import errors
from pipeline.cli import main


def test_family():
    for name in ("ParameterError", "AudioLoadError", "LabelError", "CacheError", "ModelError"):
        assert issubclass(getattr(errors, name), errors.PipelineError)
    assert issubclass(errors.ModelError, errors.ParameterError)  # a broken model is a usage error
    assert issubclass(errors.ParameterError, ValueError)


@pytest.mark.parametrize("args, code", [(["--set", "load.sr=0", "load", "x.wav"], 2),
                                         (["load", "/nonexistent/x.wav"], 1),
                                         (["--help"], 0)])
def test_exit_codes(capsys, tmp_path, args, code):
    try:
        main(["--cache-dir", str(tmp_path)] + args)
        got = 0
    except SystemExit as exc:
        got = exc.code or 0
    assert got == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
