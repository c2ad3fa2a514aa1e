"""Context reranker: picks the intent and entities of a turn from the NLU n-best and the entity candidates, using the
turn's context (device states, the speaking device's screen, the user's history, the time of day).

One general mechanism, no per-example rules: every (intent, entity candidate) pair is a hypothesis; each hypothesis
gets a feature vector (below) and a linear score `w . f` with weights from `assistant/data/rerank/weights.json`; the
best hypothesis wins and a softmax over scores gives its probability. The weights are fitted by
`python -m assistant.training.rerank_fit --fit` (conditional logistic regression on synthetic context-labelled
hypothesis sets, see `assistant/training/rerank_fit.py`), and the file says so.

Hypotheses come from
  * the NLU n-best x the candidates of the turn's one ambiguous-able entity (place, media title, music entity):
    "Springfield" -> 20 cities, "hunger games" -> the audiobook and the film. A play-type intent is rewritten to the
    intent of the candidate's media type (a film is `play_video`, an audiobook `play_audiobook`);
  * device queries: when the words name a state attribute ("temperature", "volume", "brightness"), one
    `iot_device_query` hypothesis per device with that attribute (its NLU probability is the n-best's, else a floor);
  * unsaid defaults: a `play_music` with no music entity gets one hypothesis per genre/artist the user plays most.

Features (all hypotheses; 0 when not applicable):
  nlu_logp        log(max(p_nlu, 0.02)) of the hypothesis' source intent, for hypotheses from the NLU n-best
  ctx_nlu_logp    the same for hypotheses the context adds (device queries, unsaid defaults): the NLU never saw the
                  context, so its probability is weaker evidence against them
  from_context    1 for a hypothesis the context adds (its bias)
  nlu_absent      1 if the source intent is not in the n-best
  match           the candidate's match score (0..1) against what was said
  type_compat     1 if the candidate's type is the one the NLU slot names (audiobook_name -> audiobook)
  prior           log-popularity of the candidate relative to the most popular alternative (population, mentions)
  hist_share      share of the user's past choices of this entity type that chose this entity
  hist_any        1 if the user chose this entity before
  hist_daypart    share of the user's choices of this type in the same part of the day that chose it
  device_on       1 if the targeted device is on (a thermostat or temperature sensor always is)
  device_here     1 if the targeted device is in the speaking device's room
  screen_visual   1 if the speaking device has a screen and the candidate is visual (film, TV show)
  noscreen_visual 1 if it has no screen and the candidate is visual
  unsaid          1 if the entity was not said (filled from history)
  unused_slots    how many NLU slots the hypothesis leaves unused ("tomorrow", "in paris" for a device query)

Usage from the pipeline (after resolve, before respond):

    nlu, resolved, explanation = reranker.rerank(nlu, resolved, ctx, user_history=history)
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from assistant.config import PACKAGE_DATA
from assistant.core.stages.nlu import NluResult
from assistant.core.stages.resolve import Candidate, ResolvedEntity, ResolveResult
from assistant.text import norm_key

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.understanding.resolve.catalog import CatalogResolver

WEIGHTS_PATH = PACKAGE_DATA / "rerank" / "weights.json"
FEATURES = (
    "nlu_logp",
    "ctx_nlu_logp",
    "from_context",
    "nlu_absent",
    "match",
    "type_compat",
    "prior",
    "hist_share",
    "hist_any",
    "hist_daypart",
    "device_on",
    "device_here",
    "screen_visual",
    "noscreen_visual",
    "unsaid",
    "unused_slots",
)
NLU_FLOOR = 0.02
PRIOR_MATCH_TOLERANCE = 0.02
CLARIFY_TYPES = ("place",)
"""Entity types whose skill asks "which one" when the reranker cannot tell candidates apart."""
CLARIFY_RATIO = 0.6
CLARIFY_MAX = 3
HISTORY_STATUSES = ("done", "unavailable")
"""Action statuses whose turns count as the user's choices (see user_history_from_records)."""
NBEST_K = 5
MAX_ALTERNATIVES = 8

