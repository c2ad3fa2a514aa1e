"""Feedback signals and a defect label per turn, derived from the traces alone (never the pipeline's internals).

A signal says something about one turn, usually because of what the user did *next*:

======================  =========  ======================================================================================
signal                  polarity   when
======================  =========  ======================================================================================
rephrase                negative   a later turn within `gap_seconds` restates the request (lexical similarity), and the
                                   first turn was not a successful instance of the same intent
cancel                  negative   the next turn, within `cancel_seconds`, is stop / cancel / never mind
repeat                  negative   the next turn asks to repeat (general_repeat), or says the same successful request
                                   again within `gap_seconds` (weak: may be intended)
abandonment             negative   the turn asked a clarifying question and no turn followed within `follow_up_seconds`
correction              negative   the next turn starts "no, I said ...", "that's wrong", "not that one", or widens
                                   what was done ("no, all of them", "not just that one") after an answer that
                                   asked nothing
no-change               negative   a device action reported done that changed no device (from the action's result):
                                   weight 0.8 when the answer claims a change, 0.35 when it truthfully says
                                   "already ..." (alone not a defect; with a correction or rephrase it is)
barge-in                negative   a `barge-in` event on the turn (the user spoke over the response, live), or in a
                                   replayed recording the next request starts before this response would have ended
explicit                either     a `feedback` event: the answer to "Did I answer your question?" (yes / no)
error / failed /        negative   the turn's own outcome: a pipeline error, an action that failed, the fallback
unsupported                        answer
completed               positive   the turn's action was done and nothing negative followed
======================  =========  ======================================================================================

Label: explicit feedback decides when present (confidence 0.95). Otherwise the negative weights combine as
independent evidence, 1 - prod(1 - w); at `defect_threshold` or above the turn is a `defect` with that confidence. A
completed turn with no negative evidence is `ok`; everything else (e.g. a clarifying question that was answered, a
lone weak signal, a turn too recent to judge) is `unknown`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz

from assistant.learning.feedback import is_correction
from assistant.text import normalize_unicode, starts_with_cancel

if TYPE_CHECKING:
    from assistant.trace.store import TraceStore

LABELER_VERSION = "signals-1"

WEIGHTS: dict[str, float] = {
    "rephrase": 0.8,
    "correction": 0.9,
    "cancel": 0.6,
    "barge-in": 0.6,
    "abandonment": 0.6,
    "repeat": 0.3,
    "error": 0.7,
    "failed": 0.4,
    "unsupported": 0.5,
    "no-change": 0.8,
    "explicit-no": 0.95,
    "explicit-yes": 0.95,
    "completed": 0.6,
}

_CONTROL_INTENTS = frozenset(
    {
        "general_commandstop",
        "general_repeat",
        "general_affirm",
        "general_negate",
        "general_confirm",
        "general_dontcare",
        "general_praise",
        "general_greet",
    }
)
_OPPOSITES = [
    frozenset(p)
    for p in (
        ("on", "off"),
        ("up", "down"),
        ("open", "close"),
        ("start", "stop"),
        ("increase", "decrease"),
        ("raise", "lower"),
        ("lock", "unlock"),
        ("brighter", "dimmer"),
        ("louder", "quieter"),
        ("add", "remove"),
        ("play", "pause"),
    )
]


@dataclass(frozen=True)
class SignalConfig:
    gap_seconds: float = 30.0
    """A rephrase / repeat must start within this many seconds of the end of the turn it restates."""
    cancel_seconds: float = 10.0
    correction_seconds: float = 30.0
    follow_up_seconds: float = 20.0
    """A clarifying question not answered within this long is abandoned."""
    rephrase_similarity: float = 75.0
    """0-100; see `similarity`."""
    defect_threshold: float = 0.5


def similarity(a: str, b: str) -> float:
    """0-100: the mean of rapidfuzz's ratio, token_sort_ratio and token_set_ratio on normalised text.

    token_set_ratio alone scores any subset 100 ("the light" vs "turn on the kitchen light": 100); the plain ratio
    alone misses reordered words. The mean is high for typo fixes, reorderings and small rewordings only
    ("turn on the kichen light" / "turn on the kitchen light": 98; "set a timer for ten minutes" / "set a ten minute
    timer": 82; "the light" / "turn on the kitchen light": 69). Lexical only: two different requests that share
    most words ("add milk to my list" / "add eggs to my list": 86) look alike, which is why a rephrase also needs
    the first turn not to have succeeded with the same intent.
    """
    a, b = normalize_unicode(a), normalize_unicode(b)
    if not a or not b:
        return 0.0
    return (fuzz.ratio(a, b) + fuzz.token_sort_ratio(a, b) + fuzz.token_set_ratio(a, b)) / 3


def _opposite(a: str, b: str) -> bool:
    """The two requests differ by an antonym ("turn on" / "turn off"): a change of mind, not a restatement."""
    ta, tb = set(normalize_unicode(a).split()), set(normalize_unicode(b).split())
    diff = (ta - tb) | (tb - ta)
    return any(pair <= diff for pair in _OPPOSITES)


# "no, all of them" after a reply that acted on one device: the user wanted more (a manual correction of the scope)
_SCOPE_CORRECTION = re.compile(
    r"^(?:(?:no+|nope|nah)\b[ ,]*(?:i said |i meant |i want )?(?:all|both|every|each|the other|them all|the rest)\b"
    r"|not just (?:that|this|the|one)\b|(?:and )?the (?:other|rest)(?: ones?)? too\b|all of them\b|both of them\b)"
)
_NOT_DEVICE_ACTIONS = ("device.query", "device.unknown", "clarify", "confirm", "none")


def changed_nothing(rec: dict[str, Any]) -> bool | None:
    """True when the turn's action was a device change reported `done` whose result shows no device changed; None
    when the action is not a device change (or its result does not say)."""
    action = rec.get("action") or {}
    if not isinstance(action, dict) or action.get("status") != "done":
        return None
    name = str(action.get("name") or "")
    if (
        "." not in name
        or name in _NOT_DEVICE_ACTIONS
        or name.startswith(("schedule.", "timer.", "alarm.", "list", "music.", "media.", "weather", "datetime"))
    ):
        return None
    result = action.get("result") or {}
    if not isinstance(result, dict):
        return None
    if isinstance(result.get("changed"), dict):
        return not result["changed"]
    per_device = [v for v in result.values() if isinstance(v, dict) and "changed" in v]
    if per_device:
        return not any(v["changed"] for v in per_device)
    return None


def _status(rec: dict[str, Any]) -> str | None:
    action = rec.get("action") or {}
    return action.get("status") if isinstance(action, dict) else None


def _signal(
    type_: str, polarity: str, source: str, by_turn: str | None = None, weight: float | None = None, **detail: Any
) -> dict[str, Any]:
    return {
        "type": type_,
        "polarity": polarity,
        "source": source,
        "weight": WEIGHTS[type_] if weight is None else weight,
        "by_turn": by_turn,
        "detail": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in detail.items()},
    }


def _replay_overlap(turn: dict[str, Any], nxt: dict[str, Any]) -> float | None:
    """Seconds by which the next request in the same recording started before this turn's response would have
    finished playing (a barge-in in a replayed recording), or None. The response is taken to start at the request's
    endpoint plus the processing time to first audio, and to last as long as the synthesized audio."""
    src, nsrc = turn.get("source") or {}, nxt.get("source") or {}
    if src.get("kind") != "file" or nsrc.get("kind") != "file" or src.get("file") != nsrc.get("file"):
        return None
    rec = turn.get("record") or {}
    audio_s = next(
        (
            s["output"].get("audio_seconds")
            for s in turn.get("spans") or ()
            if s["stage"] == "tts" and isinstance(s.get("output"), dict)
        ),
        None,
    )
    end, next_start = src.get("end_seconds"), nsrc.get("offset_seconds")
    if audio_s is None or end is None or next_start is None:
        return None
    first_audio = ((rec.get("latency_ms") or {}).get("processing_to_first_audio") or 0.0) / 1000
    overlap = end + first_audio + audio_s - next_start
    return round(overlap, 2) if overlap > 0.2 else None


def session_signals(
    turns: list[dict[str, Any]], config: SignalConfig = SignalConfig(), now: float | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Signals for each turn of one session. `turns` are ordered (seq); each has turn_id, started_at, ended_at,
    source, record (the turn record), spans and events (type, data) - as `TraceStore.iter_turn_batches` returns
    them (source and spans are only needed for barge-ins in replayed recordings)."""
    now = time.time() if now is None else now
    out: dict[str, list[dict[str, Any]]] = {t["turn_id"]: [] for t in turns}
    for i, turn in enumerate(turns):
        rec = turn.get("record") or {}
        tid = turn["turn_id"]
        sig = out[tid]
        status = _status(rec)
        # -- the turn's own outcome
        err = rec.get("error")
        if err:
            sig.append(_signal("error", "negative", "outcome", code=err.get("code"), stage=err.get("stage")))
        elif status == "failed":
            sig.append(_signal("failed", "negative", "outcome", action=(rec.get("action") or {}).get("name")))
        elif status == "unsupported":
            sig.append(_signal("unsupported", "negative", "outcome", intent=rec.get("intent")))
        elif changed_nothing(rec):
            truthful = "already" in (rec.get("response_text") or "").lower()
            sig.append(
                _signal(
                    "no-change",
                    "negative",
                    "outcome",
                    weight=0.35 if truthful else None,
                    action=(rec.get("action") or {}).get("name"),
                    said_already=truthful,
                )
            )
        # -- events recorded on it
        for ev in turn.get("events") or ():
            if ev["type"] == "barge-in":
                sig.append(
                    _signal(
                        "barge-in",
                        "negative",
                        "implicit",
                        **{k: v for k, v in (ev.get("data") or {}).items() if isinstance(v, (int, float, str))},
                    )
                )
            elif ev["type"] == "feedback":
                answer = (ev.get("data") or {}).get("answer")
                if answer in ("yes", "no"):
                    sig.append(
                        _signal(
                            f"explicit-{answer}",
                            "positive" if answer == "yes" else "negative",
                            "explicit",
                            reply=(ev.get("data") or {}).get("reply"),
                        )
                    )
        # -- what happened next
        nxt = turns[i + 1] if i + 1 < len(turns) else None
        overlap = _replay_overlap(turn, nxt) if nxt is not None else None
        if overlap is not None and not any(s["type"] == "barge-in" for s in sig):
            sig.append(
                _signal("barge-in", "negative", "implicit", nxt["turn_id"], overlap_s=overlap, derived_from="replay")
            )
        end = turn.get("ended_at") or turn["started_at"]
        if rec.get("expects_reply"):
            if nxt is None:
                if now - end > config.follow_up_seconds:
                    sig.append(_signal("abandonment", "negative", "implicit", question=rec.get("response_text")))
            elif nxt["started_at"] - end > config.follow_up_seconds:
                sig.append(
                    _signal(
                        "abandonment",
                        "negative",
                        "implicit",
                        question=rec.get("response_text"),
                        next_after_s=nxt["started_at"] - end,
                    )
                )
        if nxt is not None:
            nrec = nxt.get("record") or {}
            gap = max(0.0, nxt["started_at"] - end)
            ntext = nrec.get("transcript") or ""
            if (
                gap <= config.cancel_seconds
                and rec.get("intent") != "general_commandstop"
                and (nrec.get("intent") == "general_commandstop" or starts_with_cancel(ntext))
            ):
                sig.append(_signal("cancel", "negative", "implicit", nxt["turn_id"], gap_s=gap, text=ntext))
            if gap <= config.correction_seconds and is_correction(ntext):
                sig.append(_signal("correction", "negative", "implicit", nxt["turn_id"], gap_s=gap, text=ntext))
            elif (
                gap <= config.correction_seconds
                and not rec.get("expects_reply")
                and status == "done"
                and _SCOPE_CORRECTION.match(normalize_unicode(ntext))
            ):
                sig.append(
                    _signal("correction", "negative", "implicit", nxt["turn_id"], gap_s=gap, text=ntext, kind="scope")
                )
            if gap <= config.gap_seconds and nrec.get("intent") == "general_repeat":
                sig.append(_signal("repeat", "negative", "implicit", nxt["turn_id"], gap_s=gap, text=ntext))
        # -- rephrase / repeated request: any later turn within the gap (the first match only)
        if rec.get("transcript") and rec.get("intent") not in _CONTROL_INTENTS:
            for later in turns[i + 1 :]:
                gap = later["started_at"] - end
                if gap > config.gap_seconds:
                    break
                lrec = later.get("record") or {}
                if lrec.get("intent") in _CONTROL_INTENTS or is_correction(lrec.get("transcript") or ""):
                    continue
                sim = similarity(rec["transcript"], lrec.get("transcript") or "")
                if sim < config.rephrase_similarity or _opposite(rec["transcript"], lrec.get("transcript") or ""):
                    continue
                same_success = status == "done" and rec.get("intent") == lrec.get("intent")
                if rec.get("expects_reply") and later is nxt:
                    break  # restating the request is how some people answer a clarifying question
                if same_success:
                    if sim >= 95:
                        sig.append(
                            _signal(
                                "repeat",
                                "negative",
                                "implicit",
                                later["turn_id"],
                                gap_s=max(0.0, gap),
                                similarity=sim,
                                same_request=True,
                            )
                        )
                else:
                    sig.append(
                        _signal(
                            "rephrase",
                            "negative",
                            "implicit",
                            later["turn_id"],
                            gap_s=max(0.0, gap),
                            similarity=sim,
                            intents=[rec.get("intent"), lrec.get("intent")],
                        )
                    )
                break
        # -- the positive default: done, and nothing negative so far
        if status == "done" and not any(s["polarity"] == "negative" for s in sig):
            if nxt is not None or now - end > config.follow_up_seconds:
                sig.append(_signal("completed", "positive", "outcome"))
    return out


def label_turn(signals: list[dict[str, Any]], config: SignalConfig = SignalConfig()) -> tuple[str, float]:
    """(label, confidence) from a turn's signals; see the module docstring."""
    explicit = [s for s in signals if s["source"] == "explicit"]
    if explicit:
        last = explicit[-1]  # the latest answer wins
        return ("ok" if last["polarity"] == "positive" else "defect"), last["weight"]
    keep = 1.0
    for s in signals:
        if s["polarity"] == "negative":
            keep *= 1.0 - s["weight"]
    defect = 1.0 - keep
    if defect >= config.defect_threshold:
        return "defect", round(defect, 3)
    if any(s["type"] == "completed" for s in signals) and defect == 0.0:
        return "ok", WEIGHTS["completed"]
    return "unknown", round(1.0 - defect, 3) if defect else 0.5


def iter_sessions(
    store: TraceStore, since: float | None = None, batch_size: int = 2000, max_turns: int = 1000, overlap: int = 100
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """(turns, n) pairs streamed from the store: a session's turns in seq order, of which the first n are to be
    labelled. A session longer than `max_turns` comes in windows that overlap by `overlap` turns (the look-ahead a
    turn's signals need), so memory stays bounded even for a device that never goes quiet."""
    current: list[dict[str, Any]] = []
    for batch in store.iter_turn_batches(since=since, order="session", batch_size=batch_size, labels=False):
        for turn in batch:
            if current and turn["session_id"] != current[0]["session_id"]:
                yield current, len(current)
                current = []
            current.append(turn)
            if len(current) >= max_turns:
                yield current, len(current) - overlap
                current = current[-overlap:]
    if current:
        yield current, len(current)


def label_sessions(
    sessions: Iterable[tuple[list[dict[str, Any]], int]],
    config: SignalConfig = SignalConfig(),
    now: float | None = None,
) -> Iterator[tuple[str, str, float, list[dict[str, Any]]]]:
    """(turn_id, label, confidence, signals) for the turns of (turns, n) windows as `iter_sessions` yields them."""
    for turns, n in sessions:
        signals = session_signals(turns, config, now)
        for turn in turns[:n]:
            sig = signals[turn["turn_id"]]
            label, conf = label_turn(sig, config)
            yield turn["turn_id"], label, conf, sig


def label_store(
    store: TraceStore,
    gap_seconds: float | None = None,
    config: SignalConfig | None = None,
    now: float | None = None,
    batch_size: int = 5000,
) -> dict[str, Any]:
    """(Re)compute the label of every turn in the store and write it to the `labels` table (replacing earlier ones:
    running it twice gives the same table). Returns counts per label and per signal type."""
    config = config or SignalConfig()
    if gap_seconds is not None:
        config = SignalConfig(**{**config.__dict__, "gap_seconds": gap_seconds})
    labels: Counter[str] = Counter()
    signals: Counter[str] = Counter()
    pending: list[tuple[str, str, float, list[dict[str, Any]], str]] = []
    for tid, label, conf, sig in label_sessions(iter_sessions(store), config, now):
        labels[label] += 1
        signals.update(s["type"] for s in sig)
        pending.append((tid, label, conf, sig, LABELER_VERSION))
        if len(pending) >= batch_size:
            store.write_labels(pending)
            pending = []
    if pending:
        store.write_labels(pending)
    return {
        "turns": sum(labels.values()),
        "labels": dict(labels),
        "signals": dict(sorted(signals.items())),
        "labeler_version": LABELER_VERSION,
    }
