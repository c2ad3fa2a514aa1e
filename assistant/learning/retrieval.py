"""Online rewriting: retrieval over successful utterances (dense MiniLM embeddings) plus a ranker, in two layers.

- Global layer: every normalised utterance that succeeded for some user, with its support (successful turns), the
  number of users, failures, and when it was last seen.
- Personal layer: per user (pseudonym), the utterances that user said successfully (count, last seen). It points into
  the global entries, so an utterance is embedded once.

Retrieval: cosine top-k. Embeddings are stored float16 on disk (100k x 384: 77 MB) and held float32 in memory.
Above `BRUTE_MAX` entries an inverted-file index (k-means coarse quantiser, sqrt(n) lists, `nprobe` lists scanned)
replaces the full matrix product: a full product over 100k x 384 float32 costs ~15-20 ms on this 2-core machine,
the IVF scan ~1 ms at recall@10 ~0.97 (see docs/learning.md). numpy float16 matmul is not BLAS-backed (~150 ms), so
float16 is for storage only.

Ranking: see `Ranker`. Layer choice: `OnlineIndex.rewrite_candidates`.
Privacy: the index is built from the export (which already skips opted-out users), the builder drops them again, and
loading drops any user who opted out since (their personal entries, and their share of global support).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.text import normalize

INDEX_DIR = "rewrites/index"
NAME_SLOTS = frozenset(
    {
        "music_genre",
        "artist_name",
        "song_name",
        "playlist_name",
        "music_album",
        "radio_name",
        "podcast_name",
        "audiobook_name",
        "movie_name",
        "place_name",
        "person",
    }
)
"""Slots whose values are names; values said in >= 2 successful requests become the index's `known_names`."""
INDEX_FORMAT = 1
BRUTE_MAX = 20_000


# -- dense index --------------------------------------------------------------------------------------------------
def kmeans(x: np.ndarray, k: int, iters: int = 8, sample: int = 40_000, seed: int = 0) -> np.ndarray:
    """Spherical k-means centroids (unit rows) of unit vectors `x`, trained on a sample."""
    rng = np.random.default_rng(seed)
    xs = x[rng.choice(len(x), min(sample, len(x)), replace=False)]
    c = xs[rng.choice(len(xs), k, replace=False)].copy()
    for _ in range(iters):
        a = np.argmax(xs @ c.T, axis=1)
        for j in range(k):
            m = xs[a == j]
            if len(m):
                c[j] = m.sum(0)
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-9)
    return c.astype(np.float32)


