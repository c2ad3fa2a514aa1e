"""Lists (shopping, to-do, ...): create, add, read, remove items or whole lists. Persisted in SQLite under data_dir.

Whose list: "my shopping list" is the speaker's own when the speaker is known (`context.person`: identified by voice,
or named by the session); otherwise, and for "our"/"the family"/"the shared" lists, the household's shared list.
Reading or removing falls back from one's own list to the shared one (and from the shared one to one's own) when
only that one exists; an unknown speaker never reaches a person's list.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, join_words, say
from assistant.skills.store import connect
from assistant.text import norm_key

DEFAULT_LIST = "shopping"
_ADD_RX = re.compile(
    r"\b(?:add|put|include|append|write|stick|place)\s+(?P<item>.+?)\s+(?:to|on|onto|in|into)\s+(?:the|my|a|an|our)?\s*"
    r"(?:new\s+)?(?P<list>[\w' ]*?)\s*list\b"
)
_REMOVE_RX = re.compile(
    r"\b(?:remove|delete|take|cross|drop|strike|erase)\s+(?P<item>.+?)\s+(?:off|from|out of)\s+"
    r"(?:of\s+)?(?:the|my|a|our)?\s*"
    r"(?P<list>[\w' ]*?)\s*list\b"
)
_CREATE_RX = re.compile(r"\b(?:create|make|start|new|open)\b.*?\b(?:list)\b")
_ITEM_SPLIT = re.compile(r"\s*(?:,|\band\b)\s*")
_FILLER = re.compile(r"^(?:some|an?|the|more|my)\s+")
_MINE = re.compile(r"\b(?:my|mine)\b")
_OURS = re.compile(r"\b(?:our|ours|family|household|shared|everyone's|everybody's)\b")
SHARED = ""
"""The owner of the household's shared lists."""


def list_owner(turn: Turn) -> str:
    """The person whose list the request means, or SHARED."""
    person = turn.context.person
    text = turn.text.lower()
    if person and _MINE.search(text) and not _OURS.search(text):
        return person
    return SHARED


def _whose(turn: Turn, owner: str) -> str:
    """'your' for one's own list (and where nobody is identified at all); 'the shared' once speakers are told apart."""
    if owner or turn.context.speaker is None:
        return "your"
    return "the shared"


def list_key(name: str) -> str:
    """'Groceries' -> 'grocery', 'to-do' -> 'todo', 'things to do' -> 'thingstodo'."""
    words = []
    for w in norm_key(name).split():
        if w.endswith("ies") and len(w) > 4:
            w = w[:-3] + "y"
        elif w.endswith("s") and not w.endswith("ss") and len(w) > 3:
            w = w[:-1]
        words.append(w)
    return "".join(words)


def _clean_list_name(name: str | None) -> str | None:
    if not name:
        return None
    n = re.sub(r"^(?:the|my|a|an|our|new)\s+", "", norm_key(name)).strip()
    n = re.sub(r"\s*list$", "", n).strip()
    return n or None


