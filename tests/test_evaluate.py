"""pipeline.evaluate: references in every form, name matching, durations, the table, the CLI,
the HTML report (in headless Chromium), and the same counts as sed_eval on the sample clips."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import LabelError
from pipeline.evaluate import (evaluate_dir, format_per_file, format_table, match_names,
                               read_references, read_uem)
from pipeline.labels import Segment, read_labels, write_labels
from pipeline.metrics import event_metrics, evaluate_files, segment_metrics
from pipeline.postprocess import filter_scores, scores_to_segments

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
CLASSES = ["dog", "cat"]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """The shipped model's predictions of the sample clips, with frame scores (``--format npy``)."""
    root = tmp_path_factory.mktemp("pred")
    r = CliRunner().invoke(cli, ["-q", "--cache-dir", str(root / "cache"), "predict", str(SAMPLES),
                                 "--model", str(ROOT / "models" / "vad"), "--out", str(root / "out"),
                                 "--format", "npy"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root / "out"


def _reference_forms(tmp: Path) -> dict[str, Path | tuple[Path, Path]]:
    """The samples' references as a dataset, a folder of TSVs, one RTTM (alone, and with a UEM
    listing every file), TextGrids, a DCASE metadata TSV (with the silent clip's empty row, and
    without it but with the UEM) and JSON files, without audio except the first."""
    import soundfile as sf

    labels = {p.stem: read_labels(p)[p.stem] for p in sorted(SAMPLES.glob("*.tsv"))}
    forms = {"dataset": SAMPLES}
    forms["tsv folder"] = tmp / "tsv"
    forms["tsv folder"].mkdir()
    for name in labels:
        shutil.copy(SAMPLES / f"{name}.tsv", forms["tsv folder"])
    forms["one rttm"] = tmp / "all.rttm"
    write_labels(labels, forms["one rttm"])
    uem = tmp / "all.uem"
    uem.write_text("".join(f"{n} 1 0 {sf.info(str(SAMPLES / f'{n}.flac')).duration!r}\n" for n in labels))
    forms["rttm + uem"] = (forms["one rttm"], uem)
    forms["textgrids"] = tmp / "tg"
    forms["json folder"] = tmp / "json"
    for name, segs in labels.items():
        write_labels(segs, forms["textgrids"] / f"{name}.TextGrid", duration=20.0)
        write_labels(segs, forms["json folder"] / f"{name}.json")
    forms["dcase metadata"] = tmp / "meta.tsv"
    write_labels({f"{n}.flac": s for n, s in labels.items()}, forms["dcase metadata"], fmt="dcase")
    without_rows = tmp / "meta-events-only.tsv"
    write_labels({f"{n}.flac": s for n, s in labels.items() if s}, without_rows, fmt="dcase")
    forms["dcase metadata without empty rows + uem"] = (without_rows, uem)
    return forms


def test_the_same_metrics_from_every_form_of_reference(predicted, tmp_path):
    """A clip without speech (its false alarms) counts in every form that can name it: an RTTM
    or a DCASE TSV without its row does with a UEM listing it; an RTTM alone reports it."""
    silent = sorted(p.stem for p in SAMPLES.glob("*.tsv") if not read_labels(p)[p.stem])
    assert len(silent) == 1
    pred = tmp_path / "pred"  # the model finds no speech in the silent clip: give it a false alarm
    shutil.copytree(predicted, pred)
    with open(pred / f"{silent[0]}.tsv", "a") as fh:
        fh.write("2.000\t4.500\tspeech\n")
    reports = {}
    for form, ref in _reference_forms(tmp_path).items():
        ref, uem = ref if isinstance(ref, tuple) else (ref, None)
        reports[form] = evaluate_dir(pred, ref, uem=uem)
    want = reports["dataset"]
    assert want["settings"]["durations_from"] == {"audio": 4}
    assert want["per_file"][f"{silent[0]}.flac"]["detection"]["false_alarm"] == pytest.approx(2.5)
    assert reports["rttm + uem"]["settings"]["durations_from"] == {"uem": 4}
    assert 0.8 < want["overall"]["frame"]["f1"] < 1.0
    assert want["overall"]["frame"]["auc"] is not None and want["psds"]["psds1"]["overall"] > 0
    # an RTTM alone has no line for a file without speech: that prediction is reported, unscored
    alone = reports.pop("one rttm")
    assert alone["extra"] == silent and alone["settings"]["durations_from"] == {"scores": 3}
    assert alone["overall"]["frame"]["fp"] < want["overall"]["frame"]["fp"]
    assert f"predictions without a reference: 1 ({silent[0]}): not scored" in format_table(alone)
    for form, report in reports.items():
        assert report["missing"] == [] and report["extra"] == [], form
        assert report["settings"]["n_files"] == 4, form
        for view in ("frame", "segment", "event"):
            for key in ("tp", "fp", "fn", "precision", "f1"):
                assert report["overall"][view][key] == want["overall"][view][key], (form, view, key)
        for view, key in (("detection", "error_rate"), ("frame", "auc"), ("frame", "ap")):
            assert report["overall"][view][key] == pytest.approx(want["overall"][view][key], abs=1e-12), (form, key)
        for key in ("psds1", "psds2"):
            assert report["psds"][key]["overall"] == pytest.approx(
                want["psds"][key]["overall"], abs=1e-12), (form, key)


def _sed_eval_counts(ref, pred):
    sed_eval = pytest.importorskip("sed_eval")

    def rows(segs):
        return [{"event_onset": s.onset, "event_offset": s.offset, "event_label": s.label,
                 "filename": "f"} for s in segs]
    seg = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=["speech"], time_resolution=1.0)
    ev = sed_eval.sound_event.EventBasedMetrics(event_label_list=["speech"], t_collar=0.2,
                                                percentage_of_length=0.5)
    seg.evaluate(rows(ref), rows(pred))  # evaluated length: sed_eval's default, the last offset
    ev.evaluate(rows(ref), rows(pred))
    s, e = seg.overall, ev.class_wise["speech"]
    return ({k: int(s[k]) for k in ("Ntp", "Nfp", "Nfn", "S", "D", "I")},
            {k: int(e[k]) for k in ("Ntp", "Nfp", "Nfn")})


def test_segment_and_event_counts_equal_sed_eval_file_by_file(predicted):
    """The sample clips' scores at several post-processing settings: 4 files x 6 settings."""
    import soundfile as sf

    refs = {p.stem: read_labels(p)[p.stem] for p in SAMPLES.glob("*.tsv")}
    compared = late = 0
    for name, ref in sorted(refs.items()):
        scores = np.load(predicted / f"{name}.scores.npy")
        fps = json.loads((predicted / f"{name}.scores.json").read_text())["fps"]
        duration = sf.info(str(SAMPLES / f"{name}.flac")).duration
        for threshold, median in [(0.3, 0.0), (0.5, 0.0), (0.65, 0.2), (0.8, 0.2), (0.5, 0.5), (0.9, 0.0)]:
            unclipped = scores_to_segments(scores, classes=["speech"], fps=fps, threshold=threshold,
                                           median_filter=median)
            pred = scores_to_segments(scores, classes=["speech"], fps=fps, threshold=threshold,
                                      median_filter=median, duration=duration)
            late += any(s.offset > duration for s in unclipped)
            assert all(s.offset <= duration for s in pred)
            seg_counts, ev_counts = _sed_eval_counts(ref, pred)
            o = segment_metrics(ref, pred, classes=["speech"], duration=duration)["overall"]
            assert (o["tp"], o["fp"], o["fn"], o["substitutions"], o["deletions"], o["insertions"]) == tuple(
                seg_counts[k] for k in ("Ntp", "Nfp", "Nfn", "S", "D", "I")), (name, threshold)
            e = event_metrics(ref, pred, classes=["speech"])["per_class"]["speech"]
            assert (e["tp"], e["fp"], e["fn"]) == tuple(ev_counts[k] for k in ("Ntp", "Nfp", "Nfn"))
            compared += 1
    assert compared == 24 and late > 0  # unclipped, some segments ended past their file


def test_psds_on_the_samples_equals_sed_scores_eval(predicted):
    from pipeline.metrics import PSDS1, PSDS2
    from test_metrics_psds import sed_scores_eval_psds

    g_report = evaluate_dir(predicted, SAMPLES)
    refs = {f"{p.stem}.flac": read_labels(p)[p.stem] for p in SAMPLES.glob("*.tsv")}
    scores = {}
    for n in refs:  # PSDS is taken after the model's median filter, recorded beside the scores
        info = json.loads((predicted / f"{Path(n).stem}.scores.json").read_text())
        shipped = json.loads((ROOT / "models" / "vad" / "config.json").read_text())["predict"]["median_filter"]
        assert info["median_filter"] == {"speech": shipped}
        scores[n] = filter_scores(np.load(predicted / f"{Path(n).stem}.scores.npy"),
                                  median_filter=info["median_filter"]["speech"], fps=info["fps"])
    durations = {n: 20.0 for n in refs}
    for key, params in (("psds1", PSDS1), ("psds2", PSDS2)):
        # one class: sed_scores_eval's PSDS2 averages cross triggers over no class (NaN); ours
        # takes 0, which equals running it with alpha_ct = 0
        theirs, _ = sed_scores_eval_psds(scores, refs, durations, ["speech"], 50.0,
                                         {**params, "alpha_ct": 0.0, "cttc_threshold": None})
        assert g_report["psds"][key]["overall"] == pytest.approx(theirs, abs=1e-12)


# -- names, durations, unmatched files ----------------------------------------------------------

def test_names_match_by_path_then_tail_then_unique_stem():
    refs = ["a/x.wav", "dev/b/y.flac", "z.wav", "w.wav", "u.wav"]
    preds = ["a/x", "b/y", "other/z", "q/w", "r/w", "v"]
    pairs, missing, extra = match_names(refs, preds)
    assert pairs == {"a/x.wav": "a/x", "dev/b/y.flac": "b/y", "z.wav": "other/z"}
    assert missing == ["u.wav", "w.wav"]  # w: two predictions share the stem, neither is taken
    assert extra == ["q/w", "r/w", "v"]


def test_unmatched_files_are_listed_and_missing_exits_1(predicted, tmp_path):
    pred = tmp_path / "pred"
    shutil.copytree(predicted, pred)
    (pred / "noise_clip_00030.tsv").unlink()
    (pred / "stray.tsv").write_text("onset\toffset\tevent_label\n1.000\t2.000\tspeech\n")
    r = CliRunner().invoke(cli, ["evaluate", "--pred", str(pred), "--ref", str(SAMPLES)])
    assert r.exit_code == 1
    assert "missing predictions: 1 of 4 files (noise_clip_00030.flac)" in r.output
    assert "predictions without a reference: 1 (stray)" in r.output
    assert "FAILED missing predictions for 1 of 4 file(s)" in r.output


def test_durations_from_a_uem_crop_the_scored_region(predicted, tmp_path):
    uem = tmp_path / "x.uem"
    uem.write_text("".join(f"{p.stem} 1 0.000 10.000\n" for p in SAMPLES.glob("*.tsv")))
    assert read_uem(uem)["music_clip_00012"] == (0.0, 10.0)
    r = evaluate_dir(predicted, SAMPLES, uem=uem)
    assert r["settings"]["durations_from"] == {"uem": 4}
    assert r["overall"]["detection"]["total"] < 4 * 10.0
    full = evaluate_dir(predicted, SAMPLES)
    assert r["overall"]["detection"]["total"] < full["overall"]["detection"]["total"]
    bad = tmp_path / "bad.uem"
    bad.write_text("clip 1 5 2\n")
    with pytest.raises(LabelError, match=r"bad.uem: line 1: start=5, end=2 must have 0 <= start < end"):
        read_uem(bad)


def test_textgrid_tier_is_chosen(tmp_path):
    grid = tmp_path / "clip.TextGrid"
    write_labels([Segment(0.5, 1.0, "speech"), Segment(2.0, 3.0, "music")], grid, duration=4.0)
    assert read_references(grid, tier="music").labels == {"clip": [Segment(2.0, 3.0, "music")]}
    with pytest.raises(LabelError, match="clip.TextGrid: no interval tier 'words'"):
        read_references(grid, tier="words")


# -- the table and the CLI ----------------------------------------------------------------------

def test_format_table_has_class_overall_der_and_boundary_columns():
    ref = {"a.wav": [Segment(0.0, 1.5, "dog"), Segment(2.2, 3.0, "cat")]}
    table = format_table(evaluate_files(ref, ref, classes=CLASSES, durations={"a.wav": 4.0}))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["class", "frame"] and lines[0].split()[-5:] == [
        "DER", "onset", "med", "offset", "med"]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line[:1].isalpha()}
    assert rows["dog"][:3] == ["1.000", "1.000", "1.000"] and rows["dog"][3] == "-"  # no AUC
    assert rows["overall"][4:6] == ["1.000", "0.000"] and rows["overall"][8:11] == ["0.000"] * 3
    assert len({len(line) for line in lines[:6] if not line.startswith("-")}) == 1  # aligned
    assert "detection error rate 0.000 = false alarm 0.000 + miss 0.000" in table
    report = evaluate_files(ref, {}, classes=CLASSES, durations={"a.wav": 4.0})
    assert "missing predictions: 1 of 1 file (a.wav)" in format_table(report)
    assert format_per_file(report).splitlines()[1].endswith("missing")


