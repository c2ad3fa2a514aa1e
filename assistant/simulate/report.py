"""Summary of a simulation: defect rate overall, by failure point and by intent; speed; and how well the trace-derived
signals (`assistant.learning.signals`) find the defects the simulator knows about.

Signal precision/recall is measured two ways:
- as a defect detector: precision = share of turns carrying the signal that truly were defects; recall = share of
  true defects that carry it (for a positive signal, against non-defects);
- as a behaviour detector: does `barge-in` fire on the turns the person barged in on, `rephrase` on the turns the
  person rephrased or repeated, `explicit-*` on the turns the person answered the feedback question about.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from assistant.simulate.ground_truth import FAILURE_POINTS


def load_truth(out_dir: Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / "sim_truth.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pr(flagged: set[str], truth: set[str]) -> dict[str, Any]:
    tp = len(flagged & truth)
    return {
        "flagged": len(flagged),
        "true": len(truth),
        "tp": tp,
        "precision": round(tp / len(flagged), 3) if flagged else None,
        "recall": round(tp / len(truth), 3) if truth else None,
    }


def _labels(out_dir: Path, truth: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from assistant.learning.signals import label_store
    from assistant.trace.store import TraceStore

    db = Path(out_dir) / "traces.db"
    if not db.exists():
        return {}
    store = TraceStore(db)
    try:
        end = max((datetime.fromisoformat(r["t"]).timestamp() for r in truth), default=0.0)
        label_store(store, now=end + 3600)  # judge every turn as if an hour had passed after the last one
        return {r["turn_id"]: store.get_label(r["turn_id"]) or {} for r in truth}
    finally:
        store.close()


def build_report(out_dir: Path, stats: dict[str, Any] | None = None, write: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    truth = load_truth(out_dir)
    if stats is None and (out_dir / "run_stats.json").exists():
        stats = json.loads((out_dir / "run_stats.json").read_text())
    stats = stats or {}
    n = len(truth)
    defects = [r for r in truth if r["defect"]]
    by_point = Counter(r["failure_point"] for r in truth)
    by_role = Counter(r["role"] for r in truth)
    intents: dict[str, Counter] = defaultdict(Counter)
    for r in truth:
        intent = (r.get("goal") or {}).get("intent") or ("(false wake)" if r["role"] == "false_wake" else "(control)")
        if r["role"] in ("feedback_answer", "cancel"):
            intent = f"({r['role']})"
        intents[intent]["turns"] += 1
        intents[intent]["defects"] += int(r["defect"])
        if r["defect"]:
            intents[intent][r["failure_point"]] += 1
    by_intent = {
        k: {
            "turns": c["turns"],
            "defects": c["defects"],
            "defect_rate": round(c["defects"] / c["turns"], 3),
            "by_failure_point": {p: c[p] for p in FAILURE_POINTS if c.get(p)},
        }
        for k, c in sorted(intents.items(), key=lambda kv: (-kv[1]["defects"], -kv[1]["turns"]))
    }
    # goals: did the episode end with the goal achieved?
    episodes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in truth:
        if r.get("goal") is not None:
            episodes[r["episode"]].append(r)
    achieved = sum(
        1
        for turns in episodes.values()
        if any(
            t["outcome"] in ("achieved", "unsupported-ok") and t["role"] not in ("feedback_answer", "cancel")
            for t in turns
        )
    )
    # -- signals against the truth
    labels = _labels(out_dir, truth)
    defect_ids = {r["turn_id"] for r in defects}
    ok_ids = {r["turn_id"] for r in truth} - defect_ids
    flagged: dict[str, set[str]] = defaultdict(set)
    for tid, lab in labels.items():
        for s in lab.get("signals") or []:
            flagged[s["type"]].add(tid)
    signals = {}
    for typ in sorted(flagged):
        positive = typ in ("explicit-yes", "completed")
        signals[typ] = _pr(flagged[typ], ok_ids if positive else defect_ids) | {
            "against": "ok" if positive else "defect"
        }
    behaviour = {
        "barge-in": _pr(
            flagged.get("barge-in", set()), {r["turn_id"] for r in truth if r.get("barge_in_ms") is not None}
        ),
        "rephrase": _pr(
            flagged.get("rephrase", set()), {r["turn_id"] for r in truth if r.get("reaction") in ("rephrase", "repeat")}
        ),
        "explicit": _pr(
            flagged.get("explicit-yes", set()) | flagged.get("explicit-no", set()),
            {r["turn_id"] for r in truth if r.get("reaction") == "feedback-answer"},
        ),
        "cancel": _pr(flagged.get("cancel", set()), {r["turn_id"] for r in truth if r.get("reaction") == "cancel"}),
    }
    label_ids: dict[str, set[str]] = defaultdict(set)
    for tid, lab in labels.items():
        label_ids[lab.get("label", "none")].add(tid)
    label_eval = {
        "defect": _pr(label_ids.get("defect", set()), defect_ids),
        "ok": _pr(label_ids.get("ok", set()), ok_ids),
        "counts": {k: len(v) for k, v in sorted(label_ids.items())},
        "unknown_among_defects": len(label_ids.get("unknown", set()) & defect_ids),
    }
    report = {
        "turns": n,
        "defects": len(defects),
        "defect_rate": round(len(defects) / n, 3) if n else None,
        "by_failure_point": {
            p: {
                "turns": by_point.get(p, 0),
                "share_of_turns": round(by_point.get(p, 0) / n, 3) if n else None,
                "share_of_defects": round(by_point.get(p, 0) / len(defects), 3) if defects and p != "correct" else None,
            }
            for p in FAILURE_POINTS
        },
        "by_role": {
            k: {"turns": v, "defects": sum(1 for r in truth if r["role"] == k and r["defect"])}
            for k, v in sorted(by_role.items())
        },
        "by_intent": by_intent,
        "goals": {
            "episodes": len(episodes),
            "achieved": achieved,
            "success_rate": round(achieved / len(episodes), 3) if episodes else None,
            "mean_turns": round(sum(len(v) for v in episodes.values()) / len(episodes), 2) if episodes else None,
        },
        "reactions": dict(Counter(r.get("reaction") for r in truth)),
        "asr": {
            "mean_wer": round(sum(r.get("wer") or 0 for r in truth) / n, 3) if n else None,
            "by_voice_engine": {
                e: round(sum(r.get("wer") or 0 for r in rs) / len(rs), 3)
                for e, rs in _group(truth, lambda r: r["voice"].split(":")[0]).items()
            },
        },
        "signals_vs_defect": signals,
        "signals_vs_behaviour": behaviour,
        "label_vs_defect": label_eval,
        "speed": {k: stats.get(k) for k in ("turns", "wall_seconds", "turns_per_second", "pipeline_seconds")}
        | {
            "cache": stats.get("cache"),
            "synth_cached_turns": sum(1 for r in truth if r.get("synth_cached")),
            "asr_cached_turns": sum(1 for r in truth if r.get("asr_cached")),
        },
    }
    if write:
        (out_dir / "report.json").write_text(json.dumps(report, indent=1))
        (out_dir / "report.md").write_text(to_markdown(report))
    return report


def _group(rows, key):
    out: dict[str, list] = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def to_markdown(r: dict[str, Any], top: int = 12) -> str:
    sp = r["speed"]
    lines = [
        "# Simulation report",
        "",
        f"{r['turns']} turns, {r['defects']} defects (rate {_f(r['defect_rate'])}); "
        f"goals achieved {r['goals']['achieved']}/{r['goals']['episodes']} ({_f(r['goals']['success_rate'])}), "
        f"{_f(r['goals']['mean_turns'])} turns per goal.",
        f"Speed: {_f(sp.get('turns_per_second'))} turns/s ({_f(sp.get('wall_seconds'))} s wall); "
        f"synthesis cached on {sp['synth_cached_turns']} turns, ASR cached on {sp['asr_cached_turns']}.",
        f"Mean WER {_f(r['asr']['mean_wer'])} (by engine: "
        + ", ".join(f"{k} {_f(v)}" for k, v in r["asr"]["by_voice_engine"].items())
        + ").",
        "",
        "## Failure point",
        "",
        "| failure point | turns | share of turns | share of defects |",
        "|---|---|---|---|",
    ]
    for p, d in r["by_failure_point"].items():
        lines.append(f"| {p} | {d['turns']} | {_f(d['share_of_turns'])} | {_f(d['share_of_defects'])} |")
    lines += [
        "",
        f"## Intents (top {top} by defects)",
        "",
        "| intent | turns | defects | rate | failure points |",
        "|---|---|---|---|---|",
    ]
    for k, d in list(r["by_intent"].items())[:top]:
        fps = ", ".join(f"{p} {c}" for p, c in d["by_failure_point"].items())
        lines.append(f"| {k} | {d['turns']} | {d['defects']} | {_f(d['defect_rate'])} | {fps} |")
    lines += [
        "",
        "## Signals as defect detectors (vs simulator truth)",
        "",
        "| signal | flagged | precision | recall | against |",
        "|---|---|---|---|---|",
    ]
    for k, d in r["signals_vs_defect"].items():
        lines.append(f"| {k} | {d['flagged']} | {_f(d['precision'])} | {_f(d['recall'])} | {d['against']} |")
    lines += [
        "",
        "## Signals as behaviour detectors",
        "",
        "| signal | flagged | true | precision | recall |",
        "|---|---|---|---|---|",
    ]
    for k, d in r["signals_vs_behaviour"].items():
        lines.append(f"| {k} | {d['flagged']} | {d['true']} | {_f(d['precision'])} | {_f(d['recall'])} |")
    le = r["label_vs_defect"]
    lines += [
        "",
        "## Label",
        "",
        f"defect label: precision {_f(le['defect']['precision'])}, recall {_f(le['defect']['recall'])}; "
        f"ok label: precision {_f(le['ok']['precision'])}, recall {_f(le['ok']['recall'])}; counts {le['counts']}; "
        f"true defects labelled unknown: {le['unknown_among_defects']}.",
        "",
    ]
    return "\n".join(lines)
