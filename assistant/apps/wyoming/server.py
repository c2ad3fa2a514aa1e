"""`assistant serve wyoming`: one TCP (or unix socket) server speaking the Wyoming protocol, the way Home Assistant's
Wyoming integration and wyoming-satellite expect it (the `wyoming` library's AsyncServer and event classes).

Each connection is its own handler task (wyoming's AsyncServer) with its own per-stream state (the audio of a
Transcribe, a wake detector); model work runs in the Service's thread pool, so a slow or vanished client holds up
nobody. Routing: Describe -> Info; Transcribe + audio -> ASR; Detect + audio -> wake word; audio with neither -> ASR;
Synthesize -> TTS; Transcript -> intent handling; Ping -> Pong. An event we cannot handle, or one that fails, gets an
Error event (code, text) and a log line; the connection stays open. Satellites (satellite.py) are connected to by
this process, not the other way round, and run beside the server in the same event loop.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize
from wyoming.wake import Detect

from assistant.apps.wyoming import asr, handle, tts, wake
from assistant.apps.wyoming.service import Service
from assistant.errors import AssistantError

_LOGGER = logging.getLogger(__name__)
_AUDIO = (AudioStart, AudioChunk, AudioStop)
_HANDLER_TASK = "wyoming event handler"
"""The name wyoming's AsyncServer gives each connection's task."""


def info(service: Service) -> Info:
    """What `describe` answers: every service with its models, attribution, installed flag, languages, version."""
    runner = service.runner
    return Info(
        asr=[asr.program(service)] if runner.asr is not None else [],
        tts=[tts.program(service)] if runner.tts is not None else [],
        wake=[wake.program(service)],
        handle=[handle.program(service)],
    )


def check_uri(uri: str, allow_remote: bool = False) -> None:
    """tcp://HOST:PORT, unix://PATH or stdio://; a TCP server on another address than localhost must be asked for."""
    u = urlparse(uri)
    if u.scheme not in ("tcp", "unix", "stdio"):
        raise AssistantError("wyoming-bad-uri", f"{uri!r}: use tcp://HOST:PORT, unix://PATH or stdio://.")
    if u.scheme == "tcp":
        if u.hostname is None or u.port is None:
            raise AssistantError("wyoming-bad-uri", f"{uri!r}: a tcp:// URI needs a host and a port.")
        if u.hostname not in ("127.0.0.1", "localhost", "::1") and not allow_remote:
            raise AssistantError(
                "wyoming-remote-bind",
                f"{uri!r} would accept connections from other machines; add --allow-remote if you mean it "
                "(Home Assistant on another host, satellites on the network).",
            )


class WyomingHandler(AsyncEventHandler):
    """One client connection."""

    def __init__(self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.service = service
        peer = writer.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer or "local")
        self.asr = asr.AsrHandler(service, self.client)
        self.tts = tts.TtsHandler(service, self.client)
        self.wake = wake.WakeHandler(service, self.client)
        self.handle = handle.HandleHandler(service, self.client)
        self.audio_to = self.asr
        """Where audio events go: the service the last Transcribe or Detect chose (ASR by default)."""
        _LOGGER.info("wyoming client connected: %s", self.client)

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except (ConnectionError, asyncio.CancelledError):
            return False  # the client went away: end this handler only
        except AssistantError as err:
            _LOGGER.warning("wyoming %s: %s event: [%s] %s", self.client, event.type, err.code, err.message)
            return await self._error(err.message, err.code)
        except (KeyError, TypeError, ValueError) as err:  # wyoming's from_event on missing or wrong fields
            _LOGGER.warning("wyoming %s: malformed %s event: %r", self.client, event.type, err)
            return await self._error(
                f"Malformed {event.type!r} event ({type(err).__name__}: {err}); see the Wyoming protocol's event "
                "fields (https://github.com/rhasspy/wyoming).",
                "wyoming-bad-event",
            )
        except Exception as err:  # noqa: BLE001 - a bad event never takes the server down
            _LOGGER.exception("wyoming %s: %s event failed", self.client, event.type)
            return await self._error(f"{event.type} failed: {type(err).__name__}: {err}", "wyoming-event-failed")
        return True

    async def _error(self, text: str, code: str) -> bool:
        try:
            await self.write_event(Error(text=text, code=code).event())
        except ConnectionError:
            return False
        return True

    async def _dispatch(self, event: Event) -> None:
        t = event.type
        if Describe.is_type(t):
            await self.write_event(info(self.service).event())
        elif Ping.is_type(t):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(t):
            self.audio_to = self.asr
            await self.asr.handle(event, self.write_event)
        elif Detect.is_type(t):
            self.audio_to = self.wake
            await self.wake.handle(event, self.write_event)
        elif any(cls.is_type(t) for cls in _AUDIO):
            await self.audio_to.handle(event, self.write_event)
        elif Synthesize.is_type(t):
            await self.tts.handle(event, self.write_event)
        elif Transcript.is_type(t):
            await self.handle.handle(event, self.write_event)
        else:
            raise AssistantError(
                "wyoming-unsupported-event",
                f"This server does not handle {t!r} events; it serves describe, transcribe (ASR), detect (wake "
                "word), synthesize (TTS), transcript (intent handling) and ping.",
            )

    async def disconnect(self) -> None:
        _LOGGER.info("wyoming client disconnected: %s", self.client)
        self.wake.close()


async def _scheduled(service: Service, every: float = 1.0) -> None:
    """Scheduled commands are carried out when due, not only at the next request (as the live loop does)."""
    while True:
        await asyncio.sleep(every)
        try:
            await service.call(service.run_due)
        except RuntimeError:  # the pool is shutting down
            return
        except Exception:  # noqa: BLE001 - a failing scheduled command is traced by the runner; keep checking
            _LOGGER.exception("scheduled commands failed")


async def serve(
    service: Service,
    uri: str,
    satellites: list | None = None,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or forever); `satellites` (satellite.SatelliteLink) run in the same loop."""
    server = AsyncServer.from_uri(uri)
    await server.start(lambda r, w: WyomingHandler(service, r, w))
    tasks = [asyncio.create_task(link.run(), name=f"satellite {link.uri}") for link in satellites or []]
    tasks.append(asyncio.create_task(_scheduled(service), name="scheduled commands"))
    _LOGGER.info("wyoming server on %s", uri)
    if started is not None:
        started.set()
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        for link in satellites or []:
            link.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()
        # A handler blocked on a client that reads nothing does not see the stop: cancel what is left.
        handlers = [t for t in asyncio.all_tasks() if t.get_name() == _HANDLER_TASK and not t.done()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
