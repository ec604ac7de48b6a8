"""The output folder: names derived from inputs stay inside it, and only its own files are replaced."""
from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from pipeline.errors import ParameterError
from pipeline.outputs import LOCK, RECORD, OutputDir, OutputError, output_suffixes, parse_formats


def test_writes_record_and_replace_only_own_unchanged_files(tmp_path):
    out = OutputDir(tmp_path / "o")
    target = out.path(PurePosixPath("a/b"), ".tsv")
    out.write(target, lambda p: p.write_text("one"))
    rows = [json.loads(line) for line in (tmp_path / "o" / RECORD).read_text().splitlines()]
    assert rows == [{"path": "a/b.tsv", "size": 3, "mtime_ns": target.stat().st_mtime_ns}]
    with pytest.raises(OutputError, match="already written by another input of this run"):
        out.write(target, lambda p: p.write_text("two"))
    again = OutputDir(tmp_path / "o")  # a later run
    again.write(target, lambda p: p.write_text("two"))
    assert target.read_text() == "two"
    target.write_text("edited by hand")
    with pytest.raises(OutputError, match="changed since the pipeline wrote it"):
        OutputDir(tmp_path / "o").write(target, lambda p: p.write_text("three"))
    assert target.read_text() == "edited by hand"
    assert [p.name for p in (tmp_path / "o" / "a").iterdir()] == ["b.tsv"]  # no temporaries left


def test_runs_at_once_replace_each_others_files_but_not_a_users(tmp_path):
    """Two runs open the folder before either writes (two predicts at once): each sees the files the
    other recorded since, so both may replace them; a file no run wrote stays refused."""
    a, b = OutputDir(tmp_path / "o"), OutputDir(tmp_path / "o")
    x = a.path(PurePosixPath("x"), ".tsv")
    a.write(x, lambda p: p.write_text("from a"))
    b.write(x, lambda p: p.write_text("from b"))  # was: "exists and was not written by the pipeline"
    y = b.path(PurePosixPath("d/y"), ".tsv")
    b.write(y, lambda p: p.write_text("from b"))
    a.write(y, lambda p: p.write_text("from a"))
    assert (x.read_text(), y.read_text()) == ("from b", "from a")
    (tmp_path / "o" / "mine.tsv").write_text("the user's")
    with pytest.raises(OutputError, match="mine.tsv: exists and was not written by the pipeline"):
        b.write(b.path(PurePosixPath("mine"), ".tsv"), lambda p: p.write_text("from b"))
    later = OutputDir(tmp_path / "o")
    for t in (x, y):
        later.write(t, lambda p: p.write_text("later"))
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [RECORD, LOCK, "d", "mine.tsv", "x.tsv"]


def test_messages_name_the_option_that_gave_the_folder(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "index.html").write_text("<p>mine</p>")
    out = OutputDir(tmp_path / "r", option="--report")
    with pytest.raises(OutputError, match=r"index.html: exists and was not written by the pipeline; not "
                                          r"overwritten \(move it away or choose another --report\)"):
        out.write(out.path(PurePosixPath("index"), ".html"), lambda p: p.write_text("report"))


def test_a_failing_writer_leaves_nothing(tmp_path):
    out = OutputDir(tmp_path / "o")

    def broken(p):
        p.write_text("half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OutputError, match="cannot write \\(No space left on device\\)"):
        out.write(out.path(PurePosixPath("x"), ".tsv"), broken)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [RECORD, LOCK]


def test_the_record_is_compacted_and_torn_lines_are_ignored(tmp_path):
    out = OutputDir(tmp_path / "o")
    for _ in range(100):  # reruns append a line each
        out = OutputDir(tmp_path / "o")
        out.write(out.path(PurePosixPath("x"), ".tsv"), lambda p: p.write_text("x"))
    lines = (tmp_path / "o" / RECORD).read_text().splitlines()
    assert len(lines) <= 2 * 1 + 64 + 1  # rewritten with one line a file once it grew
    with open(tmp_path / "o" / RECORD, "a") as fh:
        fh.write('{"path": "torn')  # a run killed mid-append
    out = OutputDir(tmp_path / "o")
    out.write(out.path(PurePosixPath("y"), ".tsv"), lambda p: p.write_text("y"))
    lines = (tmp_path / "o" / RECORD).read_text().splitlines()
    assert lines[-2] == '{"path": "torn' and json.loads(lines[-1])["path"] == "y.tsv"
    again = OutputDir(tmp_path / "o")
    again.write(again.path(PurePosixPath("x"), ".tsv"), lambda p: p.write_text("x2"))  # still ours


def test_unwritable_out_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="--out .*file/o: cannot write there"):
        OutputDir(tmp_path / "file" / "o")


def test_formats_and_suffixes():
    assert parse_formats("rttm, npy,") == ["rttm", "npy"]
    with pytest.raises(ParameterError, match="--format 'csv' must be among"):
        parse_formats("csv")
    assert output_suffixes(["npy", "rttm"], plot=True) == [".tsv", ".scores.npy", ".rttm", ".scores.json", ".png"]
