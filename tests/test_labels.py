"""Label readers/writers and frame rasterisation."""
import json
import warnings

import numpy as np
import pytest

from pipeline.errors import LabelError, ParameterError
from pipeline.labels import (
    Segment, class_names, find_label_file, frames_to_segments, read_audacity, read_dcase,
    read_json, read_labels, read_rttm, segments_to_frames, write_labels,
)

FPS = 100.0
SEGS = [Segment(0.0, 1.25, "speech"), Segment(0.5, 0.75, "dog"), Segment(2.1234, 3.5678, "dog")]
SUFFIX = {"dcase": ".tsv", "rttm": ".rttm", "audacity": ".txt", "json": ".json"}


def assert_close(got, want, tol=1e-3):
    assert len(got) == len(want), (got, want)
    for g, w in zip(sorted(got), sorted(want)):
        assert g.label == w.label
        assert abs(g.onset - w.onset) <= tol and abs(g.offset - w.offset) <= tol, (g, w)


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_round_trip_one_clip(tmp_path, fmt):
    path = tmp_path / f"clip{SUFFIX[fmt]}"
    write_labels(SEGS, path, fmt=fmt, name="clip")
    got = read_labels(path, default_name="clip")
    assert list(got) == ["clip"]
    assert_close(got["clip"], SEGS)


@pytest.mark.parametrize("fmt", ["dcase", "rttm", "json"])
def test_round_trip_many_files(tmp_path, fmt):
    labels = {"a.wav": SEGS, "b.wav": [Segment(0.01, 0.02, "cat")]}
    path = tmp_path / f"meta{SUFFIX[fmt]}"
    write_labels(labels, path, fmt=fmt)
    got = read_labels(path)
    assert sorted(got) == ["a.wav", "b.wav"]
    for name in labels:
        assert_close(got[name], labels[name])


def test_writer_formats(tmp_path):
    write_labels(SEGS, tmp_path / "c.tsv", name="c")
    lines = (tmp_path / "c.tsv").read_text().splitlines()
    assert lines[0] == "onset\toffset\tevent_label"
    assert "2.123\t3.568\tdog" in lines
    write_labels({"c.wav": SEGS, "e.wav": []}, tmp_path / "m.tsv")
    lines = (tmp_path / "m.tsv").read_text().splitlines()
    assert lines[0] == "filename\tonset\toffset\tevent_label"
    assert read_dcase(tmp_path / "m.tsv")["e.wav"] == []
    write_labels(SEGS, tmp_path / "c.rttm", name="c")
    first = (tmp_path / "c.rttm").read_text().splitlines()[0].split()
    assert first == ["SPEAKER", "c", "1", "0.000", "1.250", "<NA>", "<NA>", "speech", "<NA>",
                     "<NA>"]


def test_dcase_metadata_with_empty_event_row(tmp_path):
    path = tmp_path / "meta.tsv"
    path.write_text("filename\tonset\toffset\tevent_label\n"
                    "a.wav\t0.5\t1.0\tdog\n"
                    "silent.wav\t\t\t\n"
                    "b.wav\t0.0\t2.0\tcat\n"
                    "also_silent.wav\n"
                    "a.wav\t0.1\t0.2\tcat\n")
    got = read_labels(path)
    assert got == {"a.wav": [Segment(0.1, 0.2, "cat"), Segment(0.5, 1.0, "dog")],
                   "silent.wav": [], "b.wav": [Segment(0.0, 2.0, "cat")],
                   "also_silent.wav": []}
    assert class_names(got) == ["cat", "dog"]


