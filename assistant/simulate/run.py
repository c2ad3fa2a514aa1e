"""The simulation loop: households x days x goals, each request spoken, recognised and run through the real pipeline.

Time is simulated (`now=` on every turn): a member's morning routine is a few requests seconds apart (one session),
daytime requests are hours apart, reactions follow the answer after a second or two, a barge-in starts before the
answer has ended. The ground truth of every turn goes to `sim_truth.jsonl` beside the trace store (the trace schema
is not touched); the households to `households.json`.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from assistant.config import Settings, TraceSettings
from assistant.core.endpointer import AFTER_SPEECH_WINDOW_S
from assistant.learning.feedback import FEEDBACK_QUESTION
from assistant.simulate.goals import Goal, GoalBank
from assistant.simulate.ground_truth import Verdict, assess, caching_oracle, response_seconds, wer
from assistant.simulate.household import NOISE_PROFILES, Household, Member, VoiceSpec, make_household
from assistant.simulate.speech_cache import CachingAsr, NoiseSpec, SpeechCache
from assistant.simulate.user import Reaction, SimUser

SIM_STAGES = ["asr", "nlu", "resolve", "respond"]
TV_LINES = [
    "and now for the weather in the north of the country",
    "we will be right back after these messages",
    "the match ended two nil after extra time",
    "she said she would call him first thing tomorrow",
    "prices are expected to rise again next month",
    "welcome back to the show everybody",
    "police are asking anyone with information to come forward",
    "turn left at the end of the road she told him",
    # more of what a television says (news, drama, sport, adverts, quiz shows), so a false wake is not one of eight
    # memorable sentences: the labeller must learn what a false wake looks like, not which lines the TV says
    "the minister will make a statement later this afternoon",
    "i never wanted any of this to happen to us",
    "and that is a yellow card for the defender",
    "call now and get a second one absolutely free",
    "the answer is paris for one hundred points",
    "traffic is building up on the ring road this morning",
    "you have to tell her the truth before it is too late",
    "scientists say the discovery could change everything",
    "he shoots and it is saved by the keeper",
    "stay tuned for the rest of the programme",
    "where were you on the night of the fourteenth",
    "temperatures will drop below freezing overnight",
    "this offer ends on sunday so do not miss out",
    "the final whistle goes and the home crowd erupts",
    "i think we should go back to the house now",
    "shares fell sharply after the announcement",
    "the contestants have sixty seconds on the clock",
    "nobody leaves this room until we find out who did it",
    "rain will spread from the west during the evening",
    "our reporter is live at the scene",
    "add a little salt and let it simmer for ten minutes",
    "that was the best performance of the night",
    "the council has promised to review the decision",
    "get the lights and lock the door behind you she whispered",
    "play resumes after a short break for the rain",
    "i will be with you in just a moment",
    "the garden centre is open every day until six",
    "what do you think happened to the money",
    "and the winner of this year's award is",
    "a new study suggests that coffee may be good for you",
    "put the music on loud and let's dance he laughed",
    "we'll have more on that story in the next hour",
]


@dataclass
class SimConfig:
    households: int = 1
    days: int = 1
    seed: int = 0
    max_turns: int | None = None
    voices: tuple[str, ...] = ("piper", "espeak")
    feedback_rate: float = 0.15
    """pipeline feedback.ask_rate during the simulation."""
    false_wake_rate: float = 0.3
    """Expected false wakes (TV speech the device took for a request) per household and day."""
    start: datetime = field(default_factory=lambda: datetime(2025, 3, 3))
    tts: bool = False
    """Also synthesize every answer with the pipeline's TTS (slow; the simulation only needs its length)."""
    n_members: int | None = None
    first_day: int = 0
    """Run days first_day .. first_day + days - 1 (the agendas of the earlier days are still drawn, so day k's goals
    are the same whether or not the earlier days ran: the held-out test days of the rewrite A/B)."""
    first_household: int = 0
    """Household indices first_household .. first_household + households - 1 (held-out households)."""
    member_users: bool = False
    """Set the pipeline's user_id to the speaking member ("h0-alex") instead of the household: a per-person history
    (speaker identification assumed perfect), which the personal rewrite layer needs."""
    identify_speakers: bool = False
    """Each member enrolls their simulated voice (three clean sentences, with the stage's noisy copies) and the
    speaker stage (assistant/speakers) names who spoke every request, instead of assuming it: the turn's user is the
    identified member, or the household for an unknown voice (so member_users' per-person history includes
    identification errors)."""
    own_voices: bool = False
    """Members whose synthetic voices would be one speaker (Piper ships one voice, joe) get their own: every request
    of the n-th member is resampled by VOICE_WARPS[n] (vocal tract length and pitch, as speaker augmentation does)."""
    habitual_rephrase: float = 0.0
    """Probability that a person's rephrasing is the goal's habitual one (population-wide), not a random other one."""
    shared_goals: int = 0
    """Popular requests shared across the population: each member also has each of these goals (said the popular way)
    as a daily habit with probability 0.5, so several households repeat the same phrasings (and their failures)."""
    cut_off_rate: float = 0.0
    """Share of requests said with a pause mid-sentence long enough for the endpointer to end the request there: the
    device hears only the words before it (truth `cut_off`, failure point `endpointing` when the turn then fails)."""
    after_speech_rate: float = 0.04
    """Share of turns not cut off after which the person says something more within a second and a half of the
    endpoint ("... please", a word to someone else); a cut-off request's speaker always goes on (the rest of the
    sentence). The device records either as a `speech-after-endpoint` event (what replay and listen record)."""
    keep_audio: bool = False
    """Keep every request's audio beside the trace store, as a device with `traces.keep_request_audio` does (the
    labeller re-decodes it); `simulate` turns it on, the rewrite A/B leaves it off."""
    personal_meanings: float = 0.0
    """Probability that a member has each kind of personal meaning ("the big light", "Portland" = Maine, "my usual";
    simulate/meanings.py), said daily; members of one household often disagree."""
    room_words: float = 0.2
    """Probability that a member calls one room by a word the home does not list ("the den" for the living room;
    simulate/meanings.ROOM_WORDS): the room does not resolve, and the person names it as the home does."""
    chain_rate: float = 0.5
    """Probability that a routine request follows the previous one right after its answer (0.8-3 s, as people chain
    "turn on the lights" and "what's the weather") instead of 15-60 s later: a new goal as quick as a retry."""


