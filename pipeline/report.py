"""``evaluate --report DIR``: one self-contained HTML page (``DIR/index.html``; no network, no
server, no script library) with the table, each class's ROC and precision-recall curves, the
boundary-error histograms, and a card per file, worst file first: its plot when ``predict --plot``
wrote one (copied to ``DIR/plots/``, so the folder can be moved whole, and linked relative to it)
above a timeline strip of reference and predicted segments with a time axis, drawn under the
plot's own time axis (:data:`pipeline.plot.TIME_AXIS_KEY`) and with its lanes in the plot's order.

Figures are inline SVG drawn here; plot thumbnails are embedded as PNG data (downscaled with
Pillow when it is installed). A few lines of script record any error of the page itself in
``body[data-errors]`` and set ``body[data-ready]``, which the headless-browser test reads.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import shutil
import struct
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from .metrics import EPS, HIST_EDGES
from .plot import LANE_COLOURS, TIME_AXIS_KEY, lane_rows
from .progress import plural

W, H, PAD = 260, 200, 34  # figure size and margin, px

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:20px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;max-width:270px}figcaption{font-size:12px;color:#555}
.files{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
.file{border:1px solid #ddd;padding:8px;border-radius:4px}
.file img{width:100%;display:block}
.strip svg{display:block;overflow:visible}
.name{font-weight:600;word-break:break-all}.bad{color:#b00}
pre{background:#f6f6f6;padding:8px}
"""
SCRIPT = """
window.addEventListener('error', function (e) {
  var b = document.body; b.dataset.errors = (b.dataset.errors || '') + e.message + ';';
});
window.addEventListener('load', function () { document.body.dataset.ready = '1'; });
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _html_num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


# ---------------------------------------------------------------------------- SVG figures


def _axes(title: str, xlabel: str, ylabel: str, ymax: float = 1.0,
          xticks: tuple[str, str, str] = ("0", "0.5", "1")) -> list[str]:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" role="img" aria-label="{_e(title)}">',
           f'<rect x="{PAD}" y="8" width="{W - PAD - 8}" height="{H - PAD - 8}" fill="none" stroke="#999"/>',
           f'<text x="{W / 2}" y="{H - 4}" font-size="11" text-anchor="middle">{_e(xlabel)}</text>',
           f'<text x="10" y="{(H - PAD) / 2}" font-size="11" text-anchor="middle" '
           f'transform="rotate(-90 10 {(H - PAD) / 2})">{_e(ylabel)}</text>']
    for frac, tick, anchor in zip((0.0, 0.5, 1.0), xticks, ("middle", "middle", "end")):  # the last inside
        x, y = _xy(frac, frac * ymax, 1.0, ymax)
        out += [f'<text x="{x:.1f}" y="{H - PAD + 12}" font-size="10" text-anchor="{anchor}">{tick}</text>',
                f'<text x="{PAD - 3}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{frac * ymax:g}</text>']
    return out


def _xy(x: float, y: float, xmax: float = 1.0, ymax: float = 1.0) -> tuple[float, float]:
    return (PAD + (W - PAD - 8) * x / xmax, 8 + (H - PAD - 8) * (1 - y / ymax))


def _curve_svg(xs, ys, title: str, xlabel: str, ylabel: str) -> str:
    out = _axes(title, xlabel, ylabel)
    pts = " ".join("{:.1f},{:.1f}".format(*_xy(x, y)) for x, y in zip(xs, ys))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    return "".join(out) + "</svg>"


def _hist_svg(counts: list[int], title: str) -> str:
    """Bars of a boundary-error histogram (``metrics.HIST_EDGES``: open end bins drawn at the
    edges)."""
    top = max(counts + [1])
    out = _axes(title, "predicted - reference (s)", "events", ymax=float(top),
                xticks=("&lt;-0.5", "0", "&gt;0.5"))
    n = len(counts)
    bw = (W - PAD - 8) / n
    for k, c in enumerate(counts):
        x0, y0 = PAD + k * bw, _xy(0, c, 1.0, float(top))[1]
        colour = "#d62728" if k in (0, n - 1) else "#2ca02c"
        out.append(f'<rect x="{x0 + 0.5:.1f}" y="{y0:.1f}" width="{bw - 1:.1f}" '
                   f'height="{H - PAD - y0:.1f}" fill="{colour}"><title>{_bin(k)}: {c}</title></rect>')
    return "".join(out) + "</svg>"


def _bin(k: int) -> str:
    a, b = HIST_EDGES[k], HIST_EDGES[k + 1]
    return f"[{a:g}, {b:g}) s"


def _ticks(end: float, n: int = 5) -> list[float]:
    """Round tick positions (1, 2 or 5 times a power of ten apart) from 0 to ``end`` seconds."""
    if not end > 0:
        return [0.0]
    raw = end / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw - EPS)
    return [k * step for k in range(int(math.floor(end / step + EPS)) + 1)]


def _timeline_svg(ref, pred, duration: float, classes: list[str]) -> str:
    """Reference (green) and predicted (orange) segments of one file from 0 to ``duration``
    seconds across the whole width (percent coordinates), one lane per (source, class) in
    :func:`pipeline.plot.lane_rows` order, and a time axis below."""
    lane, axis = 9, 26
    rows = lane_rows(classes, reference=True)
    h = lane * len(rows) + 4
    pct = 100 / max(duration, EPS)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="{h + axis}" role="img" '
           f'aria-label="segments against time">', f'<rect width="100%" height="{h}" fill="#f7f7f7"/>']
    segs = {"reference": ref, "predicted": pred}
    for r, (what, label) in enumerate(rows):
        y = 2 + r * lane
        for s in segs[what]:
            if s.label == label and s.offset > 0 and s.onset < duration:
                x0, x1 = max(s.onset, 0.0) * pct, min(s.offset, duration) * pct
                out.append(f'<rect x="{x0:.3f}%" y="{y}" width="{max(x1 - x0, 0.1):.3f}%" height="{lane - 2}" '
                           f'fill="{LANE_COLOURS[what]}"><title>{what} {_e(label)} {s.onset:.2f}-{s.offset:.2f} s'
                           f'</title></rect>')
    out.append(f'<line x1="0" x2="100%" y1="{h}" y2="{h}" stroke="#333"/>')
    for t in _ticks(duration):
        x = f"{t * pct:.3f}%"
        out.append(f'<line x1="{x}" x2="{x}" y1="{h}" y2="{h + 4}" stroke="#333"/>'
                   f'<text x="{x}" y="{h + 14}" font-size="10" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="50%" y="{h + axis - 1}" font-size="10" text-anchor="middle">time (s)</text>')
    return "".join(out) + "</svg>"


def png_time_axis(data: bytes) -> dict | None:
    """The time axis a plot recorded in its PNG text chunk (:func:`pipeline.plot.plot_file`), or
    None (an older plot, or not one of ours)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos, key = 8, TIME_AXIS_KEY.encode("latin-1") + b"\0"
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and body.startswith(key):
            try:
                axis = json.loads(body[len(key):].decode("latin-1"))
                if 0 <= axis["left"] < axis["right"] <= 1 and axis["end"] > axis["start"] == 0:
                    return axis
            except (ValueError, KeyError, TypeError):
                pass
            return None
        if kind in (b"IDAT", b"IEND"):  # matplotlib writes text before the image data
            return None
        pos += 12 + length
    return None


