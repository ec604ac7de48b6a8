"""Synthetic speech: espeak-ng, flite and festival voices reading sentences of embedded word
lists."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .common import RECIPE_VERSION, _run, choice, sha256_hex, split_of


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


def utterance_id(spec: dict) -> str:
    """``<engine>:<16 hex>``: one synthetic utterance's id, from everything that renders it
    (its language is implied by the voice and the text)."""
    params = {k: spec[k] for k in sorted(spec) if k not in ("id", "lang")}
    return f"{spec['source']}:{sha256_hex(json.dumps(params, sort_keys=True))[:16]}"


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