def test_cli_json_has_detection_boundaries_psds_and_intervals(predicted):
    r = CliRunner().invoke(cli, ["evaluate", "--pred", str(predicted), "--ref", str(SAMPLES),
                                 "--json", "--ci"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    o = report["overall"]
    assert 0 < o["detection"]["error_rate"] < 0.3
    assert o["boundary"]["onset"]["n"] > 10 and len(o["boundary"]["onset"]["histogram"]) == 22
    assert 0 < report["psds"]["psds1"]["overall"] <= 1 and o["frame"]["ap"] > 0.9
    lo, hi = report["ci"]["frame_f1"]
    assert lo <= o["frame"]["f1"] <= hi


def test_report_page_is_self_contained(predicted, tmp_path):
    r = CliRunner().invoke(cli, ["evaluate", "--pred", str(predicted), "--ref", str(SAMPLES),
                                 "--report", str(tmp_path / "rep")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert page.count('class="file"') == 4 and page.count("<polyline") == 2  # ROC and PR
    names = [line.split("</div>")[0] for line in page.split('<div class="name">')[1:]]
    f1 = {n: evaluate_dir(predicted, SAMPLES, threshold_free=False)["per_file"][n]["frame"]["f1"]
          for n in names}
    defined = [f1[n] for n in names if f1[n] is not None]
    assert defined == sorted(defined) and len(defined) >= 3  # worst first
    assert all(f1[n] is None for n in names[len(defined):])  # undefined F1 (no speech at all) last


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium (apt-get install -y chromium)")
def test_report_page_opens_in_headless_chromium_without_errors(predicted, tmp_path):
    evaluate_dir(predicted, SAMPLES, report_dir=tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").resolve()
    run = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                          "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    body = run.stdout.split("<body", 1)[1].split(">", 1)[0]
    assert 'data-ready="1"' in body and "data-errors" not in body, body
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a page with figures, not a blank one


def test_a_manifest_is_a_reference_too(predicted, tmp_path):
    rows = "".join(f"{SAMPLES / (p.stem + '.flac')}\t{p}\n" for p in sorted(SAMPLES.glob("*.tsv")))
    (tmp_path / "m.tsv").write_text("path\tlabels\n" + rows)
    r = evaluate_dir(predicted, tmp_path / "m.tsv")
    want = evaluate_dir(predicted, SAMPLES)
    assert r["settings"]["durations_from"] == {"audio": 4} and r["missing"] == []
    assert r["overall"]["frame"]["f1"] == want["overall"]["frame"]["f1"]


def test_an_unknown_class_in_the_references_is_scored_alone_with_a_warning(predicted, tmp_path):
    """A ``dog`` row for a speech model: one warning line, dog scored with nothing predicted,
    speech keeps its AUC, AP and PSDS."""
    ref = tmp_path / "ref"
    shutil.copytree(SAMPLES, ref, ignore=shutil.ignore_patterns("*.flac", "*.json"))
    plain = evaluate_dir(predicted, ref)
    with open(ref / "music_only_clip_00037.tsv", "a") as fh:
        fh.write("1.000\t3.000\tdog\n")
    report = evaluate_dir(predicted, ref)
    assert report["settings"]["classes"] == ["dog", "speech"]
    (warning,) = report["warnings"]
    assert "'dog' not among the model's classes (speech)" in warning and "\n" not in warning
    assert f"WARNING: {warning}" in format_table(report).splitlines()
    dog = report["per_class"]["dog"]
    assert dog["frame"]["tp"] == 0 and dog["frame"]["fn"] > 0 and dog["frame"]["f1"] == 0.0
    assert dog["frame"]["auc"] is None and dog["frame"]["ap"] is None
    assert report["psds"]["psds1"]["per_class"]["dog"] is None
    speech, want = report["per_class"]["speech"]["frame"], plain["per_class"]["speech"]["frame"]
    assert speech["auc"] == want["auc"] is not None and speech["ap"] == want["ap"] is not None
    for key in ("psds1", "psds2"):
        assert report["psds"][key]["overall"] == plain["psds"][key]["overall"] is not None
        assert report["psds"][key]["per_class"]["speech"] == plain["psds"][key]["per_class"]["speech"]
    assert plain["warnings"] == []