# ---------------------------------------------------------------------------- page parts


def _table(report: dict) -> str:

    rows = list(report["per_class"].items())
    rows += [("overall", report["overall"]), ("class average", report["class_average"])]
    head = "".join(f"<th>{_e(t)}</th>" for t, _, _ in TABLE_COLUMNS)
    body = "".join("<tr><td>{}</td>{}</tr>".format(
        _e(name), "".join(f"<td>{_cell(m, v, k)}</td>" for _, v, k in TABLE_COLUMNS))
        for name, m in rows)
    notes = "".join(f"<li>{_e(n)}</li>" for n in _notes(report))
    return f"<table><tr><th>class</th>{head}</tr>{body}</table><ul>{notes}</ul>"


def _curves(report: dict) -> str:
    figs = []
    for label, c in (report.get("curves") or {}).items():
        if not c["fpr"]:
            continue
        auc = report["per_class"][label]["frame"].get("auc")
        ap = report["per_class"][label]["frame"].get("ap")
        figs.append(f"<figure>{_curve_svg(c['fpr'], c['tpr'], 'ROC', 'false positive rate', 'true positive rate')}"
                    f"<figcaption>{_e(label)}: ROC, AUC {_html_num(auc)} (frames)</figcaption></figure>")
        figs.append(f"<figure>{_curve_svg(c['recall'], c['precision'], 'PR', 'recall', 'precision')}"
                    f"<figcaption>{_e(label)}: precision-recall, AP {_html_num(ap)}</figcaption></figure>")
    if not figs:
        return "<p>No frame scores beside the predictions (predict <code>--format npy</code> writes them).</p>"
    return f'<div class="figs">{"".join(figs)}</div>'