@dataclass
class DenseIndex:
    """Cosine top-k over unit rows. `emb` rows are in list order when `centroids` is set (IVF)."""

    emb: np.ndarray
    """float32 (n, d), L2-normalised."""
    ids: np.ndarray
    """int64 (n,): entry id of each row (rows may be permuted by the IVF)."""
    centroids: np.ndarray | None = None
    offsets: np.ndarray | None = None
    nprobe: int = 24

    @classmethod
    def build(cls, emb: np.ndarray, brute_max: int = BRUTE_MAX) -> DenseIndex:
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        ids = np.arange(len(emb), dtype=np.int64)
        if len(emb) <= brute_max:
            return cls(emb, ids)
        k = int(math.sqrt(len(emb)))
        cent = kmeans(emb, k)
        assign = np.empty(len(emb), dtype=np.int64)
        for b0 in range(0, len(emb), 20_000):
            assign[b0 : b0 + 20_000] = np.argmax(emb[b0 : b0 + 20_000] @ cent.T, axis=1)
        order = np.argsort(assign, kind="stable")
        offsets = np.searchsorted(assign[order], np.arange(k + 1))
        return cls(emb[order], ids[order], cent, offsets)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(entry ids, cosine) of the best k, best first."""
        if self.centroids is None:
            s, ids = self.emb @ q, self.ids
        else:  # scan the probed lists in place (slices are views: no gather copy of the rows)
            lists = np.argpartition(-(self.centroids @ q), self.nprobe)[: self.nprobe]
            s = np.concatenate([self.emb[self.offsets[j] : self.offsets[j + 1]] @ q for j in lists])
            ids = np.concatenate([self.ids[self.offsets[j] : self.offsets[j + 1]] for j in lists])
        k = min(k, len(s))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top])]
        return ids[top], s[top]


# -- ranking ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankerWeights:
    """Linear weights of the ranker features (each in [0, 1]).

    How they were set: by hand, on the synthetic cases in tests/integration/test_rewrite.py and a sample of paraphrase
    / typo /
    unrelated pairs, so that (a) a typo or an added qualifier of a known request scores >= 0.8, (b) a different
    request that shares most words ("turn on the bedroom light" / "... kitchen light") stays below the threshold
    (the coverage feature does most of that), (c) metadata only breaks ties between similar matches (their weights sum
    to 0.2). They are to be refitted by logistic regression on the win/loss of applied rewrites once
    `assistant learn evaluate` runs on the simulator."""

    dense: float = 0.40
    fuzzy: float = 0.15
    phonetic: float = 0.10
    coverage: float = 0.15
    support: float = 0.08
    recency: float = 0.04
    affinity: float = 0.08


@dataclass
class Candidate:
    entry: int
    text: str
    layer: str
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0

    @property
    def match(self) -> float:
        """Text match only (no metadata): what the global layer compares a personal pick against."""
        f = self.features
        return (f["dense"] + f["fuzzy"] + f["coverage"]) / 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "layer": self.layer,
            "score": round(self.score, 4),
            "features": {k: round(v, 3) for k, v in self.features.items()},
        }


class Ranker:
    def __init__(self, weights: RankerWeights = RankerWeights(), recency_days: float = 30.0) -> None:
        import jellyfish
        from rapidfuzz import fuzz

        self.w = weights
        self.recency_days = recency_days
        self._fuzz = fuzz
        self._metaphone = jellyfish.metaphone
        self._mp_cache: dict[str, str] = {}
        self._wm_cache: dict[str, str] = {}

    def metaphone(self, text: str) -> str:
        m = self._mp_cache.get(text)
        if m is None:
            m = " ".join(self.word_metaphone(w) for w in text.split())
            if len(self._mp_cache) < 200_000:
                self._mp_cache[text] = m
        return m

    def word_metaphone(self, w: str) -> str:
        m = self._wm_cache.get(w)
        if m is None:
            m = self._metaphone(w)
            if len(self._wm_cache) < 200_000:
                self._wm_cache[w] = m
        return m

    def coverage(self, q: str, c: str) -> float:
        """Share of the query's words that have a near match (typo, sound-alike) in the candidate. Low when the
        candidate swaps a word for a different one ("bedroom" -> "kitchen"); 1.0 when it only adds words."""
        qw, cw = q.split(), set(c.split())
        if not qw:
            return 0.0
        hit = 0
        for w in qw:
            if w in cw:
                hit += 1
                continue
            mw = self.word_metaphone(w)
            if any(self._fuzz.ratio(w, x) >= 75 or (len(w) > 2 and mw and mw == self.word_metaphone(x)) for x in cw):
                hit += 1
        return hit / len(qw)

    def score(
        self,
        q: str,
        cand: Candidate,
        dense: float,
        support: float,
        max_support: float,
        last_seen: float,
        now: float,
        affinity: float,
    ) -> Candidate:
        f = cand.features
        f["dense"] = max(0.0, float(dense))
        f["fuzzy"] = self._fuzz.ratio(q, cand.text) / 100
        f["phonetic"] = self._fuzz.ratio(self.metaphone(q), self.metaphone(cand.text)) / 100
        f["coverage"] = self.coverage(q, cand.text)
        f["support"] = math.log1p(support) / math.log1p(max(max_support, 1.0))
        f["recency"] = math.exp(-max(0.0, now - last_seen) / 86400 / self.recency_days)
        f["affinity"] = affinity
        w = self.w
        cand.score = (
            w.dense * f["dense"]
            + w.fuzzy * f["fuzzy"]
            + w.phonetic * f["phonetic"]
            + w.coverage * f["coverage"]
            + w.support * f["support"]
            + w.recency * f["recency"]
            + w.affinity * f["affinity"]
        )
        return cand


# -- the index ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnlineConfig:
    top_k: int = 20
    global_min_users: int = 1
    """Entries said by fewer users are not offered by the global layer (raise it across many households)."""
    personal_min_count: int = 2
    """The personal layer only offers utterances the user said successfully at least this often."""
    personal_margin: float = 0.08
    """A personal pick must match the text (dense/fuzzy/coverage) within this of the global pick's match."""
    min_coverage: float = 0.75
    """Hard gate: candidates covering less of the query's words are never offered."""
    known_good_rate: float = 0.6
    """A query that itself succeeded at least this often (globally, or for this user) is never rewritten."""
    nprobe: int = 24


