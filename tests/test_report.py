"""report.py: the text tables and the SVG pieces of the HTML page."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from pipeline.labels import Segment
from pipeline.metrics import evaluate_files
from pipeline.report import _curve_svg, _hist_svg, format_per_file, format_table


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
