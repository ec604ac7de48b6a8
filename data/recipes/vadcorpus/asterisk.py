"""Real speech: Asterisk's recorded prompts (asterisk-core-sounds-{en,es,fr}-wav, 8 kHz)."""
from __future__ import annotations

import os
from functools import lru_cache

from .common import read_audio, resample
from .labels import Utterance, analyse


ASTERISK_ROOT = "/usr/share/asterisk/sounds"


# Asterisk prompts that are not speech (tones, beeps, screaming monkeys) or are silence.
ASTERISK_EXCLUDE = ("beep.wav", "beeperr.wav", "ascending-2tone.wav", "descending-2tone.wav",
                    "tt-monkeys.wav")


ASTERISK_DIRS = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June"}


@lru_cache(maxsize=256)
def _asterisk(path: str, sr: int) -> Utterance | None:
    y, sr_in = read_audio(os.path.join(ASTERISK_ROOT, path))
    return analyse(resample(y, sr_in, sr), sr)