class OnlineIndex:
    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        meta: dict[str, Any],
        embedder: Any,
        config: OnlineConfig = OnlineConfig(),
        opted_out: frozenset[str] = frozenset(),
        ranker: Ranker | None = None,
    ) -> None:
        self.meta = meta
        self.version = str(meta.get("version", "?"))
        self.embedder = embedder
        self.config = config
        self.ranker = ranker or Ranker()
        self.texts: list[str] = arrays["texts"].tolist()
        self.fail = arrays["fail"].astype(np.float64)
        self.last_seen = arrays["last_seen"].astype(np.float64)
        # Personal rows (user, entry, count, last_seen); opted-out users' rows dropped, global support recomputed.
        pu, pi, pc, pl = arrays["p_user"], arrays["p_idx"], arrays["p_count"], arrays["p_last"]
        keep = ~np.isin(pu, np.array(sorted(opted_out), dtype=pu.dtype)) if opted_out else np.ones(len(pu), bool)
        pu, pi, pc, pl = pu[keep], pi[keep], pc[keep], pl[keep]
        n = len(self.texts)
        self.support = np.bincount(pi, weights=pc, minlength=n)
        self.users = np.bincount(pi, minlength=n)
        self.max_support = float(self.support.max()) if n else 1.0
        self.by_text = {t: i for i, t in enumerate(self.texts)}
        self.personal: dict[str, dict[int, tuple[float, float]]] = {}
        for u, i, c, last in zip(pu.tolist(), pi.tolist(), pc.tolist(), pl.tolist()):
            self.personal.setdefault(u, {})[i] = (float(c), float(last))
        emb = arrays["emb"].astype(np.float32)
        if "ivf_centroids" in arrays and len(arrays["ivf_centroids"]):
            self.dense = DenseIndex(
                emb,
                arrays["ivf_ids"].astype(np.int64),
                arrays["ivf_centroids"].astype(np.float32),
                arrays["ivf_offsets"].astype(np.int64),
                config.nprobe,
            )
            self._emb_by_id = np.empty_like(emb)
            self._emb_by_id[self.dense.ids] = emb
        else:
            self.dense = DenseIndex(emb, np.arange(len(emb), dtype=np.int64))
            self._emb_by_id = emb

    def __len__(self) -> int:
        return len(self.texts)

    # -- loading / building --
    @classmethod
    def load(cls, data_dir: Path, embedder: Any, config: OnlineConfig = OnlineConfig()) -> OnlineIndex | None:
        from assistant.trace.privacy import opted_out_pseudonyms

        d = Path(data_dir) / INDEX_DIR
        if not (d / "index.npz").is_file():
            return None
        meta = json.loads((d / "meta.json").read_text())
        with np.load(d / "index.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(arrays, meta, embedder, config, opted_out_pseudonyms(data_dir))

    # -- query --
    def known_good(self, q: str, user: str | None) -> bool:
        i = self.by_text.get(q)
        if i is None:
            return False
        s, f = self.support[i], self.fail[i]
        if s > 0 and s / (s + f) >= self.config.known_good_rate:
            return True
        return bool(user and i in self.personal.get(user, {}))

    def rewrite_candidates(
        self, text: str, user: str | None, now: float | None = None, min_coverage: float | None = None
    ) -> tuple[Candidate | None, dict[str, Candidate | None]]:
        """(the chosen candidate or None, best per layer). Personal wins when the user's own history has a candidate
        that matches about as well as the global one (`personal_margin`); otherwise the global layer's pick.
        `min_coverage` overrides the config's floor (the rewriter lowers it when a learned gate decides)."""
        cfg = self.config
        floor = cfg.min_coverage if min_coverage is None else min_coverage
        now = time.time() if now is None else now
        q = normalize(text)
        best: dict[str, Candidate | None] = {"global": None, "personal": None}
        if not q or not len(self) or self.known_good(q, user):
            return None, best
        qv = self.embedder.embed([q])[0]
        ids, sims = self.dense.search(qv, cfg.top_k)
        mine = self.personal.get(user or "", {})
        for i, s in zip(ids.tolist(), sims.tolist()):
            if self.users[i] < cfg.global_min_users or self.texts[i] == q:
                continue
            c = self.ranker.score(
                q,
                Candidate(i, self.texts[i], "global"),
                s,
                self.support[i],
                self.max_support,
                self.last_seen[i],
                now,
                0.0,
            )
            if c.features["coverage"] >= floor and (best["global"] is None or c.score > best["global"].score):
                best["global"] = c
        if mine:
            idx = np.fromiter((i for i, (c, _) in mine.items() if c >= cfg.personal_min_count), dtype=np.int64)
            if len(idx):
                psims = self._emb_by_id[idx] @ qv
                order = np.argsort(-psims)[: cfg.top_k]
                total = sum(c for c, _ in mine.values())
                for j in order.tolist():
                    i = int(idx[j])
                    if self.texts[i] == q:
                        continue
                    cnt, last = mine[i]
                    c = self.ranker.score(
                        q,
                        Candidate(i, self.texts[i], "personal"),
                        psims[j],
                        cnt,
                        max(c for c, _ in mine.values()),
                        last,
                        now,
                        cnt / total,
                    )
                    if c.features["coverage"] >= floor and (
                        best["personal"] is None or c.score > best["personal"].score
                    ):
                        best["personal"] = c
        g, p = best["global"], best["personal"]
        if p is not None and (g is None or p.match >= g.match - cfg.personal_margin):
            return p, best
        return g, best


def build_index(
    export_path: Path | str,
    data_dir: Path,
    embedder: Any,
    mining_config: Any = None,
    brute_max: int = BRUTE_MAX,
    engine: Any = None,
) -> dict[str, Any]:
    """Build `<data dir>/rewrites/index/` from an export: successful utterances per user (on `engine`: DuckDB by
    default, or Spark), embedded once on this machine (one row per distinct utterance)."""
    from assistant.learning.engines.duckdb import DuckDbEngine
    from assistant.learning.mining import MiningConfig, steps_sql
    from assistant.trace.privacy import opted_out_pseudonyms

    t0 = time.perf_counter()
    eng = engine or DuckDbEngine()
    eng.load_export(export_path)
    eng.create("t", steps_sql("src", mining_config or MiningConfig(), dialect=eng.dialect)["t"], cache=True)
    # pseudonyms are "u_" + hex; anything else cannot be one, so the literal list needs no escaping
    opted = sorted(u for u in opted_out_pseudonyms(data_dir) if u.replace("_", "").isalnum())
    not_opted = "coalesce({col}, '') NOT IN (" + ", ".join(f"'{u}'" for u in opted) + ")" if opted else "true"
    # Utterances: those that succeeded at least once (their failures too, for `known_good`).
    ent = eng.columns(f"""
        SELECT exec_utt AS utt, count(*) FILTER (WHERE outcome = 'failure') AS fail, max(t0) AS last_seen
        FROM t WHERE {not_opted.format(col="user_id")}
        GROUP BY exec_utt HAVING count(*) FILTER (WHERE outcome = 'success') > 0 ORDER BY utt""")
    texts = list(ent["utt"])
    pers = eng.columns(f"""
        SELECT coalesce(user_id, '') AS u, exec_utt AS utt, count(*) AS n, max(t0) AS last
        FROM t WHERE outcome = 'success' AND {not_opted.format(col="user_id")}
        GROUP BY 1, 2 ORDER BY 1, 2""")
    # Names people said in requests that worked (genres, artists, places, ...): a rewrite must not drop one.
    names: dict[str, int] = {}
    for (slots_value,) in eng.rows(f"""
            SELECT slots FROM turns WHERE label = 'ok' AND slots IS NOT NULL
            AND {not_opted.format(col="user_pseudonym")} ORDER BY turn_id"""):
        # export v2: [{name, value}, ...]; v1: JSON text {name: value}
        if isinstance(slots_value, str):
            pairs = (json.loads(slots_value) or {}).items()
        else:
            pairs = [(x["name"], x["value"]) for x in slots_value]
        for slot, value in pairs:
            for v in value if isinstance(value, list) else [value]:
                v = normalize(str(v))
                if slot in NAME_SLOTS and len(v) >= 4:
                    names[v] = names.get(v, 0) + 1
    known_names = sorted(v for v, n in names.items() if n >= 2)
    pos = {t: i for i, t in enumerate(texts)}
    t1 = time.perf_counter()
    if engine is None:
        eng.close()
    emb = embedder.embed(texts) if texts else np.zeros((0, 384), np.float32)
    t_embed = time.perf_counter() - t1
    return write_index(
        data_dir,
        texts,
        np.asarray(ent["fail"], np.float64),
        np.asarray(ent["last_seen"], np.float64),
        emb,
        np.asarray(list(pers["u"]), dtype=str),
        np.array([pos[t] for t in pers["utt"]], dtype=np.int64),
        np.asarray(pers["n"], np.float64),
        np.asarray(pers["last"], np.float64),
        getattr(embedder, "version", "?"),
        brute_max,
        {"embed_seconds": round(t_embed, 2), "seconds": round(time.perf_counter() - t0, 2), "known_names": known_names},
    )


def write_index(
    data_dir: Path,
    texts: list[str],
    fail: np.ndarray,
    last_seen: np.ndarray,
    emb: np.ndarray,
    p_user: np.ndarray,
    p_idx: np.ndarray,
    p_count: np.ndarray,
    p_last: np.ndarray,
    embedder_version: str = "?",
    brute_max: int = BRUTE_MAX,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    d = Path(data_dir) / INDEX_DIR
    d.mkdir(parents=True, exist_ok=True)
    dense = DenseIndex.build(emb, brute_max)
    arrays: dict[str, Any] = {
        "texts": np.asarray(texts, dtype=str),
        "fail": fail,
        "last_seen": last_seen,
        "p_user": p_user.astype(str),
        "p_idx": p_idx,
        "p_count": p_count,
        "p_last": p_last,
    }
    if dense.centroids is not None:
        arrays.update(
            emb=dense.emb.astype(np.float16),
            ivf_ids=dense.ids,
            ivf_centroids=dense.centroids,
            ivf_offsets=dense.offsets,
        )
    else:
        arrays["emb"] = emb.astype(np.float16)
    old = json.loads((d / "meta.json").read_text()).get("version", 0) if (d / "meta.json").exists() else 0
    meta = {
        "format": INDEX_FORMAT,
        "version": int(old) + 1,
        "embedder": embedder_version,
        "entries": len(texts),
        "users": int(len(set(p_user.tolist()))),
        "personal_rows": int(len(p_idx)),
        "ivf_lists": 0 if dense.centroids is None else int(len(dense.centroids)),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    tmp = d / "index.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(d / "index.npz")
    (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta
