"""The rewrite stage: runs before NLU and may replace the request text with one more likely to succeed.

Order: the precomputed table (absorbing Markov chains, `markov.py`; exact match on the normalised text), then online
retrieval (`retrieval.py`: personal layer, global layer). A rewrite applies only above a confidence
(`RewriteSettings` in assistant/config.py: pipeline.yaml's `rewrite:`); the result always says what was considered,
so the trace shows original and rewritten text, the layer, the score and the versions. Roll back the table with
`assistant learn rollback N` (0 = off).

Pipeline wiring (assistant/core/runner.py, owned by the lead), before the NLU stage:

    # __init__:
    from assistant.understanding.rewrite import Rewriter
    self.rewriter = Rewriter.load(self.data_dir, settings)        # None-safe: an empty data dir rewrites nothing

    # _run_turn, right before `nlu, span = run("nlu", ...)`:
    if self.rewriter is not None:
        rw, span = run("rewrite", self.rewriter, lambda: self.rewriter.rewrite(text, self.user_id, ctx),
                       {"text": text})
        span.output, span.confidence = rw.to_dict(), rw.score
        if rw.applied:
            rec["rewrite"] = rw.to_dict()
            text = rw.text                  # rec["transcript"] keeps what the user said

(mining.py reads the `rewrite` span back, so a rewritten turn counts as said -> executed -> outcome.)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import RewriteSettings
from assistant.learning.retrieval import OnlineConfig, OnlineIndex
from assistant.text import normalize


def rewrite_settings(settings: Any) -> RewriteSettings:
    """The rewrite section (assistant/config.py `RewriteSettings`) from RewriteSettings, a dict of its fields, the
    app Settings (its `rewrite` section), or None (the defaults)."""
    import dataclasses

    section = (
        settings
        if settings is None or isinstance(settings, (RewriteSettings, dict))
        else getattr(settings, "rewrite", None)
    )
    if isinstance(section, RewriteSettings):
        return section
    if isinstance(section, dict):
        data = section
    elif dataclasses.is_dataclass(section) and not isinstance(section, type):
        data = dataclasses.asdict(section)
    elif hasattr(section, "model_dump"):
        data = section.model_dump()
    else:
        data = {}
    return RewriteSettings(**{k: v for k, v in data.items() if k in RewriteSettings.model_fields})


@dataclass
class RewriteResult:
    text: str
    original: str
    applied: bool
    layer: str | None = None
    """'personal-table' | 'precomputed' | 'global' | 'personal' | None"""
    score: float | None = None
    rewrite_version: str | None = None
    candidate: str | None = None
    """The best candidate considered, applied or not (for the trace)."""
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = None if self.score is None else round(self.score, 4)
        d["ms"] = round(self.ms, 2)
        return d


class Rewriter:
    name = "rewriter"

    def __init__(
        self,
        data_dir: Path,
        settings: RewriteSettings | None = None,
        table: dict[str, Any] | None = None,
        index: OnlineIndex | None = None,
    ) -> None:
        from assistant.trace.privacy import Pseudonymizer

        self.data_dir = Path(data_dir)
        self.settings = settings if settings is not None else RewriteSettings()
        self.table_doc = table
        self.table: dict[str, dict[str, Any]] = (table or {}).get("rewrites", {})
        self.table_version = (table or {}).get("version")
        self.index = index
        self.personal_table: dict[str, dict[str, dict[str, Any]]] = (
            (table or {}).get("personal", {}) if self.settings.personal else {}
        )
        self.as_said: frozenset[str] = frozenset((table or {}).get("works_as_said", ()))
        """Requests that work as said for some user: no global online rewrite (markov.works_as_said)."""
        self.gate: Any = None
        """A fitted `RewriteGate` (learning/rewrite_gate.py, `<data dir>/rewrites/gate.json`): P(win) of an online
        candidate; None = the hand-set ranker score against `min_online_score`."""
        self._names: dict[Any, frozenset[str]] = {}
        self._nlu: Any = None
        self._resolver: Any = None
        self._pseudo = Pseudonymizer(self.data_dir)

    def attach(self, nlu: Any, resolver: Any = None) -> None:
        """The pipeline's NLU and resolver (the runner attaches them after building): the gate's features include
        how they read the request and the candidate (confidence, intent, exact catalog resolution)."""
        self._nlu, self._resolver = nlu, resolver

    def probe(self, text: str, context: Any) -> dict[str, Any] | None:
        """NLU + resolution of `text` as the pipeline would see it (None without an attached NLU or a turn context)."""
        if self._nlu is None or context is None or getattr(context, "home", None) is None:
            return None
        try:
            r = self._nlu.parse(text, context)
            ents = self._resolver.resolve(r, context).entities if self._resolver is not None else ()
        except Exception:  # noqa: BLE001 - a feature source, never a reason to fail the turn
            return None
        cat = [e for e in ents if e.entity_type in CATALOG_TYPES]
        return {
            "intent": r.intent,
            "confidence": float(r.confidence),
            "exact": sum(1 for e in cat if e.entity_id and e.score >= 0.99) / len(cat) if cat else 1.0,
            "unresolved": 1.0 if any(e.entity_id is None for e in cat) else 0.0,
        }

    def personal_entry(self, user: str, q: str, min_ratio: float = 90.0) -> dict[str, Any] | None:
        """This user's personal-table entry for `q`: exact, else the closest of their own sources (a user has a
        handful) when it is nearly the same text ("turn on the big lite" for "turn on the big light": the same phrase
        heard a little differently), unless the difference is an opposite action or a scope ("turn on the lights in
        the playroom" is not their "turn off the lights in the playroom": seed 96 lost 3 turns to that)."""
        mine = self.personal_table.get(user)
        if not mine:
            return None
        if q in mine:
            return mine[q]
        from rapidfuzz import fuzz

        best = max(mine, key=lambda src: fuzz.ratio(q, src))
        if fuzz.ratio(q, best) < min_ratio or guard_reason(q, best) is not None:
            return None
        return mine[best]

    def names(self, context: Any) -> frozenset[str]:
        """Names a rewrite must not drop or invent lightly: the index's known names, the music catalog's artists
        and genres, and the home's device and room names (per home, cached)."""
        home = getattr(context, "home", None)
        key = (id(home), str(getattr(home, "source", "")), len(getattr(home, "devices", ()) or ()))
        if key not in self._names:
            from assistant.learning.rewrite_gate import catalog_names

            self._names[key] = catalog_names(home) | frozenset(
                self.index.meta.get("known_names", ()) if self.index is not None else ()
            )
        return self._names[key]

    @property
    def version(self) -> str:
        parts = [f"table v{self.table_version}" if self.table_version else "no table"]
        parts.append(f"index v{self.index.version}" if self.index is not None else "no index")
        return ", ".join(parts)

    @classmethod
    def load(cls, data_dir: Path, settings: Any = None, embedder: Any = None) -> Rewriter:
        """The current table and the online index of `data_dir` (either may be absent). The embedder (~90 MB, ~0.3 s)
        is loaded only when there is an index to search."""
        from assistant.learning.markov import load_table

        s = rewrite_settings(settings)
        table = load_table(data_dir) if s.precomputed else None
        index = None
        if s.online and (Path(data_dir) / "rewrites" / "index" / "index.npz").is_file():
            if embedder is None:
                from assistant.backends.embed.minilm import MiniLmEmbedder

                embedder = MiniLmEmbedder(s.embedder_dir, threads=s.threads)
            index = OnlineIndex.load(data_dir, embedder, OnlineConfig())
        rw = cls(data_dir, s, table, index)
        if s.online and s.learned_gate:
            from assistant.learning.rewrite_gate import RewriteGate

            rw.gate = RewriteGate.load(data_dir)
        return rw

    def rewrite(self, text: str, user_id: str | None = None, context: Any = None) -> RewriteResult:
        t0 = time.perf_counter()
        res = self._rewrite(text, user_id, context)
        res.ms = (time.perf_counter() - t0) * 1000
        return res

    def _rewrite(self, text: str, user_id: str | None, context: Any) -> RewriteResult:
        s = self.settings
        out = RewriteResult(text=text, original=text, applied=False)
        if not s.enabled or not text or not text.strip():
            out.reason = "disabled" if not s.enabled else "empty"
            return out
        q = normalize(text)
        taught = taught_covers(context, q)
        if taught:  # a meaning the user taught wins over anything mined (issue 15's taught concepts)
            out.reason, out.details = "taught", {"taught": taught}
            return out
        # 0. personal precomputed: this user's own reformulations (their "big light" is the floor lamp), or their
        # own success with the request as said (then nobody else's rewrite applies to it)
        user = self._pseudo(user_id) if (user_id and s.personal) else None
        if user is not None:
            from assistant.trace.privacy import opted_out_pseudonyms

            if user in opted_out_pseudonyms(self.data_dir):
                user = None  # an opted-out user's history is never used
        pentry = self.personal_entry(user, q) if (user is not None and s.precomputed) else None
        if pentry is not None:
            out.rewrite_version = f"table v{self.table_version}"
            if pentry.get("keep"):
                out.reason, out.details = "personal-keep", dict(pentry)
                return out
            out.candidate, out.score = pentry["target"], float(pentry.get("probability", 1.0))
            out.text, out.applied, out.layer, out.reason = pentry["target"], True, "personal-table", "personal-table"
            out.details = {k: pentry[k] for k in ("baseline", "support") if k in pentry}
            return out
        # 1. precomputed (exact normalised match)
        entry = self.table.get(q) if s.precomputed else None
        if entry is not None:
            out.candidate, out.score = entry["target"], float(entry["probability"])
            out.rewrite_version = f"table v{self.table_version}"
            out.details = {k: entry[k] for k in ("baseline", "support", "users") if k in entry}
            if out.score >= s.min_table_probability:
                out.text, out.applied, out.layer, out.reason = entry["target"], True, "precomputed", "table"
                return out
            out.reason = "table-below-threshold"
        # 2. online retrieval
        if self.index is None or not s.online:
            out.reason = out.reason or "no-match"
            return out
        # a learned gate weighs coverage with everything else, so it sees candidates a word count alone would refuse
        floor = s.gated_min_coverage if self.gate is not None else s.min_coverage
        chosen, best = self.index.rewrite_candidates(text, user, min_coverage=floor)
        out.details = {**out.details, **{k: v.to_dict() for k, v in best.items() if v is not None}}
        if chosen is None:
            out.reason = out.reason or "no-candidate"
            return out
        if out.applied is False and (out.score is None or chosen.score > out.score or out.layer is None):
            out.candidate, out.score, out.layer = chosen.text, chosen.score, None
            out.rewrite_version = f"index v{self.index.version}"
        # names that must not be dropped: those that worked in earlier requests, the home's devices and rooms, the
        # music catalog's artists and genres (a rewrite of "turn off the porch light" to another light acts on a
        # device nobody named)
        readings = (self.probe(text, context), self.probe(chosen.text, context))
        guard = guard_reason(text, chosen.text, self.names(context), readings) if s.guards else None
        from assistant.learning.rewrite_gate import gate_features

        feats = gate_features(chosen, q, self.index, user, self.names(context), *readings)
        out.details["gate"] = {"features": {k: round(v, 4) for k, v in feats.items()}}
        if self.gate is not None:  # the learned gate (fitted on shadow wins/losses) decides instead of the sum
            p_win = self.gate.predict(feats)
            out.details["gate"]["p_win"] = round(p_win, 4)
            chosen_score, threshold = p_win, self.gate.threshold
            out.score = p_win
        else:
            chosen_score, threshold = chosen.score, s.min_online_score
        if guard:
            out.details["guard"] = guard
            out.reason = "guard"
        elif chosen.layer == "global" and q in self.as_said:  # one person's meaning is not everyone's
            out.reason = "works-as-said"
        elif chosen_score >= threshold:
            out.text, out.applied, out.layer, out.reason = chosen.text, True, chosen.layer, "online"
        else:
            out.reason = "below-threshold"
        return out


CATALOG_TYPES = frozenset({"device", "area", "track", "artist", "album", "genre", "place", "contact", "playlist"})
"""Entity types resolved against a catalog (home, music, media, places, contacts): the gate's exact-resolution
features count these."""

# Words that carry a value: a rewrite that adds one the user never said invents a slot ("wake me up" -> "wake me up
# in 30 minutes").
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand half quarter".split()
)
TIME_WORDS = frozenset(
    "today tomorrow tonight yesterday morning evening afternoon noon midnight monday tuesday wednesday thursday "
    "friday saturday sunday weekend".split()
)  # units ("minutes") are not values: "ten minuets" -> "ten minutes" is fine