# which entity types take part (the first entity of these types with candidates is the turn's "focus")
FOCUS_TYPES = ("media", "place", "track", "artist", "album", "genre", "playlist", "contact")
PLAY_INTENTS = ("play_music", "play_audiobook", "play_podcasts", "play_video", "play_radio", "play_game")
MEDIA_INTENT = {
    "film": "play_video",
    "tv_show": "play_video",
    "audiobook": "play_audiobook",
    "book": "play_audiobook",
    "podcast": "play_podcasts",
    "track": "play_music",
    "artist": "play_music",
    "album": "play_music",
    "genre": "play_music",
    "playlist": "play_music",
}
SLOT_TYPES = {
    "movie_name": ("film", "tv_show"),
    "audiobook_name": ("audiobook", "book"),
    "podcast_name": ("podcast",),
    "song_name": ("track",),
    "artist_name": ("artist",),
    "music_album": ("album",),
    "music_genre": ("genre",),
    "playlist_name": ("playlist",),
    "place_name": ("city",),
}
INTENT_TYPES = {
    "play_video": ("film", "tv_show"),
    "play_audiobook": ("audiobook", "book"),
    "play_podcasts": ("podcast",),
    "play_music": ("track", "artist", "album", "genre", "playlist"),
}
# words that ask about a device state attribute -> the state key
# slots a device query consumes (the device and its room)
DEVICE_SLOTS = ("device_type", "house_place", "device")
ATTRIBUTE_WORDS = {
    "temperature": "temperature",
    "temp": "temperature",
    "hot": "temperature",
    "degrees": "temperature",
    "volume": "volume",
    "loud": "volume",
    "brightness": "brightness",
    "bright": "brightness",
}
DEVICE_QUERY = "iot_device_query"
MUSIC_TYPES = ("track", "artist", "album", "genre", "playlist")
UNSAID_TYPES = ("genre", "artist")


def daypart(when: datetime | None) -> str:
    if when is None:
        return "any"
    h = when.hour
    return "night" if h < 6 else "morning" if h < 12 else "afternoon" if h < 18 else "evening"


# ---------------------------------------------------------------------------------------------------------------
# user history


class UserHistory(Protocol):
    """What a user chose before, counted by (entity type, entity id), optionally by part of the day.

    The pipeline fills one from the trace store (`user_history_from_records`) or keeps an `InMemoryUserHistory`
    up to date with `add_turn` after each turn."""

    def count(self, entity_type: str, entity_id: str | None = None, part: str | None = None) -> int:
        """Times this user chose `entity_id` (None: any entity of that type), in daypart `part` (None: any time)."""
        ...

    def top(self, entity_type: str, n: int = 3) -> list[tuple[str, int]]:
        """The user's most chosen entities of a type, most first."""
        ...