def test_dcase_headerless_and_per_clip_key(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("0.5\t1.0\tdog\n1.5\t2.0\tcat\n")
    assert read_dcase(path) == {"x": [Segment(0.5, 1.0, "dog"), Segment(1.5, 2.0, "cat")]}
    assert list(read_dcase(path, default_name="sub/x.wav")) == ["sub/x.wav"]


def test_audacity_skips_spectral_lines_and_rttm_comments(tmp_path):
    aud = tmp_path / "a.txt"
    aud.write_text("0.5\t1.0\tdog bark\n\\\t100.0\t2000.0\n1.5\t2.5\tcat\n")
    assert read_audacity(aud)["a"] == [Segment(0.5, 1.0, "dog bark"), Segment(1.5, 2.5, "cat")]
    rttm = tmp_path / "a.rttm"
    rttm.write_text(";; comment\nSPEAKER f 1 0.5 1.5 <NA> <NA> spk1 <NA> <NA>\n")
    assert read_rttm(rttm) == {"f": [Segment(0.5, 2.0, "spk1")]}


def test_json_shapes_and_event_label_key(tmp_path):
    path = tmp_path / "j.json"
    path.write_text(json.dumps([{"onset": 0, "offset": 1, "event_label": "dog"}]))
    assert read_json(path, default_name="j.wav") == {"j.wav": [Segment(0.0, 1.0, "dog")]}
    path.write_text(json.dumps({"a.wav": [{"onset": 1, "offset": 2, "label": "x"}], "b.wav": []}))
    assert read_json(path) == {"a.wav": [Segment(1.0, 2.0, "x")], "b.wav": []}


# ---------------------------------------------------------------- malformed files

@pytest.mark.parametrize("name, text, rule", [
    ("bad.tsv", "onset\toffset\tevent_label\n0.5\t1.0\tdog\n2.0\t1.0\tdog\n",
     "onset=2 > offset=1"),
    ("bad.tsv", "onset\toffset\tevent_label\n0.5\t1.0\tdog\n-1.0\t1.0\tdog\n", "negative"),
    ("bad.tsv", "onset\toffset\tevent_label\n0.5\t1.0\tdog\nabc\t1.0\tdog\n", "not a number"),
    ("bad.tsv", "onset\toffset\tevent_label\n0.5\t1.0\tdog\n0.5\t1.0\n", "expected 3 columns"),
    ("bad.tsv", "\n\nfilename\tstart\toffset\tevent_label\n",
     "header columns .*start.* are unknown"),
    ("bad.tsv", "\n\nonset\toffset\n0\t1\n", "header columns .* missing"),
    ("bad.tsv", "0.5\t1.0\tdog\n\n0.5\t1.0\n", "expected 3 columns"),
    ("bad.rttm", "SPEAKER f 1 0.5 1 <NA> <NA> a <NA> <NA>\nSPEAKER f 1 x 1 <NA> <NA> a\n",
     "not a number"),
    ("bad.rttm", "SPEAKER f 1 0 1 <NA> <NA> a <NA> <NA>\nSPEAKER f 1 0.5 -1 <NA> <NA> a\n",
     "duration=-1 is negative"),
    ("bad.rttm", "SPEAKER f 1 0 1 <NA> <NA> a <NA> <NA>\nSPEAKER f 1 0.5 1\n", "expected 10"),
    ("bad.rttm", "SPEAKER f 1 0 1 <NA> <NA> a <NA> <NA>\nonset offset label\n",
     "unknown RTTM type"),
    ("bad.txt", "0.5\t1.0\tdog\n3.0\t2.0\tdog\n", "onset=3 > offset=2"),
    ("bad.txt", "0.5\t1.0\tdog\n0.5 1.0\n", "expected 3 columns"),
])
def test_malformed_rows_name_file_and_line(tmp_path, name, text, rule):
    path = tmp_path / name
    path.write_text(text)
    line = 3 if name.endswith(".tsv") else 2
    with pytest.raises(LabelError, match=rf"bad\.\w+: line {line}: .*{rule}"):
        read_labels(path)


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a.wav": [{"onset": 0, "offset": 1, "label": "x"},\n'
                    '{"onset": 2, "offset": 1, "label": "x"}]}')
    with pytest.raises(LabelError, match=r"bad\.json: 'a.wav' event 2: onset=2 > offset=1"):
        read_labels(path)
    path.write_text('[\n{"onset": 0, "offset": 1,}\n]')
    with pytest.raises(LabelError, match=r"bad\.json: line 2: invalid JSON"):
        read_labels(path)
    path.write_text('[{"onset": "soon", "offset": 1, "label": "x"}]')
    with pytest.raises(LabelError, match=r"bad\.json: 'bad' event 1: onset='soon' is not a number"):
        read_labels(path)


def test_unknown_format_and_unwritable(tmp_path):
    with pytest.raises(ParameterError, match="fmt="):
        read_labels(tmp_path / "x.lab")
    with pytest.raises(ParameterError, match="needs name="):
        write_labels(SEGS, tmp_path / "x.rttm")
    with pytest.raises(ParameterError, match="one clip"):
        write_labels({"a": SEGS, "b": SEGS}, tmp_path / "x.txt")


