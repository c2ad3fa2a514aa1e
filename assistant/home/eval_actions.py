"""Action-level evaluation: run requests through the real pipeline (text from NLU on) and judge the home state each
leaves, not the intent label. `assistant eval actions --suite FILE [--home FILE] [--json]`.

A suite is JSON Lines, one case a line:
    {"id": "ex-001", "home": "example", "device": "kitchen.speaker", "form": "on_off",
     "setup": {"bedroom.light": {"on": true}},          # device states before the case (else the home file's)
     "before": ["turn on the kitchen light"],           # turns run first, not scored (context: "it", "them")
     "text": "turn it off",                              # the scored request
     "after": ["yes"],                                   # replies in the same window (confirmations)
     "advance_s": 600,                                   # delayed commands: run what is due this much later
     "expect": {"changes": {"kitchen.light": {"on": false}},   # every device that must change, and how
                "says": ["already off"]}}                # optional substrings of the answer (questions)
`home` is a file name in assistant/data/homes/ (without .yaml) or a path; `--home` overrides it for every case.
Expecting no `changes` means no device may change (a question, a refusal, a device the home lacks).

Scores: action accuracy (the home ends exactly as expected and the answer says what is asked), wrong-device
actions (a device changed that the case does not expect to change), no-action answers (nothing changed where a
change was expected), per command form.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from assistant.config import PACKAGE_DATA
from assistant.errors import ConfigError

HOMES_DIR = PACKAGE_DATA / "homes"
DEFAULT_SUITE = PACKAGE_DATA / "eval" / "actions.jsonl"
START = datetime(2026, 1, 5, 18, 0)
CASE_KEYS = {"id", "home", "device", "form", "setup", "before", "text", "after", "advance_s", "expect", "note"}


def load_suite(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        raise ConfigError("suite-not-found", f"suite {path} does not exist; the shipped one is {DEFAULT_SUITE}")
    cases = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError("suite-invalid", f"{path}:{i}: not JSON ({e.msg}); one JSON object a line") from e
        if not isinstance(case, dict) or not isinstance(case.get("text"), str) or not case["text"].strip():
            raise ConfigError("suite-invalid", f'{path}:{i}: a case needs a non-empty "text"')
        unknown = set(case) - CASE_KEYS
        if unknown:
            raise ConfigError(
                "suite-invalid", f"{path}:{i}: unknown key(s) {sorted(unknown)}; keys: {sorted(CASE_KEYS)}"
            )
        exp = case.get("expect", {})
        if not isinstance(exp, dict) or set(exp) - {"changes", "says"}:
            raise ConfigError("suite-invalid", f'{path}:{i}: "expect" takes "changes" and "says"')
        case.setdefault("id", f"line-{i}")
        case.setdefault("form", "other")
        cases.append(case)
    if not cases:
        raise ConfigError("suite-invalid", f"suite {path} has no cases")
    return cases


def home_path(name: str, suite_dir: Path | None = None) -> Path:
    p = Path(name)
    for cand in (p, HOMES_DIR / f"{name}.yaml", HOMES_DIR / name, *(([suite_dir / name]) if suite_dir else [])):
        if cand.is_file():
            return cand
    raise ConfigError(
        "home-not-found",
        f"home {name!r} not found (a path, or one of: {', '.join(sorted(x.stem for x in HOMES_DIR.glob('*.yaml')))})",
    )


def _diff(before: dict[str, dict], after: dict[str, dict]) -> dict[str, dict]:
    return {
        k: {kk: vv for kk, vv in after[k].items() if before.get(k, {}).get(kk) != vv}
        for k in after
        if after[k] != before.get(k)
    }


class _Harness:
    def __init__(
        self, home: Path, data_dir: Path, spoken: str | None = None, nlu_model_dir: Path | None = None
    ) -> None:
        from assistant.config import load_settings
        from assistant.core.runner import Runner

        settings = load_settings()
        if nlu_model_dir is not None:  # a candidate NLU (the retraining gates compare it with the current one)
            settings = settings.model_copy(
                update={"nlu": settings.nlu.model_copy(update={"model_dir": str(Path(nlu_model_dir).resolve())})}
            )
        if settings.feedback.ask_rate:  # no "was that right?" questions in the way of the replies
            settings = settings.model_copy(update={"feedback": settings.feedback.model_copy(update={"ask_rate": 0.0})})
        self.runner = Runner(
            settings,
            home,
            data_dir=data_dir,
            load_audio_stages=bool(spoken),
            backends={"tts": None, "wake": None, "vad": None},
            record_traces=False,
        )
        self.spoken = spoken
        self.initial = {d.id: copy.deepcopy(d.state) for d in self.runner.home.devices.values()}
        self.default_device = self.runner.device_id

    def reset(self, setup: dict[str, dict], device: str | None) -> None:
        from assistant.skills.store import connect

        home = self.runner.home
        for dev in home.devices.values():
            dev.state = copy.deepcopy(self.initial[dev.id])
        for dev_id, state in (setup or {}).items():
            if dev_id not in home.devices:
                raise ConfigError("suite-invalid", f"setup names {dev_id!r}, not a device of {home.name!r}")
            dev = home.devices[dev_id]
            dev.state.update(copy.deepcopy(state))
        if device and device not in home.devices:
            raise ConfigError("suite-invalid", f"device {device!r} is not a satellite of {home.name!r}")
        self.runner.device_id = device or self.default_device
        with connect(self.runner.data_dir) as db:
            db.execute("UPDATE scheduled SET status = 'cancelled' WHERE status = 'active'")
            for table in ("kv", "timers", "list_items", "lists"):  # every case starts from a quiet house
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def run_suite(
    cases: list[dict[str, Any]],
    home_override: Path | None = None,
    suite_dir: Path | None = None,
    progress=None,
    spoken: str | None = None,
    nlu_model_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every case; `spoken` ("piper" or "espeak"): the scored request is synthesized and goes through the ASR
    (what the assistant heard is in each row's `heard`); `nlu_model_dir`: this NLU model instead of the configured
    one."""

    harnesses: dict[str, _Harness] = {}
    tmp = Path(tempfile.mkdtemp(prefix="eval-actions-"))
    rows = []
    now = START
    for n, case in enumerate(cases):
        hp = home_override or home_path(case.get("home", "example"), suite_dir)
        key = str(hp)
        if key not in harnesses:
            harnesses[key] = _Harness(hp, tmp / f"h{len(harnesses)}", spoken, nlu_model_dir)
        h = harnesses[key]
        h.reset(case.get("setup") or {}, case.get("device"))
        now += timedelta(days=1)  # a new session for every case
        t = now
        for text in case.get("before", []):
            h.runner.run_text(text, now=t)
            t += timedelta(seconds=5)
        before = h.runner.home.states()
        if spoken:
            from assistant.simulate.voices import espeak_speech, piper_speech

            audio = piper_speech(case["text"]) if spoken == "piper" else espeak_speech(case["text"])
            rec = h.runner.run_audio(audio, now=t)
        else:
            rec = h.runner.run_text(case["text"], now=t)
        texts = [rec["response_text"] or ""]
        actions = [rec["action"]]
        for text in case.get("after", []):
            t += timedelta(seconds=5)
            r2 = h.runner.run_text(text, now=t)
            texts.append(r2["response_text"] or "")
            actions.append(r2["action"])
        at_turn = _diff(before, h.runner.home.states())
        if case.get("advance_s"):
            for r in h.runner.run_due(t + timedelta(seconds=int(case["advance_s"]))):
                texts.append(r["response_text"] or "")
        changed = _diff(before, h.runner.home.states())
        rows.append(_judge(case, rec, texts, actions, at_turn, changed, h.runner.home.states()))
        if progress:
            progress(n + 1, len(cases))
    for h in harnesses.values():
        h.runner.close()
    return summarize(rows)


