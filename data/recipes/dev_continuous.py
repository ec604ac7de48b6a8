#!/usr/bin/env python3
"""Build the dev split that resembles use (``vadcorpus.usedev``): continuous real speech from
held-out voices under one background over the whole clip (music, events, noise) at SNR 20, 10,
5, 0, -5 dB, clean clips and clips without speech, laid out like speech-v1.

    python data/recipes/dev_continuous.py --out DIR [--seed 0] [--per-cell 3] [--clean 6]
                                          [--nonspeech 6] [-q]

Writes ``DIR/use_NNN.wav`` (16 kHz), ``.tsv`` (speech-v1's primary labels), ``.frames.npy``,
``.tight.npy``, ``.uncertain.npy`` (speech-v1's rule), ``.ours.npy`` (the training recipes'
rule), ``meta.csv``, ``utterances.csv`` and ``recipe.json``. Score it with
``python bench/vad.py --benchmark DIR`` (``--reference ours`` for our label rule). Exit codes:
0 done, 2 usage error, 3 a needed Debian package is missing (named, with the apt-get line).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vadcorpus.usedev import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
