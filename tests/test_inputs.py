"""INPUTS: files, folders (recursive), globs and manifests become sources with their relative names;
what is not a regular file is named without being opened."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.inputs import expand_inputs, not_regular, read_manifest


def tree(root: Path) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    for rel in ("top.wav", "a/one.flac", "a/b/two.wav"):
        sf.write(root / rel, np.zeros(160, np.float32), 16000)
    (root / "a" / "notes.txt").write_text("not audio")
    return root


def rels(sources):
    return [s.rel.as_posix() for s in sources]


def test_folder_is_searched_recursively_with_relative_names(tmp_path):
    root = tree(tmp_path / "in")
    sources, problems = expand_inputs([str(root)])
    assert problems == []
    assert rels(sources) == ["a/b/two.wav", "a/one.flac", "top.wav"]


def test_glob_roots_at_its_fixed_part_and_duplicates_collapse(tmp_path):
    root = tree(tmp_path / "in")
    sources, _ = expand_inputs([str(root / "**" / "*.wav"), str(root / "top.wav"), str(root / "a" / ".." / "top.wav")])
    assert rels(sources) == ["a/b/two.wav", "top.wav"]
    sources, problems = expand_inputs([str(root / "*.mp3")])
    assert sources == [] and problems == [f"{root / '*.mp3'}: glob matches no files"]


def test_manifests_csv_tsv_txt_resolve_against_their_folder(tmp_path):
    root = tree(tmp_path / "in")
    (root / "m.csv").write_text("\ufeffpath,labels\na/one.flac,\ntop.wav,\n")  # an Excel BOM too
    (root / "m.tsv").write_text("labels\tpath\nx\ta/b/two.wav\n")
    (root / "m.txt").write_text("# a comment\n\ntop.wav\n")
    assert read_manifest(root / "m.csv") == [root / "a/one.flac", root / "top.wav"]
    sources, problems = expand_inputs([str(root / "m.csv"), str(root / "m.tsv"), str(root / "m.txt")])
    assert problems == [] and rels(sources) == ["a/b/two.wav", "a/one.flac", "top.wav"]


def test_missing_paths_fail_later_by_name_and_empty_folders_now(tmp_path):
    (tmp_path / "empty").mkdir()
    sources, problems = expand_inputs([str(tmp_path / "nope.wav"), str(tmp_path / "empty")])
    assert rels(sources) == ["nope.wav"]  # the load stage names it ("cannot read")
    assert len(problems) == 1 and "directory holds no audio files" in problems[0]


def test_not_regular(tmp_path):
    os.mkfifo(tmp_path / "p.wav")
    (tmp_path / "l.wav").symlink_to(tmp_path / "l.wav")
    (tmp_path / "d.wav").symlink_to(tmp_path / "missing.wav")
    sf.write(tmp_path / "ok.wav", np.zeros(10, np.float32), 16000)
    (tmp_path / "link.wav").symlink_to(tmp_path / "ok.wav")
    assert not_regular(tmp_path / "p.wav") == "a FIFO (named pipe)"
    assert not_regular(tmp_path / "l.wav") == "a symlink loop"
    assert not_regular(tmp_path / "d.wav") == "a dangling symlink"
    assert not_regular("/dev/null") == "a character device"
    assert not_regular(tmp_path) == "a directory"
    assert not_regular(tmp_path / "ok.wav") is None and not_regular(tmp_path / "link.wav") is None
    sources, problems = expand_inputs([str(tmp_path)])
    assert len(sources) == 1 and os.path.realpath(sources[0].path) == str(tmp_path / "ok.wav")  # one file, once
    assert sorted(p.split(": ", 1)[1].split(",")[0] for p in problems) == [
        "a FIFO (named pipe)", "a dangling symlink", "a symlink loop"]
