"""Fitting the context reranker's weights (assistant/understanding/rerank/context.py) on synthetic context-labelled
hypothesis sets, with the real NLU model's n-best lists:

    python -m assistant.training.rerank_fit --fit          # writes assistant/data/rerank/weights.json
    python -m assistant.training.rerank_fit --fit --no-nlu # random NLU probabilities instead of the model's

Refit after every NLU retrain (then `pytest tests/integration/test_context.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from assistant.understanding.rerank.context import (
    DEVICE_QUERY,
    FEATURES,
    NBEST_K,
    NLU_FLOOR,
    WEIGHTS_PATH,
    unused_slots,
)

# Attribute questions whose n-best the real NLU gives when fitting (`nlu_pools`): a bare question may mean a device
# that is on; one naming a day or a place means the weather.
ATTRIBUTE_QUESTIONS = (
    "what is the temperature",
    "what's the temperature",
    "how hot is it",
    "what temperature is it",
    "what is the temperature now",
    "what's the temp",
    "how hot is it now",
    "what is the volume",
    "how loud is it",
    "how bright is it",
    "what's the brightness",
    "what temperature is it set to",
)
ATTRIBUTE_QUESTIONS_ELSEWHERE = (
    "what is the temperature tomorrow",
    "how hot is it in paris",
    "what will the temperature be tonight",
    "how hot will it be on friday",
    "what's the temperature in london",
    "what is the temperature this weekend",
)


def nlu_pools(nlu_backend: Any, data_root: Path | None = None) -> dict[str, list[Any]]:
    """Real NLU n-best lists for fitting: SLURP devel sentences with their gold label (how far the model's
    probabilities can be trusted) and the attribute questions above (how little `iot_device_query` gets)."""
    from assistant.config import shared_data_dir
    from assistant.training.nlu_eval import load_slurp

    root = data_root or shared_data_dir()
    plain = []
    for row in load_slurp(root / "slurp" / "devel.jsonl"):
        r = nlu_backend.parse(row["text"])
        nbest = list(r.nbest[:NBEST_K])
        gold = next((i for i, (intent, _p) in enumerate(nbest) if intent == row["intent"]), None)
        if gold is not None:
            plain.append(([p for _i, p in nbest], gold))

    def attr(texts: tuple[str, ...], elsewhere: bool) -> list[tuple[float, float, float, bool]]:
        out = []
        for t in texts:
            r = nlu_backend.parse(t)
            probs = dict(r.nbest[:NBEST_K])
            top = max((p for i, p in probs.items() if i != DEVICE_QUERY), default=0.0)
            out.append((top, probs.get(DEVICE_QUERY, 0.0), unused_slots(r), elsewhere))
        return out

    return {"plain": plain, "device": attr(ATTRIBUTE_QUESTIONS, False) + attr(ATTRIBUTE_QUESTIONS_ELSEWHERE, True)}


def synthetic_examples(
    n: int = 3000, seed: int = 0, pools: dict[str, list[Any]] | None = None
) -> list[tuple[list[dict[str, float]], int]]:
    """Hypothesis sets with the index of the one the simulated user meant.

    The simulated user (assumptions of the team, not measured): a title shared by a film and an audiobook means the
    film on a device with a screen 85% of the time and the audiobook 90% of the time without one; a question about an
    attribute ("temperature") means the device that is on in 80% of cases and the NLU's top intent otherwise (always
    the NLU's when it names a day or a place; of several devices that are on, the one in the speaker's room 70% of the
    time); an ambiguous city name means the one the user asked about before with
    probability 0.4 + 0.5 x its share of their past asks, else the most populous; "play music" means the user's most
    played genre when it has >= 50% of their plays (80%), else no genre.

    NLU probabilities: with `pools` (from `nlu_pools`, the real model), plain intent confusions are real SLURP devel
    n-best lists with their gold label, and attribute questions carry the real model's probabilities; without, they
    are drawn at random (the meant intent top 75% of the time)."""
    rng = random.Random(seed)
    out: list[tuple[list[dict[str, float]], int]] = []

    def base(p: float, ctx: bool = False, **kw: float) -> dict[str, float]:
        f = {k: 0.0 for k in FEATURES}
        f["ctx_nlu_logp" if ctx else "nlu_logp"] = math.log(max(p, NLU_FLOOR))
        f["from_context"] = 1.0 if ctx else 0.0
        f["nlu_absent"] = 1.0 if p <= 0 else 0.0
        f.update(kw)
        return f

    for _ in range(n):
        kind = rng.choice(("media", "device", "place", "genre", "plain"))
        if kind == "media":
            screen = rng.random() < 0.5
            p = rng.uniform(0.3, 0.9)
            m_film, m_book = rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0)
            film_slot = rng.random() < 0.3
            hs = [
                base(
                    p,
                    match=m_film,
                    type_compat=float(film_slot),
                    prior=rng.uniform(0.5, 1),
                    **{"screen_visual" if screen else "noscreen_visual": 1.0},
                ),
                base(p, match=m_book, type_compat=float(not film_slot), prior=rng.uniform(0.5, 1)),
            ]
            want_film = rng.random() < (0.85 if screen else 0.1)
            label = 0 if want_film else 1
            if rng.random() < 0.5:  # a near-miss title ("the big game" for "the hunger games"): no prior
                visual = rng.random() < 0.5
                hs.append(
                    base(
                        p,
                        match=rng.uniform(0.6, 0.85),
                        **({"screen_visual" if screen else "noscreen_visual": 1.0} if visual else {}),
                    )
                )
        elif kind == "device":
            if pools:
                p_top, p_dev, unused, elsewhere = rng.choice(pools["device"])
            else:
                p_top, p_dev, unused, elsewhere = (
                    rng.uniform(0.4, 0.8),
                    rng.choice((0.0, rng.uniform(0.05, 0.4))),
                    0.0,
                    False,
                )
            # the NLU's own reading, its own device query (no device named), then one hypothesis per device that has
            # the attribute: 1-3 of them, each on or off, in the speaker's room or not (a thermostat has no on-state)
            hs = [base(p_top), base(p_dev)]
            devices = [(float(rng.random() < 0.4), float(rng.random() < 0.4)) for _ in range(rng.randint(1, 3))]
            hs += [base(p_dev, True, device_on=on, device_here=here, unused_slots=unused) for on, here in devices]
            on_idx = [2 + i for i, (on, _here) in enumerate(devices) if on]
            label = 0
            if on_idx and not elsewhere and rng.random() < 0.8:
                here_on = [i for i in on_idx if devices[i - 2][1]]
                label = rng.choice(here_on) if here_on and rng.random() < 0.7 else rng.choice(on_idx)
        elif kind == "place":
            k = rng.randint(2, 6)
            p = rng.uniform(0.5, 0.95)
            priors = sorted((rng.uniform(0.6, 1.0) for _ in range(k)), reverse=True)
            priors[0] = 1.0
            asked = rng.randrange(k) if rng.random() < 0.5 else None
            share = rng.uniform(0.3, 1.0)
            hs = []
            for i in range(k):
                kw = {"match": 1.0, "type_compat": 1.0, "prior": priors[i]}
                if asked == i:
                    kw.update(hist_share=share, hist_any=1.0, hist_daypart=share * rng.uniform(0.5, 1.0))
                hs.append(base(p, **kw))
            label = asked if asked is not None and rng.random() < 0.4 + 0.5 * share else 0
            if rng.random() < 0.5:  # a near-miss name (Springfield / Springvale), maybe a bigger city
                hs.append(base(p, match=rng.uniform(0.8, 0.92), type_compat=1.0))
        elif kind == "genre":
            p = rng.uniform(0.5, 0.95)
            share = rng.uniform(0.1, 1.0)
            hs = [
                base(p),
                base(p, True, unsaid=1.0, hist_share=share, hist_any=1.0, hist_daypart=share * rng.uniform(0.5, 1)),
            ]
            label = 1 if share >= 0.5 and rng.random() < 0.8 else 0
        elif pools:  # plain intent confusion, real: a SLURP devel n-best and its gold intent
            ps, label = rng.choice(pools["plain"])
            hs = [base(x) for x in ps]
        else:  # plain intent confusion: the NLU is right more often than not
            ps = sorted((rng.random() for _ in range(3)), reverse=True)
            tot = sum(ps)
            ps = [x / tot for x in ps]
            hs = [base(x, match=rng.uniform(0.7, 1.0)) for x in ps]
            label = rng.choices(range(3), weights=[x**1.5 for x in ps])[0]
        out.append((hs, label))
    return out


# More NLU belief in a hypothesis' intent never makes it less likely: these weights are kept >= 0. Unconstrained,
# the fit read meaning into one model's quirks (a confident model gives a device query ~0 probability, so a negative
# weight on it became a bonus for context-added device queries, and a softer model then lost the oven case).
NONNEGATIVE = ("nlu_logp", "ctx_nlu_logp")


def fit(
    examples: list[tuple[list[dict[str, float]], int]], l2: float = 0.001, epochs: int = 3000, lr: float = 0.5
) -> dict[str, float]:
    """Conditional logistic regression (softmax over each hypothesis set), full-batch projected gradient descent
    (NONNEGATIVE weights clipped at 0), vectorised over sets padded to the largest one."""
    import numpy as np

    feats = list(FEATURES)
    k = max(len(hs) for hs, _ in examples)
    x = np.zeros((len(examples), k, len(feats)))
    mask = np.zeros((len(examples), k), dtype=bool)
    y = np.array([lab for _hs, lab in examples])
    for i, (hs, _lab) in enumerate(examples):
        x[i, : len(hs)] = [[h[f] for f in feats] for h in hs]
        mask[i, : len(hs)] = True
    w = np.zeros(len(feats))
    nonneg = [feats.index(f) for f in NONNEGATIVE]
    rows = np.arange(len(examples))
    for _ in range(epochs):
        s = np.where(mask, x @ w, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (np.einsum("nk,nkf->f", p, x) - x[rows, y].sum(axis=0)) / len(examples) + l2 * w
        w -= lr * g
        w[nonneg] = np.maximum(w[nonneg], 0.0)
    return {f: round(float(v), 4) for f, v in zip(feats, w)}


def accuracy(weights: dict[str, float], examples: list[tuple[list[dict[str, float]], int]]) -> float:
    ok = 0
    for hs, y in examples:
        scores = [sum(weights[k] * h[k] for k in FEATURES) for h in hs]
        ok += max(range(len(hs)), key=lambda i: scores[i]) == y
    return ok / len(examples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fit the context reranker's weights on synthetic examples")
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--no-nlu", action="store_true", help="random NLU probabilities instead of the real model's")
    args = ap.parse_args(argv)
    if not args.fit:
        ap.print_help()
        return 2
    pools, nlu_version = None, None
    if not args.no_nlu:
        from assistant.backends.nlu.onnx_joint import OnnxJointNlu

        be = OnnxJointNlu()
        pools, nlu_version = nlu_pools(be), be.version
    train, test = synthetic_examples(args.n, seed=0, pools=pools), synthetic_examples(1000, seed=1, pools=pools)
    w = fit(train)
    acc = accuracy(w, test)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "comment": "Weights of assistant/understanding/rerank/context.py. Fitted by "
                "`python -m assistant.training.rerank_fit --fit`: "
                "conditional logistic regression on synthetic hypothesis sets (synthetic_examples, seed 0, "
                f"n={args.n}) whose labels come from a simulated user written by the team (assumptions, not "
                "measured behaviour; see the synthetic_examples docstring), with the NLU probabilities of the "
                "real model named in fitted_on (SLURP devel n-best lists, attribute questions). Refit after "
                "every NLU retrain, and on labelled real turns (trace store) when there are some.",
                "fitted_on": {
                    "examples": args.n,
                    "seed": 0,
                    "nlu_model": nlu_version,
                    "heldout_accuracy": round(acc, 4),
                },
                "weights": w,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(json.dumps({"weights": w, "heldout_accuracy": round(acc, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