def test_every_name_can_be_written_separators_become_underscores(tmp_path):
    """RTTM cannot hold whitespace in a file id or label, TSV/Audacity no tab or line break:
    each such character is written as ``_`` instead of failing the file."""
    write_labels([Segment(0, 1, "two words")], tmp_path / "x.rttm", name="my file\nname")
    assert read_labels(tmp_path / "x.rttm") == {"my_file_name": [Segment(0, 1, "two_words")]}
    write_labels({"a\tb.wav": [Segment(0, 1, "dog")]}, tmp_path / "m.tsv")
    assert read_labels(tmp_path / "m.tsv") == {"a_b.wav": [Segment(0, 1, "dog")]}


def test_audacity_columns_separated_by_spaces(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text("0.5 1.25 dog bark\n2\t3\tcat\n")
    assert read_labels(path) == {"clip": [Segment(0.5, 1.25, "dog bark"), Segment(2, 3, "cat")]}


# ---------------------------------------------------------------- frames

def test_rasterise_then_segment_is_identity():
    classes = ["a", "b", "c"]
    n = 50
    segs = [Segment(0 / FPS, 3 / FPS, "a"), Segment(2 / FPS, 10 / FPS, "b"),
            Segment(5 / FPS, 7 / FPS, "a"), Segment(6 / FPS, 8 / FPS, "c"),
            Segment(49 / FPS, 50 / FPS, "c"), Segment(40 / FPS, 50 / FPS, "b")]
    Y = segments_to_frames(segs, classes=classes, n_frames=n, fps=FPS)
    assert Y.shape == (n, 3) and Y.dtype == np.float32
    assert Y[0, 0] == 1 and Y[3, 0] == 0 and Y[49, 2] == 1 and Y[48, 2] == 0
    back = frames_to_segments(Y, classes=classes, fps=FPS)
    assert back == sorted(segs, key=lambda s: (s.onset, s.label))


def test_frame_centres_and_float_times():
    # frame i (centre i/fps) is active iff onset <= i/fps < offset
    Y = segments_to_frames([Segment(0.015, 0.03, "x"), Segment(0.3, 0.7, "x")],
                           classes=["x"], n_frames=80, fps=FPS)
    assert np.flatnonzero(Y[:, 0]).tolist() == [2] + list(range(30, 70))
    Y = segments_to_frames([Segment(0.29, 0.57, "x")], classes=["x"], n_frames=80, fps=FPS)
    assert np.flatnonzero(Y[:, 0]).tolist() == list(range(29, 57))


def test_random_round_trip_property():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d"]
    for _ in range(200):
        n = int(rng.integers(1, 300))
        fps = float(rng.choice([100.0, 50.0, 16000 / 160, 22050 / 512, 31.25]))
        active = rng.random((n, len(classes))) < rng.random()
        segs = frames_to_segments(active, classes=classes, fps=fps)
        Y = segments_to_frames(segs, classes=classes, n_frames=n, fps=fps)
        np.testing.assert_array_equal(Y.astype(bool), active)
        assert segs == sorted(segs, key=lambda s: (s.onset, s.label))


def test_clipping_warns_with_path():
    segs = [Segment(0.0, 0.505, "x"), Segment(0.4, 0.9, "x")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within one frame of the end: no warning
        Y = segments_to_frames(segs[:1], classes=["x"], n_frames=50, fps=FPS)
    assert Y[:, 0].sum() == 50
    with pytest.warns(UserWarning, match=r"song\.tsv: 1 segment\(s\) end after the audio"):
        Y = segments_to_frames(segs, classes=["x"], n_frames=50, fps=FPS, path="song.tsv")
    assert Y.shape == (50, 1) and Y[:, 0].sum() == 50


def test_unknown_class_and_bad_shapes():
    with pytest.raises(LabelError, match=r"song\.tsv: label 'cow' is not one of the classes"):
        segments_to_frames([Segment(0, 1, "cow")], classes=["dog"], n_frames=10, fps=FPS,
                           path="song.tsv")
    with pytest.raises(ParameterError, match="shape"):
        frames_to_segments(np.zeros((10, 2)), classes=["a"], fps=FPS)
    with pytest.raises(ParameterError, match="fps"):
        segments_to_frames([], classes=["a"], n_frames=10, fps=0)


# ---------------------------------------------------------------- finding label files

def test_find_label_file(tmp_path):
    audio = tmp_path / "take.wav"
    audio.write_bytes(b"")
    assert find_label_file(audio) is None
    (tmp_path / "take.txt").write_text("recorded on tuesday, mic 2\n")  # notes, not labels
    assert find_label_file(audio) is None
    (tmp_path / "take.json").write_text("[]")
    assert find_label_file(audio) == tmp_path / "take.json"
    (tmp_path / "take.txt").write_text("0.5\t1.0\tdog\n")
    assert find_label_file(audio) == tmp_path / "take.txt"
    (tmp_path / "take.tsv").write_text("onset\toffset\tevent_label\n")
    assert find_label_file(audio) == tmp_path / "take.tsv"


# ---------------------------------------------------------------- Praat TextGrid (praatio as the oracle)

def test_textgrid_written_here_reads_the_same_in_praatio(tmp_path):
    ptg = pytest.importorskip("praatio.textgrid")
    path = tmp_path / "clip.TextGrid"
    segs = [Segment(0.5, 1.25, "speech"), Segment(1.0, 1.5, "speech"), Segment(2.0, 3.0, "speech"),
            Segment(1.0, 2.5, 'dog "rex"')]
    write_labels(segs, path, duration=4.0)
    grid = ptg.openTextgrid(str(path), includeEmptyIntervals=False)
    assert grid.maxTimestamp == 4.0 and sorted(grid.tierNames) == ['dog "rex"', "speech"]
    got = sorted(Segment(e.start, e.end, e.label) for t in grid.tiers for e in t.entries)
    # overlapping speech merged: a tier cannot hold overlaps
    assert got == sorted([Segment(0.5, 1.5, "speech"), Segment(2.0, 3.0, "speech"),
                          Segment(1.0, 2.5, 'dog "rex"')])
    assert read_labels(path) == {"clip": got}


@pytest.mark.parametrize("form", ["long_textgrid", "short_textgrid"])
def test_textgrid_written_by_praatio_reads_here(tmp_path, form):
    ptg = pytest.importorskip("praatio.textgrid")
    from praatio.data_classes.interval_tier import IntervalTier
    from praatio.data_classes.point_tier import PointTier

    grid = ptg.Textgrid()
    grid.addTier(IntervalTier("words", [(0.25, 0.8, "hello"), (1.1, 1.9, "world")], 0, 3.0))
    grid.addTier(PointTier("beats", [(0.5, "x")], 0, 3.0))
    grid.addTier(IntervalTier("vad", [(0.2, 2.0, "speech")], 0, 3.0))
    path = tmp_path / "utt.TextGrid"
    grid.save(str(path), format=form, includeBlankSpaces=True)
    assert read_labels(path, tier="vad") == {"utt": [Segment(0.2, 2.0, "speech")]}
    assert [s.label for s in read_labels(path)["utt"]] == ["speech", "hello", "world"]


def test_textgrid_utf16_and_bad_files_name_the_file(tmp_path):
    path = tmp_path / "u.TextGrid"
    write_labels([Segment(0.0, 1.0, "parole")], path, duration=2.0)
    path.write_bytes(path.read_text().encode("utf-16"))  # as Praat saves non-ASCII text
    assert read_labels(path)["u"] == [Segment(0.0, 1.0, "parole")]
    bad = tmp_path / "bad.TextGrid"
    bad.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\nxmin = 0\nxmax = 2\n'
                   'tiers? <exists>\nsize = 1\nitem []:\n item [1]:\n  class = "IntervalTier"\n'
                   '  name = "a"\n  xmin = 0\n  xmax = 2\n  intervals: size = 2\n'
                   '  intervals [1]:\n   xmin = 0\n   xmax = 1\n   text = "x"\n')
    with pytest.raises(LabelError, match=r"bad.TextGrid: TextGrid ends early \(expected tier 'a' interval 2 xmin\)"):
        read_labels(bad)
    bad.write_text("not a textgrid")
    with pytest.raises(LabelError, match="bad.TextGrid: "):
        read_labels(bad)
    with pytest.raises(LabelError, match="u.TextGrid: no interval tier 'x'"):
        read_labels(path, tier="x")
