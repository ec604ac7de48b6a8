"""The real-recordings corpus recipe (data/recipes/real_corpus.py): determinism, held-out split.

The builds need the Debian packages the recipe reads (speech, music and effects packs); without
them those tests skip and name the packages. The package-check test runs everywhere.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys

import pytest
from synth import load_recipe, run_recipe, tree_digests


rc = load_recipe('real_corpus')
MISSING = rc.missing_packages()
SKIP_REASON = ("missing Debian packages: " + " ".join(MISSING)
               + " (apt-get install -y " + " ".join(MISSING) + ")")
needs_packages = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)

TINY = ("--train-clips", "3", "--dev-clips", "4", "--clip-seconds", "4")


_build = functools.partial(run_recipe, "real_corpus")  # (out, *args, env=None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if MISSING:
        pytest.skip(SKIP_REASON)
    root = tmp_path_factory.mktemp("real")
    a, b = root / "a", root / "b"
    for out in (a, b):  # separate caches: renders and unpacked archives made twice
        res = _build(out, "--seed", "3", *TINY)
        assert res.returncode == 0, res.stderr
    return a, b


def test_missing_package_exits_3_and_names_it(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no espeak-ng, flite, festival, fluidsynth
    res = _build(tmp_path / "out", *TINY, env=env)
    assert res.returncode == 3, res.stderr
    assert "espeak-ng" in res.stderr and "apt-get install -y" in res.stderr
    assert "--allow-missing" in res.stderr


def test_unknown_allow_missing_is_a_usage_error(tmp_path):
    res = _build(tmp_path / "out", "--allow-missing", "nonesuch", *TINY)
    assert res.returncode == 2 and "nonesuch" in res.stderr


def test_held_out_sources_are_declared_consistently():
    # every held-out package names a source the recipe knows, in the role it is held out for
    for name in rc.HELD_OUT_MUSIC:
        assert "music" in rc.REAL_BY_NAME[name].roles
    for name in rc.HELD_OUT_EFFECTS:
        assert "effects" in rc.REAL_BY_NAME[name].roles
    assert len(rc.HELD_OUT_LANGS) + len(rc.HELD_OUT_PACKS) >= 2
    assert rc.is_held_group("klettres", "da") and rc.is_held_group("hedgewars", "Pirate")
    assert not rc.is_held_group("klettres", "en") and not rc.is_held_group("hedgewars", "Default")


def _variant(tiny, tmp_path, name: str, *args: str):
    """The tiny build again with ``args`` added: ``(its folder, the tiny build's digests, its digests)``."""
    out = tmp_path / name
    res = _build(out, "--seed", "3", *TINY, *args)
    assert res.returncode == 0, res.stderr
    return out, tree_digests(tiny[0]), tree_digests(out)


def _dev(digests: dict) -> dict:
    return {k: v for k, v in digests.items() if k.startswith("dev/")}


@pytest.mark.slow
@needs_packages
def test_same_seed_is_byte_identical(tiny):
    a, b = tiny
    da, db = tree_digests(a), tree_digests(b)
    assert len([k for k in da if k.endswith(".wav")]) == 7
    assert {"train.tsv", "dev.tsv", "meta.json"} <= set(da)
    assert da == db


@pytest.mark.slow
@needs_packages
def test_held_out_sources_never_in_train(tiny):
    a, _ = tiny
    meta = json.loads((a / "meta.json").read_text())
    held = meta["held_out"]
    held_groups = set(held["speech_groups"])
    held_pkgs = set(held["music_packages"]) | set(held["effects_packages"])
    held_tts = {(e, v) for e, vs in held["tts_voices"].items() for v in vs}
    assert held_groups and held["music_packages"] and held["effects_packages"]
    seen_in_dev = set()
    for m in meta["clips"].values():
        voices = {u["voice"] for u in m["utterances"]}
        tts = {(u["source"], u["voice"]) for u in m["utterances"]}
        pkgs = set(m["background"]["packages"])
        if m["split"] == "train":
            assert not voices & held_groups
            assert not tts & held_tts
            assert not pkgs & held_pkgs and not m["background"]["held_out"]
            assert not any(u["held_out"] for u in m["utterances"])
        else:
            seen_in_dev |= (voices & held_groups) | (pkgs & held_pkgs)
            if m["background"]["kind"] in ("music", "effects", "ambience"):
                # a dev background is wholly from held-out packages or wholly from seen ones
                assert m["background"]["held_out"] == bool(pkgs & held_pkgs)
                assert not m["background"]["held_out"] or pkgs <= held_pkgs
    assert seen_in_dev  # dev does use them (seed 3)


@pytest.mark.slow
@needs_packages
def test_pools_hold_out_whole_sources(tmp_path):
    vc_sources, voices, real, _ = rc.check_sources([])
    pools = rc.build_pools(vc_sources, voices, real, 16000, str(tmp_path))
    for key in pools.held_groups:
        src, group = key.split(":", 1)
        assert group not in pools.words["train"][src] and group in pools.words["dev"][src]
    train_music = {p for _, p, _ in pools.music["train"]}
    dev_music = {p for _, p, _ in pools.music["dev"]}
    assert train_music and dev_music and not train_music & dev_music
    assert not {s for s, _, _ in pools.music["train"]} & set(rc.HELD_OUT_MUSIC)
    assert not {s for s, _ in pools.events["train"]} & set(rc.HELD_OUT_EFFECTS)
    assert not {p for _, p in pools.events["train"]} & {p for _, p in pools.events["dev"]}
    for src in pools.words["train"]:
        for g, files in pools.words["train"][src].items():
            assert not set(files) & set(pools.words["dev"][src].get(g, []))
    # dropped material is never drawn
    for key in rc.DROPPED_GROUPS:
        src, group = key.split(":", 1)
        assert all(group not in pools.words[s].get(src, {}) for s in ("train", "dev"))


@pytest.mark.slow
@needs_packages
def test_extra_no_speech_clips_leave_the_others_unchanged(tiny, tmp_path):
    out, da, de = _variant(tiny, tmp_path, "extra", "--extra-no-speech", "3")
    wavs = {k for k in da if k.endswith(".wav")}
    assert {k: de[k] for k in wavs} == {k: da[k] for k in wavs}  # the 7 clips, byte for byte
    extra = sorted(set(k for k in de if k.endswith(".wav")) - wavs)
    assert extra == ["train/clip_00004.wav", "train/clip_00005.wav", "train/clip_00006.wav"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["extra_no_speech"] == 3
    for k in extra:
        m = meta["clips"][k]
        assert m["split"] == "train" and not m["segments"] and not m["utterances"]
        assert m["background"]["kind"] != "none" and not m["background"]["held_out"]
    assert (out / "train.tsv").read_text().count("clip_0000") >= 6


def test_train_snr_moves_the_train_mixtures_only(tiny, tmp_path):
    """--train-snr LO HI: train clips with speech over a background draw their SNR there; dev
    clips, and train clips without speech or background, are byte for byte the default build's."""
    out, da, dn = _variant(tiny, tmp_path, "snr", "--train-snr", "-5", "-4")
    assert _dev(dn) == _dev(da)
    meta, base = (json.loads((d / "meta.json").read_text()) for d in (out, tiny[0]))
    assert meta["settings"]["train_snr_db"] == [-5.0, -4.0]
    assert "train_snr_db" not in base["settings"]
    mixed = 0
    for k, m in meta["clips"].items():
        if m["split"] != "train":
            continue
        assert m["segments"] == base["clips"][k]["segments"]  # the same speech, the same labels
        if m["snr_db"] is None:
            assert dn[k] == da[k]
        else:
            mixed += 1
            assert -5.0 <= m["snr_db"] <= -4.0, (k, m["snr_db"])
            assert dn[k] != da[k]
    assert mixed >= 1


def test_speed_perturb_moves_train_phrases_only(tiny, tmp_path):
    """--speed-perturb LO HI: every train utterance records its factor, inside LO..HI, and the
    labels stay inside the scaled utterances; dev is byte for byte the default build's."""
    out, da, dn = _variant(tiny, tmp_path, "speed", "--speed-perturb", "0.8", "0.9")
    assert _dev(dn) == _dev(da)
    meta, base = (json.loads((d / "meta.json").read_text()) for d in (out, tiny[0]))
    assert meta["settings"]["speed_perturb"] == [0.8, 0.9]
    assert "speed_perturb" not in base["settings"]
    utts = [u for m in meta["clips"].values() if m["split"] == "train" for u in m["utterances"]]
    assert utts
    for u in utts:
        assert 0.8 <= u["speed"] <= 0.9, u
    assert not any("speed" in u for m in meta["clips"].values() if m["split"] == "dev"
                   for u in m["utterances"])
    # the labels scale with the phrases: every labelled span lies inside an utterance's span
    for m in meta["clips"].values():
        spans = [(u["start"], u["end"]) for u in m["utterances"]]
        for on, off in m["segments"]:
            assert any(a - 0.011 <= on and off <= b + 0.011 for a, b in spans), (m, on, off)


def test_speed_perturb_range_is_checked(capsys):
    for bad in (("1.2", "0.9"), ("0.2", "1.0"), ("1.0", "3")):
        with pytest.raises(SystemExit) as e:
            rc.main(["--out", "x", "--speed-perturb", *bad])
        assert e.value.code == 2
        assert "--speed-perturb" in capsys.readouterr().err


@pytest.mark.slow
@needs_packages
def test_extra_animal_clips_come_last_and_hear_only_animal_calls(tiny, tmp_path):
    out, da, de = _variant(tiny, tmp_path, "animals", "--extra-no-speech", "1", "--extra-animals", "4")
    wavs = {k for k in da if k.endswith(".wav")}
    assert {k: de[k] for k in wavs} == {k: da[k] for k in wavs}  # the 7 clips, byte for byte
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["extra_animals"] == 4 and meta["settings"]["extra_no_speech"] == 1
    assert not meta["clips"]["train/clip_00004.wav"]["segments"]  # the --extra-no-speech clip
    animals = [meta["clips"][f"train/clip_{i:05d}.wav"] for i in range(5, 9)]
    for m in animals:
        assert m["split"] == "train" and m["background"]["kind"] in ("effects", "ambience")
        srcs = m["background"]["sources"]
        assert srcs and all(s.startswith("tuxpaint:animals/")
                            or rc.VOCAL_LIKE.search(s.split(":", 1)[1]) for s in srcs), srcs
        assert not any("_desc" in s for s in srcs)  # Tux Paint's spoken descriptions: never
    assert any(s.startswith("tuxpaint:") for m in animals for s in m["background"]["sources"])
    # the dev clips never hear Tux Paint
    assert not any(s.startswith("tuxpaint:") for k, m in meta["clips"].items()
                   if m["split"] == "dev" for s in m["background"]["sources"])


@needs_packages
def test_animal_call_package_is_needed_only_for_extra_animals(monkeypatch, capsys):
    gone = dataclasses.replace(rc.REAL_BY_NAME["tuxpaint"], check="/nonexistent/tuxpaint/animals")
    recipe = sys.modules[rc.check_sources.__module__]  # the package module that reads it
    monkeypatch.setattr(recipe, "REAL_SOURCES",
                        tuple(gone if s.name == "tuxpaint" else s for s in recipe.REAL_SOURCES))
    _, _, real, notes = rc.check_sources([], calls=False)  # a build without --extra-animals
    assert "tuxpaint" not in real and "klettres" in real and not notes
    with pytest.raises(SystemExit) as e:
        rc.check_sources([], calls=True)
    assert e.value.code == 3 and "tuxpaint-stamps-default" in capsys.readouterr().err


def test_vocal_like_names_animal_calls_only():
    calls = ["sound/farm/farm_animal_00.ogg", "sound/animals/wolf_01.ogg", "Animals/Mooq/Snort1.wav",
             "sound/farm/sheep_02.ogg", "sound/farm/ox_00.ogg", "sfx/exotic-birds.ogg"]
    other = ["sound/farm/scythe_00.ogg", "Objects/Weapons/Shield/WoodHit2.ogg", "sfx/boxing.ogg",
             "sound/military/fight_00.ogg", "music/intro.ogg", "sfx/explosion.ogg"]
    assert all(rc.VOCAL_LIKE.search(p) for p in calls)
    assert not any(rc.VOCAL_LIKE.search(p) for p in other)


def test_background_rows_name_the_mixed_background():
    recipe = sys.modules[rc.check_sources.__module__]
    clip = {"file": "train/clip_00001.wav", "duration": 20.0, "segments": []}
    rows = {kind: recipe.background_rows({**clip, "background": {"kind": kind, "detail": detail}})
            for kind, detail in [("music", {}), ("midi", {}), ("effects", {}), ("ambience", {}),
                                 ("keyboard", {}), ("noise", {}), ("none", {}),
                                 ("samples", {"mode": "loop"}), ("samples", {"mode": "sparse"})]}
    assert rows["music"] == rows["midi"] == [(0.0, 20.0, "music")]
    assert rows["effects"] == rows["ambience"] == rows["keyboard"] == [(0.0, 20.0, "other")]
    assert rows["noise"] == rows["none"] == []
    assert recipe.background_rows({**clip, "background": {"kind": "samples",
                                                          "detail": {"mode": "sparse"}}})[0][2] == "other"
    # sound events without a bed: other rows where each event sounds, overlaps joined
    events = {"events": [[7.5, 9.0], [1.0, 2.5], [2.0, 3.0], [12.25, 12.5]], "events_per_s": 0.3}
    assert recipe.background_rows({**clip, "background": {"kind": "effects", "detail": events}}) == \
        [(1.0, 3.0, "other"), (7.5, 9.0, "other"), (12.25, 12.5, "other")]
    # over an ambience bed the sound goes on all the clip long
    assert recipe.background_rows({**clip, "background": {"kind": "effects", "detail": {
        **events, "bed": "widelands:sound/x.ogg"}}}) == [(0.0, 20.0, "other")]


def test_an_event_sounds_from_its_first_to_its_last_loud_sample():
    import numpy as np

    from vadcorpus.gamesounds import _sounding

    x = np.zeros(1000)
    x[100], x[200:300], x[900] = 1.0, 0.5, 0.001  # the last one is 60 dB down: silence
    assert _sounding(x, 50, 10_000) == (150, 350)
    assert _sounding(x, -150, 10_000) == (0, 150)  # clipped to the buffer
    assert _sounding(x, 9_850, 10_000) == (9_950, 10_000)
    assert _sounding(x, 9_900, 10_000) is None and _sounding(np.zeros(10), 0, 100) is None


def test_multi_label_tsv_reads_as_three_classes(tmp_path):
    from pipeline.labels import read_dcase

    recipe = sys.modules[rc.check_sources.__module__]
    metas = [{"file": "train/a.wav", "duration": 4.0, "segments": [(0.5, 1.25)],
              "background": {"kind": "music"}},
             {"file": "train/b.wav", "duration": 4.0, "segments": [],
              "background": {"kind": "effects"}},
             {"file": "train/c.wav", "duration": 4.0, "segments": [],
              "background": {"kind": "noise"}}]
    recipe.write_tsv(str(tmp_path / "t.multi.tsv"), metas, recipe.background_rows)
    recipe.write_tsv(str(tmp_path / "t.tsv"), metas)
    got = read_dcase(tmp_path / "t.multi.tsv")
    assert sorted((s.onset, s.offset, s.label) for s in got["train/a.wav"]) == \
        [(0.0, 4.0, "music"), (0.5, 1.25, "speech")]
    assert [s.label for s in got["train/b.wav"]] == ["other"] and got["train/c.wav"] == []
    plain = read_dcase(tmp_path / "t.tsv")  # the speech-only TSV is as before
    assert [s.label for s in plain["train/a.wav"]] == ["speech"] and plain["train/b.wav"] == []
    # --classes speech,music: the other rows go, the clip keeps an empty row (it is labelled)
    assert recipe.multi_name(["speech", "music"]) == "speech+music"
    assert recipe.multi_name(list(recipe.MULTI_CLASSES)) == "multi"
    recipe.write_tsv(str(tmp_path / "t.sm.tsv"), metas, recipe.multi_rows(["speech", "music"]))
    sm = read_dcase(tmp_path / "t.sm.tsv")
    assert sorted(s.label for s in sm["train/a.wav"]) == ["music", "speech"]
    assert sm["train/b.wav"] == [] and sm["train/c.wav"] == []


@pytest.mark.parametrize("classes", ["music,other", "speech,dog", "speech,music,music"])
def test_classes_must_be_speech_and_known_ones(classes, capsys):
    recipe = sys.modules[rc.check_sources.__module__]
    with pytest.raises(SystemExit) as e:
        recipe.parse_args(["--out", "x", "--multi-label", "--classes", classes])
    assert e.value.code == 2 and f"--classes {classes}" in capsys.readouterr().err


@needs_packages
def test_continuous_speech_changes_train_only_and_relabel_matches_build(tmp_path):
    args = ("--seed", "3", "--train-clips", "6", "--dev-clips", "2", "--clip-seconds", "20")
    plain, cont = tmp_path / "plain", tmp_path / "cont"
    assert _build(plain, *args).returncode == 0
    res = _build(cont, *args, "--continuous-speech", "--multi-label")
    assert res.returncode == 0, res.stderr
    assert (plain / "dev.tsv").read_bytes() == (cont / "dev.tsv").read_bytes()
    assert sorted(os.listdir(plain / "dev")) == sorted(os.listdir(cont / "dev"))
    for f in os.listdir(plain / "dev"):
        assert (plain / "dev" / f).read_bytes() == (cont / "dev" / f).read_bytes()
    meta = json.loads((cont / "meta.json").read_text())
    srcs = {u["source"] for m in meta["clips"].values() if m["split"] == "train"
            for u in m["utterances"]}
    assert "tuxpaint" in srcs, srcs
    langs = {u["lang"] for m in meta["clips"].values() for u in m["utterances"]
             if u["source"] == "tuxpaint"}
    assert not langs & {"da", "el", "lt"}  # the use-like dev split's languages
    built = (cont / "train.multi.tsv").read_bytes()
    (cont / "train.multi.tsv").unlink()
    assert _build(cont, "--multi-label", "--relabel").returncode == 0
    assert (cont / "train.multi.tsv").read_bytes() == built
    assert _build(cont, "--multi-label", "--classes", "speech,music", "--relabel").returncode == 0
    sm = (cont / "train.speech+music.tsv").read_text().splitlines()
    multi = built.decode().splitlines()
    assert {r.split("\t")[0] for r in sm} == {r.split("\t")[0] for r in multi}  # every clip
    assert [r for r in sm if not r.endswith("\t")] == \
        [r for r in multi if not r.endswith(("\tother", "\t"))]


def test_room_too_large_for_its_rt60_falls_back_to_the_synthetic_tail(monkeypatch):
    pytest.importorskip("pyroomacoustics")  # without it every room is the synthetic tail
    import numpy as np

    rooms = sys.modules[rc.check_sources.__module__.rsplit(".", 1)[0] + ".rooms"]
    monkeypatch.setattr(rooms, "RT60_RANGE", (0.05, 0.05))  # no shoebox of 3 m or more is this dry
    hs, info = rooms.room_rir(np.random.default_rng(0), 16000, 2)
    assert len(hs) == 2 and "room too large" in info["method"]
    assert all(abs(h).argmax() <= 40 for h in hs)  # starts at the direct path


# ---------------------------------------------------------------- sung voice (issue 19)


def _singing():
    return sys.modules[rc.check_sources.__module__.rsplit(".", 1)[0] + ".singing"]


def test_songs_are_transposed_by_semitones_and_tempo():
    sing = _singing()
    xml = ('<SINGING BPM="80">\n<DURATION BEATS="1.0,1.0"><PITCH NOTE="F4,D4">Daisy</PITCH></DURATION>\n'
           '<DURATION BEATS="0.5"><PITCH NOTE="Bb3">give</PITCH></DURATION>\n'
           '<DURATION BEATS="0.5"><PITCH NOTE="B3">me</PITCH></DURATION>\n')
    up = sing.transpose(xml, 2, 1.25)
    assert 'NOTE="G4,E4"' in up and 'NOTE="C4"' in up and 'NOTE="C#4"' in up and 'BPM="100.0"' in up
    assert "Daisy" in up and up.count("NOTE=") == 3
    down = sing.transpose(xml, -5, 1.0)
    assert 'NOTE="C4,A3"' in down and 'NOTE="F3"' in down and 'NOTE="F#3"' in down
    assert sing.transpose(xml, 0, 1.0) == xml.replace('BPM="80"', 'BPM="80.0"')


def test_notes_are_counted_as_festival_counts_them():
    sing = _singing()
    xml = '<PITCH NOTE="F4,D4">a</PITCH><PITCH NOTE="Bb3">b</PITCH><PITCH NOTE="C#5">c</PITCH>'
    assert sing.notes(xml) == [53, 50, 46, 61]
    assert sing.notes(sing.transpose(xml, 3, 1.0)) == [56, 53, 49, 64]


def test_extra_singing_needs_festival_singing_mode(tmp_path, monkeypatch):
    sing = _singing()
    monkeypatch.setattr(sing, "SONG_DIR", str(tmp_path / "no-songs"))
    recipe = sys.modules[rc.check_sources.__module__]
    assert recipe.main(["--out", str(tmp_path / "c"), "--extra-singing", "2", "-q"]) == 3
    assert not (tmp_path / "c").exists()


@needs_packages
def test_singing_clips_are_music_not_speech(tmp_path):
    sing = _singing()
    if not sing.available(voices=True):
        pytest.skip("Festival's singing mode or its voices are missing")
    out, again = tmp_path / "sing", tmp_path / "again"
    for d in (out, again):  # separate caches: every song rendered twice
        res = _build(d, "--seed", "4", "--train-clips", "0", "--dev-clips", "0", "--clip-seconds", "12",
                     "--extra-singing", "3", "--multi-label", "--classes", "speech,music")
        assert res.returncode == 0, res.stderr
    assert tree_digests(out) == tree_digests(again)
    meta = json.loads((out / "meta.json").read_text())
    clips = meta["clips"]
    assert len(clips) == 3 and all(c["background"]["kind"] == "singing" for c in clips.values())
    for c in clips.values():
        songs = c["background"]["detail"]["songs"]
        assert songs and {p["voice"] for p in songs} <= set(sing.TRAIN_VOICES)
        assert not {p["song"] for p in songs} & set(sing.HELD_OUT_SONGS)
    rows = [r.split("\t") for r in (out / "train.speech+music.tsv").read_text().splitlines()[1:]]
    music = {r[0] for r in rows if r[3] == "music"}
    assert music == set(clips)  # the whole clip is music
    for name, c in clips.items():  # speech rows are the spoken phrases' labels, none for the song
        speech = [(float(r[1]), float(r[2])) for r in rows if r[0] == name and r[3] == "speech"]
        assert speech == [tuple(s) for s in c["segments"]]
        assert bool(speech) == bool(c["utterances"])
    assert meta["settings"]["singing"]["held_out_voices"] == list(sing.HELD_OUT_VOICES)


@pytest.mark.parametrize("name, option, package", [
    ("warzone", "--warzone-speech", "warzone2100-data"),
    ("queen", "--queen-speech", "flight-of-the-amazon-queen")])
def test_train_line_sources_name_their_package_when_missing(monkeypatch, tmp_path, capsys,
                                                            name, option, package):
    recipe = sys.modules[rc.check_sources.__module__]
    gone = dataclasses.replace(recipe.REAL_BY_NAME[name], check=f"/nonexistent/{name}")
    monkeypatch.setitem(recipe.REAL_BY_NAME, name, gone)
    assert rc.main(["--out", str(tmp_path / "c"), option]) == 3
    err = capsys.readouterr().err
    assert option in err and f"apt-get install -y {package}" in err
    assert not (tmp_path / "c").exists()


def _train_lines_build(tmp_path, option: str, source: str, package: str) -> tuple[dict, list]:
    """Build the same small corpus with and without ``option``: dev must stay byte for byte, the
    setting and the package are recorded, and ``source``'s utterances are all in train clips.
    Returns the meta and those (clip, utterance) pairs, each utterance English from ``package``."""
    args = ("--seed", "3", "--train-clips", "6", "--dev-clips", "2", "--clip-seconds", "20")
    plain, with_lines = tmp_path / "plain", tmp_path / "lines"
    assert _build(plain, *args).returncode == 0
    res = _build(with_lines, *args, option)
    assert res.returncode == 0, res.stderr
    dp, dl = tree_digests(plain), tree_digests(with_lines)
    assert {k: v for k, v in dl.items() if k.startswith("dev")} == \
        {k: v for k, v in dp.items() if k.startswith("dev")}
    meta = json.loads((with_lines / "meta.json").read_text())
    assert meta["settings"][f"{source}_speech"] > 0 and meta["packages"][package]
    lines = [(k, u) for k, m in meta["clips"].items() for u in m["utterances"] if u["source"] == source]
    assert lines and all(k.startswith("train/") for k, _ in lines)
    assert all(u["lang"] == "en" and u["package"] == package for _, u in lines)
    return meta, lines


@pytest.mark.skipif(bool(MISSING) or not os.path.exists(rc.REAL_BY_NAME["warzone"].check),
                    reason="needs the recipe's packages and warzone2100-data")
def test_warzone_speech_joins_train_phrases_only(tmp_path):
    """--warzone-speech: Warzone 2100's spoken lines (never its effects, clicks, cutscene tracks
    or laughs) join the train phrases, labelled like every real word; dev stays byte for byte."""
    meta, lines = _train_lines_build(tmp_path, "--warzone-speech", "warzone", "warzone2100-data")
    for _, u in lines:
        for w in u["words"]:
            folder = w.split(":", 1)[1]
            assert folder.startswith("audio/") and not folder.startswith(("audio/sfx/", "audio/multi/"))
            assert "laugh" not in folder
    clips = {k for k, _ in lines}
    assert all(meta["clips"][k]["segments"] for k in clips)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_events_near_speech_start_after_or_end_before_an_utterance(tmp_path, share):
    """--events-near-speech: a moved event starts 0-0.4 s after an utterance ends or ends
    0-0.4 s before one starts; share 0 leaves them where the exponential clock puts them."""
    import types

    import numpy as np
    import soundfile as sf

    from vadcorpus.gamesounds import background_effects

    sr = 16000
    click = tmp_path / "click.wav"
    sf.write(click, np.ones(int(0.1 * sr)) * 0.5, sr)  # a 0.1 s event
    pools = types.SimpleNamespace(sr=sr, events={"train": [("openclonk", str(click))]}, beds={"train": []})
    speech = [(4 * sr, 6 * sr), (12 * sr, 13 * sr)]
    allowed = np.zeros(20 * sr, dtype=bool)
    for first, end in speech:
        allowed[end:end + int(0.5 * sr)] = True  # starts by 0.4 s after, lasts 0.1 s
        allowed[first - int(0.5 * sr):first] = True
    outside = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        buf, info = background_effects(rng, 20 * sr, "train", pools, bed=False, near=(share, speech))
        assert np.abs(buf).sum() > 0
        outside.append(float((np.abs(buf[~allowed]) > 0).mean()))
        moved = info["detail"].get("moved_near_speech", 0)
        assert moved >= 1 if share else moved == 0, info["detail"]
        # the meta says where the events sound (the multi-label TSVs' other rows), to the millisecond
        sounding = np.zeros(20 * sr, dtype=bool)
        for a, b in info["detail"]["events"]:
            sounding[int(round(a * sr)):int(round(b * sr))] = True
        assert np.mean(sounding != (np.abs(buf) > 0)) < 0.001, info["detail"]
    if share == 1.0:
        assert max(outside) == 0.0, outside
    else:
        assert max(outside) > 0.0, outside


def _queen_bundle(path, entries, compression=1):
    """A resource bundle laid out like ScummVM's rebuilt ``queen.1c``: header, table, data."""
    import struct
    table_size = 15 + 21 * len(entries)
    table, data, offset = b"", b"", table_size
    for name, blob in entries:
        table += name.encode("ascii").ljust(12, b"\0") + b"\x01" + struct.pack(">II", offset, len(blob))
        data += blob
        offset += len(blob)
    path.write_bytes(b"QTBL" + b"CEM10\0" + b"\0\0" + bytes([compression])
                     + struct.pack(">H", len(entries)) + table + data)


def test_queen_bundle_reader_decodes_speech_files_only(monkeypatch, tmp_path):
    """--queen-speech's reader: the bundle's table is parsed, its speech files (``*.SB``) decoded
    into the cache by group (``JOE`` or the first two characters), and nothing else read; the
    vocal sounds (``*SSSS*``) and one-off names are not lines."""
    import io
    import numpy as np
    import soundfile as sf
    gs = sys.modules["vadcorpus.gamespeech"]
    tone = 0.25 * np.sin(2 * np.pi * 220 * np.arange(11025) / 11025)
    blob = io.BytesIO()
    sf.write(blob, tone, 11025, format="WAV", subtype="PCM_16")
    bundle = tmp_path / "queen.1c"
    _queen_bundle(bundle, [("020006J1.SB", blob.getvalue()), ("ROOM1.PCX", b"\x0a" * 40),
                           ("JOE00001.SB", blob.getvalue()), ("C12A_001.SB", blob.getvalue()),
                           ("1000SSSS.SB", blob.getvalue()), ("MIK_0112.SB", blob.getvalue())])
    assert [e[0] for e in gs.queen_entries(str(bundle))] == \
        ["020006J1.SB", "JOE00001.SB", "C12A_001.SB", "1000SSSS.SB", "MIK_0112.SB"]
    monkeypatch.setattr(gs, "QUEEN_1C", str(bundle))
    lines = gs.queen_lines(str(tmp_path / "cache"), "test")
    assert {g: [os.path.basename(f) for f in fs] for g, fs in lines.items()} == \
        {"02": ["020006J1.wav"], "C1": ["C12A_001.wav"], "JOE": ["JOE00001.wav"]}
    y, sr = sf.read(lines["02"][0])
    assert sr == 11025 and np.abs(y - tone).max() < 1e-3


@pytest.mark.parametrize("head", [b"RIFF" + b"\0" * 11, b"QTBL" + b"CEM10\0" + b"\0\0" + b"\x07\0\1"])
def test_queen_bundle_reader_names_a_wrong_file(tmp_path, head):
    gs = sys.modules["vadcorpus.gamespeech"]
    bad = tmp_path / "queen.1c"
    bad.write_bytes(head)
    with pytest.raises(ValueError, match=r"queen\.1c.*QTBL"):
        gs.queen_entries(str(bad))


@pytest.mark.skipif(bool(MISSING) or not os.path.exists(rc.REAL_BY_NAME["queen"].check),
                    reason="needs the recipe's packages and flight-of-the-amazon-queen")
def test_queen_speech_joins_train_phrases_only(tmp_path):
    """--queen-speech: Flight of the Amazon Queen's spoken lines join the train phrases, labelled
    like every real word; dev stays byte for byte."""
    meta, lines = _train_lines_build(tmp_path, "--queen-speech", "queen", "flight-of-the-amazon-queen")
    for _, u in lines:
        assert all(w.split(":", 1)[1].endswith(".wav") for w in u["words"])
    assert all(meta["clips"][k]["segments"] for k, _ in lines)