@dataclass
class _Item:
    when: datetime
    member: Member | None
    goal: Goal | None
    room: str
    routine: bool = False
    chained: bool = False
    """Said right after the previous episode's answer (SimConfig.chain_rate), whatever `when` says."""


VOICE_WARPS = (1.0, 0.85, 1.18, 0.78, 1.3)


def warp_voice(samples, factor: float):
    """Resample by `factor` and play at the same rate: formants and pitch / factor, duration x factor."""
    if abs(factor - 1.0) < 1e-6:
        return samples
    import numpy as np
    import soxr

    y = soxr.resample(samples.astype(np.float32) / 32768.0, 16000, int(round(16000 * factor)))
    return (np.clip(y, -1, 1) * 32767).astype(np.int16)


ENROLL_SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "turn on the lights in the kitchen and play some music",
    "what will the weather be like tomorrow morning",
)


def cut_point(text: str, rng: random.Random, rate: float) -> str | None:
    """With probability `rate`, the words before a mid-sentence pause ("set a timer for ... ten minutes"): at least
    two words, at least one left unsaid; None for requests of fewer than three words or no pause."""
    words = text.split()
    if rate <= 0 or len(words) < 3 or rng.random() >= rate:
        return None
    return " ".join(words[: rng.randint(2, len(words) - 1)])


def retake(voice: VoiceSpec, take: int) -> VoiceSpec:
    """The voice of the `take`-th saying of the same words in one goal: people repeat a request more slowly (and
    Piper samples afresh), so a repeat is new audio with new noise, not the cached first take."""
    if take <= 0:
        return voice
    slower = 1.0 + 0.1 * min(take, 3)
    if voice.engine == "piper":
        return replace(voice, length_scale=round(voice.length_scale * slower, 2))
    return replace(voice, rate_wpm=int(round(voice.rate_wpm / slower)))


