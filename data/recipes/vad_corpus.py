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
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import multiprocessing
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

RECIPE_VERSION = 1
SPLITS = ("train", "dev")
DEV_PERCENT = 15  # files / keys / sentences hashed into dev
EXIT_MISSING = 3

# ----------------------------------------------------------------------------- the sources

ASTERISK_ROOT = "/usr/share/asterisk/sounds"
SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
SONIC_PI_DIR = "/usr/share/sonic-pi/samples"
BUCKLE_DIR = "/usr/share/buckle/wav"

# Asterisk prompts that are not speech (tones, beeps, screaming monkeys) or are silence.
ASTERISK_EXCLUDE = ("beep.wav", "beeperr.wav", "ascending-2tone.wav", "descending-2tone.wav",
                    "tt-monkeys.wav")
# Sonic Pi samples that contain voice-like sounds (choir, vocoded "voxy"/robot voices, a burp).
SONIC_PI_EXCLUDE = ("ambi_choir", "bass_voxy_c", "bass_voxy_hit_c", "glitch_robot1",
                    "glitch_robot2", "misc_burp") + tuple(f"mehackit_robot{i}" for i in range(1, 8))
# General MIDI programs (0-based) that sound like voices or crowds.
GM_EXCLUDE = (52, 53, 54, 85, 91)


@dataclass(frozen=True)
class FestivalVoice:
    name: str        # festival voice name, selected with (voice_<name>)
    package: str
    lang: str
    encoding: str    # what the voice's lexicon expects on stdin/file
    directory: str
    stretch: bool = True  # Duration_Stretch is honoured (diphone/clunits, not HTS)


FESTIVAL_VOICES = (
    FestivalVoice("kal_diphone", "festvox-kallpc16k", "en", "ascii",
                  "/usr/share/festival/voices/english/kal_diphone"),
    FestivalVoice("ked_diphone", "festvox-kdlpc16k", "en", "ascii",
                  "/usr/share/festival/voices/english/ked_diphone"),
    FestivalVoice("cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "en", "ascii",
                  "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts", stretch=False),
    FestivalVoice("lp_diphone", "festvox-italp16k", "it", "latin-1",
                  "/usr/share/festival/voices/italian/lp_diphone"),
    FestivalVoice("pc_diphone", "festvox-itapc16k", "it", "latin-1",
                  "/usr/share/festival/voices/italian/pc_diphone"),
    FestivalVoice("upc_ca_ona_hts", "festvox-ca-ona-hts", "ca", "latin-1",
                  "/usr/share/festival/voices/catalan/upc_ca_ona_hts", stretch=False),
    FestivalVoice("msu_ru_nsh_clunits", "festvox-ru", "ru", "utf-8",
                  "/usr/share/festival/voices/russian/msu_ru_nsh_clunits"),
    FestivalVoice("czech_dita", "festvox-czech-dita", "cs", "iso8859-2",
                  "/usr/share/festival/voices/czech/czech_dita"),
)

# espeak-ng: language voices x speaker variants (variants are the "voices" held out).
ESPEAK_LANGS = {"en": ("en-us", "en-gb"), "es": ("es", "es-419"), "fr": ("fr-fr", "fr-be"),
                "de": ("de",), "it": ("it",), "pt": ("pt", "pt-br"), "nl": ("nl",),
                "ca": ("ca",), "cs": ("cs",), "ru": ("ru",)}
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "Andy", "Annie", "adam", "david", "linda", "max", "paul", "steph")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")  # English only; awb_time is time-only

# Whole voices kept out of train (dev only); dev draws them for half of its utterances of that
# engine. Asterisk has two speakers for three languages, so its prompts are split by file only.
HELD_OUT = {"espeak-ng": ("m6", "f4"), "festival": ("ked_diphone",), "flite": ("rms",)}


@dataclass(frozen=True)
class Source:
    name: str
    role: str                      # "speech" or "background"
    packages: tuple[str, ...]
    binaries: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


SOURCES = (
    Source("asterisk-en", "speech", ("asterisk-core-sounds-en-wav",),
           paths=(f"{ASTERISK_ROOT}/en_US_f_Allison",)),
    Source("asterisk-es", "speech", ("asterisk-core-sounds-es-wav",),
           paths=(f"{ASTERISK_ROOT}/es_MX_f_Allison",)),
    Source("asterisk-fr", "speech", ("asterisk-core-sounds-fr-wav",),
           paths=(f"{ASTERISK_ROOT}/fr_CA_f_June",)),
    Source("espeak-ng", "speech", ("espeak-ng",), binaries=("espeak-ng",)),
    Source("flite", "speech", ("flite",), binaries=("flite",)),
    Source("festival", "speech", ("festival",), binaries=("text2wave",)),
    Source("fluidsynth", "background", ("fluidsynth", "fluid-soundfont-gm"),
           binaries=("fluidsynth",), paths=(SF2,)),
    Source("sonic-pi", "background", ("sonic-pi-samples",), paths=(SONIC_PI_DIR,)),
    Source("bucklespring", "background", ("bucklespring-data",), paths=(BUCKLE_DIR,)),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}

# Mixing weights (renormalised over the sources present).
SPEECH_WEIGHTS = {"asterisk": 0.40, "espeak-ng": 0.25, "festival": 0.20, "flite": 0.15}
BACKGROUND_WEIGHTS = {"music": 0.30, "samples": 0.25, "keyboard": 0.15, "noise": 0.30}
BACKGROUND_SOURCE = {"music": "fluidsynth", "samples": "sonic-pi", "keyboard": "bucklespring",
                     "noise": None}
P_NO_SPEECH, P_NO_BACKGROUND, P_TELEPHONE = 0.10, 0.10, 0.30
SNR_RANGE_DB = (-5.0, 30.0)
SPEECH_LEVEL_DBFS = (-38.0, -18.0)      # active speech level of the finished clip
BACKGROUND_LEVEL_DBFS = (-45.0, -18.0)  # RMS of a clip without speech
UTTERANCE_JITTER_DB = (-8.0, 4.0)

# Labels, per clean utterance: 10 ms frames, active if 10*log10(mean(x^2)) > peak + threshold,
# threshold = min(max(-40 dB, floor - peak + 6 dB), -20 dB) with floor the quietest 30 ms;
# runs closer than 150 ms are joined, then runs shorter than 50 ms (clicks) are dropped.
LABEL_RULE = {"frame_s": 0.010, "rel_threshold_db": -40.0, "floor_margin_db": 6.0,
              "max_threshold_db": -20.0, "merge_gap_s": 0.150, "min_segment_s": 0.050,
              "trim_margin_frames": 2}

# ----------------------------------------------------------------------------- word lists

