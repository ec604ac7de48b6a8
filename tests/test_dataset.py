"""DATASET arguments: labelled audio as a folder, a DCASE metadata TSV or a manifest."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.dataset import load_dataset
from pipeline.errors import LabelError, ParameterError
from pipeline.labels import Segment, write_labels


def _wav(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)
    return path


def test_folder_with_labels_beside_each_clip(tmp_path):
    _wav(tmp_path / "a.wav")
    write_labels([Segment(0.1, 0.5, "dog")], tmp_path / "a.tsv")
    _wav(tmp_path / "sub" / "b.wav")
    write_labels([Segment(0.2, 0.4, "cat")], tmp_path / "sub" / "b.TextGrid", duration=1.0)
    _wav(tmp_path / "c.wav")  # no label file: no events
    ds = load_dataset(tmp_path)
    assert [i.name for i in ds.items] == ["a.wav", "c.wav", "sub/b.wav"]
    assert ds.classes == ("cat", "dog")
    assert ds.items[2].segments == (Segment(0.2, 0.4, "cat"),) and ds.items[1].segments == ()


def test_dcase_metadata_in_a_folder_or_named(tmp_path):
    _wav(tmp_path / "audio" / "x.wav")
    _wav(tmp_path / "audio" / "y.wav")
    write_labels({"audio/x.wav": [Segment(0.0, 0.5, "dog")], "audio/y.wav": []}, tmp_path / "meta.tsv",
                 fmt="dcase")
    for spec in (tmp_path, tmp_path / "meta.tsv"):
        ds = load_dataset(spec)
        assert [(i.name, i.segments) for i in ds.items] == [
            ("audio/x.wav", (Segment(0.0, 0.5, "dog"),)), ("audio/y.wav", ())]


def test_manifest_with_path_and_labels_columns(tmp_path):
    _wav(tmp_path / "a.wav")
    write_labels([Segment(0.1, 0.2, "dog")], tmp_path / "a.json")
    (tmp_path / "m.csv").write_text("path,labels\na.wav,a.json\n")
    ds = load_dataset(tmp_path / "m.csv")
    assert ds.items[0].segments == (Segment(0.1, 0.2, "dog"),) and ds.classes == ("dog",)
    (tmp_path / "m.csv").write_text("path,labels\na.wav,gone.json\n")
    with pytest.raises(LabelError, match=r"m.csv: line 2: label file .*gone.json does not exist"):
        load_dataset(tmp_path / "m.csv")
    (tmp_path / "n.csv").write_text("path\na.wav\n")
    with pytest.raises(ParameterError, match="n.csv: a dataset manifest needs 'path' and 'labels' columns"):
        load_dataset(tmp_path / "n.csv")


def test_bad_datasets_are_one_line_errors_naming_the_rule(tmp_path):
    with pytest.raises(ParameterError, match="the dataset is empty"):
        load_dataset(tmp_path)
    write_labels({"gone.wav": [Segment(0.0, 1.0, "dog")]}, tmp_path / "meta.tsv", fmt="dcase")
    with pytest.raises(LabelError, match="labels name audio that is missing: .*gone.wav"):
        load_dataset(tmp_path / "meta.tsv")
    with pytest.raises(ParameterError, match="a DATASET must be a folder of audio with labels"):
        load_dataset(tmp_path / "nothing")
    _wav(tmp_path / "d" / "a.wav")
    write_labels([Segment(0.0, 0.5, "bird")], tmp_path / "d" / "a.tsv")
    with pytest.raises(LabelError, match="label 'bird' is not one of the model's classes"):
        load_dataset(tmp_path / "d", classes=["dog"])
    assert load_dataset(tmp_path / "d", classes=["bird", "dog"]).classes == ("bird", "dog")