def _boundaries(report: dict) -> str:
    figs = []
    for label, m in report["per_class"].items():
        for side in ("onset", "offset"):
            b = m["boundary"][side]
            figs.append(f"<figure>{_hist_svg(b['histogram'], side)}<figcaption>{_e(label)}: {side} "
                        f"errors of {b['n']} matched events, median {_html_num(b['median'])} s, "
                        f"p90 {_html_num(b['p90'])} s (50 ms bins; red: beyond &plusmn;0.5 s)</figcaption></figure>")
    return f'<div class="figs">{"".join(figs)}</div>'


def _thumbnail(data: bytes, width: int = 480) -> str:
    """``data:`` URL of a downscaled copy of a plot's PNG bytes (the original without Pillow)."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail((width, width))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
            data = buf.getvalue()
    except Exception:  # noqa: BLE001 - no Pillow or an odd file: embed it as it is
        pass
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _badness(item) -> tuple:
    """Sort key, worst first: lowest frame F1 (undefined last), then highest error rate."""
    r = item[1]
    f1, der = r["frame"].get("f1"), r.get("detection", {}).get("error_rate")
    return (f1 is None, f1 if f1 is not None else 0.0, -(der or 0.0))


def _called(g, name: str, duration: float) -> str:
    """A file without reference events: the share of its frames called each class (the
    project's rasteriser at the scores' frame rate, as the metrics count frames)."""
    from .labels import segments_to_frames

    fps = g.fps.get(name, 100.0)
    n = max(1, math.ceil(duration * fps - EPS))
    active = segments_to_frames(g.preds.get(name, []), classes=g.classes, n_frames=n, fps=fps) > 0.5
    shares = [f"{100 * active[:, c].mean():.1f} % of frames called {_e(label)}" for c, label in enumerate(g.classes)]
    what = _e(g.classes[0]) if len(g.classes) == 1 else "events"
    return f"no reference {what}; " + ", ".join(shares)


def _files(report: dict, g, plots: dict[str, tuple[str, Path]]) -> str:
    """One card per file, worst first; ``plots``: a file's plot as (link, path of the PNG), read
    for its card only (a run's plots are never all in memory at once)."""
    cards = []
    for name, r in sorted(report["per_file"].items(), key=_badness):
        duration = g.durations.get(name) or max([1.0] + [s.offset for s in g.refs.get(name, [])])
        thumb, strip_style = "", ""
        try:
            href, data = (plots[name][0], plots[name][1].read_bytes()) if name in plots else (None, None)
        except OSError:  # gone since it was copied: the card without its plot
            data = None
        if data is not None:
            thumb = f'<a href="{_e(href)}"><img alt="plot of {_e(name)}" src="{_thumbnail(data)}"></a>'
            axis = png_time_axis(data)
            if axis is not None:  # the strip spans exactly the plot's time axis, over the same seconds
                duration = axis["end"]
                strip_style = (f' style="margin-left:{100 * axis["left"]:.3f}%;'
                               f'width:{100 * (axis["right"] - axis["left"]):.3f}%"')
        timeline = _timeline_svg(g.refs.get(name, []), g.preds.get(name, []), duration, g.classes)
        missing = ' <span class="bad">missing</span>' if r.get("missing") else ""
        if r["frame"].get("n_ref") == 0:  # F1 says nothing here; how much was called does
            scores = _called(g, name, g.durations.get(name) or duration)
        else:
            scores = (f'frame F1 {_html_num(r["frame"].get("f1"))}, event F1 {_html_num(r["event"].get("f1"))}, '
                      f'DER {_html_num(r.get("detection", {}).get("error_rate"))}')
        cards.append(f'<div class="file"><div class="name">{_e(name)}{missing}</div><div>{scores}</div>'
                     f'{thumb}<div class="strip"{strip_style}>{timeline}</div></div>')
    return f'<div class="files">{"".join(cards)}</div>'


def render(report: dict, g, plots: dict[str, tuple[str, Path]] | None = None) -> str:
    """The page's HTML for an evaluation report and the gathered files (:func:`evaluate.gather`)."""
    s = report["settings"]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>evaluation of {_e(s.get('pred', ''))}</title><style>{STYLE}</style>"
            f"<script>{SCRIPT}</script></head><body>"
            f"<h1>Evaluation: {_e(s.get('pred', ''))} against {_e(s.get('ref', ''))}</h1>"
            f"<p>{plural(s['n_files'], 'file')}, {s.get('seconds', 0):.1f} s; classes {_e(', '.join(s['classes']))}; "
            f"event collar {s['collar']} s, segments {s['segment_length']} s.</p>"
            f"<h2>Metrics</h2>{_table(report)}"
            f"<h2>ROC and precision-recall (frames)</h2>{_curves(report)}"
            f"<h2>Boundary errors</h2>{_boundaries(report)}"
            f"<h2>Files, worst first</h2><p>Green: reference, orange: predicted; a plot links to "
            f"its full size.</p>{_files(report, g, plots or {})}</body></html>\n")