WORDS = {
    "en": """the a one two three four five six seven eight nine ten house water morning evening
        people time year day way man woman child world life hand part place case week company
        system program question work government number night point home room mother area money
        story fact month lot right study book eye job word business issue side kind head
        friend father power hour game line end member law car city community name president
        team minute idea kid body information back parent face others level office door
        health person art war history party result change reason research girl guy moment air
        teacher force education foot boy age policy everything process music market sense
        nation plan college interest death experience effect use class control care field
        development role effort rate heart drug show leader light voice wife police mind price
        report decision son view relationship town road arm difference value building action
        model season society tax director position player record paper space ground form event
        official matter center couple site project activity star table need court oil situation
        cost industry figure street image phone data picture practice piece land product doctor
        wall patient worker news test movie north love support technology step baby computer
        type attention film tree source organization hair window evidence population site is
        was has will can would should could must might go make take see come know think look
        want give find tell ask seem feel try leave call keep let begin show hear play run move
        live believe bring happen write provide sit stand lose pay meet include continue set
        learn lead understand watch follow stop create speak read allow add spend grow open walk
        win offer remember consider appear buy wait serve die send expect build stay fall cut
        reach kill remain suggest raise pass sell require report decide pull good new first last
        long great little own other old big high different small large next early young
        important few public bad same able and but or because if when while after before with
        from into over under about between through very really always never often today
        tomorrow yesterday here there quickly slowly again already""",
    "es": """el la los las un una casa agua mañana tarde noche gente tiempo año día hombre mujer
        niño mundo vida mano parte lugar caso semana empresa sistema programa pregunta trabajo
        gobierno número punto hogar cuarto madre dinero historia hecho mes libro ojo palabra
        negocio lado cabeza amigo padre poder hora juego línea fin miembro ley coche ciudad
        nombre equipo minuto idea cuerpo información cara puerta salud persona arte guerra
        resultado cambio razón momento aire maestro fuerza educación pie chico edad música
        mercado sentido plan interés muerte efecto clase control campo papel espacio tierra
        es fue tiene puede hacer tener ver venir saber pensar mirar querer dar encontrar decir
        preguntar sentir dejar llamar empezar mostrar oír jugar correr vivir creer traer escribir
        perder pagar conocer seguir aprender entender hablar leer abrir caminar ganar recordar
        comprar esperar bueno nuevo primero último largo grande pequeño alto viejo joven
        importante malo mismo y pero o porque si cuando mientras después antes con desde sobre
        entre muy siempre nunca hoy ayer aquí allí rápido despacio otra vez ya también nosotros
        ellos usted calle mesa ventana perro gato árbol sol luna cielo mar río montaña camino""",
    "fr": """le la les un une maison eau matin soir nuit gens temps année jour homme femme enfant
        monde vie main partie endroit cas semaine entreprise système programme question travail
        gouvernement nombre point foyer chambre mère argent histoire fait mois livre œil mot
        affaire côté tête ami père pouvoir heure jeu ligne fin membre loi voiture ville nom
        équipe minute idée corps information visage porte santé personne art guerre résultat
        changement raison moment air professeur force éducation pied garçon âge musique marché
        sens plan intérêt mort effet classe contrôle champ papier espace terre est était avoir
        faire voir venir savoir penser regarder vouloir donner trouver dire demander sentir
        laisser appeler commencer montrer entendre jouer courir vivre croire apporter écrire
        perdre payer connaître suivre apprendre comprendre parler lire ouvrir marcher gagner
        rappeler acheter attendre bon nouveau premier dernier long grand petit haut vieux jeune
        important mauvais même et mais ou parce que si quand pendant après avant avec depuis sur
        entre très toujours jamais aujourd'hui hier ici là vite lentement encore déjà aussi
        nous ils vous rue table fenêtre chien chat arbre soleil lune ciel mer rivière montagne""",
    "de": """der die das ein eine Haus Wasser Morgen Abend Nacht Leute Zeit Jahr Tag Mann Frau
        Kind Welt Leben Hand Teil Platz Fall Woche Firma System Programm Frage Arbeit Regierung
        Zahl Punkt Zimmer Mutter Geld Geschichte Monat Buch Auge Wort Geschäft Seite Kopf Freund
        Vater Macht Stunde Spiel Linie Ende Gesetz Auto Stadt Name Mannschaft Minute Idee Körper
        Gesicht Tür Gesundheit Person Kunst Krieg Ergebnis Grund Moment Luft Lehrer Kraft Fuß
        Junge Alter Musik Markt Sinn Plan Tod Wirkung Klasse Feld Papier Raum Erde ist war hat
        wird kann machen haben sehen kommen wissen denken schauen wollen geben finden sagen
        fragen fühlen lassen rufen beginnen zeigen hören spielen laufen leben glauben bringen
        schreiben verlieren zahlen kennen folgen lernen verstehen sprechen lesen öffnen gehen
        gewinnen kaufen warten gut neu erste letzte lang groß klein hoch alt jung wichtig
        schlecht gleich und aber oder weil wenn während nach vor mit von über zwischen sehr
        immer nie heute gestern hier dort schnell langsam wieder schon auch wir sie Straße
        Tisch Fenster Hund Katze Baum Sonne Mond Himmel Meer Fluss Berg Weg""",
    "it": """il la lo gli le un una casa acqua mattina sera notte gente tempo anno giorno uomo
        donna bambino mondo vita mano parte posto caso settimana azienda sistema programma
        domanda lavoro governo numero punto stanza madre denaro storia fatto mese libro occhio
        parola affare lato testa amico padre potere ora gioco linea fine membro legge macchina
        città nome squadra minuto idea corpo informazione faccia porta salute persona arte
        guerra risultato cambiamento ragione momento aria maestro forza educazione piede
        ragazzo età musica mercato senso piano interesse morte effetto classe controllo campo
        carta spazio terra è era ha fare avere vedere venire sapere pensare guardare volere
        dare trovare dire chiedere sentire lasciare chiamare cominciare mostrare giocare
        correre vivere credere portare scrivere perdere pagare conoscere seguire imparare
        capire parlare leggere aprire camminare vincere ricordare comprare aspettare buono
        nuovo primo ultimo lungo grande piccolo alto vecchio giovane importante cattivo stesso
        e ma o perché se quando mentre dopo prima con da su tra molto sempre mai oggi ieri qui
        là presto piano ancora già anche noi loro voi strada tavolo finestra cane gatto albero
        sole luna cielo mare fiume montagna città caffè così""",
    "pt": """o a os as um uma casa água manhã tarde noite gente tempo ano dia homem mulher criança
        mundo vida mão parte lugar caso semana empresa sistema programa pergunta trabalho
        governo número ponto quarto mãe dinheiro história fato mês livro olho palavra negócio
        lado cabeça amigo pai poder hora jogo linha fim membro lei carro cidade nome equipe
        minuto ideia corpo informação rosto porta saúde pessoa arte guerra resultado mudança
        razão momento ar professor força educação pé menino idade música mercado sentido plano
        interesse morte efeito classe controle campo papel espaço terra é foi tem fazer ter ver
        vir saber pensar olhar querer dar encontrar dizer perguntar sentir deixar chamar
        começar mostrar ouvir jogar correr viver acreditar trazer escrever perder pagar
        conhecer seguir aprender entender falar ler abrir andar ganhar lembrar comprar esperar
        bom novo primeiro último longo grande pequeno alto velho jovem importante mau mesmo e
        mas ou porque se quando enquanto depois antes com desde sobre entre muito sempre nunca
        hoje ontem aqui ali rápido devagar outra vez já também nós eles você rua mesa janela
        cachorro gato árvore sol lua céu mar rio montanha caminho""",
    "nl": """de het een huis water morgen avond nacht mensen tijd jaar dag man vrouw kind wereld
        leven hand deel plaats geval week bedrijf systeem programma vraag werk regering nummer
        punt kamer moeder geld verhaal maand boek oog woord zaak kant hoofd vriend vader macht
        uur spel lijn einde lid wet auto stad naam ploeg minuut idee lichaam gezicht deur
        gezondheid persoon kunst oorlog resultaat reden moment lucht leraar kracht voet jongen
        leeftijd muziek markt zin plan dood effect klas veld papier ruimte aarde is was heeft
        zal kan maken hebben zien komen weten denken kijken willen geven vinden zeggen vragen
        voelen laten roepen beginnen tonen horen spelen lopen wonen geloven brengen schrijven
        verliezen betalen kennen volgen leren begrijpen spreken lezen openen gaan winnen kopen
        wachten goed nieuw eerste laatste lang groot klein hoog oud jong belangrijk slecht
        zelfde en maar of omdat als wanneer terwijl na voor met van over tussen heel altijd
        nooit vandaag gisteren hier daar snel langzaam weer al ook wij zij straat tafel raam
        hond kat boom zon maan hemel zee rivier berg weg""",
    "ca": """el la els les un una casa aigua matí tarda nit gent temps any dia home dona nen món
        vida mà part lloc cas setmana empresa sistema programa pregunta treball govern número
        punt habitació mare diners història fet mes llibre ull paraula negoci costat cap amic
        pare poder hora joc línia final membre llei cotxe ciutat nom equip minut idea cos
        informació cara porta salut persona art guerra resultat canvi raó moment aire mestre
        força educació peu noi edat música mercat sentit pla interès mort efecte classe control
        camp paper espai terra és era té fer tenir veure venir saber pensar mirar voler donar
        trobar dir preguntar sentir deixar trucar començar mostrar escoltar jugar córrer viure
        creure portar escriure perdre pagar conèixer seguir aprendre entendre parlar llegir
        obrir caminar guanyar recordar comprar esperar bo nou primer últim llarg gran petit
        alt vell jove important dolent mateix i però o perquè si quan mentre després abans amb
        des de sobre entre molt sempre mai avui ahir aquí allà ràpid a poc a poc encara ja
        també nosaltres ells vostè carrer taula finestra gos gat arbre sol lluna cel mar riu
        muntanya camí""",
    "cs": """ten ta to jeden jedna dům voda ráno večer noc lidé čas rok den muž žena dítě svět
        život ruka část místo případ týden firma systém program otázka práce vláda číslo bod
        pokoj matka peníze příběh měsíc kniha oko slovo obchod strana hlava přítel otec moc
        hodina hra čára konec člen zákon auto město jméno tým minuta nápad tělo informace tvář
        dveře zdraví osoba umění válka výsledek změna důvod okamžik vzduch učitel síla
        vzdělání noha chlapec věk hudba trh smysl plán zájem smrt účinek třída kontrola pole
        papír prostor země je byl má dělat mít vidět přijít vědět myslet dívat chtít dát najít
        říct ptát cítit nechat volat začít ukázat slyšet hrát běžet žít věřit přinést psát
        ztratit platit znát sledovat učit rozumět mluvit číst otevřít chodit vyhrát pamatovat
        koupit čekat dobrý nový první poslední dlouhý velký malý vysoký starý mladý důležitý
        špatný stejný a ale nebo protože když zatímco potom před s z na mezi velmi vždy nikdy
        dnes včera tady tam rychle pomalu znovu už také my oni vy ulice stůl okno pes kočka
        strom slunce měsíc nebe moře řeka hora cesta""",
    "ru": """дом вода утро вечер ночь люди время год день мужчина женщина ребёнок мир жизнь рука
        часть место случай неделя компания система программа вопрос работа правительство
        номер точка комната мать деньги история факт месяц книга глаз слово дело сторона
        голова друг отец сила час игра линия конец член закон машина город имя команда минута
        идея тело информация лицо дверь здоровье человек искусство война результат изменение
        причина момент воздух учитель образование нога мальчик возраст музыка рынок смысл
        план интерес смерть эффект класс контроль поле бумага пространство земля есть был
        делать иметь видеть прийти знать думать смотреть хотеть дать найти сказать спросить
        чувствовать оставить звать начать показать слышать играть бежать жить верить
        принести писать потерять платить следовать учиться понимать говорить читать открыть
        идти выиграть помнить купить ждать хороший новый первый последний длинный большой
        маленький высокий старый молодой важный плохой тот же и но или потому что если когда
        пока после перед с из на между очень всегда никогда сегодня вчера здесь там быстро
        медленно снова уже тоже мы они вы улица стол окно собака кошка дерево солнце луна
        небо море река гора дорога""",
}
WORDS = {k: tuple(v.split()) for k, v in WORDS.items()}

