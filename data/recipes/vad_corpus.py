#!/usr/bin/env python3
"""Build a labelled speech-activity (VAD) corpus from offline Debian packages only.

Speech: Asterisk prompts (real voices, en/es/fr, 8 kHz), espeak-ng, flite and festival voices
speaking random sentences made from embedded word lists. Non-speech: MIDI rendered by fluidsynth
with the FluidR3 GM soundfont, Sonic Pi samples, bucklespring keyboard clicks, coloured noise and
hum, or (almost) silence. Every clip is a background plus 0..N clean utterances; the labels come
from the clean utterances before mixing (10 ms frame energy above a threshold relative to the
utterance's peak, gaps < 150 ms merged), written as DCASE metadata TSV.

    python data/recipes/vad_corpus.py --out DIR [--seed 0] [--train-hours 2.0] [--dev-hours 0.3]
                                      [--clip-seconds 20] [--sr 16000]

Writes ``DIR/{train,dev}/clip_NNNNN.wav`` (16-bit PCM, mono), ``DIR/{train,dev}.tsv`` and
``DIR/meta.json``; rendered speech and music are cached in ``DIR/_cache``. The same seed and
settings give byte-identical WAV, TSV and JSON files. Exit codes: 0 done, 2 usage error,
3 a needed Debian package is missing (the message names it and the apt-get command).

The code lives in the ``vadcorpus`` package beside this file (one module per source family,
one shared driver); this script is its command line.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vadcorpus.common import split_of  # noqa: E402,F401  (names tests and scripts use)
from vadcorpus.labels import analyse  # noqa: E402,F401
from vadcorpus.synthetic import SOURCES, build_pools, main, missing_packages  # noqa: E402,F401
from vadcorpus.tts import FESTIVAL_VOICES  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
