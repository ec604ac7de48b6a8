"""Corpus recipes for speech activity, as one package: a module per source family, one driver.

``vad_corpus.py``, ``real_corpus.py`` and ``dev_continuous.py`` beside this folder are the
command lines; their recipes are ``synthetic``, ``real`` and ``usedev`` (the use-like dev split). Speech: ``asterisk`` (recorded prompts), ``tts``
(espeak-ng, flite, festival), ``gamespeech`` (KLettres, KTuberling, Hedgewars, Tux Paint's spoken descriptions). Backgrounds:
``music`` (General MIDI through fluidsynth), ``samples`` (Sonic Pi, bucklespring), ``noise``
(noise, hum, the telephone channel), ``gamesounds`` (game soundtracks, effects, ambience,
animal calls). ``packages`` says where the real recordings' packages install and which are held
out; ``labels`` is the label rule; ``rooms`` the acoustic augmentation; ``driver`` the clip jobs
and the files every recipe writes; ``common`` the small helpers.
"""
