"""Delayed and scheduled home commands: "in ten minutes turn off the lights", "at 7 pm close the blinds".

Stored in the skills database (`scheduled` table, store.py) under the data dir, so they survive restarts; listed
("what's scheduled"), cancelled ("cancel the scheduled actions"), and carried out when due by `run_due`.

API (the respond backend's `run_due` calls it; `Runner.run_due` calls that before every turn, the live loop while
idle and replay at its clock's ticks, and traces each command carried out as a turn of its own):
    due(now, data_dir) -> list[dict]                 scheduled commands whose time has come (not yet run)
    run_due(now, home, data_dir, run_command)        run them (oldest first) on `home` with `run_command`
                                                     (home_commands.run_command); each item: id, description, due,
                                                     status, response_text, action (name/status/target/result)
    next_due(data_dir) -> datetime | None            when the next one is due
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz

from assistant.core.stages.respond import Response
from assistant.home.grammar import Command
from assistant.home.targets import ACTION_CAPS, select
from assistant.skills.base import Turn, choose_option, join_words, say
from assistant.skills.home_common import ask_to_confirm, ask_which, needs_confirm
from assistant.skills.store import connect
from assistant.understanding.spoken import say_duration, say_time

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.home.model import Home

VERBS = {
    "turn_on": "turn on",
    "turn_off": "turn off",
    "toggle": "switch",
    "open": "open",
    "close": "close",
    "lock": "lock",
    "unlock": "unlock",
    "brightness": "set",
    "color": "set",
    "color_temp": "set",
    "position": "set",
    "fan_speed": "set",
    "set_temperature": "set",
    "set_mode": "set",
    "volume": "set the volume of",
    "mute": "mute",
    "unmute": "unmute",
    "activate": "activate",
    "stop_cover": "stop",
}


def describe(cmd: Command, home: Home, device_ids: list[str], scope: str) -> str:
    t = cmd.target
    if cmd.action == "media":
        verb = {"pause": "pause", "play": "resume", "next": "skip the track on", "previous": "go back a track on"}[
            cmd.params["op"]
        ]
    elif cmd.action == "vacuum":
        verb = {"start": "start", "dock": "dock", "pause": "pause"}[cmd.params["op"]]
    else:
        verb = VERBS.get(cmd.action, cmd.action)
    if t.device_ids or len(device_ids) == 1:
        what = join_words([f"the {home.devices[i].name}" for i in device_ids if i in home.devices])
    else:
        what = f"{'all ' if t.all else ''}the {t.noun or 'devices'}{' ' + scope if scope else ''}"
    p = cmd.params
    tail = {
        "brightness": f" to {p.get('brightness')}%" if "brightness" in p else "",
        "color": f" to {p.get('color')}",
        "color_temp": f" to {p.get('name')}",
        "position": f" to {p.get('percent')}% open",
        "fan_speed": f" to {p.get('speed')}" if "speed" in p else "",
        "set_temperature": f" to {p.get('temperature'):g} degrees" if "temperature" in p else "",
        "set_mode": f" to {p.get('mode')} mode",
        "volume": f" to {p.get('volume')}" if "volume" in p else "",
    }.get(cmd.action, "")
    return f"{verb} {what}{tail}"


def _when(due: datetime, now: datetime) -> str:
    secs = round((due - now).total_seconds())
    if secs < 3600 * 3 and (due.second or secs < 3600):
        if secs >= 120:
            secs = round(secs / 60.0) * 60
        return f"in {say_duration(max(secs, 1))}"
    day = (
        ""
        if due.date() == now.date()
        else " tomorrow"
        if (due.date() - now.date()).days == 1
        else f" on {due.strftime('%A')}"
    )
    return f"at {say_time(due.strftime('%H:%M'))}{day}"


def schedule(
    cmd: Command, ctx: TurnContext, area: str | None, previous: list[str], confirmed: bool = False
) -> Response:
    """Check the command's targets now (a missing device is said at once), then store it."""
    home = ctx.home
    now = ctx.now
    due = now + timedelta(seconds=cmd.delay_s) if cmd.delay_s else datetime.fromisoformat(cmd.at or "")
    if due.tzinfo is None and now.tzinfo is not None:
        due = due.replace(tzinfo=now.tzinfo)
    sel = select(cmd.target, home, area, previous, ACTION_CAPS.get(cmd.action))
    if sel.error:
        return say(sel.error, "schedule.add", "failed", params={"command": cmd.to_dict(), "reason": "no-target"})
    if sel.ask:
        return ask_which(cmd, sel)
    ids = [d.id for d in sel.devices]
    if needs_confirm(cmd, sel.devices) and not confirmed:
        desc = describe(cmd, home, ids, sel.scope)
        return ask_to_confirm(f"Are you sure you want me to {desc} {_when(due, now)}?", cmd, ids)
    if pronoun_or_here(cmd):  # "it"/"here" mean what they mean now, not when the command runs
        from assistant.home.grammar import Target

        cmd.target = Target(
            said=cmd.target.said,
            device_ids=ids,
            plural=True,
            all=cmd.target.all,
            noun=cmd.target.noun,
            types=cmd.target.types,
        )
    desc = describe(cmd, home, ids, sel.scope)
    with connect(ctx.data_dir) as db:
        cur = db.execute(
            "INSERT INTO scheduled (created_ts, due_ts, due_local, description, command, session_id, device_id, "
            "user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now.timestamp(),
                due.timestamp(),
                due.isoformat(timespec="seconds"),
                desc,
                json.dumps(cmd.to_dict()),
                ctx.session_id,
                ctx.device_id,
                ctx.user_id,
            ),
        )
        sid = int(cur.lastrowid or 0)
    when = _when(due, now)
    return say(
        f"Okay, {when} I'll {desc}.",
        "schedule.add",
        "done",
        target=f"scheduled:{sid}",
        params={"command": cmd.to_dict(), "device_ids": ids, "due": due.isoformat(timespec="seconds")},
        result={"id": sid, "due": due.isoformat(timespec="seconds"), "description": desc, "changed": {}},
    )