def speech_after_endpoint(cut: bool, rng: random.Random, rate: float) -> float | None:
    """Milliseconds after the endpoint at which the device hears the person speak again, or None. The endpointer
    ends a request after ~0.56 s of silence; a mid-sentence pause of 0.6-2.6 s then resumes 40-2,040 ms after it,
    and the device records it only within AFTER_SPEECH_WINDOW_S (1.5 s): about a quarter of cut-offs go unrecorded,
    as when the person thinks longer, or on a device that does not listen after the endpoint."""
    if cut:
        gap = (rng.uniform(0.6, 2.6) - 0.56) * 1000
        return round(gap, 1) if gap <= AFTER_SPEECH_WINDOW_S * 1000 else None
    if rng.random() < rate:
        return round(rng.uniform(0.2, 1.5) * 1000, 1)
    return None


def sim_settings(settings: Settings, out_dir: Path, cfg: SimConfig, household_id: str) -> Settings:
    stages = [s for s in settings.stages if s in SIM_STAGES + (["tts"] if cfg.tts else [])]
    return settings.model_copy(
        update={
            "stages": stages,
            "feedback": settings.feedback.model_copy(update={"ask_rate": cfg.feedback_rate}),
            "traces": TraceSettings(db=str((out_dir / "traces.db").resolve()), keep_request_audio=cfg.keep_audio),
            "session": settings.session.model_copy(update={"user_id": household_id, "device_id": None}),
        }
    )


def _default_factory(settings: Settings, home: Path, data_dir: Path, **kw: Any):
    from assistant.core.runner import Runner

    return Runner(settings, home, data_dir=data_dir, load_audio_stages=False, **kw)


