"""Hostile inputs and faults, through the command line's real entry (``pipeline.cli.main``) or
as a real subprocess: the pipeline writes only what it owns, every bad input fails alone and
by name, the cache never serves a bad entry, and every expected error is one line with the
documented exit code (0 good, 1 some inputs failed, 2 usage/configuration, 130 interrupted).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.cache import Cache
from pipeline.cli import main
from pipeline.outputs import RECORD, assign_bases, safe_relative

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "vad"
SR = 16000


def run(capsys, *args) -> tuple[int, str, str]:
    """``python -m pipeline ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.02 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return y.astype(np.float32)


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def predict(capsys, tmp_path, *inputs, out=None, extra=()):
    out = out or tmp_path / "out"
    return run(capsys, "--cache-dir", tmp_path / "cache", *extra, "predict", *inputs, "--model", MODEL, "--out", out)


# ---------------------------------------------------------------- ownership of files


def test_safe_relative_never_leaves_the_folder():
    assert safe_relative("../audio/clip.flac") == safe_relative("audio/clip.flac")
    assert str(safe_relative("/abs/x.wav")) == "abs/x.wav"
    assert str(safe_relative("a/../../../b.wav")) == "a/b.wav"
    assert str(safe_relative("..")) == "_"
    for rel in ["../../x", "/", "./.././a/./b", "C:/x.wav"]:
        assert not any(part in ("..", "/") for part in safe_relative(rel).parts)


def test_assign_bases_keeps_every_input_apart():
    bases = assign_bases([("/a/rec.wav", "rec.wav"), ("/a/rec.flac", "rec.flac"), ("/b/solo.wav", "solo.wav")],
                         [".tsv"])
    assert {str(b) for b in bases.values()} == {"rec.wav", "rec.flac", "solo"}
    # a.wav's a.scores.json against a.scores.wav's .json: a clash across formats
    bases = assign_bases([("/x/a.wav", "a.wav"), ("/x/a.scores.wav", "a.scores.wav")],
                         [".tsv", ".json", ".scores.npy", ".scores.json"])
    files = [str(b) + s for b in bases.values() for s in (".tsv", ".json", ".scores.npy", ".scores.json")]
    assert len(set(files)) == len(files)
    # the same relative name from two roots: a hash keeps them apart
    bases = assign_bases([("/r1/x.wav", "x.wav"), ("/r2/x.wav", "x.wav")], [".tsv"])
    assert len(set(bases.values())) == 2
    # a case-insensitive disk would merge REC.tsv and rec.tsv
    bases = assign_bases([("/a/REC.wav", "REC.wav"), ("/a/rec.wav", "rec.wav")], [".tsv"])
    assert len({str(b).casefold() for b in bases.values()}) == 2
    # the ownership record's name is never an output
    bases = assign_bases([("/a/.pipeline-outputs.wav", ".pipeline-outputs.wav")], [""])
    assert str(next(iter(bases.values()))) != RECORD


def test_manifest_dotdot_and_absolute_paths_stay_inside_out(capsys, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "clip.flac", speech_like(), SR)
    (audio / "clip.tsv").write_text("onset\toffset\tevent_label\n0.0\t1.0\tspeech\n")
    other = tmp_path / "elsewhere"
    other.mkdir()
    sf.write(other / "abs.wav", speech_like(seed=1), SR)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "m.txt").write_text(f"../audio/clip.flac\n{other / 'abs.wav'}\n")
    before = digest_tree(tmp_path / "audio") | digest_tree(other)
    code, out, err = predict(capsys, tmp_path, lists / "m.txt", out=lists / "out")
    assert code == 0, err
    assert digest_tree(tmp_path / "audio") | digest_tree(other) == before  # nothing outside --out touched
    written = sorted(p.relative_to(lists / "out").as_posix() for p in (lists / "out").rglob("*.tsv"))
    assert written == ["abs.tsv", "audio/clip.tsv"]