def pronoun_or_here(cmd: Command) -> bool:
    return cmd.target.pronoun or cmd.target.here


def active(data_dir: Path) -> list[dict[str, Any]]:
    with connect(data_dir) as db:
        rows = db.execute("SELECT * FROM scheduled WHERE status = 'active' ORDER BY due_ts, id").fetchall()
    return [dict(r) for r in rows]


def due(now: datetime, data_dir: Path) -> list[dict[str, Any]]:
    """Scheduled commands due at `now` (due time <= now) that have not run."""
    return [r for r in active(data_dir) if r["due_ts"] <= now.timestamp()]


def next_due(data_dir: Path) -> datetime | None:
    rows = active(data_dir)
    return datetime.fromtimestamp(rows[0]["due_ts"]) if rows else None


def run_due(now: datetime, home: Home, data_dir: Path, run_command: Callable[..., Any]) -> list[dict[str, Any]]:
    """Carry out every due command on `home` (oldest first) with `run_command` (home_commands.run_command) and mark
    it done/failed. Returns what happened."""
    out = []
    for row in due(now, data_dir):
        cmd = Command.from_dict(json.loads(row["command"]))
        cmd.delay_s, cmd.at = None, None
        area = home.devices[row["device_id"]].area if row["device_id"] in home.devices else None
        try:
            response, _ids = run_command(cmd, home, area, [], confirmed=True)
            status = "done" if response.action.status == "done" else "failed"
            text = response.text
            action = {
                "name": response.action.name,
                "status": response.action.status,
                "target": response.action.target,
                "result": response.action.result,
            }
        except Exception as e:  # noqa: BLE001 - one broken row must not stop the others
            status, text, action = "failed", f"I couldn't {row['description']}: {e}", None
        with connect(data_dir) as db:
            db.execute(
                "UPDATE scheduled SET status = ?, ran_ts = ?, result = ? WHERE id = ? AND status = 'active'",
                (status, now.timestamp(), text, row["id"]),
            )
        out.append(
            {
                "id": row["id"],
                "description": row["description"],
                "due": row["due_local"],
                "status": status,
                "response_text": text,
                "action": action,
            }
        )
    return out


