"""The real recordings' Debian packages: where they install, what they give, the seed-free split
and the held-out sources."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .common import sha256_hex


DEV_PERCENT = 15


KLETTRES = "/usr/share/klettres"


KTUBERLING = "/usr/share/ktuberling/sounds"


HEDGEWARS = "/usr/share/games/hedgewars/Data"


FROZEN = "/usr/share/games/frozen-bubble/snd"


NEVERBALL = "/usr/share/games/neverball/bgm"


PINGUS = "/usr/share/games/pingus/data/sounds"


STK = "/usr/share/games/supertuxkart/data"


WIDELANDS = "/usr/share/games/widelands/data"


OPENCLONK = "/usr/share/games/openclonk"


MINETEST = "/usr/share/games/minetest/games/minetest_game/mods"


OPENSFX = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"


TUXPAINT = "/usr/share/tuxpaint/stamps"
WARZONE_ZIP = "/usr/share/games/warzone2100/base.wz"
QUEEN_1C = "/usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
WARZONE_MUSIC = "/usr/share/games/warzone2100/music"
NEXUIZ_PK3 = "/usr/share/games/nexuiz/data/music.pk3"
LINCITY_MUSIC = "/usr/share/games/lincity-ng/music"


@dataclass(frozen=True)
class RealSource:
    name: str                      # for --allow-missing and meta.json
    package: str
    check: str                     # a path the package installs
    roles: tuple[str, ...]         # "speech", "music", "effects"


REAL_SOURCES = (
    RealSource("klettres", "klettres-data", f"{KLETTRES}/en/alpha", ("speech",)),
    RealSource("ktuberling", "ktuberling-data", f"{KTUBERLING}/en", ("speech",)),
    RealSource("hedgewars", "hedgewars-data", f"{HEDGEWARS}/Sounds/voices",
               ("speech", "music", "effects")),
    RealSource("frozen-bubble", "frozen-bubble-data", FROZEN, ("music", "effects")),
    RealSource("neverball", "neverball-common", NEVERBALL, ("music",)),
    RealSource("pingus", "pingus-data", PINGUS, ("effects",)),
    RealSource("supertuxkart", "supertuxkart-data", f"{STK}/music", ("music", "effects")),
    RealSource("widelands", "widelands-data", f"{WIDELANDS}/music", ("music", "effects")),
    RealSource("openclonk", "openclonk-data", f"{OPENCLONK}/Sound.ocg", ("music", "effects")),
    RealSource("minetest", "minetest-data", MINETEST, ("effects",)),
    RealSource("openttd", "openttd-opensfx", OPENSFX, ("effects",)),
    # Tux Paint's stamp sounds: real animal calls, used only by --extra-animals clips (train);
    # its spoken stamp descriptions (*_desc*.ogg) are not read
    RealSource("tuxpaint", "tuxpaint-stamps-default", f"{TUXPAINT}/animals", ("calls",)),
)


# Warzone 2100's recorded voice lines (English, GPL-2+), inside its base.wz: read only by
# --warzone-speech (train), so no other build needs the package
WARZONE = RealSource("warzone", "warzone2100-data", WARZONE_ZIP, ("speech",))


# Flight of the Amazon Queen's talkie dialogue (English, about 40 voiced characters; freely
# distributable, modifications allowed), the MP3 speech files inside queen.1c: read only by
# --queen-speech (train)
QUEEN = RealSource("queen", "flight-of-the-amazon-queen", QUEEN_1C, ("speech",))


# More soundtracks, read only by the use-like builds' --more-music (train side): Warzone 2100's
# two albums (CC-BY-SA-3.0+ or GPL-2+), Nexuiz's (GPL-2+, the tracks inside music.pk3) and
# LinCity-NG's three tracks (GPL-2+); instrumental, checked by ear-free screening
# (gamesounds.MORE_MUSIC_EXCLUDE), none reserved for evaluation
MORE_MUSIC = (RealSource("warzone-music", "warzone2100-music", WARZONE_MUSIC, ("music",)),
              RealSource("nexuiz", "nexuiz-music", NEXUIZ_PK3, ("music",)),
              RealSource("lincity", "lincity-ng-data", LINCITY_MUSIC, ("music",)))


# Desktop sound themes and produced music that no training recipe reads, dev only: the
# backgrounds of dev_continuous.py --backgrounds desktop (a desktop's notification sounds over a
# pink floor, produced tracks and ringtones for music, as speech-v1's events and hold music are)
DESKTOP_EVENTS = {  # source: (package, root, globs under the root)
    "yaru": ("yaru-theme-sound", "/usr/share/sounds/Yaru", ("stereo/*.oga",)),
    "lomiri": ("lomiri-sounds", "/usr/share/sounds/lomiri", ("notifications/*.ogg", "camera/*/*.ogg")),
    "purple": ("pidgin-data", "/usr/share/sounds/purple", ("*.wav",)),
    "sound-icons": ("sound-icons", "/usr/share/sounds/sound-icons", ("*.wav",)),
    "psi-plus": ("psi-plus-sounds", "/usr/share/psi-plus/sound", ("*.wav",)),
    "eiskaltdcpp": ("eiskaltdcpp-sounds", "/usr/share/eiskaltdcpp/sounds", ("*.wav",)),
}
DESKTOP_MUSIC = {
    "colobot": ("colobot-common-sounds", "/usr/share/games/colobot/music", ("*.ogg",)),
    "xmoto": ("xmoto-data", "/usr/share/games/xmoto/Textures/Musics", ("*.ogg",)),
    "lomiri-ringtones": ("lomiri-sounds", "/usr/share/sounds/lomiri", ("ringtones/*.ogg",)),
}
DESKTOP_SOURCES = tuple(RealSource(name, pkg, root, (role,))
                        for role, table in (("effects", DESKTOP_EVENTS), ("music", DESKTOP_MUSIC))
                        for name, (pkg, root, _) in table.items())


REAL_BY_NAME = {s.name: s for s in REAL_SOURCES + (WARZONE, QUEEN) + MORE_MUSIC}


# Whole sources that train never sees (dev only). Languages are held out across KLettres and
# KTuberling together (a KDE translator may have recorded both); Hedgewars packs by name.
HELD_OUT_LANGS = ("da", "it")


HELD_OUT_PACKS = ("Default_pl", "Russian_pl", "Pirate", "Robot")


HELD_OUT_MUSIC = ("neverball", "frozen-bubble")     # whole packages


HELD_OUT_EFFECTS = ("openttd", "frozen-bubble")


P_DEV_HELD = 0.6  # dev draws a held-out group / package for this share of its real material


def split_of(name: str) -> str:
    return "dev" if int(sha256_hex("real-corpus-split", name)[:8], 16) % 100 < DEV_PERCENT \
        else "train"


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def file_id(src: str, path: str) -> str:
    """A stable, machine-independent id: the source name and the path inside the package."""
    for root in (KLETTRES, KTUBERLING, HEDGEWARS, FROZEN, NEVERBALL, PINGUS, STK, WIDELANDS,
                 OPENCLONK, MINETEST, TUXPAINT, WARZONE_MUSIC, LINCITY_MUSIC):
        if path.startswith(root + "/"):
            return f"{src}:{os.path.relpath(path, root)}"
    for name, (_, root, _) in {**DESKTOP_EVENTS, **DESKTOP_MUSIC}.items():
        if src == name and path.startswith(root + "/"):
            return f"{src}:{os.path.relpath(path, root)}"
    if "/extracted/" in path:  # <cache>/extracted/<package-version>/<path in the archive>
        return f"{src}:{path.split('/extracted/', 1)[1].split('/', 1)[1]}"
    return f"{src}:{path}"


def _dev_side(rng, split: str) -> bool:
    """Dev only: whether this clip's real background comes from held-out packages (decided
    once per clip, so a clip is wholly "unseen package" or wholly "seen package")."""
    return split == "dev" and bool(rng.random() < P_DEV_HELD)


def _pick(rng, items: list, held_names: tuple, held_side: bool) -> tuple:
    held = [x for x in items if x[0] in held_names]
    seen = [x for x in items if x[0] not in held_names]
    side = held if (held_side and held) or not seen else seen
    return side[int(rng.integers(len(side)))]