def test_out_equal_to_the_input_folder_never_overwrites_reference_labels(capsys, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    sf.write(d / "clip.flac", speech_like(), SR)
    sf.write(d / "other.flac", speech_like(seed=2), SR)
    (d / "clip.tsv").write_text("onset\toffset\tevent_label\n0.0\t1.0\tspeech\n")
    ref = (d / "clip.tsv").read_bytes()
    code, out, err = predict(capsys, tmp_path, d, out=d)
    assert code == 1
    assert "clip.tsv: exists and was not written by the pipeline; not overwritten" in err
    assert (d / "clip.tsv").read_bytes() == ref
    assert (d / "other.tsv").is_file()  # the other input finished
    # a second run may replace its own files, still not the reference
    code, _, err = predict(capsys, tmp_path, d, out=d)
    assert code == 1 and (d / "clip.tsv").read_bytes() == ref and "other.tsv" not in err


def test_a_file_edited_by_the_user_is_not_overwritten(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "a.wav", speech_like(), SR)
    assert predict(capsys, tmp_path, d)[0] == 0
    assert predict(capsys, tmp_path, d)[0] == 0  # its own file: replaced
    tsv = tmp_path / "out" / "a.tsv"
    tsv.write_text("my corrections\n")
    code, _, err = predict(capsys, tmp_path, d)
    assert code == 1 and "changed since the pipeline wrote it" in err
    assert tsv.read_text() == "my corrections\n"


def test_clashing_stems_both_get_outputs(capsys, tmp_path):
    d = tmp_path / "in"
    (d / "a").mkdir(parents=True)
    (d / "b").mkdir()
    sf.write(d / "rec.wav", speech_like(), SR)
    sf.write(d / "rec.flac", speech_like(seed=3), SR)
    code, out, err = predict(capsys, tmp_path, d, extra=())
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tsv")) == ["rec.flac.tsv", "rec.wav.tsv"]
    # a/x.wav and b/x.wav through a manifest of absolute paths (both map to x.wav)
    sf.write(d / "a" / "x.wav", speech_like(seed=4), SR)
    sf.write(d / "b" / "x.wav", speech_like(seed=5), SR)
    (tmp_path / "m.txt").write_text(f"{d / 'a' / 'x.wav'}\n{d / 'b' / 'x.wav'}\n")
    code, out, err = predict(capsys, tmp_path, tmp_path / "m.txt", out=tmp_path / "out2")
    assert code == 0, err
    assert len(list((tmp_path / "out2").rglob("*.tsv"))) == 2


def test_a_symlink_inside_out_cannot_lead_outside(capsys, tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    sf.write(d / "sub" / "a.wav", speech_like(), SR)
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    code, _, err = predict(capsys, tmp_path, d, out=out)
    assert code == 1 and "outside --out" in err
    assert list(outside.iterdir()) == []


def test_one_unwritable_output_fails_that_file_only(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "a.wav", speech_like(), SR)
    sf.write(d / "b.wav", speech_like(seed=1), SR)
    (tmp_path / "out" / "a.tsv").mkdir(parents=True)  # a folder where the file should go
    code, out, err = predict(capsys, tmp_path, d)
    assert code == 1 and "a.tsv" in err and (tmp_path / "out" / "b.tsv").is_file()


def test_cache_clear_takes_only_stage_names(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious.txt").write_text("keep me")
    for stage in ("..", ".", "/", ".tmp", "fingerprints", "../x"):
        code, out, err = run(capsys, "--cache-dir", tmp_path / "cache", "cache", "clear", "--stage", stage, "-y")
        assert code == 2 and "Traceback" not in err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    from pipeline.errors import CacheError

    with pytest.raises(CacheError, match="not a stage name"):
        Cache(tmp_path / "cache").clear("..")


# ---------------------------------------------------------------- failures stay per file


def test_absurd_float_file_fails_alone_and_nothing_nonfinite_is_cached(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "good.wav", speech_like(), SR)
    sf.write(d / "huge.wav", (speech_like(seed=1) * 1e20).astype(np.float32), SR, subtype="FLOAT")
    for _ in range(2):  # the rerun fails the same way: nothing bad was stored
        code, out, err = predict(capsys, tmp_path, d, extra=("--set", "predict.threshold=0.5"))
        assert code == 1
        assert "huge.wav" in err and "non-finite" in err and "good.wav" not in err
        assert (tmp_path / "out" / "good.tsv").is_file() and not (tmp_path / "out" / "huge.tsv").exists()
    assert run(capsys, "--cache-dir", tmp_path / "cache", "cache", "verify")[0] == 0


def test_odd_names_in_every_format(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    names = ["with space.wav", "uni\u00e7\u00f8d\u00e9 \u65e5\u672c.wav", "-leading-dash.wav", "new\nline.wav",
             "tab\there.wav"]
    for i, n in enumerate(names):
        sf.write(d / n, speech_like(seed=i), SR)
    code, out, err = run(capsys, "--cache-dir", tmp_path / "cache", "predict", d, "--model", MODEL,
                         "--out", tmp_path / "out", "--format", "rttm,audacity,json,npy")
    assert code == 0, err
    for n in names:
        stem = n[:-4]
        for suffix in (".tsv", ".rttm", ".txt", ".json", ".scores.npy", ".scores.json"):
            assert (tmp_path / "out" / (stem + suffix)).is_file(), stem + suffix
    rttm = (tmp_path / "out" / "new\nline.rttm").read_text()
    assert all(len(line.split()) == 10 for line in rttm.splitlines())
    assert all(line.split()[1] == "new_line" for line in rttm.splitlines())


def test_fifos_devices_loops_and_dangling_links_are_named_and_skipped(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "good.wav", speech_like(), SR)
    os.mkfifo(d / "pipe.wav")
    (d / "loop.wav").symlink_to(d / "loop2.wav")
    (d / "loop2.wav").symlink_to(d / "loop.wav")
    (d / "dangling.wav").symlink_to(d / "nowhere.wav")
    t0 = time.monotonic()
    code, out, err = run(capsys, "--cache-dir", tmp_path / "cache", "features", d, "/dev/null", d / "pipe.wav")
    assert time.monotonic() - t0 < 60  # a FIFO opened would block forever
    assert code == 1
    assert "pipe.wav: a FIFO (named pipe), not an audio file" in err
    assert "loop.wav: a symlink loop" in err and "dangling.wav: a dangling symlink" in err
    assert "/dev/null: a character device" in err
    assert "1 computed" in out + err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_fails_alone(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "good.wav", speech_like(), SR)
    sf.write(d / "secret.wav", speech_like(), SR)
    os.chmod(d / "secret.wav", 0)
    code, out, err = run(capsys, "--cache-dir", tmp_path / "cache", "features", d)
    assert code == 1 and "secret.wav" in err and "1 computed" in out + err


def _hostile_files(d: Path) -> tuple[list[str], list[str]]:
    """Audio that must work, and files that must fail by name (not stop the batch)."""
    rng = np.random.default_rng(0)
    y = speech_like(1.0)
    good, bad = [], []

    def ok(name, data, sr, **kw):
        sf.write(d / name, data, sr, **kw)
        good.append(name)

    ok("pcm_u8.wav", y, SR, subtype="PCM_U8")
    ok("pcm24.wav", y, SR, subtype="PCM_24")
    ok("float64.wav", y.astype(np.float64), SR, subtype="DOUBLE")
    ok("eight_channels.wav", np.tile(y[:, None], (1, 8)), SR, subtype="PCM_16")
    for rate in (8000, 11025, 44100, 96000, 192000):
        ok(f"rate{rate}.flac", speech_like(0.5)[: int(0.5 * rate)] if rate <= SR else
           np.interp(np.arange(int(0.5 * rate)) / rate, np.arange(int(0.5 * SR)) / SR, speech_like(0.5)).astype(np.float32),
           rate)
    ok("one_frame.wav", y[:1], SR, subtype="PCM_16")
    ok("clipped.wav", np.clip(y * 50, -1, 1), SR, subtype="PCM_16")
    ok("dc.wav", np.full(SR, 0.5, np.float32), SR, subtype="PCM_16")
    ok("silence.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    ok("loud_float.wav", y * 3.0, SR, subtype="FLOAT")  # beyond +-1 but finite: readable
    # broken ones
    (d / "zero_bytes.wav").write_bytes(b"")
    bad.append("zero_bytes.wav")
    sf.write(d / "full.wav", y, SR, subtype="PCM_16")
    raw = (d / "full.wav").read_bytes()
    (d / "full.wav").unlink()
    (d / "header_only.wav").write_bytes(raw[:44])
    bad.append("header_only.wav")
    (d / "truncated_header.wav").write_bytes(raw[:20])
    bad.append("truncated_header.wav")
    (d / "text.wav").write_text("this is not audio\n" * 50)
    bad.append("text.wav")
    (d / "noise_bytes.flac").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    bad.append("noise_bytes.flac")
    nan = y.copy()
    nan[100] = np.nan
    sf.write(d / "nan.wav", nan, SR, subtype="FLOAT")
    bad.append("nan.wav")
    inf = y.copy()
    inf[5] = np.inf
    sf.write(d / "inf.wav", inf, SR, subtype="FLOAT")
    bad.append("inf.wav")
    # a lying length field: the data chunk claims far more bytes than there are (readers take
    # what is there), and a truncated data chunk: both decode what exists
    lying = bytearray(raw)
    lying[40:44] = (10 ** 8).to_bytes(4, "little")
    (d / "lying_length.wav").write_bytes(bytes(lying))
    (d / "truncated_data.wav").write_bytes(raw[: 44 + 5001])  # odd: half a sample at the end
    return good, bad


def test_hostile_audio_batch(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    good, bad = _hostile_files(d)
    code, out, err = predict(capsys, tmp_path, d)
    assert code == 1
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    for name in bad:
        assert any(name in line for line in failed), name
    for name in good:
        assert not any(name in line for line in failed), (name, failed)
        assert (tmp_path / "out" / (Path(name).stem + ".tsv")).is_file(), name
    # a lying length field or a truncated data chunk either decodes what is there or fails by
    # name; never stops the batch
    for name in ("lying_length.wav", "truncated_data.wav"):
        assert (tmp_path / "out" / (Path(name).stem + ".tsv")).is_file() or any(name in f for f in failed)
    assert len(failed) <= len(bad) + 2
    assert "Traceback" not in err


@pytest.mark.slow
def test_an_hour_of_digital_silence(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    with sf.SoundFile(d / "hour.flac", "w", samplerate=8000, channels=1, subtype="PCM_16") as f:
        block = np.zeros(8000 * 60, dtype=np.int16)
        for _ in range(60):
            f.write(block)
    code, out, err = predict(capsys, tmp_path, d)
    assert code == 0, err
    assert (tmp_path / "out" / "hour.tsv").read_text().splitlines() == ["onset\toffset\tevent_label"]


# ---------------------------------------------------------------- the cache never serves a bad entry


def _flip(path: Path, at: int = -7) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("stage, array", [("predict", "scores.npy"), ("features", "S.npy"), ("predict", "meta.json")])
def test_corrupt_entries_are_misses_recomputed_and_reported(capsys, tmp_path, stage, array):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "a.wav", speech_like(3.0), SR)
    assert predict(capsys, tmp_path, d, extra=("--set", "predict.threshold=0.5"))[0] == 0
    clean = (tmp_path / "out" / "a.tsv").read_bytes()
    cache = Cache(tmp_path / "cache")
    (key,) = list(cache.keys(stage))
    target = cache.entry_path(stage, key) / array
    _flip(target, at=-7 if array.endswith(".npy") else 5)
    if stage == "features":  # cached scores do not read the features: make predict need them
        assert run(capsys, "--cache-dir", tmp_path / "cache", "cache", "clear", "--stage", "predict", "-y")[0] == 0
    code, out, err = predict(capsys, tmp_path, d, extra=("--set", "predict.threshold=0.5"))
    assert code == 0, err
    assert "REPAIRED" in err and str(target.parent.name)[:8] in err
    assert (tmp_path / "out" / "a.tsv").read_bytes() == clean
    assert run(capsys, "--cache-dir", tmp_path / "cache", "cache", "verify")[0] == 0


def test_gc_removes_bad_entries_and_dead_writers_temporaries(capsys, tmp_path):
    cache = Cache(tmp_path / "cache")
    good = cache.store("features", "aa" * 32, {"S": np.arange(1000, dtype=np.float32)}, {})
    bad = cache.store("features", "bb" * 32, {"S": np.arange(1000, dtype=np.float32)}, {})
    _flip(bad.path / "S.npy")
    from pipeline.cache import _HOST

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tmp = cache.root / ".tmp"
    gone = tmp / f"features-{'cc' * 8}-{_HOST}-{int(dead.stdout)}-deadbeef"
    alive = tmp / f"features-{'dd' * 8}-{_HOST}-{os.getpid()}-0badcafe"
    for p in (gone, alive):
        p.mkdir(parents=True)
        (p / "S.npy").write_bytes(b"x" * 1000)
    code, out, err = run(capsys, "--cache-dir", cache.root, "cache", "verify")
    assert code == 1 and "bb" * 8 in err
    code, out, err = run(capsys, "--cache-dir", cache.root, "cache", "gc")
    assert code == 0
    assert not gone.exists() and alive.exists()  # a live writer's fresh temporary stays
    assert list(cache.keys("features")) == [good.key]
    assert run(capsys, "--cache-dir", cache.root, "cache", "verify")[0] == 0


def test_file_size_limit_while_storing_leaves_no_half_entry(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "small.wav", speech_like(0.2), SR)
    sf.write(d / "big.wav", speech_like(20.0), SR)
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000)); "
              "from pipeline.cli import main; main(sys.argv[1:])")
    r = subprocess.run([sys.executable, "-c", script, "--cache-dir", str(tmp_path / "cache"), "features", str(d)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "big.wav" in r.stderr and "cannot store" in r.stderr and "Traceback" not in r.stderr
    cache = Cache(tmp_path / "cache")
    assert not any(cache.verify(s, k) for s in cache.stages() for k in cache.keys(s))
    assert not list((cache.root / ".tmp").iterdir())


# ---------------------------------------------------------------- one-line errors and exit codes


def _model_without_classes(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    shutil.copytree(MODEL, m)
    conf = json.loads((m / "config.json").read_text())
    del conf["classes"]
    (m / "config.json").write_text(json.dumps(conf))
    return m


@pytest.mark.parametrize("case", ["fmin_nan", "chunk_inf", "toml_section_scalar", "run_inputs_int", "no_classes",
                                  "cuda", "unwritable_out", "center_false", "bad_ref_audio", "all_missing"])
def test_expected_errors_are_one_line_with_their_exit_code(capsys, tmp_path, case):
    audio = tmp_path / "in"
    audio.mkdir()
    sf.write(audio / "a.wav", speech_like(), SR)
    cache = ("--cache-dir", tmp_path / "cache")
    want = 2
    if case == "fmin_nan":
        args = (*cache, "--set", "features.fmin=nan", "features", audio)
    elif case == "chunk_inf":
        args = (*cache, "--set", "predict.chunk_duration=inf", "predict", audio, "--model", MODEL, "--out", tmp_path / "o")
    elif case == "toml_section_scalar":
        (tmp_path / "c.toml").write_text("features = 3\n")
        args = ("--config", tmp_path / "c.toml", "features", audio)
    elif case == "run_inputs_int":
        (tmp_path / "c.toml").write_text("[run]\ninputs = 5\n")
        args = ("--config", tmp_path / "c.toml", *cache, "run")
    elif case == "no_classes":
        args = (*cache, "predict", audio, "--model", _model_without_classes(tmp_path), "--out", tmp_path / "o")
    elif case == "cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        args = (*cache, "--device", "cuda", "features", audio)
    elif case == "unwritable_out":
        (tmp_path / "afile").write_text("x")
        args = (*cache, "predict", audio, "--model", MODEL, "--out", tmp_path / "afile" / "out")
    elif case == "center_false":
        args = (*cache, "--set", "features.center=false", "features", audio)
    elif case == "bad_ref_audio":
        ref = tmp_path / "ref"
        ref.mkdir()
        (ref / "a.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
        (ref / "a.tsv").write_text("onset\toffset\tevent_label\n0\t1\tspeech\n")
        (tmp_path / "pred").mkdir()
        (tmp_path / "pred" / "a.tsv").write_text("onset\toffset\tevent_label\n0\t1\tspeech\n")
        args = ("evaluate", "--pred", tmp_path / "pred", "--ref", ref)
        want = 1
    else:  # every prediction missing
        ref = tmp_path / "ref"
        ref.mkdir()
        sf.write(ref / "a.wav", speech_like(), SR)
        (ref / "a.tsv").write_text("onset\toffset\tevent_label\n0\t1\tspeech\n")
        (tmp_path / "pred").mkdir()
        args = ("evaluate", "--pred", tmp_path / "pred", "--ref", ref)
        want = 1
    code, out, err = run(capsys, *args)
    assert code == want, (out, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith(("Error:", "FAILED"))]
    assert len(errors) == 1, err


def _without_dac_override() -> list[str]:
    """A command prefix under which modes hold for root too (setpriv drops the capability to
    override them), so a read-only folder is read-only; [] when not root."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("root ignores file modes and setpriv is not here to drop that")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("case", ["tier", "dask_missing", "report_over_a_users_page", "run_outside_the_repo",
                                  "read_only_cache"])
def test_each_usage_error_is_one_line_naming_what_is_wrong(tmp_path, case):
    """Real subprocesses: the exit code, and one line naming the option, the file or the folder."""
    audio = tmp_path / "in"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"a{i}.wav", speech_like(seed=i), SR)
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for d in (pred, ref):
        d.mkdir()
        (d / "a0.tsv").write_text("onset\toffset\tevent_label\n0\t1\tspeech\n")
    prefix, cwd, want = [sys.executable, "-m", "pipeline"], ROOT, 2
    if case == "tier":
        from pipeline.labels import Segment, write_labels

        (ref / "a0.tsv").unlink()
        write_labels([Segment(0.0, 1.0, "speech")], ref / "a0.TextGrid", duration=2.0)
        args, expect = ["evaluate", "--pred", pred, "--ref", ref, "--tier", "nosuch"], "--tier nosuch: "
    elif case == "dask_missing":  # as if the dask extra were not installed
        prefix = [sys.executable, "-c", "import sys; sys.modules['dask'] = None; from pipeline.cli import main; main()"]
        args = ["--cache-dir", tmp_path / "c", "--executor", "dask", "features", audio]
        expect = "--executor dask needs the 'dask' extra"
    elif case == "report_over_a_users_page":
        (tmp_path / "rep").mkdir()
        (tmp_path / "rep" / "index.html").write_text("<p>my page</p>")
        args = ["evaluate", "--pred", pred, "--ref", ref, "--report", tmp_path / "rep"]
        expect, want = f"{tmp_path / 'rep' / 'index.html'}: exists and was not written by the pipeline; not " \
                       f"overwritten (move it away or choose another --report)", 1
    elif case == "run_outside_the_repo":
        cwd, args = tmp_path, ["--cache-dir", tmp_path / "c", "run"]
        expect = f"run.inputs: data/samples not found in {tmp_path}"
    else:
        (tmp_path / "c").mkdir()
        os.chmod(tmp_path / "c", 0o555)
        prefix = _without_dac_override() + prefix
        args = ["--cache-dir", tmp_path / "c", "features", audio]
        expect = f"cache directory {tmp_path / 'c'}: cannot write there (Permission denied)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([*prefix, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in r.stderr.splitlines() if line.startswith(("Error", "FAILED"))]
    assert (r.returncode, len(lines)) == (want, 1), r.stderr
    assert expect in lines[0], lines[0]
    assert "Traceback" not in r.stderr


def test_verbose_shows_the_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipeline", "-v", "--set", "features.fmin=nan", "--cache-dir",
                        str(tmp_path), "features", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "features.fmin=nan must be a finite number" in r.stderr


def test_evaluate_per_file_is_formatted(capsys, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    sf.write(ref / "a.wav", speech_like(), SR)
    sf.write(ref / "b.wav", speech_like(), SR)
    (ref / "a.tsv").write_text("onset\toffset\tevent_label\n0\t1\tspeech\n")
    (ref / "b.tsv").write_text("onset\toffset\tevent_label\n")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "a.tsv").write_text("onset\toffset\tevent_label\n0\t0.5\tspeech\n")
    (tmp_path / "pred" / "b.tsv").write_text("onset\toffset\tevent_label\n")
    code, out, err = run(capsys, "evaluate", "--pred", tmp_path / "pred", "--ref", ref, "--per-file")
    assert code == 0
    assert "None" not in out
    line = next(x for x in out.splitlines() if x.startswith("a.wav"))
    assert "1.000" in line and "0.667" in line


# ---------------------------------------------------------------- interruptions and kills


def _marked_processes(mark: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if mark.encode() in (p / "environ").read_bytes():
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def _many_files(d: Path, n: int, seconds: float = 0.5) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(d / f"f{i:04d}.wav", speech_like(seconds, seed=i), SR, subtype="PCM_16")


def _start(tmp_path, mark, *args):
    env = {**os.environ, "PIPELINE_TEST_MARK": mark}
    return subprocess.Popen([sys.executable, "-m", "pipeline", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_workers(mark: str, n: int, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while len(_marked_processes(mark)) < n + 1 and time.monotonic() - t0 < timeout:
        time.sleep(0.1)


def _entries(cache_dir: Path, stage: str = "features") -> int:
    return len(list((cache_dir / stage).glob("*/*"))) if (cache_dir / stage).is_dir() else 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_or_kill_leaves_no_worker_behind(tmp_path, sig):
    """The signal is sent while work provably remains: after the first entries are stored and
    with most of the files still to do (checked just before sending), however busy the machine."""
    n = 120
    _many_files(tmp_path / "in", n, seconds=20.0)  # 40 min of audio: seconds of work on 2 workers
    mark = uuid.uuid4().hex
    cache_dir = tmp_path / "cache"
    proc = _start(tmp_path, mark, "--cache-dir", cache_dir, "-j", "2", "features", tmp_path / "in")
    _wait_for_workers(mark, 2)
    deadline = time.monotonic() + 120
    while _entries(cache_dir) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    done = _entries(cache_dir)
    assert proc.poll() is None and 2 <= done < n // 2, f"{done} of {n} entries when the signal was due"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert _entries(cache_dir) < n
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1].startswith("interrupted") and "Traceback" not in err
    t0 = time.monotonic()
    while _marked_processes(mark) and time.monotonic() - t0 < 15:
        time.sleep(0.2)
    assert _marked_processes(mark) == []
    cache = Cache(cache_dir)
    assert not any(cache.verify(s, k) for s in cache.stages() for k in cache.keys(s))


@pytest.mark.slow
def test_soak_killed_three_times_ends_identical(tmp_path):
    """A few hundred short files, -j 2, SIGKILLed at three points and restarted: the cache ends
    with exactly the entries (and bytes) of one uninterrupted run, and all of them verify."""
    d = tmp_path / "in"
    _many_files(d, 300, seconds=0.3)
    for delay in (1.5, 3.0, 4.5):
        mark = uuid.uuid4().hex
        proc = _start(tmp_path, mark, "--cache-dir", tmp_path / "killed", "-j", "2", "features", d)
        time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=60)
        t0 = time.monotonic()
        while _marked_processes(mark) and time.monotonic() - t0 < 15:
            time.sleep(0.2)
        assert _marked_processes(mark) == []
    last = subprocess.run([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "killed"), "-j", "2",
                           "features", str(d)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stderr
    ref = subprocess.run([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "clean"), "-j", "2",
                          "features", str(d)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0
    a, b = Cache(tmp_path / "killed"), Cache(tmp_path / "clean")
    assert a.stages() == b.stages() == ["features"]  # features read the files themselves
    assert sorted(a.keys("features")) == sorted(b.keys("features"))
    assert len(list(a.keys("features"))) == 300
    for key in a.keys("features"):
        assert a.verify("features", key) == []
        assert (a.entry_path("features", key) / "S.npy").read_bytes() == \
               (b.entry_path("features", key) / "S.npy").read_bytes()
    gc = subprocess.run([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "killed"), "cache", "gc"],
                        cwd=ROOT, capture_output=True, text=True)
    assert gc.returncode == 0 and not list((tmp_path / "killed" / ".tmp").iterdir())


@pytest.mark.slow
def test_two_runs_on_one_cache_at_once(tmp_path):
    d = tmp_path / "in"
    _many_files(d, 60, seconds=0.5)
    procs = [_start(tmp_path, uuid.uuid4().hex, "--cache-dir", tmp_path / "cache", "features", d) for _ in range(2)]
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == 0
    cache = Cache(tmp_path / "cache")
    assert len(list(cache.keys("features"))) == 60
    assert not any(cache.verify(s, k) for s in cache.stages() for k in cache.keys(s))


@pytest.mark.slow
def test_two_predicts_into_one_out_at_once_both_finish(tmp_path):
    """Two real runs on the same inputs and --out at the same time: both exit 0, every output is
    there once and recorded, and a third run (nothing to compute) may replace them all."""
    d = tmp_path / "in"
    _many_files(d, 40, seconds=2.0)
    out = tmp_path / "out"
    procs = [_start(tmp_path, uuid.uuid4().hex, "--cache-dir", tmp_path / "cache", "predict", d, "--model", MODEL,
                    "--out", out, "--format", "rttm") for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        assert "FAILED" not in err
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == sorted([".pipeline-outputs", ".pipeline-outputs.lock"] +
                           [f"f{i:04d}{ext}" for i in range(40) for ext in (".tsv", ".rttm")])
    recorded = {json.loads(line)["path"] for line in (out / RECORD).read_text().splitlines()}
    assert recorded == set(names) - {".pipeline-outputs", ".pipeline-outputs.lock"}
    third = subprocess.run([sys.executable, "-m", "pipeline", "--cache-dir", str(tmp_path / "cache"), "predict",
                            str(d), "--model", str(MODEL), "--out", str(out), "--format", "rttm"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "40 files: 0 computed, 40 cached, 0 failed" in third.stdout, third.stderr


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def _has_open(pid: int, path: Path) -> bool:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            pass
    return False


@pytest.mark.slow
def test_a_worker_that_crashes_on_a_file_fails_that_file_alone(tmp_path):
    """A worker process killed by SIGSEGV while it has one file open (what a decoder's crash does)
    breaks the process pool: that file fails, named, fresh workers take the rest, exit 1."""
    d = tmp_path / "in"
    _many_files(d, 8, seconds=1.0)
    victim = d / "long.wav"
    sf.write(victim, speech_like(1200.0), SR, subtype="PCM_16")  # 20 min: a second or more of decoding
    cache_dir = tmp_path / "cache"
    proc = _start(tmp_path, uuid.uuid4().hex, "--cache-dir", cache_dir, "-j", "2", "features", d)
    killed, deadline = None, time.monotonic() + 240
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        for pid in _children(proc.pid):  # the workers, not the parent (which hashes every file first)
            if _has_open(pid, victim):
                os.kill(pid, signal.SIGSEGV)
                killed = pid
                break
    out, err = proc.communicate(timeout=300)
    assert killed is not None, f"no worker seen handling {victim}: {err}"
    assert proc.returncode == 1, err
    failed = [line for line in err.splitlines() if line.startswith(("FAILED", "Error"))]
    assert failed == [f"FAILED {victim}: the worker process handling it died (SIGSEGV); the other inputs went on"]
    assert "features: 9 files: 8 computed, 0 cached, 1 failed" in out
    assert _entries(cache_dir) == 8


# ---------------------------------------------------------------- fuzzed labels and TOML

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pipeline.errors import PipelineError  # noqa: E402

_LABEL_ALPHABET = st.sampled_from(list("0123456789.-+eE \t\n\r,;:{}[]\"'#\\") +
                                  ["SPEAKER", "onset", "offset", "event_label", "filename", "nan", "inf",
                                   "<NA>", "speech", "\u00e9", "\ufeff", "\x00", "1e400", "null", "true"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(_LABEL_ALPHABET, max_size=60).map("".join), raw=st.binary(max_size=40),
       suffix=st.sampled_from([".tsv", ".rttm", ".txt", ".json"]), use_raw=st.booleans())
def test_fuzzed_label_files_raise_only_project_errors_naming_the_file(tmp_path, text, raw, suffix, use_raw):
    from pipeline.labels import read_labels

    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(raw if use_raw else text.encode("utf-8", "surrogatepass"))
    try:
        labels = read_labels(path)
    except PipelineError as exc:
        msg = str(exc)
        assert str(path) in msg, msg
        whole_file = ("cannot read label file", "expected a list", "must be a list", "invalid JSON",
                      "header columns", "event ")
        assert "line " in msg or any(w in msg for w in whole_file), msg
        return
    for segs in labels.values():  # what is read is well formed
        assert all(0 <= s.onset <= s.offset and s.label.strip() for s in segs)


_TOML_VALUE = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                        st.booleans(), st.text(max_size=8), st.lists(st.integers(0, 9), max_size=3))
_SECTIONS = ["load", "features", "chunk", "model", "train", "predict", "run", "bogus"]
_KEYS = ["sr", "mono", "kind", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "center", "frames", "hop",
         "cell", "hidden", "threshold", "chunk_duration", "inputs", "model", "typo"]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.sampled_from(_SECTIONS), st.one_of(
    _TOML_VALUE, st.dictionaries(st.sampled_from(_KEYS), _TOML_VALUE, max_size=4)), max_size=4),
    garbage=st.text(max_size=30), add_garbage=st.booleans())
def test_fuzzed_toml_raises_only_parameter_errors_naming_the_file(tmp_path, doc, garbage, add_garbage):
    from pipeline.config import build_config
    from pipeline.errors import ParameterError

    lines = [f"{name} = {_toml_value(v)}" for name, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines += [f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines) + ("\n" + garbage if add_garbage else "") + "\n", encoding="utf-8",
                    errors="surrogatepass")
    try:
        build_config(path)
    except ParameterError as exc:
        assert str(path) in str(exc) or "command line" in str(exc), str(exc)


def test_bad_manifests_and_names_too_long_for_the_disk_fail_alone(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "good.wav", speech_like(), SR)
    long_name = "x" * 245 + ".wav"  # fits; its .scores.npy (256 bytes) does not
    sf.write(d / long_name, speech_like(seed=1), SR)
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    (tmp_path / "nopath.csv").write_text("file,labels\na.wav,\n")
    code, out, err = run(capsys, "--cache-dir", tmp_path / "cache", "predict", d, tmp_path / "binary.csv",
                         tmp_path / "nopath.csv", "--model", MODEL, "--out", tmp_path / "out", "--format", "npy")
    assert code == 1 and "Traceback" not in err
    assert "binary.csv: cannot read the manifest" in err and "nopath.csv: a manifest needs a 'path' column" in err
    assert long_name[:-4] + ".scores.npy: cannot write" in err
    assert (tmp_path / "out" / "good.scores.json").is_file()