def list_response(data_dir: Path, now: datetime) -> Response:
    rows = [r for r in active(data_dir) if r["due_ts"] > now.timestamp()]
    if not rows:
        return say("You have nothing scheduled.", "schedule.list", "done", result={"scheduled": []})
    items = [f"{r['description']} {_when(_local(r['due_ts'], now), now)}" for r in rows]
    text = (
        f"You have one scheduled action: {items[0]}."
        if len(items) == 1
        else f"You have {len(items)} scheduled actions: {join_words(items)}."
    )
    return say(
        text,
        "schedule.list",
        "done",
        result={"scheduled": [{"id": r["id"], "description": r["description"], "due": r["due_local"]} for r in rows]},
    )


def _local(ts: float, now: datetime) -> datetime:
    return datetime.fromtimestamp(ts, tz=now.tzinfo) if now.tzinfo else datetime.fromtimestamp(ts)


def _cancel(data_dir: Path, ids: list[int]) -> None:
    with connect(data_dir) as db:
        db.executemany("UPDATE scheduled SET status = 'cancelled' WHERE id = ?", [(i,) for i in ids])


def cancel_response(data_dir: Path, now: datetime, params: dict[str, Any]) -> Response:
    rows = [r for r in active(data_dir) if r["due_ts"] > now.timestamp()]
    if not rows:
        return say("There's nothing scheduled to cancel.", "schedule.cancel", "failed")
    what = re.sub(r"\b(the|a|an|my|scheduled|delayed)\b", " ", params.get("what") or "").strip()
    if params.get("all") or (not what and len(rows) == 1):
        chosen = rows
    elif what:
        scored = sorted(((fuzz.token_set_ratio(what, r["description"]), r) for r in rows), key=lambda x: -x[0])
        chosen = [r for s, r in scored if s >= 80 and s >= scored[0][0] - 5]
        if not chosen:
            return say(f"There's no scheduled action to {what}.", "schedule.cancel", "failed")
    else:
        opts = {str(r["id"]): r["description"] for r in rows}
        text = "Which one: " + join_words([f"{d}" for d in opts.values()], "or") + "?"
        return say(
            text,
            "clarify",
            "clarify",
            expects_reply=True,
            pending={"skill": "home_commands", "kind": "choose_schedule", "options": opts, "intent": "schedule_cancel"},
        )
    _cancel(data_dir, [r["id"] for r in chosen])
    text = (
        f"Cancelled: {chosen[0]['description']}." if len(chosen) == 1 else f"Cancelled {len(chosen)} scheduled actions."
    )
    return say(text, "schedule.cancel", "done", result={"cancelled": [r["id"] for r in chosen]})


def choose_follow_up(turn: Turn, pending: dict[str, Any]) -> Response | None:
    opts = pending.get("options") or {}
    pick = choose_option(turn.text, opts)
    if re.search(r"\b(all|both)\b", turn.text.lower()):
        _cancel(turn.context.data_dir, [int(i) for i in opts])
        return say(
            f"Cancelled {len(opts)} scheduled actions.",
            "schedule.cancel",
            "done",
            result={"cancelled": [int(i) for i in opts]},
        )
    if pick is None:
        return None
    _cancel(turn.context.data_dir, [int(pick)])
    return say(f"Cancelled: {opts[pick]}.", "schedule.cancel", "done", result={"cancelled": [int(pick)]})
