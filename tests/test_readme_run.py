"""The README's printed ``make run`` output is what ``python -m pipeline run`` prints today, so it
cannot go stale when a model is retrained or a metric changes."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMING = re.compile(r" in [0-9.]+ s = [0-9.]+x real time$")  # the last line's figures vary


def _readme_block() -> list[str]:
    """The code block after "On a clean clone it prints:" in the README's set-up section."""
    text = (ROOT / "README.md").read_text()
    after = text.split("On a clean clone it prints:", 1)[1]
    block = after.split("```\n", 2)[1]
    return block.rstrip("\n").splitlines()


def _comparable(lines: list[str]) -> list[str]:
    return [TIMING.sub("", line.rstrip()) for line in lines]


@pytest.mark.slow
def test_the_readme_shows_what_make_run_prints(tmp_path):
    """``make run`` is ``python -m pipeline run`` in the repository: run it the same way in a
    folder whose ``data`` and ``models`` are the repository's (its defaults are relative paths),
    with the cache and ``out/`` there, and compare stdout with the README's block: the table,
    the metric lines and the summary but its timing."""
    for name in ("data", "models"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    run = subprocess.run([sys.executable, "-m", "pipeline", "run"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "out").is_dir() and (tmp_path / ".pipeline-cache").is_dir()  # not the repo's
    printed, readme = _comparable(run.stdout.splitlines()), _comparable(_readme_block())
    assert printed[-1].startswith("predict: 4 files: 4 computed, 0 cached") and printed[-1] != run.stdout.splitlines()[-1]
    assert len(readme) > 10 and readme == printed, "\n".join(["README:", *readme, "run printed:", *printed])
