"""Rephrase detectors against the simulator's truth: the learned span model vs the lexical ones.

Detectors (each maps a session's turns to pairs (turn_id, rephrase_turn_id, span)):

- `learned`: `RephraseDetector` (models/rephrase).
- `lexical-signal`: the labeller's `rephrase` signal (`signals.session_signals`: rapidfuzz similarity >= 75 within
  30 s, the first turn not a success of the same intent); span = the whole later transcript.
- `lexical-mining`: what `mining.py` links in lexical mode: the signal, or the next turn within 30 s with normalised
  Levenshtein similarity >= 0.6, when the turn did not succeed; span = the whole next transcript.

Scoring, per query turn (every turn of a run):

- a predicted pair is **right** when the later turn restates the query (truth, `rephrase_data.restates`: same
  episode, role rephrase or repeat; or an answer to a clarifying question given again); **strict** when it is the
  gold target (the first such turn in the window that succeeded, else
  the last one: see `rephrase_data`);
- recall counts the queries with a gold target (a rephrase within 45 s / 3 turns);
- spans (on strict hits): exact = same words after normalisation (case, punctuation); token F1 as in SQuAD.

`corrections=p` first turns a share p of the rephrase turns into "no, I said <transcript>" (the gold span stays the
request) - the simulated people never correct that way; it tests the span part.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.learning.rephrase_data import (
    CORRECTION_PREFIXES,
    REPHRASE_ROLES,
    Turn,
    examples_from_sessions,
    load_truth,
    restates,
    sessions_from_store,
)
from assistant.text import normalize

Pair = tuple[str, str, str]


def prf(pred: int, right: int, gold: int) -> dict[str, Any]:
    p = right / pred if pred else None
    r = min(right, gold) / gold if gold else None
    f = 2 * p * r / (p + r) if p and r else 0.0 if p is not None and r is not None else None
    return {"predicted": pred, "right": right, "gold": gold, "precision": _r(p), "recall": _r(r), "f1": _r(f)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def token_f1(pred: str, gold: str) -> float:
    p, g = normalize(pred).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = 0
    rest = list(g)
    for w in p:
        if w in rest:
            rest.remove(w)
            common += 1
    if not common:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def span_match(pred: str, gold: str) -> str:
    if normalize(pred).split() == normalize(gold).split():
        return "exact"
    return "overlap" if token_f1(pred, gold) > 0 else "none"


# ----------------------------------------------------------------------------- lexical detectors
def _trace_view(t: Turn) -> dict[str, Any]:
    return {
        "turn_id": t.turn_id,
        "started_at": t.t0,
        "ended_at": t.t1,
        "record": {
            "transcript": t.text,
            "intent": t.intent,
            "action": {"status": t.status},
            "error": {"code": t.error} if t.error else None,
            "expects_reply": t.expects_reply,
        },
        "events": [{"type": "barge-in", "data": {}}] if t.barge_in else [],
        "spans": [],
        "source": None,
    }


def lexical_signal(session: Sequence[Turn], now: float | None = None) -> list[Pair]:
    from assistant.learning.signals import session_signals

    view = [_trace_view(t) for t in session]
    sig = session_signals(view, now=now if now is not None else (session[-1].t1 + 3600 if session else 0))
    text = {t.turn_id: t.text for t in session}
    out = []
    for t in session:
        for s in sig[t.turn_id]:
            if s["type"] == "rephrase" and s.get("by_turn"):
                out.append((t.turn_id, s["by_turn"], text.get(s["by_turn"], "")))
    return out


def lexical_mining(session: Sequence[Turn], gap_seconds: float = 30.0, min_similarity: float = 0.6) -> list[Pair]:
    """The lexical link rule of `mining.steps_sql` (`linked`), on one session in Python."""
    from rapidfuzz.distance import Levenshtein

    from assistant.learning.mining import MiningConfig
    from assistant.learning.signals import label_turn, session_signals

    controls = set(MiningConfig().control_intents)
    view = [_trace_view(t) for t in session]
    sig = session_signals(view, now=session[-1].t1 + 3600 if session else 0)
    kept = [t for t in session if t.text and (t.intent or "") not in controls and normalize(t.text)]
    out = []
    for i, t in enumerate(kept[:-1]):
        nxt = kept[i + 1]
        label, _ = label_turn(sig[t.turn_id])
        success = label == "ok" or (label != "defect" and t.status == "done" and not t.error)
        if success:
            continue
        signal = any(s["type"] == "rephrase" and s.get("by_turn") == nxt.turn_id for s in sig[t.turn_id])
        a, b = normalize(t.text), normalize(nxt.text)
        sim = 1.0 - Levenshtein.distance(a, b) / max(len(a), len(b), 1)
        if signal or (nxt.t0 - t.t1 <= gap_seconds and sim >= min_similarity):
            out.append((t.turn_id, nxt.turn_id, nxt.text))
    return out


# ----------------------------------------------------------------------------- scoring
def add_corrections(
    sessions: list[list[Turn]], truth: dict[str, dict[str, Any]], share: float, seed: int = 0
) -> list[list[Turn]]:
    """Copies of the sessions where a share of the rephrase / repeat turns start with "no, I said"."""
    if share <= 0:
        return sessions
    rng = random.Random(seed)
    out = []
    for s in sessions:
        new = []
        for t in s:
            if (truth.get(t.turn_id) or {}).get("role") in REPHRASE_ROLES and t.text and rng.random() < share:
                t = Turn(**{**t.__dict__, "text": rng.choice(CORRECTION_PREFIXES) + t.text})
            new.append(t)
        out.append(new)
    return out


def score(
    sessions: list[list[Turn]], truth: dict[str, dict[str, Any]], detector: Callable[[Sequence[Turn]], list[Pair]]
) -> dict[str, Any]:
    exs = {e.query_id: e for e in examples_from_sessions(sessions, truth)}
    gold_n = sum(e.gold_turn is not None for e in exs.values())
    pred = right = strict = exact = 0
    f1s: list[float] = []
    t0 = time.perf_counter()
    pairs = [p for s in sessions for p in detector(s)]
    seconds = time.perf_counter() - t0
    seen = set()
    for q, j, span in pairs:
        if q in seen:  # one answer per query
            continue
        seen.add(q)
        pred += 1
        ok = restates(truth.get(q), truth.get(j))
        right += ok
        ex = exs.get(q)
        if ok and ex is not None and ex.gold_turn == j:
            strict += 1
            gspan = ex.text_b[ex.gold_chars[0] : ex.gold_chars[1]]
            exact += span_match(span, gspan) == "exact"
            f1s.append(token_f1(span, gspan))
    return {
        **prf(pred, right, gold_n),
        "strict": prf(pred, strict, gold_n),
        "span_exact": _r(exact / strict) if strict else None,
        "span_token_f1": _r(sum(f1s) / len(f1s)) if f1s else None,
        "seconds": round(seconds, 2),
        "ms_per_session": round(1000 * seconds / max(1, len(sessions)), 2),
    }


def evaluate_run(
    run_dir: Path,
    detectors: dict[str, Callable[[Sequence[Turn]], list[Pair]]] | None = None,
    corrections: float = 0.0,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """Each detector on one simulator run (traces.db + sim_truth.jsonl)."""
    run_dir = Path(run_dir)
    truth = load_truth(run_dir / "sim_truth.jsonl")
    sessions = add_corrections(sessions_from_store(run_dir / "traces.db"), truth, corrections)
    if detectors is None:
        detectors = {"lexical-signal": lexical_signal, "lexical-mining": lexical_mining}
        from assistant.learning.rephrase_model import RephraseDetector

        if RephraseDetector.available(model_dir):
            det = RephraseDetector(model_dir)
            detectors = {"learned": lambda s: [(a, b, c) for a, b, c, _ in det.detect(s)], **detectors}
    exs = list(examples_from_sessions(sessions, truth))
    res = {
        "run": str(run_dir),
        "turns": len(truth),
        "sessions": len(sessions),
        "queries_with_candidates": len(exs),
        "gold_pairs": sum(e.gold_turn is not None for e in exs),
        "corrections": corrections,
        "rephrase_turns": sum(1 for r in truth.values() if r.get("role") in REPHRASE_ROLES),
        "detectors": {name: score(sessions, truth, fn) for name, fn in detectors.items()},
    }
    return res


def to_markdown(res: dict[str, Any]) -> str:
    lines = [
        f"Run {res['run']}: {res['turns']} turns, {res['sessions']} sessions, {res['queries_with_candidates']} "
        f"turns with later turns in the window, {res['gold_pairs']} with a rephrase"
        + (f" ({res['corrections']:.0%} of rephrases as 'no, I said ...')" if res["corrections"] else "")
        + ".",
        "",
        "| detector | predicted | precision | recall | F1 | strict P / R / F1 | span exact | span token F1 "
        "| ms/session |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    f = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    for name, d in res["detectors"].items():
        s = d["strict"]
        lines.append(
            f"| {name} | {d['predicted']} | {f(d['precision'])} | {f(d['recall'])} | {f(d['f1'])} | "
            f"{f(s['precision'])} / {f(s['recall'])} / {f(s['f1'])} | {f(d['span_exact'])} | "
            f"{f(d['span_token_f1'])} | {d['ms_per_session']} |"
        )
    return "\n".join(lines)
