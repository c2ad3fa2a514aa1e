"""Timers and alarms: start, query, cancel. Persisted in SQLite under `context.data_dir` (see store.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, cancelled, join_words, say
from assistant.skills.store import connect
from assistant.text import norm_key
from assistant.understanding import spoken
from assistant.understanding.spoken import say_duration, say_time


def _local(ts: float, now: datetime) -> datetime:
    return datetime.fromtimestamp(ts, tz=now.tzinfo) if now.tzinfo else datetime.fromtimestamp(ts)


def _when(due: datetime, now: datetime) -> str:
    days = (due.date() - now.date()).days
    day = "" if days == 0 else " tomorrow" if days == 1 else f" on {due.strftime('%A')}"
    return f"{say_time(due.strftime('%H:%M'))}{day}"


class TimersSkill:
    name = "timers"
    intents: ClassVar[frozenset[str]] = frozenset(
        {
            "timer_set",
            "timer_query",
            "timer_remove",
            "alarm_set",
            "alarm_query",
            "alarm_remove",
        }
    )

    def handle(self, turn: Turn) -> Response:
        return {
            "timer_set": self.timer_set,
            "timer_query": self.timer_query,
            "timer_remove": self.timer_remove,
            "alarm_set": self.alarm_set,
            "alarm_query": self.alarm_query,
            "alarm_remove": self.alarm_remove,
        }[turn.intent](turn)

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        stop = cancelled(turn, pending.get("intent"))
        if stop is not None:
            return stop
        if pending.get("kind") == "timer_duration":
            secs = turn.value("duration") or spoken.parse_duration(turn.text)
            if secs:
                return self._start_timer(turn, int(secs), pending.get("name"))
        if pending.get("kind") == "alarm_time":
            hhmm = turn.value("time") or spoken.parse_time(turn.text, turn.context.now)
            if hhmm:
                return self._set_alarm(turn, hhmm, pending.get("date"))
        return None

    # -- rows ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _active(turn: Turn, kind: str) -> list[dict[str, Any]]:
        """Running (not yet due) and paused ones; a paused timer's `due_ts` is now + what it has left."""
        now_ts = turn.context.now.timestamp()
        with connect(turn.context.data_dir) as db:
            rows = db.execute(
                "SELECT * FROM timers WHERE kind = ? AND ((status = 'active' AND due_ts > ?) OR status = 'paused') "
                "ORDER BY due_ts",
                (kind, now_ts),
            ).fetchall()
        out = [dict(r) for r in rows]
        for r in out:
            if r["status"] == "paused":
                r["due_ts"] = now_ts + (r["remaining_s"] or 0)
        return out

    # -- pause / resume / add time (no NLU intent for these: a few sentence patterns decide) ----------------------
    _NAME = r"(?:the |my |that |this )?(?:(?P<name>[a-z ]+?) )?timers?"

    def try_handle(self, turn: Turn) -> Response | None:
        t = " ".join(re.sub(r"[^a-z0-9' ]", " ", spoken.digits(turn.text.lower())).split())
        t = re.sub(r"^(please|can you|could you|hey|ok)\s+", "", t)
        if m := re.fullmatch(rf"(?:pause|hold|freeze) {self._NAME}", t):
            return self._pause(turn, m.group("name"), pause=True)
        if m := re.fullmatch(rf"(?:resume|continue|unpause|restart) {self._NAME}(?: again)?", t):
            return self._pause(turn, m.group("name"), pause=False)
        if m := re.fullmatch(rf"(?:add|put) (?P<dur>.+?) (?:to|on|onto) {self._NAME}", t):
            return self._add(turn, m.group("name"), m.group("dur"), 1)
        if m := re.fullmatch(rf"(?:take|subtract|remove) (?P<dur>.+?) (?:off|from) {self._NAME}", t):
            return self._add(turn, m.group("name"), m.group("dur"), -1)
        return None

    def _named(self, turn: Turn, name: str | None) -> tuple[list[dict[str, Any]], Response | None]:
        timers = self._active(turn, "timer")
        if name and name not in ("the", "my"):
            timers = [x for x in timers if x["name"] and norm_key(x["name"]) == norm_key(name)]
            if not timers:
                return [], say(f"There's no {name} timer.", "timer.query", "failed")
        if not timers:
            return [], say("You have no timers running.", "timer.query", "failed")
        if len(timers) > 1:
            names = [f"the {x['name']} timer" if x["name"] else "the unnamed timer" for x in timers]
            return [], say(f"Which one: {join_words(names, 'or')}?", "clarify", "clarify")
        return timers, None

    def _pause(self, turn: Turn, name: str | None, pause: bool) -> Response:
        timers, err = self._named(turn, name)
        if err is not None:
            return err
        x = timers[0]
        label = f"{x['name'].capitalize()} timer" if x["name"] else "Timer"
        now_ts = turn.context.now.timestamp()
        left = int(round(x["due_ts"] - now_ts))
        if pause == (x["status"] == "paused"):
            return say(
                f"{label} is already {'paused' if pause else 'running'}.",
                "timer.pause" if pause else "timer.resume",
                "done",
                target=f"timer:{x['id']}",
                result={"changed": {}},
            )
        with connect(turn.context.data_dir) as db:
            if pause:
                db.execute("UPDATE timers SET status = 'paused', remaining_s = ? WHERE id = ?", (left, x["id"]))
            else:
                due = turn.context.now + timedelta(seconds=left)
                db.execute(
                    "UPDATE timers SET status = 'active', remaining_s = NULL, due_ts = ?, due_local = ? WHERE id = ?",
                    (due.timestamp(), due.isoformat(timespec="seconds"), x["id"]),
                )
        text = (
            f"{label} paused with {say_duration(left)} left."
            if pause
            else f"{label} resumed: {say_duration(left)} left."
        )
        return say(
            text,
            "timer.pause" if pause else "timer.resume",
            "done",
            target=f"timer:{x['id']}",
            result={"remaining_s": left},
        )

    def _add(self, turn: Turn, name: str | None, dur: str, sign: int) -> Response:
        secs = spoken.parse_duration(dur)
        if not secs:
            return say("How much time?", "timer.add", "failed")
        timers, err = self._named(turn, name)
        if err is not None:
            return err
        x = timers[0]
        now_ts = turn.context.now.timestamp()
        left = int(round(x["due_ts"] - now_ts)) + sign * int(secs)
        if left <= 0:
            return say(
                f"That would end the timer: it has {say_duration(int(x['due_ts'] - now_ts))} left.",
                "timer.add",
                "failed",
            )
        due = turn.context.now + timedelta(seconds=left)
        with connect(turn.context.data_dir) as db:
            if x["status"] == "paused":
                db.execute("UPDATE timers SET remaining_s = ? WHERE id = ?", (left, x["id"]))
            else:
                db.execute(
                    "UPDATE timers SET due_ts = ?, due_local = ? WHERE id = ?",
                    (due.timestamp(), due.isoformat(timespec="seconds"), x["id"]),
                )
        label = f"the {x['name']} timer" if x["name"] else "the timer"
        verb = "Added" if sign > 0 else "Took"
        prep = "to" if sign > 0 else "off"
        return say(
            f"{verb} {say_duration(int(secs))} {prep} {label}: {say_duration(left)} left.",
            "timer.add",
            "done",
            target=f"timer:{x['id']}",
            result={"remaining_s": left},
        )

    @staticmethod
    def _cancel(turn: Turn, ids: list[int]) -> None:
        with connect(turn.context.data_dir) as db:
            db.executemany("UPDATE timers SET status = 'cancelled' WHERE id = ?", [(i,) for i in ids])

    @staticmethod
    def _insert(turn: Turn, kind: str, name: str | None, duration_s: int | None, due: datetime) -> int:
        ctx = turn.context
        with connect(ctx.data_dir) as db:
            cur = db.execute(
                "INSERT INTO timers (kind, name, duration_s, created_ts, due_ts, due_local, device_id, user_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    name,
                    duration_s,
                    ctx.now.timestamp(),
                    due.timestamp(),
                    due.isoformat(timespec="seconds"),
                    ctx.device_id,
                    ctx.user_id,
                ),
            )
            return int(cur.lastrowid or 0)

    @staticmethod
    def _name(turn: Turn) -> str | None:
        e = turn.entity("timer_name")
        if e is not None and e.normalized:
            return re.sub(r"\s*timer$", "", e.normalized) or None
        return None

    # -- timers --------------------------------------------------------------------------------------------------
    def timer_set(self, turn: Turn) -> Response:
        secs = turn.value("duration")
        if not secs:
            m = re.search(r"\b(for|of)\b(.*)$", turn.text.lower())
            secs = spoken.parse_duration(m.group(2)) if m else None
            secs = secs or _duration_in(turn.text)
        name = self._name(turn)
        if not secs:
            return say(
                "For how long?",
                "clarify",
                "clarify",
                params={"intent": turn.intent},
                expects_reply=True,
                pending={"skill": self.name, "kind": "timer_duration", "intent": turn.intent, "name": name},
            )
        return self._start_timer(turn, int(secs), name)

    def _start_timer(self, turn: Turn, secs: int, name: str | None) -> Response:
        due = turn.context.now + timedelta(seconds=secs)
        tid = self._insert(turn, "timer", name, secs, due)
        label = f"{name.capitalize()} timer" if name else "Timer"
        return say(
            f"{label} set for {say_duration(secs)}.",
            "timer.start",
            "done",
            target=f"timer:{tid}",
            params={"duration_s": secs, "name": name},
            result={"id": tid, "due": due.isoformat(timespec="seconds")},
        )

    def timer_query(self, turn: Turn) -> Response:
        now = turn.context.now
        timers = self._active(turn, "timer")
        name = self._name(turn)
        if name:
            timers = [t for t in timers if t["name"] and norm_key(t["name"]) == norm_key(name)] or timers
        info = [{"id": t["id"], "name": t["name"], "remaining_s": int(t["due_ts"] - now.timestamp())} for t in timers]
        if not timers:
            return say("You have no timers running.", "timer.query", "done", result={"timers": []})
        paused = {t["id"] for t in timers if t["status"] == "paused"}
        parts = [
            f"{'the ' + i['name'] + ' timer' if i['name'] else 'a timer'} with {say_duration(i['remaining_s'])} left"
            f"{' (paused)' if i['id'] in paused else ''}"
            for i in info
        ]
        if len(parts) == 1:
            text = f"There's {parts[0]}."
        else:
            text = f"You have {len(parts)} timers: {join_words(parts)}."
        return say(text, "timer.query", "done", result={"timers": info})

    def timer_remove(self, turn: Turn) -> Response:
        timers = self._active(turn, "timer")
        name = self._name(turn)
        if name:
            timers = [t for t in timers if t["name"] and norm_key(t["name"]) == norm_key(name)]
        if not timers:
            return say(
                "There's no timer to cancel." if not name else f"There's no {name} timer.", "timer.cancel", "failed"
            )
        self._cancel(turn, [t["id"] for t in timers])
        text = "Timer cancelled." if len(timers) == 1 else f"Cancelled {len(timers)} timers."
        return say(
            text,
            "timer.cancel",
            "done",
            target=f"timer:{timers[0]['id']}" if len(timers) == 1 else None,
            result={"cancelled": [t["id"] for t in timers]},
        )

    # -- alarms --------------------------------------------------------------------------------------------------
    def alarm_set(self, turn: Turn) -> Response:
        hhmm = turn.value("time")
        date = turn.value("date")
        secs = turn.value("duration")
        if not hhmm and isinstance(secs, int) and secs >= 60 and not date:  # "wake me up in thirty minutes"
            hhmm = (turn.context.now + timedelta(seconds=secs)).strftime("%H:%M")
        if not hhmm:
            return say(
                "What time should the alarm be for?",
                "clarify",
                "clarify",
                params={"intent": turn.intent},
                expects_reply=True,
                pending={"skill": self.name, "kind": "alarm_time", "intent": turn.intent, "date": date},
            )
        return self._set_alarm(turn, hhmm, date)

    def _set_alarm(self, turn: Turn, hhmm: str, date: str | None) -> Response:
        now = turn.context.now
        h, m = (int(x) for x in hhmm.split(":"))
        if date:
            day = datetime.fromisoformat(date)
            due = now.replace(year=day.year, month=day.month, day=day.day, hour=h, minute=m, second=0, microsecond=0)
        else:
            due = now.replace(hour=h, minute=m, second=0, microsecond=0)
            if due <= now:
                due += timedelta(days=1)
        if due <= now:
            return say("That time has already passed.", "alarm.set", "failed", params={"time": hhmm, "date": date})
        aid = self._insert(turn, "alarm", None, None, due)
        return say(
            f"Alarm set for {_when(due, now)}.",
            "alarm.set",
            "done",
            target=f"alarm:{aid}",
            params={"time": hhmm, "date": date},
            result={"id": aid, "due": due.isoformat(timespec="seconds")},
        )

    def _matching_alarms(self, turn: Turn) -> list[dict[str, Any]]:
        now = turn.context.now
        alarms = self._active(turn, "alarm")
        hhmm, date = turn.value("time"), turn.value("date")
        out = []
        for a in alarms:
            due = _local(a["due_ts"], now)
            if hhmm and due.strftime("%H:%M") != hhmm:
                continue
            if date and due.date().isoformat() != date:
                continue
            out.append(a)
        return out

    def alarm_query(self, turn: Turn) -> Response:
        now = turn.context.now
        alarms = self._matching_alarms(turn)
        info = [{"id": a["id"], "due": _local(a["due_ts"], now).isoformat(timespec="seconds")} for a in alarms]
        if not alarms:
            return say("You have no alarms set.", "alarm.query", "done", result={"alarms": []})
        whens = [_when(_local(a["due_ts"], now), now) for a in alarms]
        text = (
            f"You have an alarm for {whens[0]}."
            if len(whens) == 1
            else f"You have {len(whens)} alarms: {join_words(whens)}."
        )
        return say(text, "alarm.query", "done", result={"alarms": info})

    def alarm_remove(self, turn: Turn) -> Response:
        alarms = self._matching_alarms(turn)
        if not alarms:
            return say("There's no alarm to cancel.", "alarm.cancel", "failed")
        self._cancel(turn, [a["id"] for a in alarms])
        text = "Alarm cancelled." if len(alarms) == 1 else f"Cancelled {len(alarms)} alarms."
        return say(
            text,
            "alarm.cancel",
            "done",
            target=f"alarm:{alarms[0]['id']}" if len(alarms) == 1 else None,
            result={"cancelled": [a["id"] for a in alarms]},
        )


def _duration_in(text: str) -> int | None:
    m = re.search(
        r"((?:\S+\s+){0,4}(?:seconds?|minutes?|mins?|hours?|hrs?)\b(?:\s+and\s+(?:a\s+)?half)?)", text.lower()
    )
    return spoken.parse_duration(m.group(1)) if m else None
