"""Wyoming intent handling: Transcript(text) -> Handled(answer) / NotHandled(answer), as a conversation agent.

The text goes through the same runner as a typed request (`assistant say`): rewrite, NLU, resolution, rerank,
skills; the home's states change and the turn is traced (source kind `wyoming`, service `handle`, the client's
address). No speech is synthesized here: Home Assistant speaks the answer with its own TTS (which may be ours).
NotHandled means the assistant could not do it (an error, or a request no skill supports: action status
`unsupported`); its text says why, for Home Assistant to show or speak.

The device spoken to is the runner's own unless the Transcript's context names one of the home's satellites
(`{"device_id": "kitchen.speaker"}`): "turn on the light here" then means that satellite's room.
"""

from __future__ import annotations

from datetime import datetime

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import HandleModel, HandleProgram

from assistant.apps.wyoming.service import PROJECT, Send, Service, source
from assistant.core.request import Request
from assistant.errors import AssistantError

NOT_HANDLED_STATUSES = ("unsupported",)
MAX_TEXT = 1000


def program(service: Service) -> HandleProgram:
    nlu = service.runner.nlu
    return HandleProgram(
        name="assistant-handle",
        description="NLU -> entity resolution -> context rerank -> skills (the voice assistant's brain)",
        attribution=PROJECT,
        installed=True,
        version=service.version,
        models=[
            HandleModel(
                name="assistant-nlu",
                description=f"{getattr(nlu, 'name', 'nlu')} {getattr(nlu, 'version', '')}".strip(),
                attribution=PROJECT,
                installed=nlu is not None,
                version=getattr(nlu, "version", None),
                languages=["en"],
            )
        ],
        supports_home_control=True,
    )


class HandleHandler:
    def __init__(self, service: Service, client: str) -> None:
        self.service = service
        self.client = client

    async def handle(self, event: Event, send: Send) -> None:
        transcript = Transcript.from_event(event)
        text = (transcript.text or "").strip()
        if not text:
            raise AssistantError("handle-empty-text", "Transcript needs a non-empty `text` to handle.")
        if len(text) > MAX_TEXT:
            raise AssistantError("handle-text-too-long", f"Transcript text may be at most {MAX_TEXT} characters.")
        device = self._device((transcript.context or {}).get("device_id"))
        req = Request(
            source=source("handle", self.client, **({"device": device} if device else {})),
            text=text,
            now=datetime.now(),
            speak=False,
            device_id=device,
        )
        rec = await self.service.call(self.service.run_turn, req)
        answer = rec.response_text or (rec.error or {}).get("message") or ""
        context = {"turn_id": rec.turn_id, "intent": rec.intent}
        status = (rec.action or {}).get("status")
        if rec.error is not None or status in NOT_HANDLED_STATUSES:
            await send(NotHandled(text=answer, context=context).event())
        else:
            await send(Handled(text=answer, context=context).event())

    def _device(self, device_id) -> str | None:
        if not device_id:
            return None
        ids = {s.id for s in self.service.runner.home.satellites()}
        if device_id not in ids:
            raise AssistantError(
                "handle-unknown-device",
                f"No satellite {device_id!r} in the home; satellites: {', '.join(sorted(ids))}.",
            )
        return str(device_id)
