"""SkillResponder: the Responder stage. Dispatches intent -> skill, handles follow-ups to clarifying questions, and
falls back to "Sorry, I can't do that." for intents no skill handles or NLU results below the confidence threshold."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.core.stages.respond import Response
from assistant.errors import RespondError
from assistant.skills.base import Skill, Turn
from assistant.skills.fallback import FallbackSkill
from assistant.skills.general import GeneralSkill
from assistant.skills.home_commands import HomeCommandsSkill
from assistant.skills.home_control import HomeControlSkill
from assistant.skills.lists import ListsSkill
from assistant.skills.media import MediaSkill
from assistant.skills.music import MusicSkill
from assistant.skills.time_date import TimeDateSkill
from assistant.skills.timers import TimersSkill
from assistant.skills.voices import VoicesSkill
from assistant.skills.weather import WeatherProvider, WeatherSkill
from assistant.understanding.resolve.catalog import DEFAULT_CATALOG_DIR, MusicCatalog

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.core.stages.nlu import NluResult
    from assistant.core.stages.resolve import ResolveResult


class SkillResponder:
    """Responder stage over the built-in skills.

    Args:
        min_confidence: NLU results below this confidence get the fallback answer (status `unsupported`).
        weather: a WeatherProvider; default: the offline one, which answers "I can't reach the weather service".
        catalog_dir: folder with music.jsonl (default assistant/data/catalogs); ignored if `music` is given.
        music: a MusicCatalog to share with the CatalogResolver (saves loading it twice).
    """

    name = "skills"
    version = "0.1.0"

    def __init__(
        self,
        min_confidence: float = 0.5,
        weather: WeatherProvider | None = None,
        catalog_dir: str | Path | None = None,
        music: MusicCatalog | None = None,
    ) -> None:
        self.min_confidence = min_confidence
        if music is None:
            path = Path(catalog_dir or DEFAULT_CATALOG_DIR) / "music.jsonl"
            music = MusicCatalog.load(path) if path.exists() else MusicCatalog([])
        self.fallback = FallbackSkill()
        self.home_commands = HomeCommandsSkill()
        self.timers = TimersSkill()
        self.voices = VoicesSkill()
        self.skills: list[Skill] = [
            self.home_commands,
            HomeControlSkill(),
            TimeDateSkill(),
            self.timers,
            ListsSkill(),
            MusicSkill(music),
            MediaSkill(),
            WeatherSkill(weather),
            GeneralSkill(),
            self.voices,
        ]
        self.by_intent: dict[str, Skill] = {}
        for skill in self.skills:
            for intent in skill.intents:
                self.by_intent[intent] = skill
        self.by_name: dict[str, Skill] = {s.name: s for s in self.skills}

    def intents(self) -> list[str]:
        """Intents some skill handles."""
        return sorted(self.by_intent)

    def run_due(self, now, home, data_dir) -> list[dict]:
        """Carry out the scheduled home commands due at `now` (the runner calls this before every turn)."""
        from assistant.skills.home_commands import run_command
        from assistant.skills.scheduled import run_due

        return run_due(now, home, data_dir, run_command)

    def respond(self, nlu: NluResult, entities: ResolveResult, context: TurnContext) -> Response:
        turn = Turn(nlu, entities, context)
        try:
            prev = context.previous
            if prev is not None and prev.expects_reply and prev.pending:
                skill = self.by_name.get(str(prev.pending.get("skill")))
                if skill is not None:
                    answer = skill.follow_up(turn, prev.pending)
                    if answer is not None:
                        asked = prev.pending.get("intent")
                        return replace(answer, answers_intent=str(asked)) if asked else answer
            # the home grammar, when it parses the sentence with certainty, decides (see assistant/home/grammar.py)
            answer = self.home_commands.try_handle(turn) or self.timers.try_handle(turn) or self.voices.try_handle(turn)
            if answer is not None:
                return answer
            if nlu.confidence < self.min_confidence:
                return self.fallback.low_confidence(turn, self.min_confidence)
            answer = self.voices.guard_private(turn)
            if answer is not None:
                return answer
            skill = self.by_intent.get(nlu.intent)
            if skill is None:
                return self.fallback.handle(turn)
            return skill.handle(turn)
        except RespondError:
            raise
        except Exception as e:  # a skill bug must reach the trace with a code, not crash the turn loop silently
            raise RespondError(
                "skill-failed", f"skill for intent {nlu.intent!r} failed: {type(e).__name__}: {e}", stage="respond"
            ) from e

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "min_confidence": self.min_confidence,
            "skills": {s.name: sorted(s.intents) for s in self.skills},
        }


def create(build) -> SkillResponder:
    """Registry factory (`respond.backend: skills`); music comes from the resolver's catalogs when it runs."""
    resolver = build.built.get("resolve")
    return SkillResponder(min_confidence=build.settings.nlu.min_confidence, music=getattr(resolver, "music", None))
