"""The learned gate of online rewrites: P(win) of applying the retrieval's chosen candidate, from features that know
the catalogs and the user, fitted on the shadow candidates of the A/B's tuning days (each has a recorded win, loss or
tie: the candidate was run on a counterfactual pipeline against the goal; assistant/simulate/rewrite_ab.py).

Features (`gate_features`, each about [0, 1]): the ranker's (dense, fuzzy, phonetic, coverage, support, recency,
affinity), the layer (personal or global), catalog names the query says that the candidate drops and names the
candidate adds (music catalog artists and genres, the home's device and room names, names said in successful
requests), whether the candidate is in this user's own successful history, what the index knows of the query (seen,
its failure rate) and of the candidate (failure rate), the length change, and how the pipeline's NLU and resolver
read both (`Rewriter.probe`: intent confidence of the request and of the candidate, same intent, the share of catalog
entities - home, music, places - each resolves exactly, an unresolved one in the candidate).

Model: L2 logistic regression (Newton's method in numpy: 22 features, tens to thousands of rows) on standardised
features, losses weighted up (a loss costs more than a tie). The threshold is chosen on cross-validated probabilities
(never the rows a fold was fitted on): the most net wins among thresholds with win:loss >= the bar. Stored as
`<data dir>/rewrites/gate.json` (weights, scaling, threshold, the fit's figures).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.text import normalize

GATE_FILE = "rewrites/gate.json"
FEATURES = (
    "dense",
    "fuzzy",
    "phonetic",
    "coverage",
    "support",
    "recency",
    "affinity",
    "personal",
    "drops_name",
    "adds_name",
    "user_has",
    "query_seen",
    "query_fail",
    "cand_fail",
    "len_change",
    "probed",
    "query_conf",
    "cand_conf",
    "same_intent",
    "query_exact",
    "cand_exact",
    "cand_unresolved",
)
LOSS_WEIGHT = 3.0
MIN_ROWS, MIN_WINS = 12, 3
GATE_L2 = 30.0
"""The fit's L2 penalty on the standardised weights. A gate is fitted on tens of rows (two tuning days give 37-81
shadow candidates) and has 22 features: at 2.0 the cross-validated pick swung between 0 and 22 wins with the fold
split (seed 93's rows, 5 splits), at 30 it stayed at 19-23 wins : 2 losses (81 rows) and 3-8 : 0 (37 rows)."""


@functools.lru_cache(maxsize=1)
def music_names() -> frozenset[str]:
    """Artists and genres of the bundled music catalog (normalised, >= 4 characters)."""
    from assistant.config import PACKAGE_DATA

    out: set[str] = set()
    path = Path(PACKAGE_DATA) / "catalogs" / "music.jsonl"
    if not path.is_file():
        return frozenset()
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            for v in (d.get("artist"), d.get("name") if d.get("type") in ("artist", "genre") else None):
                n = normalize(v or "")
                if len(n) >= 4:
                    out.add(n)
    return frozenset(out)


def catalog_names(home: Any = None) -> frozenset[str]:
    """Music catalog names plus the home's device and room names and aliases."""
    names = set(music_names())
    if home is not None:
        for d in getattr(home, "devices", {}).values():
            for n in getattr(d, "names", ()) or (d.name,):
                names.add(normalize(n))
        for a in getattr(home, "areas", {}).values():
            for n in (a.name, *getattr(a, "aliases", ())):
                names.add(normalize(n))
    return frozenset(n for n in names if len(n) >= 4)


def names_in(text: str, names: frozenset[str], max_words: int = 4) -> set[str]:
    """The names (word n-grams) that occur in normalised `text`."""
    w = text.split()
    return {" ".join(w[i : i + n]) for n in range(1, max_words + 1) for i in range(len(w) - n + 1)} & names


def gate_features(
    cand: Any,
    q: str,
    index: Any,
    user: str | None,
    names: frozenset[str],
    q_probe: dict[str, Any] | None = None,
    c_probe: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The gate's features of the retrieval's chosen candidate `cand` (a retrieval.Candidate) for query `q`;
    `q_probe` / `c_probe`: how the pipeline's NLU and resolver read the query and the candidate (Rewriter.probe)."""
    f = {k: float(cand.features.get(k, 0.0)) for k in FEATURES[:7]}
    f["personal"] = 1.0 if cand.layer == "personal" else 0.0
    qn, cn = names_in(q, names), names_in(cand.text, names)
    # a name dropped only because the candidate says a longer one containing it ("jazz" -> "smooth jazz") is kept
    f["drops_name"] = 1.0 if any(not any(n in m for m in cn) for n in qn) else 0.0
    f["adds_name"] = 1.0 if any(not any(n in m for m in qn) for n in cn) else 0.0
    mine = index.personal.get(user or "", {}) if index is not None else {}
    f["user_has"] = 1.0 if cand.entry in mine else 0.0
    i = index.by_text.get(q) if index is not None else None
    f["query_seen"] = 0.0 if i is None else 1.0
    f["query_fail"] = 0.0 if i is None else _fail_rate(index, i)
    f["cand_fail"] = _fail_rate(index, cand.entry) if index is not None else 0.0
    f["len_change"] = min(1.0, abs(len(cand.text.split()) - len(q.split())) / max(1, len(q.split())))
    both = q_probe is not None and c_probe is not None
    f["probed"] = 1.0 if both else 0.0
    f["query_conf"] = float(q_probe["confidence"]) if both else 0.0
    f["cand_conf"] = float(c_probe["confidence"]) if both else 0.0
    f["same_intent"] = 1.0 if both and q_probe["intent"] == c_probe["intent"] else 0.0
    f["query_exact"] = float(q_probe["exact"]) if both else 0.0
    f["cand_exact"] = float(c_probe["exact"]) if both else 0.0
    f["cand_unresolved"] = float(c_probe["unresolved"]) if both else 0.0
    return f


def _fail_rate(index: Any, i: int) -> float:
    s, fl = float(index.support[i]), float(index.fail[i])
    return fl / (s + fl) if s + fl > 0 else 0.0


@dataclass
class RewriteGate:
    weights: dict[str, float]
    bias: float
    mean: dict[str, float]
    scale: dict[str, float]
    threshold: float
    fit: dict[str, Any] = field(default_factory=dict)
    """Rows, wins, losses, the cross-validated sweep and the chosen threshold's figures."""

    def predict(self, feats: dict[str, float]) -> float:
        z = self.bias + sum(
            w * (feats.get(k, 0.0) - self.mean.get(k, 0.0)) / (self.scale.get(k, 1.0) or 1.0)
            for k, w in self.weights.items()
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def save(self, data_dir: Path) -> Path:
        p = Path(data_dir) / GATE_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return p

    @classmethod
    def load(cls, data_dir: Path) -> RewriteGate | None:
        p = Path(data_dir) / GATE_FILE
        if not p.is_file():
            return None
        return cls(**json.loads(p.read_text()))


def outcome(row: dict[str, Any]) -> str:
    """A shadow row's outcome: win (the turn failed, the candidate would not), loss (the reverse) or tie."""
    d, sd = bool(row["defect"]), bool(row["shadow"]["defect"])
    return "win" if d and not sd else "loss" if sd and not d else "tie"


def net_sweep(p: list[float], outs: list[str], min_win_loss: float) -> tuple[float | None, list[dict[str, Any]]]:
    """Wins / losses / ties at each distinct probability as the threshold; the chosen one: the most net wins among
    those with win:loss >= min_win_loss (and >= 1 win), the higher threshold on a tie."""
    table = []
    for th in sorted(set(round(x, 4) for x in p)):
        w = sum(1 for x, o in zip(p, outs) if round(x, 4) >= th and o == "win")
        lo = sum(1 for x, o in zip(p, outs) if round(x, 4) >= th and o == "loss")
        t = sum(1 for x, o in zip(p, outs) if round(x, 4) >= th and o == "tie")
        table.append({"threshold": th, "wins": w, "losses": lo, "ties": t})
    ok = [t for t in table if t["wins"] and (t["losses"] == 0 or t["wins"] / t["losses"] >= min_win_loss)]
    best = max(ok, key=lambda t: (t["wins"] - t["losses"], t["threshold"]), default=None)
    return (best["threshold"] if best else None), table


def logistic(x: Any, y: Any, w: Any, l2: float = 2.0, iters: int = 50) -> tuple[Any, float]:
    """L2-regularised logistic regression by Newton's method (numpy; a few features and rows): (coef, intercept).
    `w` weighs the rows; the intercept is not penalised."""
    import numpy as np

    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ beta, -50, 50)))
        grad = xa.T @ (w * (p - y)) + reg * beta
        h = (xa * (w * p * (1 - p))[:, None]).T @ xa + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(h, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def _folds(y: Any, k: int, seed: int) -> list[Any]:
    """Stratified folds: each class shuffled and dealt round-robin."""
    import numpy as np

    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    return [np.flatnonzero(fold == i) for i in range(k)]


def fit_gate(
    rows: list[dict[str, Any]], min_win_loss: float = 8.5, folds: int = 5, seed: int = 0
) -> RewriteGate | None:
    """Fit the gate on shadow rows (truth rows with `shadow.features`); None when there are too few rows or wins, or
    no threshold reaches `min_win_loss` on the cross-validated probabilities."""
    import numpy as np

    rows = [r for r in rows if (r.get("shadow") or {}).get("features")]
    outs = [outcome(r) for r in rows]
    y = np.array([o == "win" for o in outs], dtype=float)
    if len(rows) < MIN_ROWS or y.sum() < MIN_WINS or y.sum() == len(y):
        return None
    x = np.array([[float(r["shadow"]["features"].get(k, 0.0)) for k in FEATURES] for r in rows])
    sw = np.array([LOSS_WEIGHT if o == "loss" else 1.0 for o in outs])
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    xs = (x - mean) / scale

    def prob(coef: Any, b: float, z: Any) -> Any:
        return 1.0 / (1.0 + np.exp(-np.clip(z @ coef + b, -50, 50)))

    k = int(min(folds, y.sum(), len(y) - y.sum()))
    if k >= 2:
        cv = np.zeros(len(y))
        for te in _folds(y, k, seed):
            tr = np.setdiff1d(np.arange(len(y)), te)
            coef, b = logistic(xs[tr], y[tr], sw[tr], l2=GATE_L2)
            cv[te] = prob(coef, b, xs[te])
    else:
        cv = None
    coef, b = logistic(xs, y, sw, l2=GATE_L2)
    p = cv if cv is not None else prob(coef, b, xs)
    th, table = net_sweep(p.tolist(), outs, min_win_loss)
    fit = {
        "rows": len(rows),
        "wins": outs.count("win"),
        "losses": outs.count("loss"),
        "ties": outs.count("tie"),
        "folds": k if cv is not None else 0,
        "min_win_loss": min_win_loss,
        "chosen": next((t for t in table if t["threshold"] == th), None),
        "sweep": table,
    }
    if th is None:
        return None
    return RewriteGate(
        {n: round(float(w), 6) for n, w in zip(FEATURES, coef)},
        round(b, 6),
        {n: round(float(v), 6) for n, v in zip(FEATURES, mean)},
        {n: round(float(v), 6) for n, v in zip(FEATURES, scale)},
        float(th),
        fit,
    )


__all__ = ["FEATURES", "RewriteGate", "catalog_names", "fit_gate", "gate_features", "names_in", "net_sweep", "outcome"]
