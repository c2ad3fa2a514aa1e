"""Spoken numbers, durations, clock times and dates -> values.

Number words are converted by `text2num` (offline, Rust-backed: "two hundred and five" -> 205); the phrases around
them ("an hour and a half", "half past seven", "7:30 pm", "tomorrow") are handled by the small rules below.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from text_to_num import alpha2digit

_UNIT_SECONDS = {
    "second": 1,
    "sec": 1,
    "secs": 1,
    "seconds": 1,
    "s": 1,
    "minute": 60,
    "min": 60,
    "mins": 60,
    "minutes": 60,
    "hour": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hours": 3600,
    "h": 3600,
    "day": 86400,
    "days": 86400,
}
_UNIT_RX = r"(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?)"
_NUM_RX = r"(\d+(?:\.\d+)?)"
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_FRACTIONS = {"half": 0.5, "a half": 0.5, "a quarter": 0.25, "quarter": 0.25, "three quarters": 0.75}


def digits(text: str) -> str:
    """Lower-case `text` and write every number in digits: 'fifty percent' -> '50 percent', 'an hour' -> '1 hour'."""
    t = text.lower().replace("-", " ").replace("%", " percent ")
    t = re.sub(r"[^\w\s:.']", " ", t)
    t = re.sub(r"\b(\d+)\s*(am|pm|a\.m\.|p\.m\.)", r"\1 \2", t)
    t = alpha2digit(t, "en", threshold=0)
    t = re.sub(r"\b(a|an|one)\s+(hundred|thousand)\b", r"1 \2", t)
    t = re.sub(r"\b1 hundred(?: and)? (\d+)\b", lambda m: str(100 + int(m.group(1))), t)
    t = re.sub(r"\b(\d+) hundred\b", lambda m: str(100 * int(m.group(1))), t)
    t = re.sub(r"\b1 hundred\b", "100", t)
    t = re.sub(r"\b(a|an)\s+(couple of|couple)\b", "2", t)
    t = re.sub(r"\b(a|an)\s+(?=(second|minute|hour|day|sec|min)\b)", "1 ", t)
    return re.sub(r"\s+", " ", t).strip()


def parse_number(text: str) -> float | int | None:
    """The first number in `text` ('fifty percent' -> 50, 'to 7' -> 7, 'two hundred degrees' -> 200)."""
    t = digits(text)
    m = re.search(r"-?\d+(?:\.\d+)?", t)
    if not m:
        if re.search(r"\bhalf\b", t):
            return 50 if "percent" in t or "way" in t else 0.5
        return None
    value = float(m.group(0))
    # "twenty five point five": text2num gives "25.5"; "7 and a half" -> 7.5
    if re.search(re.escape(m.group(0)) + r"\s+and\s+a\s+half\b", t):
        value += 0.5
    return int(value) if value.is_integer() else value


def parse_duration(text: str) -> int | None:
    """Seconds in a spoken duration: 'ten minutes' -> 600, 'an hour and a half' -> 5400, 'half an hour' -> 1800."""
    t = digits(text)
    t = re.sub(r"\bhalf (an?|1) (hour|minute|day)\b", r"0.5 \2", t)
    t = re.sub(r"\b(a )?quarter (of )?(an?|1) hour\b", "0.25 hour", t)
    t = re.sub(r"\b(\d+) and (a )?half (" + _UNIT_RX + r")", lambda m: f"{float(m.group(1)) + 0.5} {m.group(3)}", t)
    total = 0.0
    found = False
    last_unit = None
    for m in re.finditer(_NUM_RX + r"\s*" + _UNIT_RX + r"\b", t):
        unit = _UNIT_SECONDS[m.group(2)]
        total += float(m.group(1)) * unit
        last_unit = unit
        found = True
    if found and last_unit and re.search(_UNIT_RX + r"\s+and\s+(a\s+)?half\b", t):
        total += 0.5 * last_unit
    if not found:
        # "5 30" for a timer is not a duration; a bare number is taken as minutes ("set a timer for 10")
        m = re.fullmatch(r"(?:for\s+)?" + _NUM_RX, t)
        if m:
            return int(float(m.group(1)) * 60)
        return None
    return int(round(total))


_TIME_WORDS = {"noon": (12, 0), "midday": (12, 0), "midnight": (0, 0)}


def _ampm(hour: int, suffix: str | None) -> int:
    if not suffix:
        return hour
    suffix = suffix.replace(".", "")
    if suffix in ("pm", "evening", "afternoon", "tonight", "night") and hour < 12:
        return hour + 12
    if suffix in ("am", "morning") and hour == 12:
        return 0
    return hour


def parse_time(text: str, now: datetime | None = None, prefer_future: bool = False) -> str | None:
    """A clock time as 'HH:MM' (24 h): '7:30 pm' -> '19:30', 'half past seven' -> '07:30', 'noon' -> '12:00'.

    Relative times ('in ten minutes', 'in 2 hours') are added to `now` when it is given. Without am/pm an hour
    stays as said (1-12 -> 01-12); with `prefer_future` and `now`, a time that has passed today moves to the
    afternoon if that is still ahead ('at 5' at 14:00 -> 17:00)."""
    t = digits(text)
    for word, (h, mi) in _TIME_WORDS.items():
        if re.search(rf"\b{word}\b", t):
            return f"{h:02d}:{mi:02d}"
    if now is not None and re.search(r"\bin\s+\d", t):
        secs = parse_duration(re.sub(r"^.*?\bin\s+", "", t))
        if secs:
            return (now + timedelta(seconds=secs)).strftime("%H:%M")
    suffix_rx = r"(?:\s*(am|pm|a\.m\.|p\.m\.|in the morning|in the evening|in the afternoon|at night|tonight))?"
    hour = minute = None
    suffix = None
    if m := re.search(r"\b(half|quarter|\d+)\s+(?:minutes?\s+)?(past|after|to|till|before)\s+(\d+)" + suffix_rx, t):
        amount = {"half": 30, "quarter": 15}.get(m.group(1)) or int(m.group(1))
        hour = int(m.group(3))
        minute = amount
        if m.group(2) in ("to", "till", "before"):
            hour, minute = (hour - 1) % 24, 60 - amount
        suffix = m.group(4)
    elif m := re.search(r"\b(\d{1,2})[:.](\d{2})" + suffix_rx, t):
        hour, minute, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
    elif m := re.search(r"\b(\d{1,2})\s+(\d{2})\b" + suffix_rx, t):
        hour, minute, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
    elif m := re.search(r"\b(\d{1,2})\s+o\s*'?\s*clock" + suffix_rx, t):
        hour, minute, suffix = int(m.group(1)), 0, m.group(2)
    elif m := re.search(r"\b(\d{3,4})\s*(am|pm)\b", t):  # "730 pm"
        v = int(m.group(1))
        hour, minute, suffix = v // 100, v % 100, m.group(2)
    elif m := re.search(r"\b(\d{1,2})\b" + suffix_rx, t):
        hour, minute, suffix = int(m.group(1)), 0, m.group(2)
    if hour is None or minute is None or not (0 <= hour <= 24 and 0 <= minute < 60):
        return None
    if suffix:
        suffix = suffix.split()[-1]
    elif re.search(r"\b(evening|tonight|afternoon|night)\b", t):
        suffix = "pm"
    elif re.search(r"\bmorning\b", t):
        suffix = "am"
    hour = _ampm(hour, suffix) % 24
    if prefer_future and not suffix and now is not None and 1 <= hour <= 11:
        today = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if today <= now and today + timedelta(hours=12) > now:
            hour += 12
    return f"{hour:02d}:{minute:02d}"


def parse_date(text: str, now: datetime) -> str | None:
    """A date as 'YYYY-MM-DD' relative to `now`: 'today', 'tomorrow', 'the day after tomorrow', 'monday'."""
    t = text.lower()
    d: date | None = None
    if "day after tomorrow" in t:
        d = now.date() + timedelta(days=2)
    elif "tomorrow" in t:
        d = now.date() + timedelta(days=1)
    elif re.search(r"\b(today|tonight|this (morning|afternoon|evening))\b", t):
        d = now.date()
    elif "yesterday" in t:
        d = now.date() - timedelta(days=1)
    else:
        for i, name in enumerate(_WEEKDAYS):
            if re.search(rf"\b{name}s?\b", t):
                ahead = (i - now.weekday()) % 7
                if "next" in t:
                    ahead = ahead or 7
                d = now.date() + timedelta(days=ahead)
                break
    return d.isoformat() if d else None


def say_duration(seconds: int) -> str:
    """600 -> '10 minutes', 5400 -> '1 hour and 30 minutes'."""
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    parts = []
    if h:
        parts.append(f"{h} hour{'s' if h != 1 else ''}")
    if m:
        parts.append(f"{m} minute{'s' if m != 1 else ''}")
    if s or not parts:
        parts.append(f"{s} second{'s' if s != 1 else ''}")
    return " and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else parts[0]


def say_time(hhmm: str) -> str:
    """'19:30' -> '7:30 PM', '07:00' -> '7 AM'."""
    h, m = (int(x) for x in hhmm.split(":"))
    suffix = "AM" if h < 12 else "PM"
    h12 = h % 12 or 12
    return f"{h12}:{m:02d} {suffix}" if m else f"{h12} {suffix}"