def taught_covers(context: Any, q: str) -> str | None:
    """The taught concept that covers this request, if the turn context says one does (issue 15 records it as
    `taught` on the context / turn record): then the request is never rewritten. Defensive: a truthy `taught`
    (str, dict or list) counts; `taught_phrases` (phrases the user taught) count when one occurs in the request."""
    if context is None:
        return None
    get = context.get if isinstance(context, dict) else (lambda k, d=None: getattr(context, k, d))
    taught = get("taught", None)
    phrases = list(get("taught_phrases", None) or ())
    if hasattr(taught, "concepts"):  # the turn's view of the teach memory (issue 15): covered if a phrase occurs
        phrases += [c.phrase for c in taught.concepts()]
    elif taught:
        if isinstance(taught, dict):
            return str(taught.get("phrase") or taught.get("name") or taught.get("id") or "taught")
        return taught if isinstance(taught, str) else "taught"
    for phrase in phrases:
        p = normalize(str(phrase))
        if p and f" {p} " in f" {q} ":
            return p
    return None


# Opposite actions: a rewrite that swaps one for the other reverses what the user asked ("turn on the big light" ->
# "turn off the big light"); no mishearing fix needs that, and the result is never what was said. MORE holds the
# words that ask for more (on, up, open, play, ...) and LESS those that ask for less, in the same order of kinds; a
# rewrite from one side to the other is a flip, within a kind ("please open up the garage door" -> "please shut the
# garage door": seed 95's personal layer lost 4 turns to it when "shut" was missing) and across kinds ("Raise the lamp
# slide." -> "turn off the lamps": a tie session 16's global layer made 8 times).
MORE = frozenset(
    {"on"}
    | {"up", "raise", "increase", "higher", "brighten", "brighter", "louder"}
    | {"open", "unlock"}
    | {"start", "play", "resume"}
    | {"enable", "add"}
)
LESS = frozenset(
    {"off"}
    | {"down", "lower", "decrease", "dim", "dimmer", "darker", "quieter"}
    | {"close", "shut", "lock"}
    | {"stop", "pause"}
    | {"disable", "remove"}
)