def _judge(case, rec, texts, actions, at_turn, changed, final) -> dict[str, Any]:
    exp = case.get("expect") or {}
    want: dict[str, dict] = exp.get("changes") or {}
    said = " ".join(texts)
    wrong = sorted(set(changed) - set(want))
    missing = sorted(d for d in want if d not in changed)
    mismatched = sorted(
        d for d, st in want.items() if d in changed and any(final[d].get(k) != v for k, v in st.items())
    )
    says_ok = all(s.lower() in said.lower() for s in exp.get("says", []))
    early = bool(case.get("advance_s")) and bool(at_turn)  # a delayed command acted at once
    ok = not wrong and not missing and not mismatched and says_ok and not early
    return {
        "id": case["id"],
        "form": case.get("form", "other"),
        "home": case.get("home", "example"),
        "text": case["text"],
        "ok": ok,
        "wrong_device": wrong,
        "missing": missing,
        "mismatched": mismatched,
        "says_ok": says_ok,
        "acted_early": early,
        "no_action": bool(want) and not changed,
        "expected_change": bool(want),
        "changed": changed,
        "response": said,
        "intent": rec.get("intent"),
        "by": "grammar" if _by_grammar(actions[0]) else "nlu",
        "heard": rec.get("transcript"),
    }


def _by_grammar(action: dict | None) -> bool:
    return (
        bool(action)
        and isinstance(action.get("params"), dict)
        and ("command" in action["params"] or str(action.get("name", "")).startswith(("schedule.", "confirm")))
    )


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    forms: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "ok": 0, "wrong_device": 0, "no_action": 0})
    for r in rows:
        f = forms[r["form"]]
        f["n"] += 1
        f["ok"] += r["ok"]
        f["wrong_device"] += bool(r["wrong_device"])
        f["no_action"] += r["no_action"]
    n = len(rows)
    by = defaultdict(lambda: {"n": 0, "ok": 0})
    for r in rows:
        by[r["by"]]["n"] += 1
        by[r["by"]]["ok"] += r["ok"]
    return {
        "cases": n,
        "action_accuracy": round(sum(r["ok"] for r in rows) / n, 4) if n else 0.0,
        "wrong_device_actions": sum(bool(r["wrong_device"]) for r in rows),
        "no_action_answers": sum(r["no_action"] for r in rows),
        "homes": sorted({r["home"] for r in rows}),
        "per_form": {k: {**v, "accuracy": round(v["ok"] / v["n"], 4)} for k, v in sorted(forms.items())},
        "handled_by": {k: {**v, "accuracy": round(v["ok"] / v["n"], 4)} for k, v in sorted(by.items())},
        "failures": [r for r in rows if not r["ok"]],
    }