class ListsSkill:
    name = "lists"
    intents: ClassVar[frozenset[str]] = frozenset({"lists_createoradd", "lists_query", "lists_remove"})

    def handle(self, turn: Turn) -> Response:
        return {"lists_createoradd": self.add, "lists_query": self.query, "lists_remove": self.remove}[turn.intent](
            turn
        )

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None

    # -- helpers -------------------------------------------------------------------------------------------------
    @staticmethod
    def _list_name(turn: Turn, from_text: str | None = None) -> str | None:
        e = turn.entity("list")
        if e is not None and e.normalized:
            return _clean_list_name(e.normalized)
        return _clean_list_name(from_text)

    @staticmethod
    def _items(raw: str, list_name: str | None) -> list[str]:
        items = []
        for part in _ITEM_SPLIT.split(raw.strip()):
            p = _FILLER.sub("", part.strip(" .!?")).strip()
            if (
                p
                and p not in ("it", "this", "that", "something", "an item", "item")
                and (not list_name or norm_key(p) != norm_key(list_name))
            ):
                items.append(p)
        return items

    @staticmethod
    def _lists(turn: Turn, owner: str) -> dict[str, str]:
        with connect(turn.context.data_dir) as db:
            rows = db.execute("SELECT key, name FROM lists WHERE owner = ? ORDER BY created_ts, key", (owner,))
            return {r["key"]: r["name"] for r in rows}

    def _visible(self, turn: Turn, name: str | None) -> tuple[str, dict[str, str]]:
        """(owner, that owner's lists) for reading or removing: the meant owner's lists, or the other scope the
        speaker may reach when only it has the named list (or any list, when none is named)."""
        owner = list_owner(turn)
        lists = self._lists(turn, owner)
        key = list_key(name) if name else None
        if (key not in lists) if key else not lists:
            other = SHARED if owner else (turn.context.person or None)
            if other is not None and other != owner:
                alt = self._lists(turn, other)
                if (key in alt) if key else alt:
                    return other, alt
        return owner, lists

    @staticmethod
    def _list_items(turn: Turn, owner: str, key: str) -> list[str]:
        with connect(turn.context.data_dir) as db:
            rows = db.execute("SELECT item FROM list_items WHERE owner = ? AND list_key = ? ORDER BY id", (owner, key))
            return [r["item"] for r in rows]

    # -- intents -------------------------------------------------------------------------------------------------
    def add(self, turn: Turn) -> Response:
        text = turn.text.lower()
        m = _ADD_RX.search(text)
        name = self._list_name(turn, m.group("list") if m else None)
        if name is None:
            cm = re.search(r"\b([\w']+)\s+list\b", text)
            name = (
                _clean_list_name(cm.group(1))
                if cm and cm.group(1) not in ("a", "the", "my", "new", "of", "to")
                else None
            )
        items = self._items(m.group("item"), name) if m else []
        if name is None:
            name = DEFAULT_LIST
        key = list_key(name)
        ctx = turn.context
        owner = list_owner(turn)
        whose = _whose(turn, owner)
        with connect(ctx.data_dir) as db:
            existed = db.execute("SELECT name FROM lists WHERE owner = ? AND key = ?", (owner, key)).fetchone()
            if not existed:
                db.execute(
                    "INSERT INTO lists (owner, key, name, created_ts) VALUES (?, ?, ?, ?)",
                    (owner, key, name, ctx.now.timestamp()),
                )
            else:
                name = existed["name"]
            have = {
                norm_key(r["item"])
                for r in db.execute("SELECT item FROM list_items WHERE owner = ? AND list_key = ?", (owner, key))
            }
            new = [i for i in items if norm_key(i) not in have]
            db.executemany(
                "INSERT INTO list_items (owner, list_key, item, added_ts) VALUES (?, ?, ?, ?)",
                [(owner, key, i, ctx.now.timestamp()) for i in new],
            )
        target = f"list:{key}"
        params = {"list": name, "owner": owner or "shared"}
        if items:
            if not new:
                return say(
                    f"{join_words(items).capitalize()} {'is' if len(items) == 1 else 'are'} already on {whose} "
                    f"{name} list.",
                    "list.add",
                    "done",
                    target=target,
                    params=params | {"items": items},
                    result={"added": []},
                )
            return say(
                f"Added {join_words(new)} to {whose} {name} list.",
                "list.add",
                "done",
                target=target,
                params=params | {"items": items},
                result={"added": new, "created": not existed},
            )
        if existed:
            return say(
                f"{'You already have' if owner or whose == 'your' else 'There is already'} a {name} list. "
                "What should I add?",
                "list.create",
                "done",
                target=target,
                params=params,
                result={"created": False},
            )
        return say(
            f"Created {whose} {name} list.",
            "list.create",
            "done",
            target=target,
            params=params,
            result={"created": True},
        )

    def query(self, turn: Turn) -> Response:
        name = self._list_name(turn)
        if name is None:
            cm = re.search(r"\b([\w']+)\s+list\b", turn.text.lower())
            name = (
                _clean_list_name(cm.group(1))
                if cm and cm.group(1) not in ("a", "the", "my", "new", "this", "that")
                else None
            )
        owner, lists = self._visible(turn, name)
        whose = _whose(turn, owner)
        if name is None:
            if not lists:
                return say("You don't have any lists yet.", "list.query", "done", result={"lists": []})
            if len(lists) > 1:
                names = list(lists.values())
                return say(
                    f"You have {len(names)} lists: {join_words(names)}.", "list.query", "done", result={"lists": names}
                )
            name = next(iter(lists.values()))
        key = list_key(name)
        if key not in lists:
            return say(f"You don't have a {name} list.", "list.query", "failed", params={"list": name})
        items = self._list_items(turn, owner, key)
        name = lists[key]
        params = {"list": name, "owner": owner or "shared"}
        if not items:
            return say(
                f"{whose.capitalize()} {name} list is empty.",
                "list.query",
                "done",
                target=f"list:{key}",
                params=params,
                result={"items": []},
            )
        return say(
            f"{whose.capitalize()} {name} list has {join_words(items)}.",
            "list.query",
            "done",
            target=f"list:{key}",
            params=params,
            result={"items": items},
        )

    def remove(self, turn: Turn) -> Response:
        text = turn.text.lower()
        m = _REMOVE_RX.search(text)
        name = self._list_name(turn, m.group("list") if m else None)
        items = self._items(m.group("item"), name) if m else []
        owner, lists = self._visible(turn, name)
        whose = _whose(turn, owner)
        if name is None and len(lists) == 1:
            name = next(iter(lists.values()))
        if name is None:
            if not lists:
                return say("You don't have any lists.", "list.remove", "failed")
            return say("Which list?", "list.remove", "failed", params={"items": items})
        key = list_key(name)
        if key not in lists:
            return say(f"You don't have a {name} list.", "list.remove", "failed", params={"list": name})
        name = lists[key]
        params = {"list": name, "owner": owner or "shared"}
        with connect(turn.context.data_dir) as db:
            if not items:
                db.execute("DELETE FROM list_items WHERE owner = ? AND list_key = ?", (owner, key))
                db.execute("DELETE FROM lists WHERE owner = ? AND key = ?", (owner, key))
                return say(f"Deleted {whose} {name} list.", "list.delete", "done", target=f"list:{key}", params=params)
            removed, missing = [], []
            for item in items:
                row = db.execute(
                    "SELECT id, item FROM list_items WHERE owner = ? AND list_key = ? AND lower(item) = ? "
                    "ORDER BY id LIMIT 1",
                    (owner, key, item.lower()),
                ).fetchone()
                if row is None:
                    missing.append(item)
                else:
                    db.execute("DELETE FROM list_items WHERE id = ?", (row["id"],))
                    removed.append(row["item"])
        if not removed:
            return say(
                f"{join_words(missing).capitalize()} {'is' if len(missing) == 1 else 'are'}n't on {whose} {name} list.",
                "list.remove",
                "failed",
                target=f"list:{key}",
                params=params | {"items": items},
            )
        return say(
            f"Removed {join_words(removed)} from {whose} {name} list.",
            "list.remove",
            "done",
            target=f"list:{key}",
            params=params | {"items": items},
            result={"removed": removed, "missing": missing},
        )