class Simulator:
    def __init__(
        self,
        settings: Settings,
        out_dir: Path,
        cfg: SimConfig,
        cache_dir: Path | None = None,
        pipeline_factory: Callable[..., Any] | None = None,
        progress: Callable[[str], None] | None = None,
        wrap: dict[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.cache = SpeechCache(cache_dir or self.out / "speech_cache")
        self.factory = pipeline_factory or _default_factory
        """(settings, home, data_dir, backends=..., wrap=...) -> Runner; the default builds one from the registry."""
        self.wrap = dict(wrap or {})
        """Adapters composed around the household runners' backends (tests: an NLU that gets one request wrong)."""
        self.progress = progress
        self.bank = GoalBank.load()
        self._asr = None
        self.turns = 0
        self.truth_path = self.out / "sim_truth.jsonl"
        self._truth_file = None
        self.last_time: datetime | None = None
        self.pipeline_seconds = 0.0
        self.answer_end = cfg.start
        """When the last answer heard ended (or was cut short by a barge-in)."""
        self.rewriter: Any = None
        """The rewrite stage of every household's runner; None = no rewrite stage."""
        self.counterfactual = False
        """For every turn whose request was rewritten, also run the same transcript without rewriting (a second
        pipeline per household, own state and traces) and record its verdict in the truth as `no_rewrite`."""
        self._cf = None
        self.shadow_rewriter: Any = None
        """Tuning: for every request the pipeline ran unrewritten, ask this rewriter for its best candidate (applied or
        not), run the candidate on the counterfactual pipeline and record its verdict in the truth as `shadow`."""

    # -- pipelines ------------------------------------------------------------------------------------------------
    def _pipeline(self, hh: Household):
        s = sim_settings(self.settings, self.out, self.cfg, hh.id)
        data_dir = self.out / "households" / hh.id
        backends = {"asr": self._cached_asr(s), "rewrite": self.rewriter}
        if self.cfg.identify_speakers:
            backends["speaker"] = self._speaker_stage(hh, s, data_dir)
        return self.factory(s, hh.home_path, data_dir, backends=backends, wrap=self.wrap)

    def _speaker_stage(self, hh: Household, s: Settings, data_dir: Path):
        """The household's speaker stage, every member enrolled from three clean sentences in their own voice."""
        from assistant.speakers.identify import SpeakerIdentifier
        from assistant.speakers.voices import VoiceStore

        if getattr(self, "_speaker_encoder", None) is None:
            from assistant.backends.speaker.resemblyzer_onnx import ResemblyzerOnnx

            self._speaker_encoder = ResemblyzerOnnx(s.resolve_path(s.speaker.model_dir))
        ident = SpeakerIdentifier(
            self._speaker_encoder, VoiceStore(data_dir), s.speaker.threshold, s.speaker.min_seconds
        )
        for m in hh.members:
            audio = [self._own_voice(hh, m.id, self.cache.speech(t, m.voice, NoiseSpec())[0]) for t in ENROLL_SENTENCES]
            embs = [e for a in audio for e in ident.enrollment_embeddings(a)]
            seconds = sum(len(a) for a in audio) / 16000
            ident.store.enroll(f"{hh.id}-{m.id}", embs, seconds, ident.version, replace=True, utterances=len(audio))
        return ident

    def _own_voice(self, hh: Household, member: str | None, samples):
        if not self.cfg.own_voices or member is None:
            return samples
        i = [m.id for m in hh.members].index(member)
        return warp_voice(samples, VOICE_WARPS[i % len(VOICE_WARPS)])

    def _cached_asr(self, s: Settings) -> CachingAsr:
        """One ASR backend (from the registry) for every household, behind the results cache."""
        if self._asr is None:
            from assistant.core import registry

            self._asr = CachingAsr(registry.create("asr", s.asr.backend, registry.Build(settings=s)), self.cache)
        return self._asr

    def _cf_pipeline(self, hh: Household):
        cf_out = self.out / "no_rewrite"
        s = sim_settings(self.settings, cf_out, self.cfg, hh.id)
        s = s.model_copy(update={"stages": [x for x in s.stages if x != "asr"]})
        return self.factory(s, hh.home_path, cf_out / "households" / hh.id, backends={"rewrite": None}, wrap=self.wrap)

    # -- the run ---------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        self._truth_file = self.truth_path.open("w", encoding="utf-8")
        households = []
        try:
            for i in range(self.cfg.first_household, self.cfg.first_household + self.cfg.households):
                hh = make_household(
                    i,
                    self.cfg.seed,
                    self.bank,
                    self.out / "homes",
                    self.cfg.voices,
                    self.cfg.n_members,
                    self.cfg.shared_goals,
                    self.cfg.personal_meanings,
                    self.cfg.room_words,
                )
                households.append(hh.to_dict())
                if self._done():
                    break
                self._run_household(hh)
        finally:
            self._truth_file.close()
            (self.out / "households.json").write_text(json.dumps(households, indent=1))
        wall = time.perf_counter() - t0
        stats = {
            "turns": self.turns,
            "wall_seconds": round(wall, 2),
            "turns_per_second": round(self.turns / wall, 3) if wall else None,
            "pipeline_seconds": round(self.pipeline_seconds, 2),
            "cache": {k: round(v, 2) if isinstance(v, float) else v for k, v in self.cache.stats.items()},
            "cache_entries": self.cache.counts(),
            "sim_end": self.last_time.isoformat() if self.last_time else None,
            "config": {
                "households": self.cfg.households,
                "days": self.cfg.days,
                "seed": self.cfg.seed,
                "max_turns": self.cfg.max_turns,
                "voices": list(self.cfg.voices),
                "feedback_rate": self.cfg.feedback_rate,
                "false_wake_rate": self.cfg.false_wake_rate,
            },
        }
        (self.out / "run_stats.json").write_text(json.dumps(stats, indent=1))
        self.cache.close()
        return stats

    def _done(self) -> bool:
        return self.cfg.max_turns is not None and self.turns >= self.cfg.max_turns

    def _run_household(self, hh: Household) -> None:
        p = self._pipeline(hh)
        self._oracle = caching_oracle(p.nlu)
        self._cf = self._cf_pipeline(hh) if (self.counterfactual or self.shadow_rewriter is not None) else None
        if self.shadow_rewriter is not None and hasattr(self.shadow_rewriter, "attach"):
            self.shadow_rewriter.attach(self._cf.nlu, self._cf.resolver)  # the gate's NLU features, as in the arms
        rng = random.Random(f"run:{self.cfg.seed}:{hh.id}")
        users = {
            m.id: SimUser(m, random.Random(f"user:{self.cfg.seed}:{hh.id}:{m.id}"), self.cfg.habitual_rephrase)
            for m in hh.members
        }
        gap = random.Random(f"gap:{self.cfg.seed}:{hh.id}")  # its own stream: the agendas are the same without it
        end = self.cfg.start
        try:
            for day in range(self.cfg.first_day + self.cfg.days):
                t = self.cfg.start + timedelta(days=day)
                agenda = self._agenda(hh, day, rng)
                if day < self.cfg.first_day:
                    continue
                for item in agenda:
                    if self._done():
                        return
                    if item.chained and item.goal is not None:
                        t = max(t, end + timedelta(seconds=gap.uniform(0.8, 3.0)))
                    else:
                        t = max(t, end + timedelta(seconds=gap.uniform(5, 20)), item.when)
                    if item.goal is None:
                        end = self._false_wake(p, hh, item, t, random.Random(f"fw:{self.cfg.seed}:{item.when}"))
                    else:
                        end = self._episode(p, hh, users[item.member.id], item, t, rng, day)
                    t = end
        finally:
            p.close()
            if self._cf is not None:
                self._cf.close()
                self._cf = None

    def _agenda(self, hh: Household, day: int, rng: random.Random) -> list[_Item]:
        base = self.cfg.start + timedelta(days=day)
        items: list[_Item] = []
        feasible = list(hh.goals.values())
        for m in hh.members:
            for part, (h0, h1), p_goal in (("morning", (6.5, 8.5), 0.8), ("evening", (18.0, 22.5), 0.7)):
                when = base + timedelta(hours=rng.uniform(h0, h1))
                room = rng.choice(m.usual_rooms)
                chain = random.Random(f"chain:{self.cfg.seed}:{hh.id}:{day}:{m.id}:{part}")
                first = True
                for gid in m.habits.get(part, []):
                    if rng.random() < p_goal:
                        chained = not first and chain.random() < self.cfg.chain_rate
                        items.append(_Item(when, m, hh.goal(gid), room, routine=True, chained=chained))
                        when += timedelta(seconds=rng.uniform(15, 60))
                        first = False
            for gid in m.habits.get("day", []):
                if rng.random() < 0.35:
                    items.append(
                        _Item(base + timedelta(hours=rng.uniform(9, 17)), m, hh.goal(gid), rng.choice(m.usual_rooms))
                    )
            for _ in range(rng.choice((0, 1, 1, 2))):
                g = rng.choice(feasible)
                items.append(_Item(base + timedelta(hours=rng.uniform(8, 22)), m, g, rng.choice(m.usual_rooms)))
        n_fw = _poisson(rng, self.cfg.false_wake_rate)
        for _ in range(n_fw):
            items.append(
                _Item(
                    base + timedelta(hours=rng.uniform(10, 23)),
                    None,
                    None,
                    rng.choice(sorted({s.area for s in hh.home.satellites()})),
                )
            )
        items.sort(key=lambda it: it.when)
        return items

    # -- one turn --------------------------------------------------------------------------------------------------
    def _noise(self, m: Member | None, rng: random.Random) -> NoiseSpec:
        prof = NOISE_PROFILES[m.noise if m else "family"]
        snr, color, _w = rng.choices(prof, weights=[w for *_x, w in prof])[0]
        return NoiseSpec(snr, color)

    def _turn(
        self,
        p,
        hh: Household,
        text: str,
        voice: VoiceSpec,
        noise: NoiseSpec,
        room: str,
        t: datetime,
        meta: dict[str, Any],
        heard_text: str | None = None,
        take: int = 0,
    ) -> tuple[dict[str, Any], dict[str, Any], float]:
        """`heard_text`: the words before a pause the endpointer cut the request at (None: all of `text`); `take`:
        how many times the person said these words before in this goal."""
        voice = retake(voice, take)
        samples, synth_hit = self.cache.speech(heard_text or text, voice, noise)
        samples = self._own_voice(hh, meta.get("member"), samples)
        p.device_id = hh.satellite_in(room)
        if self.cfg.member_users and meta.get("member") and not self.cfg.identify_speakers:
            p.user_id = f"{hh.id}-{meta['member']}"
        s0 = time.perf_counter()
        rec = p.run_audio(
            samples, source={"kind": "simulated", "household": hh.id, "member": meta.get("member")}, now=t
        )
        self.pipeline_seconds += time.perf_counter() - s0
        self.turns += 1
        self.last_time = t
        truth = {
            "turn_id": rec["turn_id"],
            "session_id": rec["session_id"],
            "household": hh.id,
            **meta,
            "t": t.isoformat(timespec="seconds"),
            "spoken": text,
            **({"cut_off": True, "audio_text": heard_text} if heard_text else {}),
            "voice": voice.key(),
            "noise": noise.key(),
            "device_id": p.device_id,
            "synth_cached": synth_hit,
            "asr_cached": bool(getattr(p.asr, "last_hit", False)),
            "transcript": rec.get("transcript"),
            "intent": rec.get("intent"),
            "slots": rec.get("slots"),
            "action": {k: (rec.get("action") or {}).get(k) for k in ("name", "status", "target")},
            "response_text": rec.get("response_text"),
            "error": (rec.get("error") or {}).get("code"),
            "wer": wer(text, rec.get("transcript") or ""),
        }
        if rec.get("rewrite"):
            truth["rewrite"] = rec["rewrite"]
        if self.cfg.identify_speakers:
            truth["speaker"] = rec.get("speaker")
        if self.progress and self.turns % 25 == 0:
            self.progress(f"{self.turns} turns")
        speech_s = len(samples) / 16000
        return rec, truth, speech_s

    def _write(self, truth: dict[str, Any]) -> None:
        self._truth_file.write(json.dumps(truth, ensure_ascii=False, default=str) + "\n")
        self._truth_file.flush()

    def _heard(
        self,
        p,
        rec: dict[str, Any],
        truth: dict[str, Any],
        reaction: Reaction,
        t: datetime,
        speech_s: float,
        rng: random.Random,
    ) -> datetime:
        """Record the reaction (and a barge-in event) on the turn; return when the person speaks next."""
        answer_at = t + timedelta(seconds=speech_s + 0.6)
        truth["reaction"] = reaction.kind
        if reaction.barge_in_ms is not None and rec.get("response_text"):
            p.store.add_event(
                rec["turn_id"], "barge-in", {"offset_ms": reaction.barge_in_ms, "simulated": True}, reaction.barge_in_ms
            )
            truth["barge_in_ms"] = reaction.barge_in_ms
            self.answer_end = answer_at + timedelta(milliseconds=reaction.barge_in_ms)
            return self.answer_end + timedelta(seconds=rng.uniform(0.2, 0.8))
        self.answer_end = answer_at + timedelta(seconds=response_seconds(rec.get("response_text")))
        return self.answer_end + timedelta(seconds=rng.uniform(0.8, 3.0))

    def _episode(
        self, p, hh: Household, user: SimUser, item: _Item, t: datetime, rng: random.Random, day: int
    ) -> datetime:
        """Say the goal's requests until done or given up; return when the last answer ended."""
        goal, m = item.goal, item.member
        self.answer_end = t
        episode = f"{hh.id}:{day}:{m.id}:{item.when.strftime('%H%M%S')}"
        # Per-episode random streams: what happens in one episode (e.g. a randomly sampled feedback question) does
        # not shift the noise, timing and reactions of later ones, so a second run hits the speech cache.
        rng = random.Random(f"episode:{self.cfg.seed}:{episode}")
        user.rng = random.Random(f"user:{self.cfg.seed}:{episode}")
        tried: list[str] = []
        text, role = user.first_utterance(goal), "request"
        expected_feedback: str | None = None
        last: Verdict | None = None
        for attempt in range(m.max_tries + 4):
            if self._done():
                break
            meta = {
                "member": m.id,
                "episode": episode,
                "attempt": attempt,
                "role": role,
                "goal": goal.to_dict(),
                "routine": item.routine,
            }
            if role == "feedback_answer":
                meta["expected_feedback"] = expected_feedback
            cut = (
                cut_point(text, random.Random(f"cut:{self.cfg.seed}:{episode}:{attempt}"), self.cfg.cut_off_rate)
                if role in ("request", "rephrase", "repeat")
                else None
            )
            take = tried.count(text) if role in ("request", "rephrase", "repeat") else 0
            rec, truth, speech_s = self._turn(p, hh, text, m.voice, self._noise(m, rng), item.room, t, meta, cut, take)
            after_ms = speech_after_endpoint(
                bool(cut), random.Random(f"after:{self.cfg.seed}:{episode}:{attempt}"), self.cfg.after_speech_rate
            )
            if after_ms is not None:
                p.store.add_event(
                    rec["turn_id"], "speech-after-endpoint", {"offset_ms": after_ms, "simulated": True}, after_ms
                )
                truth["speech_after_endpoint_ms"] = after_ms
            if role in ("feedback_answer", "cancel"):
                v = _assess_control(role, expected_feedback, text, rec)
            else:
                v = assess(goal, text, rec, hh.home, self._oracle, self.settings.nlu.min_confidence, role)
            truth.update(v.to_dict())
            if cut and v.defect:  # the words after the pause never reached the device
                truth["failure_point"], truth["reason"] = "endpointing", f"cut off after {cut!r}: {v.reason}"
            truth["wer"] = v.stages.get("wer")
            if self._cf is not None and rec.get("rewrite"):
                self._device_id, self._user_id = p.device_id, p.user_id
                truth["no_rewrite"] = self._counterfactual(hh, goal, role, expected_feedback, text, rec, t)
            elif (
                self.shadow_rewriter is not None and role in ("request", "rephrase", "repeat") and rec.get("transcript")
            ):
                self._device_id, self._user_id = p.device_id, p.user_id
                truth["shadow"] = self._shadow(hh, goal, role, text, rec, t)
            if role in ("request", "rephrase", "repeat"):
                tried.append(text)
            if role == "feedback_answer" and last is not None:
                reaction = user.after_feedback(goal, last, tried)
            elif role == "cancel":
                reaction = Reaction("done")
            else:
                last = v
                reaction = user.react(goal, v, rec, tried, hh.home)
            t = self._heard(p, rec, truth, reaction, t, speech_s, rng)
            self._write(truth)
            if reaction.kind in ("done", "give-up", "ignore-feedback", "walk-away") or reaction.text is None:
                break
            role = {
                "rephrase": "rephrase",
                "repeat": "repeat",
                "cancel": "cancel",
                "clarify-answer": "clarify_answer",
                "confirm-answer": "confirm_answer",
                "feedback-answer": "feedback_answer",
            }[reaction.kind]
            expected_feedback = reaction.feedback
            text = reaction.text
        # when the last answer ended (or was cut short), not when a reaction to it would have come: the next request
        # is timed from there (a chained one 0.8-3 s later, exactly like a retry)
        return self.answer_end

    def _counterfactual(
        self,
        hh: Household,
        goal: Goal,
        role: str,
        expected_feedback: str | None,
        text: str,
        rec: dict[str, Any],
        t: datetime,
    ) -> dict[str, Any]:
        """The same transcript without rewriting (the counterfactual of an applied rewrite): its verdict."""
        cf = self._cf
        cf.device_id, cf.user_id = self._device_id, self._user_id
        r2 = cf.run_text(rec.get("transcript") or "", now=t)
        r2 = {**r2, "transcript": rec.get("transcript")}
        if role in ("feedback_answer", "cancel"):
            v = _assess_control(role, expected_feedback, text, r2)
        else:
            v = assess(goal, text, r2, hh.home, self._oracle, self.settings.nlu.min_confidence, role)
        return {
            "defect": v.defect,
            "outcome": v.outcome,
            "failure_point": v.failure_point,
            "intent": r2.get("intent"),
            "action": {k: (r2.get("action") or {}).get(k) for k in ("name", "status", "target")},
        }

    def _shadow(
        self, hh: Household, goal: Goal, role: str, text: str, rec: dict[str, Any], t: datetime
    ) -> dict[str, Any] | None:
        """The shadow rewriter's best candidate for this transcript and the verdict had it been applied."""
        from assistant.core.context import TurnContext
        from assistant.text import normalize

        ctx = TurnContext(
            home=self._cf.home,
            device_id=self._device_id,
            user_id=self._user_id,
            now=t,
            session_id="shadow",
            data_dir=self.out / "no_rewrite" / "households" / hh.id,
        )
        res = self.shadow_rewriter.rewrite(rec["transcript"], self._user_id, ctx)
        if not res.candidate or res.score is None or normalize(res.candidate) == normalize(rec["transcript"]):
            return None
        if res.details.get("guard"):  # the guardrails would refuse it at any threshold
            return None
        cf = self._cf
        cf.device_id, cf.user_id = self._device_id, self._user_id
        r2 = {**cf.run_text(res.candidate, now=t), "transcript": rec["transcript"]}
        v = assess(goal, text, r2, hh.home, self._oracle, self.settings.nlu.min_confidence, role)
        layers = {k: d.get("score") for k, d in res.details.items() if isinstance(d, dict) and "score" in d}
        return {
            "candidate": res.candidate,
            "score": round(res.score, 4),
            "layers": layers,
            "layer": next(
                (
                    d.get("layer")
                    for d in res.details.values()
                    if isinstance(d, dict) and d.get("text") == res.candidate
                ),
                None,
            ),
            "features": (res.details.get("gate") or {}).get("features"),
            "defect": v.defect,
        }

    def _false_wake(self, p, hh: Household, item: _Item, t: datetime, rng: random.Random) -> datetime:
        text = rng.choice(TV_LINES)
        voice = rng.choice([VoiceSpec("piper", length_scale=1.0), VoiceSpec("espeak", "en-gb-x-rp", 160, 50)])
        if voice.engine not in self.cfg.voices:
            voice = (
                VoiceSpec(self.cfg.voices[0])
                if self.cfg.voices[0] == "piper"
                else VoiceSpec("espeak", "en-gb-x-rp", 160, 50)
            )
        meta = {
            "member": None,
            "episode": f"{hh.id}:fw:{t.isoformat()}",
            "attempt": 0,
            "role": "false_wake",
            "goal": None,
            "routine": False,
        }
        rec, truth, speech_s = self._turn(p, hh, text, voice, NoiseSpec(20.0, "pink"), item.room, t, meta)
        v = assess(None, text, rec, hh.home)
        truth.update(v.to_dict())
        truth["wer"] = v.stages.get("wer")
        # someone in the room tells it to stop (over a long answer, a barge-in; after a short one, "stop" anyway)
        answer_s = response_seconds(rec.get("response_text"))
        if answer_s > 0 and rng.random() < 0.3 and not self._done():
            barge = round(rng.uniform(500, 1500)) if answer_s > 2.5 else None
            reaction = Reaction("cancel", "stop", barge_in_ms=barge)
            t = self._heard(p, rec, truth, reaction, t, speech_s, rng)
            self._write(truth)
            m = rng.choice(hh.members)
            meta = {
                "member": m.id,
                "episode": truth["episode"],
                "attempt": 1,
                "role": "cancel",
                "goal": None,
                "routine": False,
            }
            rec2, truth2, speech2 = self._turn(p, hh, "stop", m.voice, self._noise(m, rng), item.room, t, meta)
            truth2.update(_assess_control("cancel", None, "stop", rec2).to_dict())
            t = self._heard(p, rec2, truth2, Reaction("done"), t, speech2, rng)
            self._write(truth2)
            return t
        t = self._heard(p, rec, truth, Reaction("none"), t, speech_s, rng)
        self._write(truth)
        return t


def _assess_control(role: str, expected: str | None, spoken: str, rec: dict[str, Any]) -> Verdict:
    """Feedback answers and "stop / never mind": did the pipeline take them as meant?"""
    action = rec.get("action") or {}
    stages = {"wer": wer(spoken, rec.get("transcript") or "")}
    if role == "feedback_answer":
        ok = action.get("name") == "feedback.record" and (action.get("params") or {}).get("answer") == expected
    else:
        ok = rec.get("intent") in ("general_commandstop", "general_negate", "general_dontcare") or (
            action.get("name") in ("stop", "none") and action.get("status") == "done"
        )
    if ok:
        return Verdict("achieved", False, "correct", stages)
    point = "asr" if (rec.get("error") or {}).get("stage") == "asr" or (stages["wer"] or 0) > 0.3 else "nlu"
    return Verdict("wrong", True, point, stages, f"{action.get('name')} [{action.get('status')}]")


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    k, p, l_ = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= l_:
            return k
        k += 1


def simulate(
    settings: Settings,
    out_dir: Path,
    cfg: SimConfig,
    cache_dir: Path | None = None,
    pipeline_factory=None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the simulation and write the report; returns {"stats": ..., "report": ...}."""
    from assistant.simulate.report import build_report

    sim = Simulator(settings, out_dir, cfg, cache_dir, pipeline_factory, progress)
    stats = sim.run()
    report = build_report(Path(out_dir), stats)
    return {"stats": stats, "report": report}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


__all__ = ["FEEDBACK_QUESTION", "SimConfig", "Simulator", "simulate"]