def format_report(m: dict[str, Any]) -> str:
    lines = [
        f"cases {m['cases']} over homes {', '.join(m['homes'])}",
        f"action accuracy      {m['action_accuracy']:.1%}",
        f"wrong-device actions {m['wrong_device_actions']}",
        f"no-action answers    {m['no_action_answers']} (a change was expected, nothing changed)",
        "handled by           " + ", ".join(f"{k} {v['n']} ({v['accuracy']:.1%})" for k, v in m["handled_by"].items()),
        "",
        f"{'form':<18}{'n':>5}{'accuracy':>10}{'wrong-dev':>11}{'no-action':>11}",
    ]
    for form, v in m["per_form"].items():
        lines.append(f"{form:<18}{v['n']:>5}{v['accuracy']:>10.1%}{v['wrong_device']:>11}{v['no_action']:>11}")
    if m["failures"]:
        lines += ["", "failures:"]
        for r in m["failures"]:
            why = []
            if r["wrong_device"]:
                why.append(f"WRONG DEVICE {r['wrong_device']}")
            if r["missing"]:
                why.append(f"unchanged {r['missing']}")
            if r["mismatched"]:
                why.append(f"wrong state {r['mismatched']}")
            if not r["says_ok"]:
                why.append("answer")
            if r["acted_early"]:
                why.append("acted at once")
            heard = f" (heard {r['heard']!r})" if r.get("heard") and r["heard"] != r["text"] else ""
            lines.append(f"  {r['id']} [{r['form']}] {r['text']!r}{heard}: {'; '.join(why)} -> {r['response']!r}")
    return "\n".join(lines)
