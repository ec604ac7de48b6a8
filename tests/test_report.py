"""report.py: the text tables and the SVG pieces of the HTML page."""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.labels import Segment
from pipeline.metrics import evaluate_files
from pipeline.plot import lane_rows
from pipeline.report import _curve_svg, _hist_svg, _timeline_svg, format_per_file, format_table


def _report():
    ref = {"a.wav": [Segment(0.0, 1.0, "speech")], "b.wav": []}
    pred = {"a.wav": [Segment(0.0, 0.5, "speech")], "b.wav": []}
    return evaluate_files(ref, pred, classes=["speech"], durations={"a.wav": 2.0, "b.wav": 2.0})


def test_tables_are_aligned_and_mark_undefined_values():
    table = format_table(_report()).splitlines()
    head = table[0]
    assert head.split()[:4] == ["class", "frame", "P", "frame"]
    assert all(len(line) == len(head) for line in table[1:6] if not line.startswith("-"))
    per_file = format_per_file(_report()).splitlines()
    b = next(line for line in per_file if line.startswith("b.wav"))
    assert " - " in b + " " and "None" not in "\n".join(per_file)  # no reference, no prediction: undefined F1


def test_svg_pieces_parse_and_keep_tick_labels_inside():
    for svg in (_curve_svg([0, 0.5, 1], [0, 0.8, 1], "roc", "fpr", "tpr"), _hist_svg([1, 0, 3, 2, 0, 1], "onsets")):
        root = ET.fromstring(svg)
        width = float(root.get("width"))
        ticks = [t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("text-anchor") == "end"
                 and float(t.get("x")) > width / 2]
        assert ticks and all(float(t.get("x")) <= width for t in ticks)  # the right-hand label ends inside


# ---------------------------------------------------------------- the file cards (issue 21, item 15)

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "data" / "samples" / "noise_clip_00030"


def test_timeline_strip_lanes_follow_the_plot_and_have_a_time_axis():
    ref = [Segment(1.0, 2.0, "music"), Segment(0.0, 1.0, "speech")]
    pred = [Segment(3.0, 4.0, "speech"), Segment(5.0, 6.0, "music")]
    root = ET.fromstring(_timeline_svg(ref, pred, 20.0, ["music", "speech"]))
    bars = [r for r in root.iter(SVG + "rect") if r.find(SVG + "title") is not None]
    lane_of = {r.find(SVG + "title").text.rsplit(" ", 2)[0]: float(r.get("y")) for r in bars}
    rows = lane_rows(["music", "speech"], reference=True)
    assert rows[0] == ("reference", "music") and rows[-1] == ("predicted", "speech")
    ys = [lane_of[f"{what} {cls}"] for what, cls in rows]
    assert ys == sorted(ys)  # top to bottom as the plot's lanes, which follow lane_rows too
    assert float(bars[0].get("x").rstrip("%")) == 5.0  # 1 s of 20 s: percent of the strip's width
    ticks = [t.text for t in root.iter(SVG + "text")]
    assert ticks == ["0", "5", "10", "15", "20", "time (s)"]