# ----------------------------------------------------------------------------- small helpers


def sha256_hex(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def split_of(name: str) -> str:
    """The split a file, key or sentence belongs to: a fixed hash of its name (seed-free)."""
    return "dev" if int(sha256_hex("vad-corpus-split", name)[:8], 16) % 100 < DEV_PERCENT \
        else "train"


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=1) + "\n"


def r3(x) -> float:
    return round(float(x), 3)


def db(x: float) -> float:
    return 10.0 * np.log10(max(float(x), 1e-20))


def choice(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def weighted(rng: np.random.Generator, weights: dict):
    keys = sorted(k for k, w in weights.items() if w > 0)
    w = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.asarray(y, dtype=np.float64)
    import soxr
    return np.asarray(soxr.resample(np.asarray(y, dtype=np.float64), sr_in, sr_out,
                                    quality="HQ"), dtype=np.float64)


def read_audio(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf
    y, sr = sf.read(path, dtype="float64", always_2d=True)
    return y.mean(axis=1), int(sr)


def write_wav_atomic(path: str, y: np.ndarray, sr: int) -> None:
    """16-bit PCM mono WAV via the standard library (no timestamps, byte-stable)."""
    pcm = np.clip(np.round(y * 32767.0), -32768, 32767).astype("<i2")
    tmp = f"{path}.tmp{os.getpid()}"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def package_version(pkg: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else "not-installed"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- package check

def check_sources(allow_missing: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Return (source names to use, festival voice names to use, notes) or exit 3.

    A missing package stops the build unless ``allow_missing`` names its source or the
    package itself (festival voices can be skipped one by one by package name)."""
    known = {s.name for s in SOURCES} | {p for s in SOURCES for p in s.packages} \
        | {v.package for v in FESTIVAL_VOICES}
    unknown = sorted(set(allow_missing) - known)
    if unknown:
        print(f"error: --allow-missing: unknown source(s) {', '.join(unknown)}; known sources: "
              f"{', '.join(s.name for s in SOURCES)} (or a festvox-* package name)",
              file=sys.stderr)
        sys.exit(2)
    allowed = set(allow_missing)
    use, notes, blocking = [], [], []
    for s in SOURCES:
        missing = [p for p, ok in _package_checks(s) if not ok]
        if not missing:
            use.append(s.name)
        elif s.name in allowed or all(p in allowed for p in missing):
            notes.append(f"skipping {s.name}: missing {' '.join(missing)}")
        else:
            blocking += missing
    voices = []
    if "festival" in use:
        for v in FESTIVAL_VOICES:
            if os.path.isdir(v.directory):
                voices.append(v.name)
            elif v.package in allowed or "festival" in allowed:
                notes.append(f"skipping festival voice {v.name}: missing {v.package}")
            else:
                blocking.append(v.package)
        if not voices and "festival" in use:
            use.remove("festival")
            notes.append("skipping festival: no voice installed")
    if blocking:
        pkgs = " ".join(dict.fromkeys(blocking))
        print(f"error: missing Debian package(s): {pkgs}\n"
              f"install them with:\n    apt-get update && apt-get install -y {pkgs}\n"
              f"or skip optional sources with --allow-missing "
              f"{','.join(s.name for s in SOURCES if any(p in blocking for p in s.packages)) or 'festival'}",
              file=sys.stderr)
        sys.exit(EXIT_MISSING)
    if not any(SOURCE_BY_NAME[n].role == "speech" for n in use):
        print("error: no speech source left (all skipped)", file=sys.stderr)
        sys.exit(EXIT_MISSING)
    return use, voices, notes


def _package_checks(s: Source):
    checks = []
    for p in s.packages:
        ok = True
        if p in ("fluid-soundfont-gm",):
            ok = os.path.exists(SF2)
        else:
            ok = all(shutil.which(b) for b in s.binaries) and all(os.path.exists(x)
                                                                    for x in s.paths
                                                                    if x != SF2)
        checks.append((p, ok))
    return checks


def missing_packages() -> list[str]:
    """All Debian packages the full recipe needs that are not present (for tests)."""
    out = []
    for s in SOURCES:
        out += [p for p, ok in _package_checks(s) if not ok]
    out += [v.package for v in FESTIVAL_VOICES if not os.path.isdir(v.directory)]
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- pools


@dataclass
class Pools:
    """Everything a clip draws from, per split; plain sorted lists (picklable, ordered)."""
    sr: int
    sources: list
    festival_voices: list
    asterisk: dict = field(default_factory=dict)   # split -> lang -> [relative paths]
    samples_loop: dict = field(default_factory=dict)  # split -> [file names]
    samples_shot: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)       # split -> [(code, [files])]
    versions: dict = field(default_factory=dict)   # package -> version (cache keys)
    cache_dir: str = ""


ASTERISK_DIRS = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June"}


def build_pools(sources, festival_voices, sr, cache_dir) -> Pools:
    p = Pools(sr=sr, sources=list(sources), festival_voices=list(festival_voices),
              cache_dir=cache_dir)
    for split in SPLITS:
        p.asterisk[split] = {}
        p.samples_loop[split], p.samples_shot[split], p.keys[split] = [], [], []
    for lang, d in sorted(ASTERISK_DIRS.items()):
        if f"asterisk-{lang}" not in sources:
            continue
        root = os.path.join(ASTERISK_ROOT, d)
        files = sorted(os.path.relpath(f, root)
                       for f in glob.glob(os.path.join(root, "**", "*.wav"), recursive=True))
        for split in SPLITS:
            p.asterisk[split][lang] = []
        for rel in files:
            if rel.startswith("silence/") or os.path.basename(rel) in ASTERISK_EXCLUDE:
                continue
            # split by prompt name without the language folder: a prompt's en/es/fr takes
            # stay together
            p.asterisk[split_of(f"asterisk:{rel}")][lang].append(f"{d}/{rel}")
    if "sonic-pi" in sources:
        for f in sorted(glob.glob(os.path.join(SONIC_PI_DIR, "*.flac"))):
            name = os.path.basename(f)
            if name[:-5] in SONIC_PI_EXCLUDE:
                continue
            bucket = p.samples_loop if name.startswith(("loop_", "ambi_", "vinyl_hiss",
                                                        "guit_em9")) else p.samples_shot
            bucket[split_of(f"sonic-pi:{name}")].append(name)
    if "bucklespring" in sources:
        codes: dict[str, list[str]] = {}
        for f in sorted(glob.glob(os.path.join(BUCKLE_DIR, "*.wav"))):
            name = os.path.basename(f)
            codes.setdefault(name.split("-")[0], []).append(name)
        for code in sorted(codes):
            p.keys[split_of(f"bucklespring:{code}")].append((code, sorted(codes[code])))
    pkgs = sorted({pk for s in SOURCES for pk in s.packages}
                  | {v.package for v in FESTIVAL_VOICES})
    p.versions = {pk: package_version(pk) for pk in pkgs}
    for split in SPLITS:
        for lang, files in p.asterisk[split].items():
            if not files:
                raise SystemExit(f"error: no asterisk-{lang} prompt for {split}")
    return p


# ----------------------------------------------------------------------------- speech


def sentence(lang: str, n: int) -> str:
    """Sentence number ``n`` of language ``lang``: a fixed function of (lang, n)."""
    rng = np.random.Generator(np.random.PCG64(
        [int(sha256_hex("sentence", lang)[:8], 16), n]))
    words = WORDS[lang]
    k = int(rng.integers(3, 13))
    out = []
    for i in range(k):
        w = choice(rng, words)
        if i == 0:
            w = w[:1].upper() + w[1:]
        if i < k - 1 and rng.random() < 0.12:
            w += ","
        out.append(w)
    end = choice(rng, (".", ".", ".", ".", ".", "?", "?", "!"))
    return " ".join(out) + end


def pick_sentence(rng, lang: str, split: str) -> tuple[int, str]:
    while True:  # a sentence id belongs to one split only
        n = int(rng.integers(0, 1_000_000))
        if split_of(f"text:{lang}:{n}") == split:
            return n, sentence(lang, n)


def utterance_spec(rng, split: str, pools: Pools) -> dict:
    engines = {}
    if any(f"asterisk-{lang}" in pools.sources for lang in ASTERISK_DIRS):
        engines["asterisk"] = SPEECH_WEIGHTS["asterisk"]
    for e in ("espeak-ng", "festival", "flite"):
        if e in pools.sources:
            engines[e] = SPEECH_WEIGHTS[e]
    engine = weighted(rng, engines)
    if engine == "asterisk":
        lang = choice(rng, sorted(pools.asterisk[split]))
        path = choice(rng, pools.asterisk[split][lang])
        return {"source": f"asterisk-{lang}", "lang": lang, "voice": path.split("/")[0],
                "id": f"asterisk:{path}", "path": path}
    held = HELD_OUT.get(engine, ())
    if engine == "espeak-ng":
        candidates = list(ESPEAK_VARIANTS)
    elif engine == "flite":
        candidates = list(FLITE_VOICES)
    else:
        candidates = list(pools.festival_voices)
    train_voices = [v for v in candidates if v not in held]
    dev_held = [v for v in candidates if v in held]
    if split == "train" or not dev_held or rng.random() < 0.5:
        voice = choice(rng, train_voices)
    else:
        voice = choice(rng, dev_held)
    spec = {"source": engine}
    if engine == "espeak-ng":
        lang = choice(rng, sorted(ESPEAK_LANGS))
        lv = choice(rng, ESPEAK_LANGS[lang])
        spec.update(voice=voice, lang=lang, espeak_voice=f"{lv}+{voice}",
                    speed=int(rng.integers(120, 211)), pitch=int(rng.integers(25, 76)),
                    wordgap=int(rng.integers(0, 4)))
    elif engine == "flite":
        spec.update(voice=voice, lang="en", stretch=round(float(rng.uniform(0.8, 1.3)), 2))
    else:
        v = next(v for v in FESTIVAL_VOICES if v.name == voice)
        spec.update(voice=voice, lang=v.lang,
                    stretch=round(float(rng.uniform(0.85, 1.25)), 2) if v.stretch else 1.0)
    n, text = pick_sentence(rng, spec["lang"], split)
    spec.update(text=text, text_id=f"{spec['lang']}:{n}")
    params = {k: spec[k] for k in sorted(spec) if k not in ("id", "lang")}
    spec["id"] = f"{engine}:{sha256_hex(json.dumps(params, sort_keys=True))[:16]}"
    return spec


def _run(cmd: list[str], what: str, timeout: int = 300) -> None:
    res = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed ({res.returncode}): {' '.join(cmd)}\n"
                           f"{res.stderr.decode(errors='replace')[-2000:]}")


def render_tts(spec: dict, pools: Pools) -> str:
    """Render one synthetic utterance to a cached WAV; returns its path."""
    engine = spec["source"]
    pkg = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}[engine]
    keyparts = {k: spec[k] for k in sorted(spec) if k not in ("id",)}
    keyparts["engine_version"] = pools.versions.get(pkg, "")
    if engine == "festival":
        v = next(v for v in FESTIVAL_VOICES if v.name == spec["voice"])
        keyparts["voice_version"] = pools.versions.get(v.package, "")
    key = sha256_hex(RECIPE_VERSION, json.dumps(keyparts, sort_keys=True, ensure_ascii=False))
    out = os.path.join(pools.cache_dir, "tts", key[:2], key + ".wav")
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
        wav = os.path.join(tmp, "u.wav")
        if engine == "espeak-ng":
            _run(["espeak-ng", "-v", spec["espeak_voice"], "-s", str(spec["speed"]),
                  "-p", str(spec["pitch"]), "-g", str(spec["wordgap"]), "-a", "120",
                  "-w", wav, spec["text"]], "espeak-ng")
        elif engine == "flite":
            _run(["flite", "-voice", spec["voice"], "--setf",
                  f"duration_stretch={spec['stretch']}", "-t", spec["text"], "-o", wav],
                 "flite")
        else:
            v = next(v for v in FESTIVAL_VOICES if v.name == spec["voice"])
            txt = os.path.join(tmp, "u.txt")
            with open(txt, "wb") as f:
                f.write(spec["text"].encode(v.encoding, errors="replace"))
            cmd = ["text2wave", "-eval", f"(voice_{v.name})"]
            if v.stretch:
                cmd += ["-eval", f"(Parameter.set 'Duration_Stretch {spec['stretch']})"]
            _run(cmd + ["-o", wav, txt], "festival text2wave")
        os.replace(wav, out)
    return out


@dataclass
class Utterance:
    y: np.ndarray            # trimmed clean signal at the corpus rate, frame-aligned start
    segments: list           # [(first_frame, end_frame)] active runs after gap merging
    active_rms: float        # RMS over active frames (before merging)
    threshold_db: float      # threshold relative to the peak frame


@lru_cache(maxsize=256)
def _asterisk(path: str, sr: int) -> Utterance | None:
    y, sr_in = read_audio(os.path.join(ASTERISK_ROOT, path))
    return analyse(resample(y, sr_in, sr), sr)


def load_utterance(spec: dict, pools: Pools) -> Utterance | None:
    if spec["source"].startswith("asterisk"):
        return _asterisk(spec["path"], pools.sr)
    y, sr_in = read_audio(render_tts(spec, pools))
    return analyse(resample(y, sr_in, pools.sr), pools.sr)


def frame_energy_db(y: np.ndarray, hop: int) -> np.ndarray:
    n = -(-len(y) // hop)
    padded = np.zeros(n * hop)
    padded[:len(y)] = y
    return 10.0 * np.log10((padded.reshape(n, hop) ** 2).mean(axis=1) + 1e-20)


def analyse(y: np.ndarray, sr: int) -> Utterance | None:
    """Trim an utterance to its active frames (+ margin) and label it (see LABEL_RULE)."""
    hop = sr // 100
    e = frame_energy_db(y, hop)
    peak = float(e.max())
    if peak < -100:
        return None
    # noise floor: quietest 30 ms stretch; raises the threshold for noisy recordings only
    k = min(3, len(e))
    floor = float(np.convolve(e, np.ones(k) / k, mode="valid").min())
    rel = max(LABEL_RULE["rel_threshold_db"], floor - peak + LABEL_RULE["floor_margin_db"])
    rel = min(rel, LABEL_RULE["max_threshold_db"])
    active = e > peak + rel
    runs = [(a, b) for a, b in merge_runs(active, int(round(LABEL_RULE["merge_gap_s"] * 100)))
            if b - a >= int(round(LABEL_RULE["min_segment_s"] * 100))]
    if not runs:
        return None
    m = LABEL_RULE["trim_margin_frames"]
    first, last = max(runs[0][0] - m, 0), min(runs[-1][1] + m, len(e))
    y = y[first * hop:last * hop]
    if len(y) < (last - first) * hop:
        y = np.concatenate([y, np.zeros((last - first) * hop - len(y))])
    kept = np.zeros(len(e), dtype=bool)
    for a, b in runs:
        kept[a:b] = True
    level = float(np.sqrt(np.mean(y.reshape(-1, hop)[(active & kept)[first:last]] ** 2)))
    return Utterance(y=y, segments=[(a - first, b - first) for a, b in runs],
                     active_rms=level, threshold_db=round(rel, 2))


def merge_runs(active: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Runs of True as [start, end) frame pairs, joining runs separated by < min_gap frames."""
    d = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    runs: list[list[int]] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        if runs and s - runs[-1][1] < min_gap:
            runs[-1][1] = e
        else:
            runs.append([s, e])
    return [(s, e) for s, e in runs]


# ----------------------------------------------------------------------------- backgrounds


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def make_midi(rng, seconds: float) -> tuple[bytes, dict]:
    """A random format-0 MIDI file: 1-3 pitched parts in a scale, maybe drums."""
    tpq = 480
    bpm = int(rng.integers(60, 171))
    beat_s = 60.0 / bpm
    n_beats = int(np.ceil((seconds + 1.0) / beat_s)) + 1
    root = int(rng.integers(0, 12))
    mode = choice(rng, ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9),
                        (0, 3, 5, 7, 10)))
    programs = [p for p in range(120) if p not in GM_EXCLUDE]
    events = []  # (tick, order, bytes)
    events.append((0, 0, b"\xff\x51\x03" + int(beat_s * 1e6).to_bytes(3, "big")))
    parts = []
    for ch in range(int(rng.integers(1, 4))):
        prog = int(choice(rng, programs))
        role = choice(rng, ("melody", "chords", "bass"))
        parts.append({"program": prog, "role": role})
        events.append((0, 1, bytes([0xC0 | ch, prog])))
        events.append((0, 1, bytes([0xB0 | ch, 7, int(rng.integers(70, 121))])))
        octave = {"melody": 5, "chords": 4, "bass": 3}[role] + int(rng.integers(-1, 2))
        t = 0.0
        while t < n_beats:
            dur = float(choice(rng, (0.25, 0.5, 0.5, 1.0, 1.0, 2.0) if role != "chords"
                               else (1.0, 2.0, 2.0, 4.0)))
            if rng.random() > 0.2:
                degree = int(rng.integers(0, len(mode)))
                notes = [degree] if role != "chords" else [degree, degree + 2, degree + 4]
                vel = int(rng.integers(50, 111))
                for d in notes:
                    note = 12 * (octave + d // len(mode)) + root + mode[d % len(mode)]
                    note = int(min(max(note, 24), 100))
                    on, off = int(t * tpq), int((t + dur * 0.95) * tpq)
                    events.append((on, 3, bytes([0x90 | ch, note, vel])))
                    events.append((off, 2, bytes([0x80 | ch, note, 0])))
            t += dur
    if rng.random() < 0.4:
        parts.append({"program": "drums", "role": "drums"})
        pattern = [(0, 36), (2, 38)] + [(s, 42) for s in range(0, 4) if rng.random() < 0.8]
        step = choice(rng, (0.5, 1.0))
        for b in range(n_beats):
            for s, note in pattern:
                on = int((b + s * step / 2) * tpq)
                events.append((on, 3, bytes([0x99, note, int(rng.integers(60, 121))])))
                events.append((on + tpq // 8, 2, bytes([0x89, note, 0])))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    track, last = bytearray(), 0
    for tick, _, data in events:
        track += _vlq(tick - last) + data
        last = tick
    # end of track after the last beat even if the parts end in rests: the render covers the clip
    track += _vlq(max(n_beats * tpq - last, 0)) + b"\xff\x2f\x00"
    midi = b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + \
        struct.pack(">I", len(track)) + bytes(track)
    return midi, {"bpm": bpm, "parts": parts}


def render_music(midi: bytes, pools: Pools) -> np.ndarray:
    key = sha256_hex(RECIPE_VERSION, hashlib.sha256(midi).hexdigest(), pools.sr,
                     pools.versions.get("fluidsynth", ""),
                     pools.versions.get("fluid-soundfont-gm", ""))
    out = os.path.join(pools.cache_dir, "music", key[:2], key + ".wav")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
            mid, wav = os.path.join(tmp, "m.mid"), os.path.join(tmp, "m.wav")
            with open(mid, "wb") as f:
                f.write(midi)
            _run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(pools.sr), "-T", "wav",
                  "-O", "s16", "-F", wav, SF2, mid], "fluidsynth")
            os.replace(wav, out)
    y, sr = read_audio(out)
    return resample(y, sr, pools.sr)


@lru_cache(maxsize=512)
def _sample(path: str, sr: int) -> np.ndarray:
    y, sr_in = read_audio(path)
    return resample(y, sr_in, sr)


def _add(buf: np.ndarray, x: np.ndarray, at: int, gain: float = 1.0) -> None:
    if at >= len(buf):
        return
    if at < 0:
        x, at = x[-at:], 0
    x = x[:len(buf) - at]
    buf[at:at + len(x)] += gain * x


def background_samples(rng, n, split, pools) -> tuple[np.ndarray, dict]:
    sr, buf = pools.sr, np.zeros(n)
    loops, shots = pools.samples_loop[split], pools.samples_shot[split]
    used = []
    mode = choice(rng, ("loop", "pattern", "sparse")) if loops else \
        choice(rng, ("pattern", "sparse"))
    if mode == "loop":
        name = choice(rng, loops)
        x = _sample(os.path.join(SONIC_PI_DIR, name), sr)
        used.append(name)
        pos = -int(rng.integers(0, len(x)))
        while pos < n:
            _add(buf, x, pos)
            pos += len(x)
    if mode == "pattern" or (mode == "loop" and rng.random() < 0.5):
        names = [choice(rng, shots) for _ in range(int(rng.integers(2, 6)))]
        step = int(sr * 60.0 / rng.uniform(70, 160) / 4)  # sixteenth notes
        pattern = [[int(j) for j in np.flatnonzero(rng.random(16) < 0.3)] for _ in names]
        gains = [10 ** (rng.uniform(-12, 0) / 20) for _ in names]
        used += names
        for bar in range(n // (16 * step) + 1):
            for name, steps, g in zip(names, pattern, gains):
                x = _sample(os.path.join(SONIC_PI_DIR, name), sr)
                for s in steps:
                    _add(buf, x, (bar * 16 + s) * step, g * 10 ** (rng.uniform(-3, 0) / 20))
    if mode == "sparse":
        rate = rng.uniform(0.3, 3.0)
        t = rng.exponential(1 / rate)
        while t * sr < n:
            name = choice(rng, shots)
            used.append(name)
            _add(buf, _sample(os.path.join(SONIC_PI_DIR, name), sr), int(t * sr),
                 10 ** (rng.uniform(-12, 0) / 20))
            t += rng.exponential(1 / rate)
    used = sorted(set(used))
    return buf, {"sources": [f"sonic-pi:{u}" for u in used], "detail": {"mode": mode}}


def background_keyboard(rng, n, split, pools) -> tuple[np.ndarray, dict]:
    sr, buf, used = pools.sr, np.zeros(n), set()
    keys = pools.keys[split]
    speed = rng.uniform(0.6, 1.5)
    t = rng.uniform(0, 1.0)
    while t * sr < n:
        for _ in range(int(rng.integers(2, 10))):  # one word
            code, files = keys[int(rng.integers(len(keys)))]
            g = 10 ** (rng.uniform(-4, 0) / 20)
            press = files[0]
            used.add(press)
            _add(buf, _sample(os.path.join(BUCKLE_DIR, press), sr), int(t * sr), g)
            if len(files) > 1:
                used.add(files[1])
                _add(buf, _sample(os.path.join(BUCKLE_DIR, files[1]), sr),
                     int((t + rng.uniform(0.04, 0.15)) * sr), g)
            t += float(np.clip(rng.normal(0.13, 0.04), 0.05, 0.4)) * speed
        t += rng.uniform(0.1, 0.6) * speed
        if rng.random() < 0.15:
            t += rng.uniform(1.0, 4.0)
    return buf, {"sources": [f"bucklespring:{u}" for u in sorted(used)],
                 "detail": {"speed": r3(speed)}}


def background_noise(rng, n, sr) -> tuple[np.ndarray, dict]:
    color = choice(rng, ("white", "pink", "brown", "hum"))
    if color == "hum":
        f0 = choice(rng, (50.0, 60.0)) * rng.uniform(0.995, 1.005)
        t = np.arange(n) / sr
        y = np.zeros(n)
        for h in range(1, int(rng.integers(3, 12))):
            if h * f0 < sr / 2:
                y += rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * h * f0 * t
                                                       + rng.uniform(0, 2 * np.pi))
        y = y / (np.sqrt(np.mean(y ** 2)) + 1e-12) + 10 ** (-30 / 20) * rng.standard_normal(n)
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sr)
        f[0] = f[1]
        if color == "pink":
            spec /= np.sqrt(f)
        elif color == "brown":
            spec /= np.maximum(f, 20.0)
        spec[0] = 0
        y = np.fft.irfft(spec, n)
    modulated = bool(rng.random() < 0.3)
    if modulated:
        t = np.arange(n) / sr
        depth = rng.uniform(0.3, 0.9)
        y = y * (1 - depth / 2 + depth / 2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t
                                                   + rng.uniform(0, 2 * np.pi)))
    return y, {"detail": {"color": color, "modulated": modulated}}


# ----------------------------------------------------------------------------- one clip


def telephone(y: np.ndarray, sr: int, rng) -> tuple[np.ndarray, dict]:
    """Narrow-band channel: to 8 kHz, 300-3400 Hz band-pass, maybe G.711 mu-law, and back."""
    from scipy.signal import butter, sosfilt
    x = resample(y, sr, 8000)
    x = sosfilt(butter(4, (300, 3400), btype="bandpass", fs=8000, output="sos"), x)
    mulaw = bool(rng.random() < 0.5)
    if mulaw:
        mu = 255.0
        c = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
        c = np.round(c * 127.5) / 127.5
        x = np.sign(c) * ((1 + mu) ** np.abs(c) - 1) / mu
    return resample(x, 8000, sr)[:len(y)], {"mulaw": mulaw}


def make_clip(job: tuple) -> dict:
    """Build clip ``index`` of ``split``; writes its WAV, returns its meta (with segments)."""
    seed, split, index, seconds, pools, out_dir = job
    sr, hop = pools.sr, pools.sr // 100
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed, SPLITS.index(split), index])))
    n = int(round(seconds * sr))
    n = (n // hop) * hop
    has_speech = rng.random() >= P_NO_SPEECH
    has_bg = (not has_speech) or rng.random() >= P_NO_BACKGROUND
    is_tel = bool(rng.random() < P_TELEPHONE)
    meta = {"split": split, "duration": r3(n / sr), "telephone": is_tel, "utterances": []}

    # speech: utterances on the 10 ms grid, in order, never overlapping
    s = np.zeros(n)
    segments = []
    if has_speech:
        gap_scale = choice(rng, (0.5, 1.0, 1.0, 2.0, 4.0))
        t = int(rng.integers(0, min(n // hop, 300)))  # start frame, first 3 s
        for _ in range(50):
            spec = utterance_spec(rng, split, pools)
            u = load_utterance(spec, pools)
            gap = int(max(rng.exponential(0.8 * gap_scale), 0.2) * 100)
            if u is None:
                continue
            nf = len(u.y) // hop
            if t + nf > n // hop:
                if rng.random() < 0.5 or t >= n // hop - 20:
                    break
                nf = n // hop - t  # runs past the end: cut
            g_db = rng.uniform(*UTTERANCE_JITTER_DB)
            g = 10 ** (g_db / 20) / u.active_rms
            s[t * hop:(t + nf) * hop] += g * u.y[:nf * hop]
            useg = [(t + a, t + min(b, nf)) for a, b in u.segments if a < nf]
            segments += useg
            entry = {k: spec[k] for k in ("source", "id", "voice", "lang") if k in spec}
            if "text" in spec:
                entry.update(text=spec["text"], text_id=spec["text_id"])
                for k in ("speed", "pitch", "stretch"):
                    if k in spec:
                        entry[k] = spec[k]
            entry.update(start=r3(t / 100), end=r3((t + nf) / 100), gain_db=round(g_db, 2),
                         threshold_db=u.threshold_db, truncated=nf < len(u.y) // hop)
            meta["utterances"].append(entry)
            t += nf + gap
            if t >= n // hop - 20:
                break
        has_speech = bool(segments)
    if not has_speech:
        has_bg = True
    mask = np.zeros(n // hop, dtype=bool)
    for a, b in segments:
        mask[a:b] = True
    speech_level = float(np.sqrt(np.mean(s.reshape(-1, hop)[mask] ** 2))) if has_speech else 0.0

    # background
    kind, bg_info = "none", {"sources": []}
    if has_bg:
        kinds = {k: w for k, w in BACKGROUND_WEIGHTS.items()
                 if BACKGROUND_SOURCE[k] is None or BACKGROUND_SOURCE[k] in pools.sources}
        if not pools.samples_shot[split]:
            kinds.pop("samples", None)
        if not pools.keys[split]:
            kinds.pop("keyboard", None)
        kind = weighted(rng, kinds)
        if kind == "music":
            midi, info = make_midi(rng, seconds)
            y = render_music(midi, pools)
            # start within the first second (the notes run 1 s past the clip, then the
            # release tail) so clips do not all open on a downbeat
            off = int(rng.integers(0, max(min(len(y) - n, sr), 0) + 1))
            b = np.resize(y[off:], n)  # tiles if ever shorter than the clip
            bg_info = {"sources": [f"fluidsynth:{split}:{index}:"
                                   f"{hashlib.sha256(midi).hexdigest()[:12]}"],
                       "detail": info}
        elif kind == "samples":
            b, bg_info = background_samples(rng, n, split, pools)
        elif kind == "keyboard":
            b, bg_info = background_keyboard(rng, n, split, pools)
        else:
            b, bg_info = background_noise(rng, n, sr)
            bg_info["sources"] = [f"noise:{bg_info['detail']['color']}:{split}:{index}"]
        rms = float(np.sqrt(np.mean(b ** 2)))
        if rms < 1e-9:  # e.g. music that rendered silent: fall back to pink noise
            b, bg_info = background_noise(rng, n, sr)
            kind, bg_info["sources"] = "noise", [f"noise:{split}:{index}"]
            rms = float(np.sqrt(np.mean(b ** 2)))
        b = b / rms
    else:
        quiet = bool(rng.random() < 0.5)
        b = np.zeros(n)
        if quiet:  # very low white noise, 50-70 dB under the speech
            rel = rng.uniform(50, 70)
            b = rng.standard_normal(n) * speech_level * 10 ** (-rel / 20)
            bg_info = {"sources": [f"noise:floor:{split}:{index}"],
                       "detail": {"below_speech_db": r3(rel)}}
        else:
            bg_info = {"sources": [], "detail": {"digital_silence": True}}

    snr = None
    if has_speech and has_bg:
        snr = float(rng.uniform(*SNR_RANGE_DB))
        mix = s + b * speech_level * 10 ** (-snr / 20)
        target = rng.uniform(*SPEECH_LEVEL_DBFS)
        gain = 10 ** (target / 20) / speech_level
    elif has_speech:
        mix = s + b
        target = rng.uniform(*SPEECH_LEVEL_DBFS)
        gain = 10 ** (target / 20) / speech_level
    else:
        mix = b
        target = rng.uniform(*BACKGROUND_LEVEL_DBFS)
        gain = 10 ** (target / 20)
    mix = mix * gain
    if is_tel:
        mix, tel = telephone(mix, sr, rng)
        meta["telephone_detail"] = tel
    peak = float(np.max(np.abs(mix))) if n else 0.0
    limited = peak > 0.98
    if limited:
        mix = mix * (0.98 / peak)
    meta.update(background={"kind": kind, **bg_info}, snr_db=None if snr is None else r3(snr),
                level_dbfs=r3(target), peak_limited=limited,
                speech_seconds=r3(sum(b_ - a for a, b_ in segments) / 100),
                segments=[(r3(a / 100), r3(b_ / 100)) for a, b_ in segments])
    name = f"{split}/clip_{index + 1:05d}.wav"
    write_wav_atomic(os.path.join(out_dir, name), mix, sr)
    meta["file"] = name
    return meta


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Build a labelled speech-activity corpus from offline Debian sources.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-hours", type=float, default=2.0)
    p.add_argument("--dev-hours", type=float, default=0.3)
    p.add_argument("--train-clips", type=int, default=None,
                   help="number of train clips (overrides --train-hours)")
    p.add_argument("--dev-clips", type=int, default=None,
                   help="number of dev clips (overrides --dev-hours)")
    p.add_argument("--clip-seconds", type=float, default=20.0)
    p.add_argument("--sr", type=int, default=16000, help="output sample rate (multiple of 100)")
    p.add_argument("--allow-missing", default="",
                   help="comma-separated sources (or festvox-* packages) to skip if missing: "
                        + ", ".join(s.name for s in SOURCES))
    p.add_argument("--cache-dir", default=None, help="rendered speech/music cache "
                                                     "(default: OUT/_cache)")
    p.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (the output does not depend on it)")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    check_clip_args(p, a)
    return a


# ------------------------------------------------------- the driver, shared with real_corpus.py


def check_clip_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """The rules every corpus recipe's size and rate options follow (``p.error`` otherwise)."""
    if a.sr <= 0 or a.sr % 100:
        p.error(f"--sr={a.sr} must be a positive multiple of 100 (10 ms frames)")
    if a.clip_seconds < 1:
        p.error(f"--clip-seconds={a.clip_seconds} must be at least 1")
    for name in ("train_hours", "dev_hours", "train_clips", "dev_clips"):
        v = getattr(a, name)
        if v is not None and v < 0:
            p.error(f"--{name.replace('_', '-')}={v} must not be negative")
    if a.jobs < 1:
        p.error(f"--jobs={a.jobs} must be at least 1")


def clip_counts(a: argparse.Namespace) -> dict[str, int]:
    """Clips per split: ``--train-clips`` / ``--dev-clips``, else the hours over the clip length."""
    return {"train": a.train_clips if a.train_clips is not None
            else int(round(a.train_hours * 3600 / a.clip_seconds)),
            "dev": a.dev_clips if a.dev_clips is not None
            else int(round(a.dev_hours * 3600 / a.clip_seconds))}


def clear_split_dirs(out: str) -> None:
    """Create ``OUT/<split>/`` and remove its clips: a rerun with fewer clips leaves no stale ones."""
    for split in SPLITS:
        d = os.path.join(out, split)
        os.makedirs(d, exist_ok=True)
        for old in sorted(glob.glob(os.path.join(d, "clip_*.wav"))):
            os.remove(old)


def run_clip_jobs(make, jobs: list, workers: int, say, t0: float, every: int = 20) -> list[dict]:
    """``make(job)`` for every job, in order (in ``workers`` spawned processes when > 1): the
    metas; a progress line every ``every`` clips."""
    metas: list[dict] = []
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.imap(make, jobs, chunksize=1)
            for k, m in enumerate(results):
                metas.append(m)
                if (k + 1) % every == 0:
                    say(f"  {k + 1}/{len(jobs)} clips, {time.monotonic() - t0:.0f} s")
    else:
        for k, job in enumerate(jobs):
            metas.append(make(job))
            if (k + 1) % every == 0:
                say(f"  {k + 1}/{len(jobs)} clips, {time.monotonic() - t0:.0f} s")
    return metas


def write_meta(out: str, meta: dict) -> None:
    """``OUT/meta.json``, canonical JSON, replaced atomically."""
    with open(os.path.join(out, "meta.json.tmp"), "w", encoding="utf-8") as f:
        f.write(canonical_json(meta))
    os.replace(os.path.join(out, "meta.json.tmp"), os.path.join(out, "meta.json"))


def summarize(metas: list[dict], held_line: str, elapsed: float, out: str, say, *,
              unit: str = "utterances", reverberant: bool = False) -> None:
    """Per split: clips, hours, speech share, clips without speech, telephone (and reverberant)
    clips, backgrounds, and ``unit`` per speech source; then ``held_line``."""
    say(f"wrote {out} in {elapsed:.0f} s")
    for split in SPLITS:
        ms = [m for m in metas if m["split"] == split]
        if not ms:
            say(f"  {split}: 0 clips")
            continue
        dur = sum(m["duration"] for m in ms)
        sp = sum(m["speech_seconds"] for m in ms)
        kinds: dict[str, int] = {}
        srcs: dict[str, int] = {}
        for m in ms:
            kinds[m["background"]["kind"]] = kinds.get(m["background"]["kind"], 0) + 1
            for u in m["utterances"]:
                srcs[u["source"]] = srcs.get(u["source"], 0) + 1
        reverb = (f"reverberant {sum(bool(m['augment']['reverb']) for m in ms)}, "
                  if reverberant else "")
        say(f"  {split}: {len(ms)} clips, {dur / 3600:.2f} h, speech {100 * sp / dur:.1f} %, "
            f"no-speech {sum(not m['segments'] for m in ms)}, "
            f"telephone {sum(m['telephone'] for m in ms)}, {reverb}"
            f"background {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}")
        say(f"    {unit}: {', '.join(f'{k} {v}' for k, v in sorted(srcs.items()))}")
    say(held_line)


def write_tsv(path: str, metas: list[dict]) -> None:
    lines = ["filename\tonset\toffset\tevent_label"]
    for m in metas:
        if not m["segments"]:
            lines.append(f"{m['file']}\t\t\t")
        for a, b in m["segments"]:
            lines.append(f"{m['file']}\t{a:.3f}\t{b:.3f}\tspeech")
    with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    a = parse_args(argv)
    allow = [x.strip() for x in a.allow_missing.split(",") if x.strip()]
    sources, festival_voices, notes = check_sources(allow)
    say = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    for note in notes:
        say(f"note: {note}")
    out = os.path.abspath(a.out)
    cache = os.path.abspath(a.cache_dir or os.path.join(out, "_cache"))
    counts = clip_counts(a)
    clear_split_dirs(out)
    os.makedirs(cache, exist_ok=True)
    t0 = time.monotonic()
    pools = build_pools(sources, festival_voices, a.sr, cache)
    jobs = [(a.seed, split, i, a.clip_seconds, pools, out)
            for split in SPLITS for i in range(counts[split])]
    metas = run_clip_jobs(make_clip, jobs, a.jobs, say, t0)
    for split in SPLITS:
        write_tsv(os.path.join(out, f"{split}.tsv"), [m for m in metas if m["split"] == split])
    held = {e: [v for v in vs if (e != "festival" or v in festival_voices)]
            for e, vs in sorted(HELD_OUT.items()) if e in sources}
    meta = {
        "recipe": "data/recipes/vad_corpus.py", "version": RECIPE_VERSION,
        "settings": {"seed": a.seed, "sr": a.sr, "clip_seconds": a.clip_seconds,
                     "train_clips": counts["train"], "dev_clips": counts["dev"]},
        "sources": sources, "festival_voices": festival_voices,
        "skipped": notes, "packages": pools.versions, "held_out_voices": held,
        "dev_percent": DEV_PERCENT, "label_rule": LABEL_RULE,
        "clips": {m["file"]: m for m in metas},
    }
    write_meta(out, meta)
    summarize(metas, "  held out for dev (never in train): "
              + "; ".join(f"{e}: {', '.join(v) or '-'}" for e, v in held.items())
              + "; asterisk prompts, sonic-pi samples, bucklespring keys and sentences split "
                f"{100 - DEV_PERCENT}/{DEV_PERCENT} by name hash",
              time.monotonic() - t0, out, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
