"""Films, TV shows, audiobooks and podcasts from the local media catalog (assistant/data/catalogs/media.jsonl).

Which of them a title means ("play hunger games": the film or the audiobook) is chosen before this skill, by the
context reranker (a screen on the speaking device favours the film); this skill plays what it is given, on the
speaking device, and says when a film is asked for on a device without a screen."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, say
from assistant.skills.store import connect

KIND_WORDS = {
    "film": "the film",
    "tv_show": "the show",
    "audiobook": "the audiobook",
    "book": "the audiobook of",
    "podcast": "the podcast",
}


class MediaSkill:
    name = "media"
    intents: ClassVar[frozenset[str]] = frozenset({"play_video", "play_audiobook", "play_podcasts"})

    def handle(self, turn: Turn) -> Response:
        media = turn.entity("media")
        dev = turn.context.home.speaking_device(turn.context)
        if media is None or not media.entity_id:
            said = media.value if media is not None else None
            what = {"play_video": "film", "play_audiobook": "audiobook", "play_podcasts": "podcast"}[turn.intent]
            text = f"I couldn't find {said}." if said else f"Which {what} would you like?"
            return say(
                text,
                "media.play",
                "failed",
                params={"said": said},
                result={"candidates": [c.entity_id for c in media.candidates[:3]] if media else []},
            )
        info = media.normalized if isinstance(media.normalized, dict) else {}
        mtype = info.get("media_type") or media.entity_id.split(":", 1)[0]
        if info.get("visual") and not (dev is not None and dev.has_screen):
            return say(
                f"{media.name} is a {'film' if mtype == 'film' else 'show'}, and this device has no screen.",
                "media.play",
                "failed",
                target=media.entity_id,
                params={"media_type": mtype},
            )
        with connect(turn.context.data_dir) as db:
            state = {"status": "playing", "source": media.entity_id, "media_type": mtype, "queue": [], "track_id": None}
            db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                (f"player:{turn.context.device_id}", json.dumps(state)),
            )
        return say(
            f"Playing {KIND_WORDS.get(mtype, '')} {media.name}.".replace("  ", " "),
            "media.play",
            "done",
            target=media.entity_id,
            params={"media_type": mtype, "device_id": turn.context.device_id},
            result={"source": media.entity_id, "media_type": mtype},
        )

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None