def test_the_plot_lanes_read_top_down_in_lane_rows_order():
    from pipeline.plot import figure

    fig = figure(S=np.zeros((100, 4), np.float32), fps=50.0, scores=np.zeros((100, 2), np.float32),
                 classes=["music", "speech"], segments=[], reference=[], threshold=0.5)
    ax = fig.axes[-1]  # the segment lanes, under a score lane per class
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top_down = [label for _, label in sorted(zip(ax.transData.transform(
        np.c_[np.zeros(len(labels)), ax.get_yticks()])[:, 1], labels), reverse=True)]  # by display height
    assert top_down == [f"{what}: {cls}" for what, cls in lane_rows(["music", "speech"], reference=True)]


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    """One clip predicted with ``--plot`` and evaluated with ``--report``."""
    tmp = tmp_path_factory.mktemp("rep")
    (tmp / "ref").mkdir()
    shutil.copy(CLIP.with_suffix(".tsv"), tmp / "ref")
    r = CliRunner().invoke(cli, ["-q", "--cache-dir", str(tmp / "cache"), "predict", str(CLIP.with_suffix(".flac")),
                                 "--model", str(ROOT / "models" / "vad"), "--out", str(tmp / "pred"), "--plot",
                                 "--ref", str(ROOT / "data" / "samples")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["-q", "evaluate", "--pred", str(tmp / "pred"), "--ref", str(tmp / "ref"),
                                 "--report", str(tmp / "rep")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return tmp


def test_a_moved_report_keeps_its_links(plotted, tmp_path):
    moved = tmp_path / "elsewhere" / "report"
    shutil.copytree(plotted / "rep", moved)
    page = (moved / "index.html").read_text()
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert hrefs and all(not h.startswith(("/", "file:")) for h in hrefs)
    for h in hrefs:  # relative to the page's own folder, and there
        target = moved / unquote(h)
        assert target.is_file() and moved in target.resolve().parents, h
        assert target.read_bytes() == (plotted / "pred" / "noise_clip_00030.png").read_bytes()


def test_the_strip_spans_exactly_the_plots_time_axis(plotted):
    import matplotlib.image as mpimg

    page = (plotted / "rep" / "index.html").read_text()
    left, width = map(float, re.search(r'class="strip" style="margin-left:([\d.]+)%;width:([\d.]+)%"', page).groups())
    img = mpimg.imread(plotted / "pred" / "noise_clip_00030.png")[..., :3]
    # the lanes' axes frame: the dark columns of a row through the lanes' panel
    row = img[int(img.shape[0] * 0.9)]
    dark = np.flatnonzero(row.max(axis=1) < 0.2)
    x0, x1 = dark[0], dark[-1] + 1
    # within the frame line's own width (0.8 pt = 1 px, snapped to whole pixels)
    assert abs(left / 100 * img.shape[1] - x0) <= 2
    assert abs((left + width) / 100 * img.shape[1] - x1) <= 2
    ticks = re.findall(r'text-anchor="middle">([\d.]+)</text>', page.split('class="strip"')[1])
    assert ticks[0] == "0" and ticks[-1] == "20"  # the plot's axis ends at 20.0 s


def test_a_clip_without_reference_speech_shows_how_much_was_called(tmp_path):
    from pipeline.evaluate import evaluate_dir

    for d in ("pred", "ref"):
        (tmp_path / d).mkdir()
    head = "onset\toffset\tevent_label\n"
    (tmp_path / "ref" / "a.tsv").write_text(head + "0.0\t1.0\tspeech\n")
    (tmp_path / "ref" / "b.tsv").write_text(head)
    (tmp_path / "pred" / "a.tsv").write_text(head + "0.0\t1.0\tspeech\n")
    (tmp_path / "pred" / "b.tsv").write_text(head + "0.5\t1.0\tspeech\n")
    (tmp_path / "all.uem").write_text("a 1 0.0 2.0\nb 1 0.0 2.0\n")
    evaluate_dir(tmp_path / "pred", tmp_path / "ref", uem=tmp_path / "all.uem", report_dir=tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text()
    card = page.split('<div class="name">b</div>')[1].split('<div class="file">')[0]
    assert "frame F1" not in card and "no reference speech; 25.0 % of frames called speech" in card
    assert "frame F1 1.000" in page.split('<div class="name">a</div>')[1]


def test_a_plot_that_cannot_be_copied_is_a_warning_and_a_card_without_it(plotted, tmp_path):
    rep = tmp_path / "rep"
    (rep / "plots").mkdir(parents=True)
    (rep / "plots" / "noise_clip_00030.png").write_bytes(b"my own picture")  # not the pipeline's to replace
    r = CliRunner().invoke(cli, ["evaluate", "--pred", str(plotted / "pred"), "--ref", str(plotted / "ref"),
                                 "--report", str(rep)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    warning = [line for line in r.output.splitlines() if "left out of the report" in line]
    assert len(warning) == 1 and "noise_clip_00030" in warning[0] and "not written by the pipeline" in warning[0]
    page = (rep / "index.html").read_text()
    assert "noise_clip_00030" in page and "<img" not in page
    assert (rep / "plots" / "noise_clip_00030.png").read_bytes() == b"my own picture"
