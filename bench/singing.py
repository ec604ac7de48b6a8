"""What each detector calls singing (issue 19): the share of sung frames it calls speech, and,
for a model with a ``music`` output, music; beside the same voices *speaking* the same words.

The project's rule: **singing is music, not speech** (inaSpeechSegmenter's convention; the speech
output is for spoken voice). This script measures how far each system follows it.

Audio (offline, from Debian's ``festival`` with ``festvox-kallpc16k``, ``festvox-kdlpc16k``,
``festvox-italp16k`` and ``festvox-itapc16k``; skipped cleanly without them): Festival's singing
mode sings the 11 songs it ships (``/usr/share/doc/festival/examples/songs/*.xml``: Daisy Bell,
Loch Lomond, America, ...) with four diphone voices (kal, ked: English; lp, pc: Italian), about
5 minutes of sung voice; the control is the same voice speaking the song's words
(``text2wave``). ``real_corpus.py --extra-singing`` trains on two of the voices (kal, lp) and
nine of the songs: the figures are given for the renders it never sang (a held-out voice or
song: 26 of 44) and for the others. Each render is scored dry (a cappella) and over a window of a Hedgewars
soundtrack (``hedgewars-data``) 5 dB under the voice. Voiced frames (10 ms) are those of the dry
render above ``max(p95 - 35 dB, -65 dBFS)``; figures are shares of those frames.

    python bench/singing.py [--model models/speech-music] [--model models/vad] [--peers ...]
        [--work DIR] [--threads 1] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vad  # noqa: E402  (bench/vad.py: the systems and the rasters, shared)

SONGS = Path("/usr/share/doc/festival/examples/songs")
DTD = Path("/usr/share/sgml/festival/Singing.v0_1.dtd")
VOICES = ("kal_diphone", "ked_diphone", "lp_diphone", "pc_diphone")
# what real_corpus.py --extra-singing never sings (data/recipes/vadcorpus/singing.py)
HELD_OUT_VOICES, HELD_OUT_SONGS = ("ked_diphone", "pc_diphone"), ("daisy", "lochlomond")
MUSIC = Path("/usr/share/games/hedgewars/Data/Music")
BED_DB = -5.0  # the soundtrack's RMS relative to the voice's active RMS
SR, HOP = vad.SR, vad.HOP


def words(xml: str) -> str:
    """The sung words of a Festival singing file, as one line of text."""
    return " ".join(re.sub(r"<[^>]+>", " ", xml.split("]>", 1)[-1]).split())


def render(work: Path) -> list[tuple[str, str, Path]]:
    """``(name, "sung" | "spoken", wav)`` for every song and voice (cached in ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for song in sorted(SONGS.glob("*.xml")):
        shutil.copy(song, work / song.name)
        shutil.copy(DTD, work / DTD.name)  # the songs name it relative to themselves
        (work / f"{song.stem}.txt").write_text(words(song.read_text()) + "\n")
        for voice in VOICES:
            for mode, src, extra in (("sung", song.name, ["-mode", "singing"]), ("spoken", f"{song.stem}.txt", [])):
                wav = work / f"{song.stem}.{voice}.{mode}.wav"
                if not wav.is_file():
                    subprocess.run(["text2wave", "-eval", f"(voice_{voice})", *extra, src, "-o", wav.name],
                                   cwd=work, check=True, capture_output=True, timeout=300)
                out.append((f"{song.stem}.{voice}", mode, wav))
    return out


def voiced(y: np.ndarray) -> np.ndarray:
    """10 ms frames of the dry voice above max(p95 - 35 dB, -65 dBFS)."""
    n = 1 + len(y) // HOP
    pad = np.pad(y, (0, n * HOP - len(y)))
    db = 10 * np.log10(np.mean(pad.reshape(n, HOP) ** 2, axis=1) + 1e-12)
    return db > max(np.percentile(db, 95) - 35.0, -65.0)


def with_bed(y: np.ndarray, act: np.ndarray, bed: np.ndarray, rng) -> np.ndarray:
    i = int(rng.integers(0, len(bed) - len(y)))
    b = bed[i:i + len(y)]
    frames = np.repeat(act, HOP)[:len(y)]
    v = np.sqrt(np.mean(y[frames[:len(y)]] ** 2))
    b = b * (v * 10 ** (BED_DB / 20) / (np.sqrt(np.mean(b ** 2)) + 1e-12))
    return (y + b).astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", action="append", help="model directory (repeat) [default: models/vad]")
    p.add_argument("--peers", default="silero-vad onnx,ten-vad", help="comma-separated peers (empty: none)")
    p.add_argument("--work", default="/tmp/pipeline-singing", help="where the renders are kept")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    need = [SONGS, DTD, MUSIC] + [Path(f"/usr/share/festival/voices/{'english' if v[0] == 'k' else 'italian'}/{v}")
                                  for v in VOICES]
    missing = [str(x) for x in need if not x.exists()] + ([] if shutil.which("text2wave") else ["text2wave"])
    if missing:
        print(f"skipped: not installed: {', '.join(missing)} (apt-get install festival festvox-kallpc16k "
              "festvox-kdlpc16k festvox-italp16k festvox-itapc16k hedgewars-data)")
        return 0
    from pipeline.audio import load_audio

    renders = render(Path(a.work))
    rng = np.random.default_rng(0)
    beds = [load_audio(f, sr=SR) for f in sorted(MUSIC.glob("*.ogg"))[:8]]
    items = []  # (render name, mode, setting, audio, voiced frames)
    for name, mode, wav in renders:
        y = load_audio(wav, sr=SR)
        act = voiced(y)
        items.append((name, mode, "dry", y, act))
        items.append((name, mode, "over music", with_bed(y, act, beds[int(rng.integers(len(beds)))], rng), act))
    from pipeline.modeldir import read_model_config

    systems = [(vad.system_ours(Path(m), a.threads, name=Path(m).name), "music" in read_model_config(m)["classes"])
               for m in (a.model or ["models/vad"])]
    for peer in [x.strip() for x in a.peers.split(",") if x.strip()]:
        systems.append(({"silero-vad onnx": lambda: vad.system_silero(True, a.threads),
                         "ten-vad": lambda: vad.system_ten()}[peer](), False))
    res: dict = {"rule": "singing is music, not speech", "seconds_sung": sum(
        it[4].sum() for it in items if it[1] == "sung" and it[2] == "dry") / 100.0, "systems": {}}
    print(f"{len(renders) // 2} sung renders ({res['seconds_sung']:.0f} s of voiced frames) and their spoken twins;"
          f" shares of voiced frames called speech / music")
    head = f"{'system':22s} {'renders':9s} {'setting':11s} {'sung: speech':>13s} {'sung: music':>12s} " \
           f"{'spoken: speech':>15s} {'spoken: music':>14s}"
    print(head + "\n" + "-" * len(head))
    for s, music in systems:
        got = {}
        segs = [s.infer(it[3]) for it in items]
        for group in ("held out", "seen"):
            for setting in ("dry", "over music"):
                tot = {k: np.zeros(2) for k in ("sung speech", "sung music", "spoken speech", "spoken music")}
                for (name, mode, st, y, act), sg in zip(items, segs):
                    song, voice = name.split(".")
                    held = voice in HELD_OUT_VOICES or song in HELD_OUT_SONGS
                    if st != setting or held != (group == "held out"):
                        continue
                    for cls in ("speech", "music"):
                        hit = vad.raster(sg, len(act), cls)[:len(act)]
                        tot[f"{mode} {cls}"] += (hit[act].sum(), act.sum())
                f = got[f"{group}, {setting}"] = {k: float(v[0] / max(v[1], 1)) for k, v in tot.items()}
                print(f"{s.name[:22]:22s} {group:9s} {setting:11s} {100 * f['sung speech']:12.1f}% "
                      + (f"{100 * f['sung music']:11.1f}% " if music else f"{'-':>12s} ")
                      + f"{100 * f['spoken speech']:14.1f}% "
                      + (f"{100 * f['spoken music']:13.1f}%" if music else f"{'-':>14s}"))
        res["systems"][s.name] = got
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
