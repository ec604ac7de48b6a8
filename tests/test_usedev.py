"""The use-like dev split (data/recipes/vadcorpus/usedev.py, dev_continuous.py): label rules,
the clip plan, and (with the Debian packages) a tiny build that is deterministic and laid out like
speech-v1."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

RECIPES = Path(__file__).resolve().parents[1] / "data" / "recipes"
sys.path.insert(0, str(RECIPES))
from vadcorpus import usedev  # noqa: E402
from vadcorpus.labels import rms_over  # noqa: E402


def test_fill_gaps_joins_then_drops_islands():
    m = np.zeros(100, bool)
    m[10:20] = m[30:40] = True   # 10-frame gap: joined when gap > 10
    m[60:62] = True              # a 2-frame island
    assert np.flatnonzero(np.diff(np.r_[0, usedev.fill_gaps(m, 11, 3), 0])).tolist() == [10, 40]
    assert usedev.fill_gaps(m, 5, 3)[30:40].all() and not usedev.fill_gaps(m, 5, 3)[20:30].any()
    assert not usedev.fill_gaps(m, 5, 3)[60:62].any() and usedev.fill_gaps(m, 5, 1)[60:62].all()


def test_rms_over_counts_only_the_marked_frames():
    # the level every recipe sets speech and SNRs by: frames of `hop` samples, the unmarked ignored
    y = np.r_[np.full(160, 0.5), np.full(160, 2.0), np.zeros(160)]
    assert rms_over(y, np.array([True, False, False]), 160) == pytest.approx(0.5)
    assert rms_over(y, np.array([True, True, False]), 160) == pytest.approx(np.sqrt((0.25 + 4) / 2))
    assert rms_over(y, np.array([True, True, True, False, False, False]), 80) \
        == pytest.approx(np.sqrt((2 * 0.25 + 4) / 3))


def test_v1_rule_counts_quiet_frames_only_near_loud_ones():
    sr, hop = 16000, 160
    rng = np.random.default_rng(0)
    y = np.zeros(sr * 3)

    def burst(t0, t1, amp):
        y[int(t0 * sr):int(t1 * sr)] = amp * rng.uniform(-1, 1, int(t1 * sr) - int(t0 * sr))

    burst(0.50, 1.50, 0.3)   # the utterance
    burst(1.50, 1.60, 0.01)  # -30 dB: above p95 - 35 dB, within 200 ms of a loud frame
    burst(2.50, 2.60, 0.01)  # the same level 1 s away: not counted
    primary, strict = usedev.v1_frames(y)
    assert primary[50:150].all() and primary[150:160].all()
    assert not primary[250:260].any() and not primary[:50].any()
    assert not strict[150:160].any()  # -30 dB is under the strict rule's p95 - 25 dB: uncertain
    assert len(primary) == len(y) // hop


def test_clip_plan_covers_every_class_and_snr():
    plan = usedev.clip_plan(2, 3, 4)
    mixed = [(c, s) for k, c, s in plan if k == "mixed"]
    assert len(mixed) == 2 * len(usedev.CLASSES) * len(usedev.SNRS_DB)
    assert {(c, s) for c, s in mixed} == {(c, float(s)) for c in usedev.CLASSES
                                         for s in usedev.SNRS_DB}
    assert [k for k, _, _ in plan].count("clean") == 3
    assert [c for k, c, _ in plan if k == "nonspeech"] == ["music", "events", "noise", "music"]


NEEDS = [usedev.REAL_BY_NAME[s].check for s in ("hedgewars", "tuxpaint", "neverball",
                                                  "frozen-bubble", "openttd")]


@pytest.mark.skipif(not all(Path(p).exists() for p in NEEDS),
                    reason="the Debian packages of dev_continuous.py are not installed")
def test_tiny_build_is_deterministic_and_scorable(tmp_path):
    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        res = subprocess.run([sys.executable, str(RECIPES / "dev_continuous.py"), "--out", str(out),
                              "-q", "--per-cell", "0", "--clean", "2", "--nonspeech", "1"],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        digests.append({p.name: p.read_bytes() for p in sorted(out.glob("use_*"))})
    assert digests[0] == digests[1] and len(digests[0]) == 3 * 6
    rows = list(csv.DictReader(open(tmp_path / "a" / "meta.csv")))
    assert [r["kind"] for r in rows] == ["clean", "clean", "nonspeech"]
    for r in rows:
        frames = np.load(tmp_path / "a" / f"{r['clip']}.frames.npy")
        assert len(frames) == int(r["n_frames"]) == 3000
        assert (frames.mean() > 0.2) == (r["kind"] == "clean")
        assert abs(frames.mean() - float(r["speech_frac"])) < 1e-3


def test_sides_share_no_voice_and_no_file(tmp_path, monkeypatch):
    """--side train reads what the training recipes may read, --side dev the held-out rest:
    no voice group and no file in both, and nothing of the held-out packs or languages in train."""
    root = tmp_path / "asterisk"
    for d in usedev.ASTERISK_DIRS.values():
        for k in range(40):
            (root / d / "digits").mkdir(parents=True, exist_ok=True)
            (root / d / "digits" / f"p{k}.wav").write_bytes(b"")
    (root / "en" / "silence").mkdir(parents=True, exist_ok=True)
    (root / "en" / "silence" / "1.wav").write_bytes(b"")
    monkeypatch.setattr(usedev, "ASTERISK_ROOT", str(root))
    packs = {p: [f"/hw/{p}/line{k}.ogg" for k in range(30)]
             for p in ("Default_pl", "Pirate", "Russian_pl", "Robot", "Classic", "British", "Singer")}
    monkeypatch.setattr(usedev, "speech_files", lambda real: {"hedgewars": packs})
    langs = {lang: [f"/tp/{lang}/stamp{k}_desc_{lang}.ogg" for k in range(20)]
             + [f"/tp/symbols/alphabets/a_desc_{lang}.ogg"] for lang in ("da", "el", "lt", "es", "fr", "ru")}
    monkeypatch.setattr(usedev, "tuxpaint_descriptions", lambda: langs)
    dev, train = usedev.speech_groups("dev"), usedev.speech_groups("train")
    assert all(g.startswith("asterisk:") for g in set(dev) & set(train))  # its two voices: other prompts
    dev_files = {f for v in dev.values() for _, f in v}
    train_files = {f for v in train.values() for _, f in v}
    assert dev_files and train_files and not dev_files & train_files
    assert not any("/silence/" in f or "/alphabets/" in f for f in dev_files | train_files)
    held = set(usedev.HEDGEWARS_DEV_PACKS) | {"Robot", "Singer"}  # held out, vocoded, sung
    assert not {g.split(":")[1] for g in train if g.startswith("hedgewars:")} & held
    dev_packs = {g.split(":")[1] for g in dev if g.startswith("hedgewars:")}
    assert dev_packs == set(usedev.HEDGEWARS_DEV_PACKS)
    assert {g for g in train if g.startswith("tuxpaint:")} == {"tuxpaint:es", "tuxpaint:ru"}  # fr: dropped
    assert {g for g in dev if g.startswith("tuxpaint:")} == {"tuxpaint:da", "tuxpaint:el", "tuxpaint:lt"}
    assert all(usedev.real_split_of(i) == "train" for g, v in train.items() if g.startswith("hedgewars:")
               for i, _ in v)
    assert all(usedev.split_of(f"asterisk:{i.split('/', 1)[1]}") == "train"
               for g, v in train.items() if g.startswith("asterisk:") for i, _ in v)
    with pytest.raises(ValueError, match="side='test'"):
        usedev.speech_groups("test")


def test_speed_perturbation_moves_pitch_length_and_labels():
    sr, hop = usedev.SR, usedev.HOP
    t = np.arange(sr * 2) / sr
    piece = np.sin(2 * np.pi * 1000 * t) * (t >= 0.5)
    y, a, b = usedev.played_at(piece, 50, 200, 1.25)
    assert len(y) % hop == 0 and abs(len(y) - len(piece) / 1.25) <= hop
    assert (a, b) == (40, 160)
    spec = np.abs(np.fft.rfft(y[len(y) // 2:]))
    assert abs(np.argmax(spec) * sr / (len(y) - len(y) // 2) - 1250) < 10  # played faster: higher
    speeds = [usedev.speed_of(0, f"/x/{k}.wav", 0.85, 1.2) for k in range(200)]
    assert all(0.85 <= f <= 1.2 for f in speeds) and np.std(speeds) > 0.05
    assert speeds[:5] == [usedev.speed_of(0, f"/x/{k}.wav", 0.85, 1.2) for k in range(5)]
    assert speeds[:5] != [usedev.speed_of(1, f"/x/{k}.wav", 0.85, 1.2) for k in range(5)]


def test_speed_perturbation_is_refused_on_the_dev_side():
    with pytest.raises(SystemExit) as e:
        usedev.parse_args(["--out", "x", "--speed-perturb", "0.9", "1.1"])
    assert e.value.code == 2
    a = usedev.parse_args(["--out", "x", "--side", "train", "--speed-perturb", "0.9", "1.1"])
    assert a.speech == ["asterisk", "hedgewars", "tuxpaint"] and a.speed_perturb == [0.9, 1.1]
    assert usedev.parse_args(["--out", "x"]).speech == ["hedgewars", "tuxpaint"]


def test_rooms_reverberate_the_speech_only_and_keep_the_dry_labels(tmp_path):
    import soundfile as sf
    sr = usedev.SR
    rng = np.random.default_rng(1)
    groups = {"hedgewars:Synthetic": []}
    for k in range(3):  # 1.2 s of band noise bursts with a -60 dB floor either side: screened in
        y = 1e-3 * rng.standard_normal(int(2.0 * sr))
        y[int(0.4 * sr):int(1.6 * sr)] += 0.3 * np.sin(2 * np.pi * (200 + 50 * k) * np.arange(int(1.2 * sr)) / sr)
        sf.write(tmp_path / f"u{k}.wav", y, sr, subtype="FLOAT")
        groups["hedgewars:Synthetic"].append((f"u{k}", str(tmp_path / f"u{k}.wav")))
    dry = usedev.make_clip(0, 7, "clean", "none", None, groups, {}, {})
    wet = usedev.make_clip(0, 7, "clean", "none", None, groups, {}, {}, rooms=1.0)
    assert dry["room"] is None and 0.15 <= wet["room"]["rt60_s"] <= 0.8
    for k in ("frames", "ours", "tight"):  # labels from the dry speech
        assert np.array_equal(dry[k], wet[k])
    m = dry["ours"]
    tail = np.zeros_like(m)  # the 100 ms after each labelled run
    for end in np.flatnonzero(np.diff(m.astype(int)) == -1) + 1:
        tail[end:end + 10] = True
    tail &= ~m
    level = lambda c, sel: float(np.sqrt(np.mean(c["mix"].reshape(-1, usedev.HOP)[sel] ** 2)))  # noqa: E731
    assert abs(20 * np.log10(level(wet, m) / level(dry, m))) < 1.0  # the speech's level kept
    assert level(wet, tail) > 3 * level(dry, tail)  # a reverberation tail after the speech
    again = usedev.make_clip(0, 7, "clean", "none", None, groups, {}, {}, rooms=0.5)
    assert again["room"] is None or np.array_equal(again["mix"], wet["mix"])  # its own stream
    if again["room"] is None:
        assert np.array_equal(again["mix"], dry["mix"])


def test_more_music_is_for_the_train_side_only():
    with pytest.raises(SystemExit) as e:
        usedev.parse_args(["--out", "x", "--more-music"])
    assert e.value.code == 2
    assert usedev.parse_args(["--out", "x", "--side", "train", "--more-music"]).more_music
    assert not usedev.parse_args(["--out", "x", "--side", "train"]).more_music
    with pytest.raises(ValueError, match="train side"):
        usedev.background_pools("unused", "dev", more_music=True)


def test_more_music_sources_are_known_packages_none_reserved():
    from vadcorpus.packages import MORE_MUSIC, REAL_BY_NAME, file_id
    reserved = ("wesnoth", "supertux-data", "megaglest", "redeclipse", "openarena", "freedroidrpg",
                "0ad", "extremetuxracer", "fillets", "moh-opsound", "oxygen", "deepin", "gnome-audio")
    for s in MORE_MUSIC:
        assert REAL_BY_NAME[s.name] is s and s.roles == ("music",)
        assert not any(r in s.package for r in reserved)
    # ids stay machine-independent: the path inside the package
    assert file_id("warzone-music", "/usr/share/games/warzone2100/music/albums/a/t1.opus") \
        == "warzone-music:albums/a/t1.opus"


def test_more_music_unpacks_a_pk3_once_and_leaves_out_the_excluded_tracks(tmp_path, monkeypatch):
    import zipfile

    import soundfile as sf
    from vadcorpus import gamesounds
    from vadcorpus.packages import RealSource, file_id

    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    sf.write(tmp_path / "t.ogg", tone, 16000)
    pk3 = tmp_path / "music.pk3"
    with zipfile.ZipFile(pk3, "w") as z:
        for name in ("sound/cdtracks/calm.ogg", "sound/cdtracks/digital-pursuit.ogg"):
            z.write(tmp_path / "t.ogg", name)
        z.writestr("sound/cdtracks/readme.txt", "not audio")
    monkeypatch.setattr(gamesounds, "MORE_MUSIC", (
        RealSource("nexuiz", "nexuiz-music", str(pk3), ("music",)),
        RealSource("warzone-music", "warzone2100-music", str(tmp_path / "absent"), ("music",))))
    cache = tmp_path / "cache"
    got = gamesounds.more_music_files(str(cache), {"nexuiz-music": "9"})
    assert [s for s, _ in got] == ["nexuiz"]  # the absent package skipped, the excluded track out
    assert file_id(*got[0]) == "nexuiz:sound/cdtracks/calm.ogg"
    y, sr = sf.read(got[0][1])
    assert sr == 16000 and len(y) == 8000
    again = gamesounds.more_music_files(str(cache), {"nexuiz-music": "9"})
    assert again == got and len(list((cache / "extracted").iterdir())) == 1  # unpacked once


def test_rooms_are_refused_outside_0_1_and_speed_on_the_dev_side():
    for argv in (["--out", "x", "--side", "train", "--rooms", "1.5"],
                 ["--out", "x", "--rooms", "-0.1"],
                 ["--out", "x", "--rooms", "1", "--speed-perturb", "0.9", "1.1"]):
        with pytest.raises(SystemExit) as e:
            usedev.parse_args(argv)
        assert e.value.code == 2
    assert usedev.parse_args(["--out", "x", "--side", "train", "--rooms", "0.5"]).rooms == 0.5
    a = usedev.parse_args(["--out", "x", "--rooms", "1"])  # the dev split's reverberant twin
    assert (a.side, a.rooms, a.speech) == ("dev", 1.0, ["hedgewars", "tuxpaint"])


def test_synthetic_voices_and_queen_are_for_the_train_side_only():
    for speech in ("tts", "asterisk,espeak-ng", "flite", "queen"):
        with pytest.raises(SystemExit) as e:
            usedev.parse_args(["--out", "x", "--speech", speech])
        assert e.value.code == 2
    a = usedev.parse_args(["--out", "x", "--side", "train", "--speech", "asterisk,tts"])
    assert a.speech == ["asterisk", "espeak-ng", "festival", "flite"]
    a = usedev.parse_args(["--out", "x", "--side", "train", "--speech", "flite,tts"])
    assert sorted(a.speech) == ["espeak-ng", "festival", "flite"] and len(a.speech) == 3
    with pytest.raises(SystemExit):
        usedev.parse_args(["--out", "x", "--side", "train", "--speech", "espeak"])


def test_synthetic_voices_leave_out_the_held_voices(tmp_path):
    groups, versions = usedev.tts_groups(["espeak-ng", "flite", "festival"], str(tmp_path))
    held = {f"{e}:{v}" for e, vs in usedev.HELD_OUT.items() for v in vs}
    assert groups and not {g.split("+")[0] if g.startswith("flite") else g for g in groups} & held
    variants = {g.split("+")[1] for g in groups if g.startswith("espeak-ng:")}
    assert variants and not variants & set(usedev.HELD_OUT["espeak-ng"])
    assert "flite:rms" not in groups and "festival:ked_diphone" not in groups
    assert {"espeak-ng", "flite", "festival"} <= set(versions)
    # one voice keeps its pitch; voices differ
    pitches = {g.pitch for g in groups.values() if g.engine == "espeak-ng"}
    assert len(pitches) > 10 and all(30 <= p <= 70 for p in pitches)
    only, _ = usedev.tts_groups(["flite"], str(tmp_path))
    assert set(only) == {f"flite:{v}" for v in usedev.FLITE_VOICES if v != "rms"}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian package)")
def test_a_synthetic_voice_reads_train_sentences_once_each(tmp_path):
    from vadcorpus.common import split_of
    groups, _ = usedev.tts_groups(["espeak-ng"], str(tmp_path))
    voice = groups["espeak-ng:en-gb+m1"]
    rng = np.random.default_rng(0)
    drawn = [voice.draw(rng) for _ in range(3)]
    assert len({uid for uid, _ in drawn}) == 3 and all(uid.startswith("espeak-ng:") for uid, _ in drawn)
    for _, path in drawn:
        assert Path(path).is_file() and str(tmp_path) in path
        got = usedev.screen(path)  # a sentence: passes the same screening as the recordings
        assert got is None or (got[2] - got[1]) / usedev.FPS >= usedev.MIN_ACTIVE_S
    # the same draws render nothing new, and read train-side sentences only
    n = len(list(tmp_path.rglob("*.wav")))
    again = np.random.default_rng(0)
    assert [voice.draw(again) for _ in range(3)] == drawn
    assert len(list(tmp_path.rglob("*.wav"))) == n == 3
    assert all(split_of(f"text:en:{usedev.pick_sentence(rng, 'en', 'train')[0]}") == "train"
               for _ in range(20))


def test_desktop_backgrounds_are_for_the_dev_side_and_tonal_sounds_for_train():
    for argv in (["--out", "x", "--side", "train", "--backgrounds", "desktop"],
                 ["--out", "x", "--tonal", "0.5"],
                 ["--out", "x", "--side", "train", "--tonal", "1.5"]):
        with pytest.raises(SystemExit) as e:
            usedev.parse_args(argv)
        assert e.value.code == 2
    assert usedev.parse_args(["--out", "x", "--backgrounds", "desktop"]).backgrounds == "desktop"
    a = usedev.parse_args(["--out", "x", "--side", "train", "--tonal", "0.5"])
    assert (a.tonal, a.backgrounds) == (0.5, "games")


def test_desktop_packages_are_read_by_no_training_recipe_and_none_reserved():
    from vadcorpus.packages import (DESKTOP_EVENTS, DESKTOP_MUSIC, DESKTOP_SOURCES, MORE_MUSIC,
                                    QUEEN, REAL_SOURCES, WARZONE, file_id)
    reserved = ("sound-theme-freedesktop", "oxygen-sounds", "deepin-sound-theme", "gnome-audio",
                "alsa-utils", "moh-opsound", "gcin-voice", "wesnoth", "supertux-data")
    trained = {s.package for s in REAL_SOURCES + (WARZONE, QUEEN) + MORE_MUSIC}
    for s in DESKTOP_SOURCES:
        assert s.package not in trained and not any(r in s.package for r in reserved)
    # no recipe file but packages.py names the desktop roots: only the dev split reads them
    roots = {root for _, root, _ in (*DESKTOP_EVENTS.values(), *DESKTOP_MUSIC.values())}
    for py in [*(RECIPES / "vadcorpus").glob("*.py"), *RECIPES.glob("*.py")]:
        if py.name != "packages.py":
            assert not any(r in py.read_text() for r in roots), py
    assert file_id("yaru", "/usr/share/sounds/Yaru/stereo/bell.oga") == "yaru:stereo/bell.oga"
    assert file_id("lomiri-ringtones", "/usr/share/sounds/lomiri/ringtones/Soul.ogg") \
        == "lomiri-ringtones:ringtones/Soul.ogg"


@pytest.mark.skipif(shutil.which("fluidsynth") is None
                    or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(),
                    reason="needs fluidsynth and fluid-soundfont-gm (Debian packages)")
def test_tonal_banks_are_pitched_instruments_rendered_once_and_deterministic(tmp_path):
    from vadcorpus import music
    assert not set(music.TONAL_PROGRAMS) & set(music.GM_EXCLUDE)
    rng = np.random.Generator(np.random.PCG64(1))
    midi, info = music.tonal_bank_midi(rng, 12, 4.0, "jingle")
    assert len(info) == 12 and all(set(i["programs"]) <= set(music.TONAL_PROGRAMS) for i in info)
    channels, programs, i = set(), set(), 22  # walk the track: header 14 + track header 8 bytes
    while i < len(midi):
        while midi[i] & 0x80:  # delta time (VLQ)
            i += 1
        status = midi[i + 1]
        if status == 0xFF:
            i += 4 + midi[i + 3]
        else:
            channels.add(status & 0x0F)
            if status & 0xF0 == 0xC0:
                programs.add(midi[i + 2])
            i += 3 if status & 0xF0 == 0xC0 else 4
    assert 9 not in channels and programs <= set(music.TONAL_PROGRAMS) and len(programs) > 3
    banks = []
    for cache in (tmp_path / "a", tmp_path / "b"):
        jingles = music.tonal_bank(3, 8, "jingle", 16000, str(cache), {})
        rings = music.tonal_bank(3, 4, "ringtone", 16000, str(cache), {})
        banks.append((jingles, rings))
        assert len(list((cache / "music").rglob("*.wav"))) == 2  # one render per bank
    for x, y in zip(banks[0][0] + banks[0][1], banks[1][0] + banks[1][1]):
        assert np.array_equal(x, y)
    jingles, rings = banks[0]
    assert len(jingles) == 8 and len(rings) == 4
    assert all(0.05 < len(x) / 16000 <= 4.0 and np.max(np.abs(x)) > 0.01 for x in jingles)
    assert all(1.0 < len(x) / 16000 <= 8.0 for x in rings)
    other = music.tonal_bank(4, 8, "jingle", 16000, str(tmp_path / "a"), {})
    assert not np.array_equal(other[0][:1000], jingles[0][:1000])  # the seed draws the bank


DESKTOP_NEEDS = NEEDS + [s.check for s in usedev.DESKTOP_SOURCES]


@pytest.mark.skipif(not all(Path(p).exists() for p in DESKTOP_NEEDS),
                    reason="the Debian packages of --backgrounds desktop are not installed")
def test_desktop_split_has_the_same_speech_and_labels_under_other_backgrounds(tmp_path):
    outs = {}
    for name, extra in (("games", []), ("desktop", ["--backgrounds", "desktop"])):
        out = tmp_path / name
        res = subprocess.run([sys.executable, str(RECIPES / "dev_continuous.py"), "--out", str(out),
                              "-q", "--per-cell", "0", "--clean", "1", "--nonspeech", "3", *extra],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        outs[name] = out
    for npy in sorted(outs["games"].glob("use_*.npy")):
        assert npy.read_bytes() == (outs["desktop"] / npy.name).read_bytes()
    rows = list(csv.DictReader(open(outs["desktop"] / "meta.csv")))
    desktop = ("colobot:", "xmoto:", "lomiri-ringtones:", "events over pink noise")
    assert any(d in rows[1]["bg_detail"] for d in desktop[:3])  # the first clip without speech: music
    assert "events over pink noise" in rows[2]["bg_detail"]
    wav = {k: [(o / f"use_00{i}.wav").read_bytes() for i in range(2)] for k, o in outs.items()}
    assert wav["games"][0] == wav["desktop"][0]  # the clean clip: no background
    assert wav["games"][1] != wav["desktop"][1]
    pk = json.loads((outs["desktop"] / "recipe.json").read_text())["packages"]
    assert "colobot-common-sounds" in pk and "neverball-common" not in pk
