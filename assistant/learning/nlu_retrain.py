"""`assistant learn retrain-nlu`: the NLU retrains itself from labels generated from its own traces (issue 23).

1. **Training set**: the turn labels proposed from the dialogue context (`labels/turn_labels.py`) with confidence
   >= `min_confidence`, of the turns in the window (`--since`), of users who did not opt out (their pseudonym is not
   in privacy.json; an opted-out user's recorded turns are skipped even if some are still in the store). Nothing of a
   user is kept beside the model: the rows live in memory for the training only; the version folder records counts
   (labels by source and intent, distinct pseudonyms, the window), not texts. A deleted turn (`privacy opt-out`,
   `traces prune`) is gone from the store, so it is in no later training set.
2. **Training**: the existing `train nlu` code path (`assistant/training/nlu.py`), warm-started from the current model
   (its ONNX weights) for one epoch over the generated rows plus a seeded sample of the corpora it was trained on
   (`corpus_fraction`), so a weekly retraining fits this machine (about 5-10 minutes on one thread, against 26 for
   a full training).
3. **Gates** (all must pass, else the candidate stays in `<data dir>/nlu/candidates/` and is not promoted):
   - `heldout_sim`: on held-out simulator runs (never in the training store), the candidate labels more
     request turns right (intent and slots, against the simulator's truth) than the current model, parsing the text
     the NLU saw;
   - `slurp_test`: SLURP test intent accuracy drops by at most `slurp_margin` (0.5 points);
   - `actions`: the action suite (`assistant eval actions`) drops by at most `actions_margin` (1 point);
   - `spoken`: SLURP test sentences spoken by Piper and transcribed by the pipeline's ASR (the first `spoken_limit`,
     transcripts cached in `<data dir>/nlu/spoken-<voice>.jsonl`) drop by at most `spoken_margin` (2 points).
4. **Versions** like the rewrite tables: `<data dir>/nlu/v{N}/` (model folder with its MODEL_CARD.md and
   `retrain.json`), `<data dir>/nlu/current` names the version in use; `rollback(data_dir, N)` points it back, 0 =
   the shipped model (models/nlu), which is always the fallback. The NLU backend loads the current version when
   `nlu.model_dir` is the default.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from assistant.config import REPO_ROOT
from assistant.errors import AssistantError

NLU_DIR = "nlu"
SHIPPED = REPO_ROOT / "models" / "nlu"


@dataclass
class RetrainConfig:
    since: float | None = None
    until: float | None = None
    min_confidence: float = 0.8
    epochs: int = 1
    lr: float = 3e-5
    corpus_fraction: float = 0.25
    threads: int = 1
    seed: int = 0
    heldout_runs: list[str] = field(default_factory=list)
    slurp_margin: float = 0.005
    actions_margin: float = 0.01
    spoken_margin: float = 0.02
    spoken_limit: int = 200
    spoken_voice: str = "piper"
    min_rows: int = 20


# -- versions on disk (as the rewrite tables: markov.py) -------------------------------------------------------------
def nlu_dir(data_dir: Path) -> Path:
    return Path(data_dir) / NLU_DIR


def versions(data_dir: Path) -> list[int]:
    d = nlu_dir(data_dir)
    if not d.is_dir():
        return []
    return sorted(int(p.name[1:]) for p in d.glob("v*") if p.name[1:].isdigit() and (p / "model.onnx").is_file())


def current_version(data_dir: Path) -> int | None:
    try:
        return int((nlu_dir(data_dir) / "current").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def current_model_dir(data_dir: Path | None, shipped: Path = SHIPPED) -> Path:
    """The promoted model in use (`<data dir>/nlu/v{current}`), else the shipped one."""
    if data_dir is not None:
        v = current_version(data_dir)
        if v:
            d = nlu_dir(data_dir) / f"v{v}"
            if (d / "model.onnx").is_file() and (d / "labels.json").is_file():
                return d
    return Path(shipped)


def _write_current(data_dir: Path, version: int) -> None:
    d = nlu_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".current.{os.getpid()}.tmp"
    tmp.write_text(f"{version}\n")
    tmp.replace(d / "current")


def rollback(data_dir: Path, version: int) -> int:
    """Point `current` at an earlier (or any existing) version; 0 = the shipped model."""
    if version != 0 and version not in versions(data_dir):
        have = ", ".join(map(str, versions(data_dir))) or "none"
        raise AssistantError("no-such-nlu-version", f"No retrained NLU v{version} (have: {have}; 0 = shipped).")
    _write_current(data_dir, version)
    return version


def status(data_dir: Path) -> dict[str, Any]:
    out = {"current": current_version(data_dir) or 0, "model_dir": str(current_model_dir(data_dir)), "versions": []}
    for v in versions(data_dir):
        meta = nlu_dir(data_dir) / f"v{v}" / "retrain.json"
        info = json.loads(meta.read_text()) if meta.is_file() else {}
        out["versions"].append({"version": v, "created_at": info.get("created_at"), "gates": info.get("gates")})
    return out


# -- 1. the training set ---------------------------------------------------------------------------------------------
def build_training_set(
    store: Any,
    data_dir: Path,
    cfg: RetrainConfig,
    labeller: Any = None,
    detector: Any = "auto",
    label_model: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], set[str]]:
    """(rows, stats, turn ids) of the confident generated labels of consenting users in the window."""
    from assistant.learning.labels.labeller import Labeller, rephrase_detector
    from assistant.learning.labels.turn_labels import TurnLabelModel, propose
    from assistant.trace.privacy import Pseudonymizer, opted_out_pseudonyms

    pz = Pseudonymizer(data_dir)
    opted = opted_out_pseudonyms(data_dir)
    skipped_users: set[str] = set()

    def keep_user(user_id: str) -> bool:
        if pz(user_id) in opted:
            skipped_users.add(pz(user_id))
            return False
        return True

    lab = labeller or Labeller.load()
    det = rephrase_detector() if detector == "auto" else detector
    props = propose(
        store, lab, det, label_model or TurnLabelModel.load(), since=cfg.since, until=cfg.until, keep_user=keep_user
    )
    kept = [p for p in props if p.confidence >= cfg.min_confidence]
    rows = [p.to_row() for p in kept]
    times = [p.started_at for p in kept]
    stats = {
        "window": {
            "since": _iso(cfg.since),
            "until": _iso(cfg.until),
            "first_turn": _iso(min(times)) if times else None,
            "last_turn": _iso(max(times)) if times else None,
        },
        "proposed": len(props),
        "min_confidence": cfg.min_confidence,
        "labels": len(rows),
        "labels_by_source": dict(Counter(p.source for p in kept).most_common()),
        "labels_changing_the_parse": sum(p.intent != p.parsed_intent for p in kept),
        "labels_by_intent": dict(Counter(p.intent for p in kept).most_common()),
        "users": len({pz(p.user_id) for p in kept}),
        "opted_out_users_skipped": len(skipped_users),
        "label_model": (label_model or TurnLabelModel.load()).version,
        "labeler_version": lab.version,
    }
    return rows, stats, {p.turn_id for p in props}


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


# -- 3. gates --------------------------------------------------------------------------------------------------------
def heldout_sim_score(model_dir: Path, runs: list[str]) -> dict[str, Any]:
    """Request turns of simulator runs parsed again by the model (the text the NLU saw) and judged against truth."""
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.learning.labels.truth import load_truth
    from assistant.learning.labels.turn_label_eval import REQUEST_ROLES, baseline_labels, judge

    nlu = OnnxJointNlu(Path(model_dir))
    n = intent_ok = both = 0
    for run in runs:
        truth = load_truth(Path(run))
        for tid, (_intent, _slots, text, _c) in baseline_labels(Path(run)).items():
            d = truth.get(tid)
            if d is None or d.get("role") not in REQUEST_ROLES or not d.get("goal") or not text:
                continue
            r = nlu.parse(text)
            i_ok, s_ok = judge(r.intent, {s.name: s.value for s in r.slots}, text, d)
            n += 1
            intent_ok += i_ok
            both += i_ok and s_ok
    return {
        "turns": n,
        "intent_accuracy": round(intent_ok / n, 4) if n else None,
        "right": both,
        "accuracy": round(both / n, 4) if n else None,
    }


def slurp_test_score(model_dir: Path) -> dict[str, Any]:
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.config import shared_data_dir
    from assistant.training.nlu_eval import evaluate

    m = evaluate(shared_data_dir() / "slurp" / "test.jsonl", OnnxJointNlu(Path(model_dir)))
    return {"intent_accuracy": m["intent_accuracy"], "slot_f1": m["slot"]["f1"], "rows": m.get("n", None)}


def actions_score(model_dir: Path) -> dict[str, Any]:
    from assistant.home.eval_actions import DEFAULT_SUITE, load_suite, run_suite

    m = run_suite(load_suite(DEFAULT_SUITE), suite_dir=Path(DEFAULT_SUITE).parent, nlu_model_dir=Path(model_dir))
    return {"action_accuracy": m["action_accuracy"], "cases": m["cases"]}


def spoken_score(model_dir: Path, data_dir: Path, voice: str, limit: int) -> dict[str, Any]:
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.config import shared_data_dir
    from assistant.training.nlu_eval import SpokenNlu, evaluate

    cache = nlu_dir(data_dir) / f"spoken-{voice}.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    be = SpokenNlu(OnnxJointNlu(Path(model_dir)), voice, cache)
    m = evaluate(shared_data_dir() / "slurp" / "test.jsonl", be, limit=limit)
    return {"intent_accuracy": m["intent_accuracy"], "slot_f1": m["slot"]["f1"], "sentences": limit, "voice": voice}


Scorer = Callable[[Path], dict[str, Any]]


def default_scorers(cfg: RetrainConfig, data_dir: Path) -> dict[str, Scorer]:
    return {
        "heldout_sim": lambda d: heldout_sim_score(d, cfg.heldout_runs),
        "slurp_test": slurp_test_score,
        "actions": actions_score,
        "spoken": lambda d: spoken_score(d, data_dir, cfg.spoken_voice, cfg.spoken_limit),
    }


def check_gates(cur: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], cfg: RetrainConfig) -> dict[str, Any]:
    """Each gate: passed, the two figures and the rule. Missing figures fail their gate."""
    rules = {
        "heldout_sim": ("right", 1, "more held-out simulator request turns labelled right than the current model"),
        "slurp_test": ("intent_accuracy", -cfg.slurp_margin, f"SLURP test intent accuracy drop <= {cfg.slurp_margin}"),
        "actions": ("action_accuracy", -cfg.actions_margin, f"action suite accuracy drop <= {cfg.actions_margin}"),
        "spoken": ("intent_accuracy", -cfg.spoken_margin, f"spoken intent accuracy drop <= {cfg.spoken_margin}"),
    }
    out: dict[str, Any] = {}
    for gate, (key, need, rule) in rules.items():
        a, b = (cur.get(gate) or {}).get(key), (new.get(gate) or {}).get(key)
        if a is None or b is None:
            out[gate] = {"passed": False, "rule": rule, "why": "not measured (no data for this gate)"}
            continue
        delta = b - a
        passed = delta >= need if gate != "heldout_sim" else delta >= need and (new[gate].get("turns") or 0) > 0
        out[gate] = {"passed": bool(passed), "rule": rule, "current": a, "candidate": b, "delta": round(delta, 4)}
    return out


# -- the job -----------------------------------------------------------------------------------------------------------
def retrain(
    store: Any,
    data_dir: Path,
    cfg: RetrainConfig,
    trainer: Callable[..., dict[str, Any]] | None = None,
    scorers: dict[str, Scorer] | None = None,
    labeller: Any = None,
    detector: Any = "auto",
    label_model: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the training set, train a candidate, gate it, promote it when every gate passes."""
    t0 = time.time()
    data_dir = Path(data_dir)
    rows, stats, turn_ids = build_training_set(store, data_dir, cfg, labeller, detector, label_model)
    _say(
        progress,
        f"[retrain-nlu] {stats['labels']} confident labels of {stats['proposed']} proposed "
        f"({stats['labels_by_source']}); {stats['users']} users",
    )
    if cfg.heldout_runs:
        from assistant.learning.labels.truth import load_truth

        overlap = sum(len(turn_ids & set(load_truth(Path(r)))) for r in cfg.heldout_runs)
        if overlap:
            raise AssistantError(
                "heldout-in-training",
                f"{overlap} turns of the held-out runs are in the trace store being trained on: give held-out "
                "simulator runs whose traces are not in this store.",
            )
    if len(rows) < cfg.min_rows:
        return {"promoted": False, "why": f"only {len(rows)} confident labels (need {cfg.min_rows})", "data": stats}
    current = current_model_dir(data_dir)
    cand_root = nlu_dir(data_dir) / "candidates"
    cand = cand_root / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    cand.mkdir(parents=True, exist_ok=True)
    if trainer is None:
        from assistant.training.nlu import train as trainer
    t_train = time.time()
    metrics = trainer(
        cand,
        epochs=cfg.epochs,
        seed=cfg.seed,
        lr=cfg.lr,
        threads=cfg.threads,
        extra_rows=rows,
        init=current,
        corpus_fraction=cfg.corpus_fraction,
        variants=("int8pc",),
        progress=progress,
    )
    train_s = round(time.time() - t_train, 1)
    sc = scorers or default_scorers(cfg, data_dir)
    cur_scores, new_scores = {}, {}
    for gate, fn in sc.items():
        _say(progress, f"[retrain-nlu] gate {gate} ...")
        try:
            cur_scores[gate], new_scores[gate] = fn(current), fn(cand)
        except AssistantError as err:  # a gate that cannot run fails; the candidate is not promoted
            cur_scores[gate] = new_scores[gate] = {"error": str(err)}
    gates = check_gates(cur_scores, new_scores, cfg)
    promoted = all(g["passed"] for g in gates.values()) and set(gates) >= set(sc)
    info = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "from_model": str(current),
        "model_version": (metrics or {}).get("version"),
        "config": asdict(cfg),
        "data": stats,
        "train_data": (metrics or {}).get("data"),
        "train_seconds": train_s,
        "scores": {"current": cur_scores, "candidate": new_scores},
        "gates": gates,
        "promoted": promoted,
    }
    version = None
    if promoted:
        version = (max(versions(data_dir)) if versions(data_dir) else 0) + 1
        dest = nlu_dir(data_dir) / f"v{version}"
        shutil.move(str(cand), dest)
        info["version"] = version
        (dest / "retrain.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        _append_card(dest / "MODEL_CARD.md", info)
        _write_current(data_dir, version)
    else:
        (cand / "retrain.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        _append_card(cand / "MODEL_CARD.md", info)
    info["candidate_dir"] = None if promoted else str(cand)
    info["seconds"] = round(time.time() - t0, 1)
    return info


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, flush=True)


def _append_card(path: Path, info: dict[str, Any]) -> None:
    d = info["data"]
    lines = [
        "",
        "## Retrained from the assistant's own traces (`assistant learn retrain-nlu`)",
        "",
        f"- Warm-started from `{info['from_model']}`; {info['config']['epochs']} epoch(s), lr {info['config']['lr']}, "
        f"{info['config']['corpus_fraction']:.0%} of the corpora replayed; training {info['train_seconds']} s.",
        f"- Data window: {d['window']['first_turn']} .. {d['window']['last_turn']} (asked: since "
        f"{d['window']['since']}, until {d['window']['until']}); {d['users']} users (pseudonymous; "
        f"{d['opted_out_users_skipped']} opted-out users skipped).",
        f"- Generated labels: {d['labels']} of {d['proposed']} proposed with confidence >= {d['min_confidence']} "
        f"({d['label_model']}, goal labeller {d['labeler_version']}); by source {d['labels_by_source']}; "
        f"{d['labels_changing_the_parse']} differ from the parse the NLU gave then.",
        f"- Training rows: {(info.get('train_data') or {}).get('extra_rows')} generated (dropped as SLURP devel/test "
        f"sentences: {(info.get('train_data') or {}).get('extra_rows_dropped_eval_overlap')}) + "
        f"{(info.get('train_data') or {}).get('train_rows')} in all. Reproduce: `assistant learn retrain-nlu` on the "
        "same store and settings (the labels themselves are not kept; the reproduce line above omits them).",
        f"- Promoted: **{'yes' if info['promoted'] else 'no'}**.",
        "",
        "| gate | rule | current | candidate | passed |",
        "|---|---|---|---|---|",
    ]
    for g, r in info["gates"].items():
        lines.append(f"| {g} | {r['rule']} | {r.get('current', '-')} | {r.get('candidate', '-')} | {r['passed']} |")
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
