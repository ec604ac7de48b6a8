#!/usr/bin/env python3
"""Build a speech-activity corpus from REAL recordings shipped in Debian packages.

Speech: real voices of many people and languages (KLettres letters and syllables, KTuberling
words, Hedgewars voice packs, Asterisk prompts) strung into phrase-like streams with natural
gaps, plus the synthetic voices of ``vad_corpus.py``. Non-speech: real game soundtracks, real
sound effects and ambiences (Hedgewars, SuperTuxKart, Widelands, OpenClonk, Minetest, Pingus,
and held out for dev: Neverball, Frozen Bubble, OpenTTD OpenSFX), plus ``vad_corpus.py``'s
General MIDI music, Sonic Pi samples, keyboard clicks and noise; ``--extra-animals`` clips add
Tux Paint's recorded animal calls (train only). Augmented with simulated rooms
(pyroomacoustics, or a synthetic decaying-noise RIR without it), random EQ and band limits,
telephone band / mu-law and level changes. Labels come exactly from the clean, dry speech with
``vad_corpus.py``'s energy rule, before anything is mixed or filtered.

    python data/recipes/real_corpus.py --out DIR [--seed 0] [--train-hours 5] [--dev-hours 0.5]

Writes ``DIR/{train,dev}/clip_NNNNN.wav``, ``DIR/{train,dev}.tsv`` (DCASE metadata) and
``DIR/meta.json``; the dev split holds out whole languages, voice packs and packages (see
``HELD_OUT_*``). Same seed and settings give byte-identical files. Exit codes: 0 done, 2 usage
error, 3 a needed Debian package is missing (the message names it and the apt-get command).
``--inventory FILE`` writes the screening table of every candidate speech file and exits.

The code lives in the ``vadcorpus`` package beside this file (one module per source family,
one shared driver); this script is its command line.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vadcorpus.gamesounds import VOCAL_LIKE  # noqa: E402,F401  (names tests and scripts use)
from vadcorpus.gamespeech import DROPPED_GROUPS, is_held_group  # noqa: E402,F401
from vadcorpus.packages import (HELD_OUT_EFFECTS, HELD_OUT_LANGS, HELD_OUT_MUSIC,  # noqa: E402,F401
                                HELD_OUT_PACKS, REAL_BY_NAME, REAL_SOURCES)
from vadcorpus.real import build_pools, check_sources, main, missing_packages  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
