"""Teaching dialogues through the real pipeline: `assistant eval teach [--suite FILE] [--spoken piper|espeak]`.

A suite is YAML, a list of dialogues; each runs in a fresh memory and a fresh house, turn by turn:
    - id: seed-study-mode
      form: asked-routine                   # the form of teaching (scores are per form too)
      user: alex                             # optional speaker (default: the household's unknown speaker)
      setup: {living_room.tv: {on: true}}    # device states before the dialogue (else the home file's)
      turns:
        - say: set my room to study mode
          expect: {says: ["What is study mode?"], asks: true}
        - say: turn off the TV, set the desk lamp to 100 percent and start a 45 minute timer
          expect: {changes: {living_room.tv: {on: false}, office.desk_lamp: {on: true, brightness: 100}}}
        - later: 24                          # hours later: a new session (the next day)
          setup: {living_room.tv: {on: true}}
        - say: study mode
          user: sam                          # optional: another speaker says this turn
          expect: {changes: {living_room.tv: {on: false}}, taught: routine}

`expect` of a turn: `changes` (every device that must change in that turn, and how; absent = none may change),
`says` / `not_says` (substrings of the answer, case-insensitive), `asks` (the answer is a question), `action`
(the action's name), `taught` (a concept of this kind applied to the turn; false: none did). A turn passes when all
hold; a dialogue is handled end to end when every turn passes.

Scores: dialogues handled end to end, turns passed, taught concepts used in a later session (turns after a
`later` that expect `taught`), per form; latency: the teach layer's time on every turn (applying the memory), the
teaching turns' and the routines' processing time against the other turns'.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from assistant.config import PACKAGE_DATA
from assistant.errors import ConfigError

DEFAULT_SUITE = PACKAGE_DATA / "eval" / "teach_dialogues.yaml"
START = datetime(2026, 1, 5, 18, 0)
DIALOGUE_KEYS = {"id", "form", "user", "home", "setup", "turns", "note"}
TURN_KEYS = {"say", "user", "setup", "later", "expect", "note"}
EXPECT_KEYS = {"changes", "says", "not_says", "asks", "action", "taught"}


def load_dialogues(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("suite-not-found", f"suite {path} does not exist; the shipped one is {DEFAULT_SUITE}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError("suite-invalid", f"{path}: not YAML ({e})") from e
    data = _on_keys(data)
    if not isinstance(data, list) or not data:
        raise ConfigError("suite-invalid", f"{path}: a suite is a non-empty list of dialogues")
    seen = set()
    for i, d in enumerate(data, 1):
        where = f"{path}: dialogue {i}"
        if not isinstance(d, dict) or not isinstance(d.get("turns"), list) or not d["turns"]:
            raise ConfigError("suite-invalid", f"{where}: a dialogue needs a non-empty list of `turns`")
        if set(d) - DIALOGUE_KEYS:
            raise ConfigError("suite-invalid", f"{where}: unknown key(s) {sorted(set(d) - DIALOGUE_KEYS)}")
        d.setdefault("id", f"dialogue-{i}")
        d.setdefault("form", "other")
        if d["id"] in seen:
            raise ConfigError("suite-invalid", f"{where}: id {d['id']!r} is used twice")
        seen.add(d["id"])
        for j, t in enumerate(d["turns"], 1):
            if not isinstance(t, dict) or set(t) - TURN_KEYS:
                raise ConfigError("suite-invalid", f"{where} ({d['id']}), turn {j}: keys are {sorted(TURN_KEYS)}")
            if "say" in t and not isinstance(t["say"], str):
                raise ConfigError(
                    "suite-invalid", f'{where} ({d["id"]}), turn {j}: `say` must be text (quote yes/no: say: "yes")'
                )
            if "say" not in t and "later" not in t and "setup" not in t:
                raise ConfigError("suite-invalid", f"{where} ({d['id']}), turn {j}: needs `say`, `later` or `setup`")
            if set(t.get("expect") or {}) - EXPECT_KEYS:
                raise ConfigError("suite-invalid", f"{where} ({d['id']}), turn {j}: expect keys {sorted(EXPECT_KEYS)}")
    return data


def _on_keys(v: Any) -> Any:
    """YAML 1.1 reads the state key `on:` as the boolean true: give it back its name."""
    if isinstance(v, dict):
        return {("on" if k is True else "off" if k is False else k): _on_keys(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_on_keys(x) for x in v]
    return v


class _Harness:
    """One runner per home (the models load once); each dialogue starts from the home file's states, an empty
    memory and empty skill tables."""

    def __init__(self, home: Path, data_dir: Path, spoken: str | None) -> None:
        from assistant.config import load_settings
        from assistant.core.runner import Runner

        settings = load_settings()
        settings = settings.model_copy(update={"feedback": settings.feedback.model_copy(update={"ask_rate": 0.0})})
        self.runner = Runner(
            settings,
            home,
            data_dir=data_dir,
            load_audio_stages=bool(spoken),
            backends={"tts": None, "wake": None, "vad": None},
        )
        self.initial = {d.id: copy.deepcopy(d.state) for d in self.runner.home.devices.values()}
        self.default_user = self.runner.user_id

    def reset(self, setup: dict[str, dict] | None, user: str | None) -> None:
        from assistant.skills.store import connect

        home = self.runner.home
        for dev in home.devices.values():
            dev.state = copy.deepcopy(self.initial[dev.id])
        self.apply_setup(setup)
        self.runner.teacher.memory.clear()
        if self.runner.user_history is not None:  # what earlier dialogues played must not steer this one
            from assistant.understanding.rerank.context import InMemoryUserHistory

            self.runner.user_history = InMemoryUserHistory()
        self.runner.user_id = user or self.default_user
        with connect(self.runner.data_dir) as db:
            db.execute("UPDATE scheduled SET status = 'cancelled' WHERE status = 'active'")
            for table in ("kv", "timers", "list_items", "lists"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def apply_setup(self, setup: dict[str, dict] | None) -> None:
        home = self.runner.home
        for dev_id, state in (setup or {}).items():
            if dev_id not in home.devices:
                raise ConfigError("suite-invalid", f"setup names {dev_id!r}, not a device of {home.name!r}")
            home.devices[dev_id].state.update(copy.deepcopy(state))


def _diff(before: dict[str, dict], after: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for dev, st in after.items():
        ch = {k: v for k, v in st.items() if before.get(dev, {}).get(k) != v}
        if ch:
            out[dev] = ch
    return out


def run_dialogues(
    dialogues: list[dict[str, Any]],
    spoken: str | None = None,
    home_override: Path | None = None,
    progress=None,
) -> dict[str, Any]:
    """Run every dialogue; returns the summary with one row per turn (`rows`) and per dialogue (`dialogues`)."""
    from assistant.home.eval_actions import home_path

    tmp = Path(tempfile.mkdtemp(prefix="eval-teach-"))
    harnesses: dict[str, _Harness] = {}
    rows: list[dict[str, Any]] = []
    per_dialogue: list[dict[str, Any]] = []
    now = START
    speech = None
    if spoken:
        from assistant.simulate.voices import espeak_speech, piper_speech

        speech = piper_speech if spoken == "piper" else espeak_speech
    for n, d in enumerate(dialogues):
        hp = home_override or home_path(d.get("home", "example"))
        if str(hp) not in harnesses:
            harnesses[str(hp)] = _Harness(hp, tmp / f"h{len(harnesses)}", spoken)
        h = harnesses[str(hp)]
        h.reset(d.get("setup"), d.get("user"))
        now += timedelta(days=3)
        t = now
        later = False
        ok = True
        for j, turn in enumerate(d["turns"]):
            if turn.get("later"):
                t += timedelta(hours=float(turn["later"]))
                later = True
            h.apply_setup(turn.get("setup"))
            if "say" not in turn:
                continue
            h.runner.user_id = turn.get("user") or d.get("user") or h.default_user
            before = h.runner.home.states()
            t0 = time.perf_counter()
            if speech is not None:
                rec = h.runner.run_audio(speech(turn["say"]), now=t)
            else:
                rec = h.runner.run_text(turn["say"], now=t)
            wall = (time.perf_counter() - t0) * 1000
            changed = _diff(before, h.runner.home.states())
            row = _judge(d, j, turn, rec, changed, later)
            row["wall_ms"] = round(wall, 2)
            rows.append(row)
            ok = ok and row["ok"]
            t += timedelta(seconds=8)
        per_dialogue.append({"id": d["id"], "form": d["form"], "ok": ok})
        if progress:
            progress(n + 1, len(dialogues))
    for h in harnesses.values():
        h.runner.close()
    return summarize(rows, per_dialogue)


def _judge(d, j, turn, rec, changed, later) -> dict[str, Any]:
    exp = turn.get("expect") or {}
    text = rec.get("response_text") or ""
    low = text.lower()
    problems = []
    want = exp.get("changes") or {}
    for dev, st in want.items():
        got = changed.get(dev, {})
        for k, v in st.items():
            if got.get(k) != v:
                problems.append(f"{dev}.{k}: wanted {v!r}, got {got.get(k, '(unchanged)')!r}")
    for dev in changed:
        if dev not in want:
            problems.append(f"{dev} changed unexpectedly: {changed[dev]}")
    for s in exp.get("says") or []:
        if s.lower() not in low:
            problems.append(f"answer lacks {s!r}")
    for s in exp.get("not_says") or []:
        if s.lower() in low:
            problems.append(f"answer says {s!r}")
    if "asks" in exp and bool(rec.get("expects_reply")) != bool(exp["asks"]):
        problems.append("asks" if rec.get("expects_reply") else "does not ask")
    action = (rec.get("action") or {}).get("name")
    if "action" in exp and action != exp["action"]:
        problems.append(f"action {action!r}, wanted {exp['action']!r}")
    applied = [a for a in ((rec.get("taught") or {}).get("applied") or []) if a.get("how") != "defined"]
    kinds = {a["kind"] for a in applied}
    if "taught" in exp:
        if exp["taught"] is False and applied:
            problems.append(f"a taught concept applied: {sorted(kinds)}")
        elif exp["taught"] and exp["taught"] not in kinds:
            problems.append(f"no taught {exp['taught']} applied (applied: {sorted(kinds) or 'none'})")
    lat = rec.get("latency_ms") or {}
    return {
        "dialogue": d["id"],
        "form": d["form"],
        "turn": j,
        "say": turn["say"],
        "heard": rec.get("transcript"),
        "answer": text,
        "ok": not problems,
        "problems": problems,
        "later_use": bool(later and exp.get("taught")),
        "teaching": action is not None and str(action).startswith("teach."),
        "routine": action == "routine.run" or bool((rec.get("taught") or {}).get("steps")),
        "teach_ms": lat.get("teach"),
        "processing_ms": lat.get("processing_to_first_audio"),
    }


def _stats(v: list[float]) -> dict[str, float] | None:
    v = sorted(x for x in v if x is not None)
    if not v:
        return None
    return {
        "n": len(v),
        "median": round(statistics.median(v), 3),
        "p90": round(v[min(len(v) - 1, int(0.9 * len(v)))], 3),
        "max": round(v[-1], 3),
    }


def summarize(rows: list[dict[str, Any]], dialogues: list[dict[str, Any]]) -> dict[str, Any]:
    forms: dict[str, list[bool]] = defaultdict(list)
    for d in dialogues:
        forms[d["form"]].append(d["ok"])
    later = [r for r in rows if r["later_use"]]
    plain = [r for r in rows if not r["teaching"] and not r["routine"]]
    return {
        "dialogues": len(dialogues),
        "handled": sum(d["ok"] for d in dialogues),
        "handled_share": round(sum(d["ok"] for d in dialogues) / max(1, len(dialogues)), 4),
        "turns": len(rows),
        "turns_ok": sum(r["ok"] for r in rows),
        "later_uses": len(later),
        "later_uses_ok": sum(r["ok"] for r in later),
        "per_form": {f: {"n": len(v), "handled": sum(v)} for f, v in sorted(forms.items())},
        "latency_ms": {
            "teach_layer_every_turn": _stats([r["teach_ms"] for r in rows]),
            "processing_plain_turns": _stats([r["processing_ms"] for r in plain]),
            "processing_teaching_turns": _stats([r["processing_ms"] for r in rows if r["teaching"]]),
            "processing_routine_turns": _stats([r["processing_ms"] for r in rows if r["routine"]]),
        },
        "failures": [r for r in rows if not r["ok"]],
        "dialogue_results": dialogues,
    }


def format_report(m: dict[str, Any]) -> str:
    lines = [
        f"dialogues handled end to end: {m['handled']}/{m['dialogues']} ({m['handled_share']:.1%})",
        f"turns passed: {m['turns_ok']}/{m['turns']}",
        f"taught concepts used in a later session: {m['later_uses_ok']}/{m['later_uses']}",
        "per form (handled/dialogues):",
    ]
    for f, v in m["per_form"].items():
        lines.append(f"  {f:24s} {v['handled']}/{v['n']}")
    lines.append("latency (ms): median / p90 / max")
    for k, s in m["latency_ms"].items():
        if s:
            lines.append(f"  {k:28s} {s['median']} / {s['p90']} / {s['max']}  (n={s['n']})")
    for r in m["failures"][:40]:
        heard = f" (heard: {r['heard']!r})" if r["heard"] and r["heard"] != r["say"] else ""
        lines.append(f"FAIL {r['dialogue']} turn {r['turn']}: {r['say']!r}{heard} -> {r['answer']!r}: {r['problems']}")
    return "\n".join(lines)