def write_report(out_dir: str | Path, report: dict, g) -> Path:
    """Write ``out_dir/index.html`` and a copy of each file's plot under ``out_dir/plots/``
    (through :class:`pipeline.outputs.OutputDir`: never over a file the pipeline did not write),
    linked relative to ``out_dir``, so the folder works wherever it is moved; return the page's
    path. A plot that cannot be copied is a line in ``report["warnings"]`` and a card without it."""
    from .outputs import OutputDir, OutputError

    out = OutputDir(out_dir, option="--report")
    pred_dir = Path(report["settings"].get("pred", "."))
    plots = {}
    for name, tsv in sorted(g.pred_paths.items()):
        png = tsv.with_suffix(".png")
        if not png.is_file():
            continue
        try:
            rel = PurePosixPath(png.relative_to(pred_dir).with_suffix("").as_posix())
        except ValueError:
            rel = PurePosixPath(png.stem)
        try:
            target = out.write(out.path("plots" / rel, ".png"), lambda p, src=png: shutil.copyfile(src, p))
        except OutputError as exc:
            report.setdefault("warnings", []).append(f"plot of {name} left out of the report ({exc})")
            continue
        plots[name] = (quote(target.relative_to(out.root).as_posix()), target)
    text = render(report, g, plots)
    return out.write(out.path(PurePosixPath("index"), ".html"),
                     lambda p: p.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------------------- text tables


def _num(v, scale: float = 1.0) -> str:
    return "-" if v is None else f"{v * scale:.3f}"


TABLE_COLUMNS = [("frame P", "frame", "precision"), ("frame R", "frame", "recall"),
                 ("frame F1", "frame", "f1"), ("AUC", "frame", "auc"),
                 ("seg F1", "segment", "f1"), ("seg ER", "segment", "error_rate"),
                 ("event F1", "event", "f1"), ("event ER", "event", "error_rate"),
                 ("DER", "detection", "error_rate"), ("onset med", "boundary", "onset"),
                 ("offset med", "boundary", "offset")]


def _cell(metrics: dict, view: str, key: str) -> str:
    value = metrics.get(view, {}).get(key)
    if view == "boundary":
        value = None if value is None else value.get("median")
    return _num(value)


def format_table(report: dict) -> str:
    """A plain-text table of an evaluation report: one row per class, then the overall (micro)
    and class-average rows; ``-`` marks an undefined value. ``DER`` is the detection error rate,
    ``onset med``/``offset med`` the median boundary errors in seconds (positive = late). Below
    it: PSDS, the confidence intervals (``--ci``), where durations came from, and the unmatched
    files."""
    rows = list(report["per_class"].items())
    rows += [("overall", report["overall"]), ("class average", report["class_average"])]
    width = max(len(str(name)) for name, _ in rows)
    cells = [[str(name).ljust(width)] + [_cell(m, view, key) for _, view, key in TABLE_COLUMNS]
             for name, m in rows]
    head = ["class".ljust(width)] + [title for title, _, _ in TABLE_COLUMNS]
    widths = [max(len(r[i]) for r in cells + [head]) for i in range(len(head))]

    def line(r):
        return "  ".join([r[0].ljust(widths[0])] + [x.rjust(w) for x, w in zip(r[1:], widths[1:])])
    out = [line(head), "-" * len(line(head))] + [line(r) for r in cells[:-2]]
    out += ["-" * len(line(head))] + [line(r) for r in cells[-2:]]
    return "\n".join(out + _notes(report))


def _notes(report: dict) -> list[str]:
    out, o = [], report["overall"]
    d, b = o.get("detection", {}), o.get("boundary", {})
    if d.get("total") is not None:
        out.append(f"detection error rate {_num(d.get('error_rate'))} = false alarm "
                   f"{_num(d.get('false_alarm_rate'))} + miss {_num(d.get('miss_rate'))} "
                   f"(of {d['total']:.1f} s of reference)")
    if b.get("onset", {}).get("n"):
        on, off = b["onset"], b["offset"]
        ms = lambda v: "-" if v is None else f"{v * 1000:+.0f}"  # noqa: E731
        out.append(f"boundaries of {on['n']} matched events (predicted - reference, + = late): onset "
                   f"median {ms(on['median'])} ms, p90 {ms(on['p90'])} ms; offset median "
                   f"{ms(off['median'])} ms, p90 {ms(off['p90'])} ms")
    if report.get("psds"):
        out.append("PSDS1 {} PSDS2 {} (DCASE 2023/2024 parameters, all operating points)".format(
            _num(report["psds"]["psds1"]["overall"]), _num(report["psds"]["psds2"]["overall"])))
    ci = report.get("ci")
    if ci:
        fmt = lambda v: "-" if v is None else f"[{v[0]:.3f}, {v[1]:.3f}]"  # noqa: E731
        out.append(f"{ci['level']:.0%} CI (per-file bootstrap, {ci['n_boot']} draws): frame F1 "
                   f"{fmt(ci['frame_f1'])}, DER {fmt(ci['detection_error_rate'])}")
    s = report.get("settings", {})
    if s.get("durations_from"):
        out.append("durations from " + ", ".join(f"{k} ({v} file{'s' if v != 1 else ''})"
                                                 for k, v in s["durations_from"].items()))
    for key, what in (("missing", "missing predictions"), ("extra", "predictions without a reference")):
        names = report.get(key) or []
        if names:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            total = f" of {plural(s['n_files'], 'file')}" if key == "missing" else ""
            # an RTTM cannot list a file without events: its false alarms count only via --uem
            why = ("" if key == "missing" else ": not scored (a file without events that the "
                   "reference cannot list, as in an RTTM, is scored when --uem lists it)")
            out.append(f"{what}: {len(names)}{total} ({shown}){why}")
    out += [f"WARNING: {w}" for w in report.get("warnings") or []]
    return out


def format_per_file(report: dict) -> str:
    """One line per file: frame P/R/F1, segment and event F1, detection error rate (3 decimals,
    ``-`` when undefined, e.g. F1 of a file with no reference and no predicted events),
    ``missing`` when it had no prediction."""
    names = list(report["per_file"])
    width = max([len("file")] + [len(n) for n in names])
    out = [f"{'file'.ljust(width)}  frame P  frame R  frame F1  seg F1  event F1     DER"]
    for name in names:
        r = report["per_file"][name]
        f = r["frame"]
        out.append(f"{name.ljust(width)}  {_num(f.get('precision')):>7}  {_num(f.get('recall')):>7}  "
                   f"{_num(f.get('f1')):>8}  {_num(r['segment'].get('f1')):>6}  "
                   f"{_num(r['event'].get('f1')):>8}  {_num(r.get('detection', {}).get('error_rate')):>6}"
                   + ("  missing" if r.get("missing") else ""))
    return "\n".join(out)
