"""Lists (shopping, to-do, ...): create, add, read, remove items or whole lists. Persisted in SQLite under data_dir."""

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
    def _lists(turn: Turn) -> dict[str, str]:
        with connect(turn.context.data_dir) as db:
            return {r["key"]: r["name"] for r in db.execute("SELECT key, name FROM lists ORDER BY created_ts, key")}

    @staticmethod
    def _list_items(turn: Turn, key: str) -> list[str]:
        with connect(turn.context.data_dir) as db:
            return [r["item"] for r in db.execute("SELECT item FROM list_items WHERE list_key = ? ORDER BY id", (key,))]

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
        with connect(ctx.data_dir) as db:
            existed = db.execute("SELECT name FROM lists WHERE key = ?", (key,)).fetchone()
            if not existed:
                db.execute(
                    "INSERT INTO lists (key, name, created_ts) VALUES (?, ?, ?)", (key, name, ctx.now.timestamp())
                )
            else:
                name = existed["name"]
            have = {norm_key(r["item"]) for r in db.execute("SELECT item FROM list_items WHERE list_key = ?", (key,))}
            new = [i for i in items if norm_key(i) not in have]
            db.executemany(
                "INSERT INTO list_items (list_key, item, added_ts) VALUES (?, ?, ?)",
                [(key, i, ctx.now.timestamp()) for i in new],
            )
        target = f"list:{key}"
        if items:
            if not new:
                return say(
                    f"{join_words(items).capitalize()} {'is' if len(items) == 1 else 'are'} already on your "
                    f"{name} list.",
                    "list.add",
                    "done",
                    target=target,
                    params={"list": name, "items": items},
                    result={"added": []},
                )
            return say(
                f"Added {join_words(new)} to your {name} list.",
                "list.add",
                "done",
                target=target,
                params={"list": name, "items": items},
                result={"added": new, "created": not existed},
            )
        if existed:
            return say(
                f"You already have a {name} list. What should I add?",
                "list.create",
                "done",
                target=target,
                params={"list": name},
                result={"created": False},
            )
        return say(
            f"Created your {name} list.",
            "list.create",
            "done",
            target=target,
            params={"list": name},
            result={"created": True},
        )

    def query(self, turn: Turn) -> Response:
        lists = self._lists(turn)
        name = self._list_name(turn)
        if name is None:
            cm = re.search(r"\b([\w']+)\s+list\b", turn.text.lower())
            name = (
                _clean_list_name(cm.group(1))
                if cm and cm.group(1) not in ("a", "the", "my", "new", "this", "that")
                else None
            )
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
        items = self._list_items(turn, key)
        name = lists[key]
        if not items:
            return say(
                f"Your {name} list is empty.",
                "list.query",
                "done",
                target=f"list:{key}",
                params={"list": name},
                result={"items": []},
            )
        return say(
            f"Your {name} list has {join_words(items)}.",
            "list.query",
            "done",
            target=f"list:{key}",
            params={"list": name},
            result={"items": items},
        )

    def remove(self, turn: Turn) -> Response:
        text = turn.text.lower()
        lists = self._lists(turn)
        m = _REMOVE_RX.search(text)
        name = self._list_name(turn, m.group("list") if m else None)
        items = self._items(m.group("item"), name) if m else []
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
        with connect(turn.context.data_dir) as db:
            if not items:
                db.execute("DELETE FROM list_items WHERE list_key = ?", (key,))
                db.execute("DELETE FROM lists WHERE key = ?", (key,))
                return say(
                    f"Deleted your {name} list.", "list.delete", "done", target=f"list:{key}", params={"list": name}
                )
            removed, missing = [], []
            for item in items:
                row = db.execute(
                    "SELECT id, item FROM list_items WHERE list_key = ? AND lower(item) = ? ORDER BY id LIMIT 1",
                    (key, item.lower()),
                ).fetchone()
                if row is None:
                    missing.append(item)
                else:
                    db.execute("DELETE FROM list_items WHERE id = ?", (row["id"],))
                    removed.append(row["item"])
        if not removed:
            return say(
                f"{join_words(missing).capitalize()} {'is' if len(missing) == 1 else 'are'}n't on your {name} list.",
                "list.remove",
                "failed",
                target=f"list:{key}",
                params={"list": name, "items": items},
            )
        return say(
            f"Removed {join_words(removed)} from your {name} list.",
            "list.remove",
            "done",
            target=f"list:{key}",
            params={"list": name, "items": items},
            result={"removed": removed, "missing": missing},
        )