# How many devices a request is about: a rewrite that drops "all" acts on fewer than asked ("Ollie, all the lights,
# please." -> "lower the light please" lost a turn on seed 95), one that adds it acts on devices nobody named.
SCOPE_WORDS = frozenset({"all", "every", "everything", "everywhere", "both", "each"})


CONFIDENT_INTENT = 0.9
"""An NLU confidence at which the request was understood: a rewrite to another intent is then refused. In the global
online layer of seeds 96 and 97 (design), such rewrites went 2 wins : 15 losses ("What's the weather like in New York
City?" -> "what time in the tin berm in your room"; "Open the garage door please." -> "please shot the garage door", an
index entry where "shot" was heard for "shut" and closed the door)."""


def guard_reason(
    original: str, candidate: str, known_names: Any = (), readings: tuple[Any, Any] | None = None
) -> str | None:
    """Why an online candidate must not replace `original`, or None: it adds a number or time word the user did not
    say ("invents-value"), it swaps an action for its opposite ("flips-action": on -> off, lock -> unlock, raise ->
    off), it changes how many things the request is about ("changes-scope": "all the lights" -> "the light"), it
    changes the intent of a request the NLU understood (`readings`: `Rewriter.probe` of both; "changes-intent": the
    request's confidence >= CONFIDENT_INTENT and the candidate's intent differs), or it drops a name that worked in
    earlier requests or that the home or the catalogs know ("drops-name": "put on some classical" -> "put on some
    folk", "the porch light" -> "the big light")."""
    q, c = normalize(original), normalize(candidate)
    qw, cw = set(q.split()), set(c.split())
    for w in c.split():
        if w not in qw and (w in NUMBER_WORDS or w in TIME_WORDS or any(ch.isdigit() for ch in w)):
            return "invents-value"
    q_only, c_only = qw - cw, cw - qw
    if (q_only & MORE and c_only & LESS) or (q_only & LESS and c_only & MORE):
        return "flips-action"
    if (q_only | c_only) & SCOPE_WORDS:
        return "changes-scope"
    q_read, c_read = readings or (None, None)
    if q_read and c_read and q_read["confidence"] >= CONFIDENT_INTENT and q_read["intent"] != c_read["intent"]:
        return "changes-intent"
    from assistant.learning.rewrite_gate import names_in

    names = known_names if isinstance(known_names, (set, frozenset)) else frozenset(known_names)
    said = names_in(q, names, max_words=max((len(n.split()) for n in names), default=1))
    cp = f" {c} "
    for name in sorted(said):
        if f" {name} " not in cp:
            return "drops-name"
    return None


def create(build) -> Rewriter:
    """Registry factory (`rewrite.backend: learned`): the tables `assistant learn` wrote to the data dir."""
    return Rewriter.load(build.data_dir, build.settings)
