"""Music from the local catalog (play track/artist/album/genre/playlist, what's playing, like) and media transport
(pause/resume/next) and volume on the speaking device. The player state is kept in the skills SQLite store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, say
from assistant.skills.store import connect

if TYPE_CHECKING:
    from assistant.understanding.resolve.catalog import MusicCatalog

VOLUME_STEP = 10


class MusicSkill:
    name = "music"
    intents: ClassVar[frozenset[str]] = frozenset(
        {
            "play_music",
            "music_query",
            "music_likeness",
            "media_pause",
            "media_resume",
            "media_next",
            "audio_volume_up",
            "audio_volume_down",
            "audio_volume_mute",
        }
    )

    def __init__(self, catalog: MusicCatalog) -> None:
        self.catalog = catalog

    def handle(self, turn: Turn) -> Response:
        return {
            "play_music": self.play,
            "music_query": self.query,
            "music_likeness": self.like,
            "media_pause": self.pause,
            "media_resume": self.resume,
            "media_next": self.next,
            "audio_volume_up": self.volume,
            "audio_volume_down": self.volume,
            "audio_volume_mute": self.volume,
        }[turn.intent](turn)

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None

    # -- player state ------------------------------------------------------------------------------------------
    def _player_key(self, turn: Turn) -> str:
        return f"player:{turn.context.device_id}"

    def _state(self, turn: Turn) -> dict[str, Any]:
        with connect(turn.context.data_dir) as db:
            row = db.execute("SELECT value FROM kv WHERE key = ?", (self._player_key(turn),)).fetchone()
        return json.loads(row["value"]) if row else {}

    def _save(self, turn: Turn, state: dict[str, Any]) -> None:
        with connect(turn.context.data_dir) as db:
            db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (self._player_key(turn), json.dumps(state))
            )

    def _describe(self, track_id: str | None) -> str:
        r = self.catalog.get(track_id) if track_id else None
        if r is None:
            return "music"
        return f"{r['name']} by {r['artist']}" if r.get("artist") else r["name"]

    def _top_tracks(self) -> list[str]:
        tracks = [r for r in self.catalog.rows if r["type"] == "track"]
        tracks.sort(key=lambda r: (-r.get("mentions", 0), r["id"]))
        return [r["id"] for r in tracks[:50]]

    # -- intents -----------------------------------------------------------------------------------------------
    def play(self, turn: Turn) -> Response:
        track, artist, album = turn.entity("track"), turn.entity("artist"), turn.entity("album")
        genre, playlist = turn.entity("genre"), turn.entity("playlist")
        said = [e for e in (track, artist, album, genre, playlist) if e is not None]
        queue: list[str] = []
        source: str | None = None
        what = ""
        if track is not None and track.entity_id:
            queue = [track.entity_id]
            source = track.entity_id
            what = self._describe(track.entity_id)
            if artist is not None and artist.entity_id:
                queue += [t for t in self.catalog.tracks_by_artist.get(artist.entity_id, []) if t != track.entity_id]
        elif album is not None and album.entity_id:
            source = album.entity_id
            queue = [
                r["id"] for r in self.catalog.rows if r["type"] == "track" and r.get("album_id") == album.entity_id
            ]
            what = f"the album {album.name}"
        elif artist is not None and artist.entity_id:
            source = artist.entity_id
            queue = list(self.catalog.tracks_by_artist.get(artist.entity_id, []))
            what = artist.name or ""
        elif playlist is not None and playlist.entity_id:
            source = playlist.entity_id
            what = f"your {playlist.name} playlist"
        elif genre is not None and genre.entity_id:
            source = genre.entity_id
            for a in self.catalog.artists_by_genre.get(genre.entity_id, []):
                queue += self.catalog.tracks_by_artist.get(a, [])
            what = f"some {(genre.name or '').lower()}"
        elif said:
            missing = next(e for e in said)
            return say(
                f"I couldn't find {missing.value} in your music.",
                "music.play",
                "failed",
                params={"said": {e.slot: e.value for e in said}},
                result={"candidates": [c.entity_id for c in missing.candidates[:3]]},
            )
        else:
            queue = self._top_tracks()
            what = "some music"
        track_id = queue[0] if queue else None
        state = {"status": "playing", "source": source, "queue": queue, "position": 0, "track_id": track_id}
        self._save(turn, state)
        return say(
            f"Playing {what}.",
            "music.play",
            "done",
            target=track_id or source,
            params={"source": source, "device_id": turn.context.device_id},
            result={"track_id": track_id, "queue": queue[:20], "source": source},
        )

    def pause(self, turn: Turn) -> Response:
        st = self._state(turn)
        if st.get("status") != "playing":
            return say("Nothing is playing.", "music.pause", "failed")
        st["status"] = "paused"
        self._save(turn, st)
        return say("Paused.", "music.pause", "done", target=st.get("track_id") or st.get("source"))

    def resume(self, turn: Turn) -> Response:
        st = self._state(turn)
        if st.get("status") != "paused":
            return say(
                "There's nothing to resume." if st.get("status") != "playing" else "It's already playing.",
                "music.resume",
                "failed",
            )
        st["status"] = "playing"
        self._save(turn, st)
        return say("Resuming.", "music.resume", "done", target=st.get("track_id") or st.get("source"))

    def next(self, turn: Turn) -> Response:
        st = self._state(turn)
        queue = st.get("queue") or []
        pos = int(st.get("position", 0)) + 1
        if not st or pos >= len(queue):
            return say("There's no next track.", "music.next", "failed")
        st.update(position=pos, track_id=queue[pos], status="playing")
        self._save(turn, st)
        return say(
            f"Next up: {self._describe(queue[pos])}.",
            "music.next",
            "done",
            target=queue[pos],
            result={"track_id": queue[pos]},
        )

    def query(self, turn: Turn) -> Response:
        st = self._state(turn)
        if st.get("status") not in ("playing", "paused"):
            return say("Nothing is playing right now.", "music.query", "done", result={"track_id": None})
        tid = st.get("track_id")
        if tid is None:
            src = self.catalog.get(st.get("source") or "")
            return say(
                f"This is {src['name'] if src else 'music'}.",
                "music.query",
                "done",
                result={"source": st.get("source")},
            )
        return say(f"This is {self._describe(tid)}.", "music.query", "done", target=tid, result={"track_id": tid})

    def like(self, turn: Turn) -> Response:
        st = self._state(turn)
        target = next(
            (
                e.entity_id
                for e in (turn.entity("track"), turn.entity("artist"), turn.entity("genre"))
                if e and e.entity_id
            ),
            st.get("track_id"),
        )
        if target is None:
            return say("Which song do you mean?", "music.like", "failed")
        with connect(turn.context.data_dir) as db:
            key = f"likes:{turn.context.user_id}"
            row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            likes = json.loads(row["value"]) if row else []
            if target not in likes:
                likes.append(target)
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(likes)))
        r = self.catalog.get(target)
        return say(f"Got it, you like {r['name'] if r else 'this'}.", "music.like", "done", target=target)

    def volume(self, turn: Turn) -> Response:
        home = turn.context.home
        dev = home.speaking_device(turn.context)
        if dev is None or "volume" not in dev.capabilities:
            return say("I can't change the volume here.", "volume.set", "failed")
        cur = int(dev.state.get("volume", 50))
        num = turn.value("number")
        if turn.intent == "audio_volume_mute":
            new, verb = 0, "mute"
        elif num is not None and not str(turn.entity("number").value).lower().startswith("by"):  # type: ignore[union-attr]
            new, verb = int(num), "set"
        else:
            step = int(num) if num is not None else VOLUME_STEP
            new = cur + step if turn.intent == "audio_volume_up" else cur - step
            verb = "up" if turn.intent == "audio_volume_up" else "down"
        new = max(0, min(100, new))
        changed = home.set_state(dev.id, volume=new)
        text = (
            "Muted."
            if verb == "mute"
            else f"Volume set to {new}."
            if verb == "set"
            else f"Turned the volume {verb} to {new}."
        )
        return say(
            text,
            f"volume.{verb}",
            "done",
            target=dev.id,
            params={"volume": new},
            result={"changed": changed, "state": dict(dev.state)},
        )