@dataclass
class InMemoryUserHistory:
    counts: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    """(entity type, entity id, daypart) -> count"""
    intents: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, entity_type: str, entity_id: str, when: datetime | None = None, n: int = 1) -> None:
        self.counts[(entity_type, entity_id, daypart(when))] += n

    def add_turn(
        self, intent: str | None, entities: Iterable[dict[str, Any] | ResolvedEntity], when: datetime | None = None
    ) -> None:
        if intent:
            self.intents[intent] += 1
        for e in entities:
            etype = e.get("entity_type") if isinstance(e, dict) else e.entity_type
            eid = e.get("entity_id") if isinstance(e, dict) else e.entity_id
            if etype and eid:
                self.add(etype, eid, when)

    def count(self, entity_type: str, entity_id: str | None = None, part: str | None = None) -> int:
        return sum(
            c
            for (t, i, p), c in self.counts.items()
            if t == entity_type and (entity_id is None or i == entity_id) and (part is None or p == part)
        )

    def top(self, entity_type: str, n: int = 3) -> list[tuple[str, int]]:
        tot: dict[str, int] = defaultdict(int)
        for (t, i, _p), c in self.counts.items():
            if t == entity_type:
                tot[i] += c
        return sorted(tot.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def chosen_entities(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The entities a turn record chose: its resolved entities, plus the one an answer to "which one?" picked (the
    action's `<type>_id` parameter for the types that ask, e.g. `place_id`)."""
    ents = [e for e in rec.get("entities") or [] if isinstance(e, dict) and e.get("entity_id")]
    params = (rec.get("action") or {}).get("params") or {}
    for etype in CLARIFY_TYPES:
        eid = params.get(f"{etype}_id")
        if eid and not any(e.get("entity_id") == eid for e in ents):
            ents.append({"entity_type": etype, "entity_id": eid})
    return ents


def user_history_from_records(
    records: Iterable[dict[str, Any]], user_id: str | None = None, music: Any = None
) -> InMemoryUserHistory:
    """Build a history from turn records (dicts with `intent`, `entities` [{entity_type, entity_id, ...}], `action`
    {name, status, target, ...}, `user` or `user_id`, optional `started_at` (epoch s) or `now` (ISO time)).

    Only turns whose action was carried out (status `done`), or understood but not reachable offline (`unavailable`:
    the weather for a city), count: a failed or clarified turn says nothing about what the user wanted. With `music`
    (a MusicCatalog) a played track or artist also counts for its artist's genres."""
    h = InMemoryUserHistory()
    for rec in records:
        if user_id is not None and (rec.get("user") or rec.get("user_id")) not in (user_id, None):
            continue
        action = rec.get("action") or {}
        if action and action.get("status") not in (*HISTORY_STATUSES, None):
            continue
        when = None
        if rec.get("started_at"):
            when = datetime.fromtimestamp(float(rec["started_at"]))
        elif rec.get("now"):
            try:
                when = datetime.fromisoformat(str(rec["now"]))
            except ValueError:
                when = None
        ents = chosen_entities(rec)
        h.add_turn(rec.get("intent"), ents, when)
        if music is not None:
            for e in ents:
                row = music.get(e.get("entity_id") or "") if e.get("entity_type") in ("track", "artist") else None
                artist = music.get(row.get("artist_id", "")) if row and row["type"] == "track" else row
                for g in (artist or {}).get("genre_ids", ()):
                    h.add("genre", g, when)
    return h


def history_from_context(context: TurnContext) -> InMemoryUserHistory:
    """Counts from the session's previous turns (`context.history`). PreviousTurn carries entities only if the
    pipeline puts them there (attribute `entities`); otherwise only intents are counted."""
    h = InMemoryUserHistory()
    for t in context.history:
        h.add_turn(t.intent, getattr(t, "entities", None) or [])
    return h


class _MergedHistory:
    def __init__(self, *parts: UserHistory) -> None:
        self.parts = parts

    def count(self, entity_type: str, entity_id: str | None = None, part: str | None = None) -> int:
        return sum(p.count(entity_type, entity_id, part) for p in self.parts)

    def top(self, entity_type: str, n: int = 3) -> list[tuple[str, int]]:
        tot: dict[str, int] = defaultdict(int)
        for p in self.parts:
            for i, c in p.top(entity_type, 50):
                tot[i] += c
        return sorted(tot.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _declared(context: TurnContext) -> dict[tuple[str, str], Any]:
    """(entity type, id) -> concept of the music the speaker said they like ("I like jazz": the teach skill)."""
    view = getattr(context, "taught", None)
    if view is None:
        return {}
    out = {}
    for c in view.concepts("preference"):
        ent = c.meaning.get("entity") or {}
        if ent.get("type") in UNSAID_TYPES and ent.get("id"):
            out[(ent["type"], ent["id"])] = c
    return out


def _note_taught(best: Hypothesis, context: TurnContext) -> None:
    """Trace the use of a declared preference when it filled the turn's unsaid entity."""
    e = best.entity
    if best.origin != "history" or e is None or not e.entity_id:
        return
    c = _declared(context).get((e.entity_type, e.entity_id))
    if c is not None:
        context.taught.used(c, "rerank", slot=c.meaning.get("slot"), entity=e.entity_id)


class _TaughtHistory:
    """A declared preference counts as more than every habit of its type (twice the user's choices of that type,
    plus five): "I like jazz" makes "play some music" play jazz even for someone who has mostly played rock."""

    def __init__(self, base: UserHistory, declared: dict[tuple[str, str], Any]) -> None:
        self.base = base
        self.declared = declared

    def _boost(self, entity_type: str, part: str | None) -> int:
        return 2 * self.base.count(entity_type, None, part) + 5

    def count(self, entity_type: str, entity_id: str | None = None, part: str | None = None) -> int:
        n = self.base.count(entity_type, entity_id, part)
        for t, i in self.declared:
            if t == entity_type and entity_id in (None, i):
                n += self._boost(entity_type, part)
        return n

    def top(self, entity_type: str, n: int = 3) -> list[tuple[str, int]]:
        tot = dict(self.base.top(entity_type, 50))
        for t, i in self.declared:
            if t == entity_type:
                tot[i] = tot.get(i, 0) + self._boost(entity_type, None)
        return sorted(tot.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


# ---------------------------------------------------------------------------------------------------------------
# hypotheses and features


@dataclass
class Hypothesis:
    intent: str
    source_intent: str
    nlu_prob: float
    entity: ResolvedEntity | None
    replaces: ResolvedEntity | None
    """The resolved entity this hypothesis' entity stands in for (None: it is added)."""
    origin: str
    unused_slots: float = 0.0
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    prob: float = 0.0

    def key(self) -> tuple[str, str | None]:
        return self.intent, self.entity.entity_id if self.entity is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "source_intent": self.source_intent,
            "origin": self.origin,
            "entity_type": self.entity.entity_type if self.entity else None,
            "entity_id": self.entity.entity_id if self.entity else None,
            "entity_name": self.entity.name if self.entity else None,
            "score": round(self.score, 4),
            "prob": round(self.prob, 4),
            "features": {k: round(v, 4) for k, v in self.features.items() if v},
        }


def load_weights(path: Path = WEIGHTS_PATH) -> dict[str, float]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: float(data["weights"].get(k, 0.0)) for k in FEATURES}


class ContextReranker:
    """Stage-like object: `rerank(nlu, resolved, context, user_history=None) -> (NluResult, ResolveResult, dict)`.

    Args:
        resolver: the CatalogResolver (for its media, place and music catalogs: popularity, media types).
        weights: feature -> weight; default: `assistant/data/rerank/weights.json`.
        user_history: a UserHistory, or a callable user_id -> UserHistory; merged with the session history.
    """

    name = "context-reranker"
    version = "0.1.0"

    def __init__(
        self, resolver: CatalogResolver | None = None, weights: dict[str, float] | None = None, user_history: Any = None
    ) -> None:
        self.resolver = resolver
        self.weights = weights if weights is not None else load_weights()
        self.user_history = user_history

    # -- public ------------------------------------------------------------------------------------------------
    def rerank(
        self, nlu: NluResult, resolved: ResolveResult, context: TurnContext, user_history: UserHistory | None = None
    ) -> tuple[NluResult, ResolveResult, dict[str, Any]]:
        history = self._history(context, user_history)
        hyps = self.hypotheses(nlu, resolved, context, history)
        for h in hyps:
            h.score = sum(self.weights.get(k, 0.0) * v for k, v in h.features.items())
        m = max(h.score for h in hyps)
        z = sum(math.exp(h.score - m) for h in hyps)
        for h in hyps:
            h.prob = math.exp(h.score - m) / z
        hyps.sort(key=lambda h: (-h.score, h.origin != "nlu", h.intent, h.entity.entity_id if h.entity else ""))
        best = hyps[0]
        _note_taught(best, context)
        # the confidence the responder checks is in the intent: the mass of every hypothesis with the chosen intent
        intent_prob = sum(h.prob for h in hyps if h.intent == best.intent)
        new_nlu, new_res, changed = self._apply(best, nlu, resolved, intent_prob)
        close = self._close_alternatives(best, hyps)
        if close:  # too close to call: leave the entity unresolved with the close ones, and the skill asks
            ent = best.entity
            cands = tuple(Candidate(h.entity.entity_id, _display(h.entity), h.entity.score) for h in close)
            # the likeliest one's details stay at hand for a skill that answers without asking (the time in a city)
            likeliest = {"id": ent.entity_id, **ent.normalized} if isinstance(ent.normalized, dict) else None
            asked = replace(
                ent,
                entity_id=None,
                name=None,
                candidates=cands,
                normalized={"ambiguous": True, "probs": [round(h.prob, 4) for h in close], "likeliest": likeliest},
            )
            new_res = ResolveResult(
                tuple(asked if e.entity_type == ent.entity_type and e.slot == ent.slot else e for e in new_res.entities)
            )
            changed = True
        explanation = {
            "name": self.name,
            "version": self.version,
            "changed": changed,
            "hypotheses": len(hyps),
            "ask": [h.entity.entity_id for h in close] if close else None,
            "chosen": best.to_dict(),
            "top": [h.to_dict() for h in hyps[:3]],
            "weights": {k: v for k, v in self.weights.items() if v},
        }
        return new_nlu, new_res, explanation

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "features": list(FEATURES), "weights": self.weights}

    @staticmethod
    def _close_alternatives(best: Hypothesis, hyps: list[Hypothesis]) -> list[Hypothesis]:
        """The best hypothesis and those that differ from it only in an equally well matched entity and are nearly as
        likely (probability >= CLARIFY_RATIO of the best's), for the entity types whose skills can ask which one;
        [] when the choice is clear."""
        e = best.entity
        if e is None or e.entity_type not in CLARIFY_TYPES or not e.entity_id:
            return []
        close = [best] + [
            h
            for h in hyps[1:]
            if h.intent == best.intent
            and h.entity is not None
            and h.entity.entity_type == e.entity_type
            and h.entity.entity_id != e.entity_id
            and abs(h.entity.score - e.score) < 1e-6
            and h.prob >= CLARIFY_RATIO * best.prob
        ]
        return close[:CLARIFY_MAX] if len(close) > 1 else []

    # -- internals ---------------------------------------------------------------------------------------------
    def _history(self, context: TurnContext, given: UserHistory | None) -> UserHistory:
        parts: list[UserHistory] = [history_from_context(context)]
        h = given if given is not None else self.user_history
        if callable(h) and not hasattr(h, "count"):
            h = h(context.user_id)
        if h is not None:
            parts.append(h)
        merged = _MergedHistory(*parts)
        declared = _declared(context)
        return _TaughtHistory(merged, declared) if declared else merged

    def _row(self, entity_type: str, entity_id: str | None) -> dict[str, Any] | None:
        if self.resolver is None or not entity_id:
            return None
        if entity_type == "place":
            return self.resolver.places.get(entity_id)
        if entity_type == "media":
            return self.resolver.media.get(entity_id)
        if entity_type in MUSIC_TYPES:
            return self.resolver.music.get(entity_id)
        return None

    def hypotheses(
        self, nlu: NluResult, resolved: ResolveResult, context: TurnContext, history: UserHistory
    ) -> list[Hypothesis]:
        nbest = list(nlu.nbest[:NBEST_K]) or [(nlu.intent, nlu.confidence)]
        probs = dict(nbest)
        focus = next(
            (e for e in resolved.entities if e.entity_type in FOCUS_TYPES and (e.candidates or e.entity_id)), None
        )
        hyps: list[Hypothesis] = []
        alternatives = self._alternatives(focus)
        for intent, p in nbest:
            for alt in alternatives:
                hyp_intent = intent
                if alt is not None and intent in PLAY_INTENTS:
                    hyp_intent = MEDIA_INTENT.get(self._media_type(alt), intent)
                hyps.append(Hypothesis(hyp_intent, intent, p, alt, focus, "nlu"))
        hyps += self._device_queries(nlu, resolved, probs, context)
        hyps += self._unsaid(nlu, resolved, probs, history)
        # the same (intent, entity) from several sources: keep the likeliest source
        best: dict[tuple[str, str | None], Hypothesis] = {}
        for h in hyps:
            k = h.key()
            if k not in best or h.nlu_prob > best[k].nlu_prob:
                best[k] = h
        hyps = list(best.values())
        self._featurize(hyps, nlu, context, history)
        return hyps

    def _alternatives(self, focus: ResolvedEntity | None) -> list[ResolvedEntity | None]:
        if focus is None:
            return [None]
        if not focus.entity_id:  # the resolver found no good enough match: context must not pick a weak one
            return [focus]
        cands = list(focus.candidates[:MAX_ALTERNATIVES])
        if focus.entity_id and all(c.entity_id != focus.entity_id for c in cands):
            cands.insert(0, Candidate(focus.entity_id, focus.name or "", focus.score))
        if not cands:
            return [focus]
        out: list[ResolvedEntity | None] = []
        for c in cands:
            row = self._row(focus.entity_type, c.entity_id)
            out.append(
                replace(
                    focus,
                    entity_id=c.entity_id,
                    name=(row or {}).get("name", c.name),
                    score=c.score,
                    normalized=self._normalized(focus, row, c),
                )
            )
        return out

    def _normalized(self, focus: ResolvedEntity, row: dict[str, Any] | None, cand: Candidate) -> Any:
        if row is None:
            return focus.normalized if cand.entity_id == focus.entity_id else None
        if focus.entity_type == "place":
            from assistant.understanding.resolve.catalog import PlaceCatalog

            return PlaceCatalog.info(row)
        if focus.entity_type == "media":
            return {"media_type": row["type"], "visual": bool(row.get("visual"))}
        return {k: row[k] for k in ("artist_id", "artist") if k in row} or None

    def _media_type(self, ent: ResolvedEntity) -> str:
        if ent.entity_type == "media":
            row = self._row("media", ent.entity_id)
            if row:
                return row["type"]
            return (ent.normalized or {}).get("media_type", "") if isinstance(ent.normalized, dict) else ""
        return ent.entity_type

    def _device_queries(
        self, nlu: NluResult, resolved: ResolveResult, probs: dict[str, float], context: TurnContext
    ) -> list[Hypothesis]:
        words = set(norm_key(nlu.text).split())
        keys = {ATTRIBUTE_WORDS[w] for w in words if w in ATTRIBUTE_WORDS}
        if not keys or context.home is None:
            return []
        # a device the user named decides; one "named" only by the attribute word (the NLU tagged "temperature" as a
        # device type, the resolver found the thermostat), or by no word at all (inferred from a room), is one
        # candidate among the devices that have the attribute
        devices = [e for e in resolved.entities if e.entity_type == "device" and e.entity_id]
        by_attribute = [e for e in devices if set(norm_key(e.value).split()) <= set(ATTRIBUTE_WORDS)]
        if len(devices) > len(by_attribute):
            return []
        replaces = by_attribute[0] if by_attribute else None
        out = []
        unused = unused_slots(nlu)
        candidates = [d for d in context.home.devices.values() if not d.satellite and any(k in d.state for k in keys)]
        if keys == {"temperature"}:
            # "what is the temperature", no device named: the air's (a thermostat or a temperature sensor), never an
            # appliance because it happens to be on; an oven's temperature is asked by naming the oven
            ambient = [d for d in candidates if _measures_air(d)]
            candidates = ambient or candidates
        for d in candidates:
            ent = ResolvedEntity(
                "device",
                "",
                "device",
                d.id,
                d.name,
                0.0,
                (Candidate(d.id, d.name, 0.0),),
                normalized={"attributes": sorted(k for k in keys if k in d.state)},
            )
            h = Hypothesis(DEVICE_QUERY, DEVICE_QUERY, probs.get(DEVICE_QUERY, 0.0), ent, replaces, "device-query")
            h.unused_slots = unused
            out.append(h)
        return out

    def _unsaid(
        self, nlu: NluResult, resolved: ResolveResult, probs: dict[str, float], history: UserHistory
    ) -> list[Hypothesis]:
        if "play_music" not in probs or any(e.entity_type in MUSIC_TYPES + ("media",) for e in resolved.entities):
            return []
        out = []
        for etype in UNSAID_TYPES:
            for eid, _n in history.top(etype, 3):
                row = self._row(etype, eid)
                ent = ResolvedEntity(
                    f"context_{etype}",
                    "",
                    etype,
                    eid,
                    (row or {}).get("name", eid),
                    0.0,
                    (Candidate(eid, (row or {}).get("name", eid), 0.0),),
                    normalized={"from": "history"},
                )
                out.append(Hypothesis("play_music", "play_music", probs["play_music"], ent, None, "history"))
        return out

    def _featurize(self, hyps: list[Hypothesis], nlu: NluResult, context: TurnContext, history: UserHistory) -> None:
        home = context.home
        speaker = home.speaking_device(context) if home is not None else None
        has_screen = bool(speaker and speaker.has_screen)
        here = speaker.area if speaker else None
        part = daypart(context.now)
        pops: dict[str, float] = {}
        for h in hyps:
            if h.entity is not None and h.entity.entity_id:
                row = self._row(h.entity.entity_type, h.entity.entity_id) or {}
                pops[h.entity.entity_id] = float(row.get("population") or row.get("mentions") or 0)
        max_pop = max(pops.values(), default=0.0)
        # popularity decides only between equally good matches (Springfield, MO vs MA), never for a worse match
        best_match = max((h.entity.score for h in hyps if h.entity is not None and h.entity.entity_id), default=0.0)
        type_totals: dict[str, int] = {}
        for h in hyps:
            f = {k: 0.0 for k in FEATURES}
            p = h.nlu_prob
            f["nlu_logp" if h.origin == "nlu" else "ctx_nlu_logp"] = math.log(max(p, NLU_FLOOR))
            f["from_context"] = 0.0 if h.origin == "nlu" else 1.0
            f["nlu_absent"] = 1.0 if p <= 0 else 0.0
            f["unused_slots"] = h.unused_slots
            e = h.entity
            if e is not None:
                said = e.value != "" and h.origin == "nlu"
                f["match"] = e.score if said else 0.0
                f["unsaid"] = 0.0 if said else (1.0 if h.origin == "history" else 0.0)
                etype = (
                    self._media_type(e)
                    if e.entity_type == "media"
                    else ("city" if e.entity_type == "place" else e.entity_type)
                )
                own = SLOT_TYPES.get(e.slot, ()) or INTENT_TYPES.get(h.source_intent, ())
                f["type_compat"] = 1.0 if (not own or etype in own) and h.origin == "nlu" else 0.0
                if said and e.entity_id in pops and max_pop > 0 and e.score >= best_match - PRIOR_MATCH_TOLERANCE:
                    f["prior"] = math.log1p(pops[e.entity_id]) / math.log1p(max_pop)
                if e.entity_id and e.entity_type in FOCUS_TYPES:  # choices the user names, not devices the context adds
                    ht = e.entity_type
                    if ht not in type_totals:
                        type_totals[ht] = history.count(ht)
                    n = history.count(ht, e.entity_id)
                    if n and type_totals[ht]:
                        f["hist_share"] = n / type_totals[ht]
                        f["hist_any"] = 1.0
                        tot_part = history.count(ht, None, part)
                        if tot_part:
                            f["hist_daypart"] = history.count(ht, e.entity_id, part) / tot_part
                visual = bool(isinstance(e.normalized, dict) and e.normalized.get("visual")) or etype in (
                    "film",
                    "tv_show",
                )
                if visual:
                    f["screen_visual" if has_screen else "noscreen_visual"] = 1.0
                if e.entity_type == "device" and home is not None and e.entity_id in home.devices:
                    d = home.devices[e.entity_id]
                    # a thermostat or temperature sensor is always measuring: "on" for a question about the air
                    f["device_on"] = 1.0 if d.state.get("on") is True or _measures_air(d) else 0.0
                    f["device_here"] = 1.0 if d.area == here else 0.0
            h.features = f

    def _apply(
        self, best: Hypothesis, nlu: NluResult, resolved: ResolveResult, intent_prob: float
    ) -> tuple[NluResult, ResolveResult, bool]:
        entities = list(resolved.entities)
        changed = best.intent != nlu.intent
        if best.entity is not None:
            if best.replaces is not None and best.replaces in entities:
                i = entities.index(best.replaces)
                if entities[i].entity_id != best.entity.entity_id:
                    changed = True
                entities[i] = best.entity
            elif best.origin != "nlu":
                entities.append(best.entity)
                changed = True
        if not changed:
            return nlu, resolved, False
        conf = max(best.nlu_prob, intent_prob)  # the reranker's posterior once context changed the choice
        nbest = ((best.intent, conf),) + tuple((i, p) for i, p in nlu.nbest if i != best.intent)
        return replace(nlu, intent=best.intent, confidence=conf, nbest=nbest), ResolveResult(tuple(entities)), True


def _display(ent: ResolvedEntity) -> str:
    info = ent.normalized if isinstance(ent.normalized, dict) else {}
    return str(info.get("display") or ent.name or ent.entity_id)


# ---------------------------------------------------------------------------------------------------------------
# latency (for `assistant bench`)

BENCH_TEXTS = (
    "what is the temperature",
    "play hunger games",
    "what's the weather in springfield",
    "play music",
    "turn on the kitchen light",
    "play purple haze by jimi hendrix",
    "set a timer for ten minutes",
    "dim the lights in the living room to fifty percent",
)


def bench_turn_latency(
    nlu_backend: Any,
    resolver: CatalogResolver | None = None,
    reranker: ContextReranker | None = None,
    context: TurnContext | None = None,
    texts: Iterable[str] = BENCH_TEXTS,
    repeats: int = 5,
) -> dict[str, Any]:
    """NLU + entity resolution + rerank time per turn (ms) with a given NLU backend (anything with
    `parse(text, context)`), over `texts` x `repeats` after one warm-up pass: median/p90/p95 per stage and in total."""
    import statistics
    from pathlib import Path as _P

    from assistant.core.context import TurnContext as _TC
    from assistant.home.model import Home
    from assistant.understanding.resolve.catalog import CatalogResolver as _CR

    resolver = resolver or _CR(Home.example())
    resolver.warm()
    reranker = reranker or ContextReranker(resolver)
    context = context or _TC(
        home=Home.example(),
        device_id="living_room.display",
        user_id="bench",
        now=datetime(2025, 3, 14, 19, 0),
        session_id="bench",
        data_dir=_P("."),
    )
    times: dict[str, list[float]] = {"nlu": [], "resolve": [], "rerank": [], "total": []}
    texts = list(texts)
    for rep in range(repeats + 1):
        for text in texts:
            t0 = time.perf_counter()
            n = nlu_backend.parse(text, context)
            t1 = time.perf_counter()
            r = resolver.resolve(n, context)
            t2 = time.perf_counter()
            reranker.rerank(n, r, context)
            t3 = time.perf_counter()
            if rep:
                for k, a, b in (("nlu", t0, t1), ("resolve", t1, t2), ("rerank", t2, t3), ("total", t0, t3)):
                    times[k].append((b - a) * 1000)

    def stats(v: list[float]) -> dict[str, float]:
        v = sorted(v)
        return {
            "median_ms": round(statistics.median(v), 2),
            "p90_ms": round(v[int(0.9 * (len(v) - 1))], 2),
            "p95_ms": round(v[int(0.95 * (len(v) - 1))], 2),
        }

    return {
        "turns": len(times["total"]),
        "backend": getattr(nlu_backend, "name", type(nlu_backend).__name__),
        **{k: stats(v) for k, v in times.items()},
    }


# ---------------------------------------------------------------------------------------------------------------
# device-query features


def unused_slots(nlu: NluResult) -> float:
    """NLU slots a device query leaves unused: not the device or its room, not the attribute word itself."""
    return float(
        sum(
            1
            for sl in nlu.slots
            if sl.name not in DEVICE_SLOTS and not set(norm_key(sl.value).split()) & set(ATTRIBUTE_WORDS)
        )
    )


def create(build) -> ContextReranker | None:
    """Registry factory (`rerank.backend: context`): needs the resolver's candidates, so no resolver, no reranker."""
    resolver = build.built.get("resolve")
    return ContextReranker(resolver) if resolver is not None else None


def _measures_air(device) -> bool:
    """A thermostat, or a temperature sensor (the ambient temperature of a room or outside)."""
    kind = getattr(device, "type", "")
    return kind in ("climate", "thermostat") or (
        kind == "sensor" and getattr(device, "device_class", None) == "temperature"
    )
