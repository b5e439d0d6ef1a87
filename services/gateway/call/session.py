"""One live call in the gateway, as one explicit state machine.

    STARTING ──greeting──▶ SPEAKING ──played──▶ LISTENING ──speech──▶ USER_SPEAKING ──silence──▶ THINKING
                             ▲  │                  │  ▲                                            │
                             │  │   silence timeout│  └───────────── no words ──────────────────────┤
                             │  │     (re-prompt)  ▼                                               │
                             │  └─speech (barge-in)──▶ USER_SPEAKING                                │
                             └──────────────────────── first reply audio ───────────────────────────┘
    second silence timeout / max duration / failed turn ──▶ CLOSING (goodbye, apology) ──played──▶ ENDED
    hang-up / protocol violation / shutdown (any state) ──▶ ENDED

The session owns turn detection (caller audio in), the reply pipeline (STT → LLM → sentence cuts → TTS,
all over NATS through :class:`CallChannel`), barge-in (clear the client, cancel the workers, keep in the
history only what the caller heard), silence and duration limits, the error policy (apology, close, a
``call error`` event) and the outbound pacer. The transport only moves bytes and messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from services.gateway.call.audio_cache import AudioCache
from services.gateway.call.channel import CallChannel, TurnFailed
from services.gateway.call.pacer import AudioPacer
from services.gateway.call.turn_detector import SpeechStarted, TurnDetector, TurnEnded, VadEngine
from services.gateway.call.worker_watch import WorkerWatch
from services.gateway.lifecycle.outbox import LifecycleOutbox
from services.gateway.metrics import (
    BARGE_INS,
    CALLS_ACTIVE,
    CALLS_TOTAL,
    OUTBOUND_FRAME_LATENESS,
    TURN_STAGE_SECONDS,
)
from services.gateway.transports.ws_close import CLOSE_INTERNAL, CLOSE_RESTART
from shared.audio import StreamResampler
from shared.bus import Bus
from shared.call_config import CallConfig
from shared.events import (
    CallEnded,
    CallError,
    CallStarted,
    ChatMessage,
    ErrorInfo,
    LlmContinuation,
    LlmRequest,
    SttRequest,
    TtsContinuation,
    TtsRequest,
    TurnRecorded,
)
from shared.logging import bound_call, get_logger
from shared.sentence_splitter import SentenceSplitter, has_words
from shared.settings import GatewaySettings

log = get_logger(__name__)

STT_RATE = 16000
WATCHDOG_S = 0.25


class CallState(enum.StrEnum):
    STARTING = "starting"
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    SPEAKING = "speaking"
    CLOSING = "closing"  # saying a last message (goodbye, apology); the caller can no longer interrupt
    ENDED = "ended"


class Transport(Protocol):
    """What a session needs from a client connection (browser WebSocket, Twilio or Telnyx stream).
    Audio in and out is PCM16 at ``sample_rate`` for ``pcm16`` transports; μ-law transports receive
    μ-law out (TTS produces it directly) and hand the session PCM16 in."""

    client_type: Literal["browser", "twilio", "telnyx"]
    sample_rate: int
    encoding: Literal["pcm16", "mulaw"]

    async def send_audio(self, data: bytes) -> None: ...

    async def send_event(self, payload: dict[str, object]) -> None: ...

    async def send_clear(self) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass
class Segment:
    index: int
    text: str
    start: int = -1  # pacer byte offset where its audio starts
    end: int = -1


@dataclass
class Playback:
    """A reply's segments in speaking order, each with the queue its audio arrives on (None ends it)."""

    items: asyncio.Queue[tuple[Segment, asyncio.Queue[bytes | None]] | None] = field(default_factory=asyncio.Queue)
    fetches: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class Reply:
    turn_id: int
    segments: list[Segment] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)


class CallSession:
    def __init__(
        self,
        *,
        call_id: str,
        transport: Transport,
        bus: Bus,
        outbox: LifecycleOutbox,
        settings: GatewaySettings,
        config: CallConfig,
        vad: VadEngine,
        audio_cache: AudioCache | None = None,
        transport_ids: dict[str, str] | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        worker_watch: WorkerWatch | None = None,
    ) -> None:
        self.call_id = call_id
        self.transport = transport
        self.bus = bus
        self.outbox = outbox
        self.settings = settings
        self.config = config
        self.audio_cache = audio_cache if audio_cache is not None else AudioCache()
        self.transport_ids = transport_ids or {}
        self.from_number = from_number
        self.to_number = to_number
        self.state = CallState.STARTING
        self.channel = CallChannel(bus, call_id, ack_timeout_s=settings.worker_ack_timeout_s, watch=worker_watch)
        self.detector = TurnDetector(
            vad,
            start_ms=config.turn.vad_start_ms,
            stop_ms=config.turn.vad_stop_ms,
            preroll_ms=config.turn.vad_preroll_ms,
            max_turn_s=settings.max_turn_seconds,
        )
        self.inbound = StreamResampler(transport.sample_rate, STT_RATE)
        bytes_per_s = transport.sample_rate * (2 if transport.encoding == "pcm16" else 1)
        self.pacer = AudioPacer(
            transport.send_audio,
            bytes_per_s=bytes_per_s,
            frame_ms=getattr(transport, "frame_ms", None) or settings.outbound_frame_ms,
            lead_ms=getattr(transport, "lead_ms", settings.outbound_lead_ms),
            remote_mark=getattr(transport, "send_mark", None),  # telephony: the provider echoes marks
            lateness=OUTBOUND_FRAME_LATENESS.labels(transport.client_type),
        )
        self.history: list[ChatMessage] = []
        self.started_at = time.time()
        self._state_since = time.monotonic()
        self._started_mono = time.monotonic()
        self._reprompted = False
        self._turn_id = 0
        self._seq = 0
        self._reply: Reply | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sends: set[asyncio.Task[None]] = set()  # messages on their way to the client: flushed, not cancelled
        self._ended = asyncio.Event()
        self.end_reason: str | None = None

    # --- state -----------------------------------------------------------------------------------------

    def _set_state(self, state: CallState) -> None:
        if self.state in (CallState.ENDED, CallState.CLOSING) and state not in (CallState.ENDED,):
            return  # a closing call never goes back to a conversational state
        if state != self.state:
            self.state = state
            self._state_since = time.monotonic()

    @property
    def ended(self) -> bool:
        return self.state == CallState.ENDED

    async def wait_ended(self) -> None:
        await self._ended.wait()

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        with bound_call(self.call_id):
            await self.channel.open()
            self.pacer.start()
            CALLS_ACTIVE.labels(self.transport.client_type).inc()
            self.outbox.put(
                CallStarted(
                    call_id=self.call_id,
                    agent_id=self.config.agent_id,
                    client_type=self.transport.client_type,
                    transport_ids=self.transport_ids,
                    from_number=self.from_number,
                    to_number=self.to_number,
                    started_at=self.started_at,
                )
            )
            log.info(
                "call_started",
                client_type=self.transport.client_type,
                agent_id=self.config.agent_id,
                agent_version=self.config.agent_version,
            )
            self._spawn(self._watchdog())
            self._spawn(self._prefetch(self.config.apology_message))  # speakable even if TTS fails later
            self._spawn(self._prefetch(self.config.shutdown_text, segment=1))  # a deploy may stop the workers too
            if self.config.first_message:
                self._start_reply(self._speak_fixed(self._next_turn(), self.config.first_message))
            else:
                self._set_state(CallState.LISTENING)

    async def end(self, reason: str, *, close_code: int = 1000) -> None:
        """End the call once (idempotent): stop work, record the end, close the transport. A second caller
        (the receive loop seeing the state change) waits until the first has finished: returning earlier lets
        the WebSocket endpoint return, and the server then drops the connection before "ended" was sent."""
        if self.state == CallState.ENDED:
            await self._ended.wait()
            return
        self.state = CallState.ENDED
        try:
            await self._end(reason, close_code)
        finally:
            self._ended.set()

    async def _end(self, reason: str, close_code: int) -> None:
        with bound_call(self.call_id):
            self.end_reason = reason
            current = asyncio.current_task()
            tasks = [t for t in (self._reply_task, *self._tasks) if t is not None and t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._reply is not None:
                self._record_reply(self._reply, interrupted=True, heard_bytes=self.pacer.played_bytes())
            try:
                await self.channel.cancel(None, reason="call_ended")
            except Exception:  # the bus may be down; workers then time out on their own
                log.warning("cancel_publish_failed")
            await self.pacer.stop()
            await self.channel.close()
            if self._sends:  # the last transcript goes out before "ended"; cancelling a send mid-frame would
                await asyncio.wait(self._sends, timeout=2.0)  # break the WebSocket (1006) instead
            duration = max(0.0, time.time() - self.started_at)
            self.outbox.put(
                CallEnded(call_id=self.call_id, reason=reason, duration_s=round(duration, 3), turns=self._seq)
            )
            CALLS_ACTIVE.labels(self.transport.client_type).dec()
            CALLS_TOTAL.labels(self.transport.client_type, reason).inc()
            log.info("call_ended", reason=reason, duration_s=round(duration, 1), turns=self._seq)
            try:
                await self.transport.send_event({"type": "ended", "reason": reason})
                await self.transport.close(close_code, reason)
            except Exception:  # the client is already gone
                pass

    # --- caller audio ----------------------------------------------------------------------------------

    async def on_audio(self, pcm: bytes) -> None:
        """Caller audio (PCM16 at the transport's rate). Runs VAD and acts on turn boundaries."""
        if self.state in (CallState.ENDED, CallState.CLOSING):
            return
        for event in self.detector.feed(self.inbound.process(pcm)):
            if isinstance(event, SpeechStarted):
                await self._on_speech_started()
            elif isinstance(event, TurnEnded):
                self._on_turn_ended(event)

    async def _on_speech_started(self) -> None:
        self._reprompted = False
        if self.state in (CallState.SPEAKING, CallState.THINKING):
            await self._barge_in()
        self._set_state(CallState.USER_SPEAKING)

    async def _barge_in(self) -> None:
        """The caller talks over the agent: silence it now, stop the workers, keep what was heard."""
        reply, task = self._reply, self._reply_task
        heard = self.pacer.clear()
        await self.transport.send_clear()
        BARGE_INS.labels(self.transport.client_type).inc()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if reply is not None:
            await self.channel.cancel(reply.turn_id, reason="barge_in")
            self._record_reply(reply, interrupted=True, heard_bytes=heard)
        log.info("barge_in", turn_id=reply.turn_id if reply else None, heard_bytes=heard)

    def _on_turn_ended(self, event: TurnEnded) -> None:
        self._set_state(CallState.THINKING)
        self._start_reply(self._respond(self._next_turn(), event.audio, time.time()))

    # --- replies ---------------------------------------------------------------------------------------

    def _next_turn(self) -> int:
        self._turn_id += 1
        return self._turn_id

    def _start_reply(self, coro: Coroutine[Any, Any, None]) -> None:
        self._reply_task = asyncio.create_task(coro)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _respond(self, turn_id: int, audio: bytes, vad_end: float) -> None:
        with bound_call(self.call_id, turn_id=turn_id):
            marks: dict[str, float] = {}
            chain = self.settings.chain_stages
            cont = self._llm_continuation(chain)
            if chain:  # the LLM's chunks and TTS audio may arrive before this session asks for them
                self.channel.expect_chained(turn_id)
            try:
                stt = await self.channel.transcribe(
                    SttRequest(
                        call_id=self.call_id,
                        turn_id=turn_id,
                        audio=audio,
                        sample_rate=STT_RATE,
                        language=self.config.stt.language or self.config.language.split("-")[0],
                        provider=self.config.stt.provider,
                        model=self.config.stt.model,
                        reply_to=self.channel.subject_stt,
                        llm=cont if chain else None,
                    ),
                    self.settings.stt_timeout_s,
                )
                marks["stt_done"] = time.time()
                text = stt.text.strip()
                if not has_words(text):
                    log.info("turn_without_words", audio_s=stt.audio_seconds)
                    self._set_state(CallState.LISTENING)
                    return
                # the LLM request goes out first; the caller's transcript is shown alongside, not before it
                self._send_soon({"type": "transcript", "role": "user", "text": text, "turn_id": turn_id})
                self._record_turn(
                    "user",
                    text,
                    started_at=vad_end - len(audio) / 2 / STT_RATE,
                    ended_at=vad_end,
                    latency={"stt_ms": stt.provider_ms},
                )
                self.history.append(ChatMessage(role="user", content=text))
                request = cont.request(self.call_id, turn_id, text)
                await self._stream_reply(request, vad_end, marks, chained=stt.chained)
            except TurnFailed as exc:
                self._spawn(self._fail(exc.stage, exc.error))
            finally:
                self.channel.forget_turn(turn_id)

    def _llm_continuation(self, chain: bool) -> LlmContinuation:
        """The turn's LLM request without the caller's message (STT sends it on when chaining); with a TTS
        continuation when chaining, so the LLM worker sends the segments to TTS itself."""
        return LlmContinuation(
            messages=[ChatMessage(role="system", content=self.config.system_prompt), *self.history[-19:]],
            provider=self.config.llm.provider,
            model=self.config.llm.model,
            temperature=self.config.llm.temperature,
            max_tokens=self.config.llm.max_tokens,
            reply_to=self.channel.subject_llm,
            tts=self._tts_format() if chain else None,
        )

    async def _stream_reply(
        self, request: LlmRequest, vad_end: float, marks: dict[str, float], *, chained: bool
    ) -> None:
        """Stream the reply; ``chained``: the STT worker already sent ``request``. Segments are cut here from
        the tokens, or, when the LLM worker sent their TTS requests itself, taken from its chunks."""
        turn_id = request.turn_id
        assert turn_id is not None
        reply = Reply(turn_id=turn_id)
        self._reply = reply
        splitter = SentenceSplitter()
        playback = Playback()
        self.pacer.reset_latency_probe()
        player = asyncio.create_task(self._play(reply, playback, marks))
        tts_chained = False  # the LLM worker sends the segments' TTS requests (it says so on each chunk)
        try:
            generate = self.channel.generate(request, self.settings.llm_timeout_s, chained=chained)
            async with contextlib.aclosing(generate) as chunks:
                async for chunk in chunks:
                    if chunk.delta and "llm_first_token" not in marks:
                        marks["llm_first_token"] = time.time()
                    tts_chained = chunk.tts_chained and request.tts is not None
                    # chained: the worker says which segments it cut (and sent); otherwise cut them here
                    named = chunk.segments if tts_chained else None
                    for text in named if named is not None else splitter.feed(chunk.delta):
                        self._add_segment(reply, playback, text, chained=tts_chained)
            for text in splitter.flush():  # empty when the worker named the segments: never fed
                self._add_segment(reply, playback, text, chained=tts_chained)
            playback.items.put_nowait(None)
            await player
        finally:
            if not player.done():
                player.cancel()
                await asyncio.gather(player, return_exceptions=True)
        if self._reply is reply:
            self._record_reply(reply, interrupted=False, marks=marks, vad_end=vad_end)

    def _add_segment(self, reply: Reply, playback: Playback, text: str, *, chained: bool = False) -> None:
        """A segment is cut: its TTS request leaves now, or has left from the LLM worker (``chained``);
        segments synthesise concurrently and play in order."""
        segment = Segment(index=len(reply.segments), text=text)
        reply.segments.append(segment)
        audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        playback.fetches.append(asyncio.create_task(self._fetch_tts(reply.turn_id, segment, audio, chained)))
        playback.items.put_nowait((segment, audio))

    async def _play(self, reply: Reply, playback: Playback, marks: dict[str, float]) -> None:
        """Play the reply's segments strictly in order as their audio arrives, then wait until heard."""
        try:
            while (item := await playback.items.get()) is not None:
                segment, audio = item
                segment.start = self.pacer.queued_total
                while (chunk := await audio.get()) is not None:
                    if "tts_first_audio" not in marks:
                        marks["tts_first_audio"] = time.time()
                    self._set_state(CallState.SPEAKING)
                    self.pacer.push(chunk)
                segment.end = self.pacer.queued_total
                self.pacer.mark(_nothing)  # a mark after each utterance: barge-in knows exactly what was heard
            played = asyncio.Event()
            self.pacer.mark(played.set)
            await played.wait()
            if self.state == CallState.SPEAKING:
                self._set_state(CallState.LISTENING)
        finally:
            for task in playback.fetches:
                task.cancel()
            await asyncio.gather(*playback.fetches, return_exceptions=True)

    async def _fetch_tts(
        self, turn_id: int, segment: Segment, out: asyncio.Queue[bytes | None], chained: bool = False
    ) -> None:
        """One segment's audio into ``out`` (then None); fixed texts come from (and fill) the audio cache."""
        key = self.audio_cache.key(segment.text, self.config.voice, self.transport.sample_rate, self.transport.encoding)
        cached = self.audio_cache.get(key)
        if cached is not None:
            out.put_nowait(cached)
            out.put_nowait(None)
            return
        parts: list[bytes] = []
        try:
            request = self._tts_request(turn_id, segment)
            synthesize = self.channel.synthesize(request, self.settings.tts_timeout_s, chained=chained)
            async with contextlib.aclosing(synthesize) as chunks:
                async for chunk in chunks:
                    if chunk.audio:
                        parts.append(chunk.audio)
                        out.put_nowait(chunk.audio)
        except TurnFailed as exc:
            out.put_nowait(None)
            self._spawn(self._fail(exc.stage, exc.error))
            return
        out.put_nowait(None)
        if segment.text in self._fixed_texts():
            self.audio_cache.put(key, b"".join(parts))

    def _tts_format(self) -> TtsContinuation:
        """The voice and the audio format this call's TTS requests ask for, and where the audio goes."""
        return TtsContinuation(
            voice=self.config.voice,
            language=self.config.language,
            sample_rate=self.transport.sample_rate,
            encoding=self.transport.encoding,
            reply_to=self.channel.subject_tts,
        )

    def _tts_request(self, turn_id: int, segment: Segment) -> TtsRequest:
        return self._tts_format().request(self.call_id, turn_id, segment.index, segment.text)

    def _fixed_texts(self) -> set[str]:
        c = self.config
        return {
            c.first_message,
            c.apology_message,
            c.reprompt_message,
            c.silence_goodbye_message,
            c.max_duration_message,
            c.shutdown_text,
        }

    async def _prefetch(self, text: str, segment: int = 0) -> None:
        """Put a fixed text's audio in the cache ahead of need (the apology must play even when TTS fails)."""
        key = self.audio_cache.key(text, self.config.voice, self.transport.sample_rate, self.transport.encoding)
        if self.audio_cache.get(key) is not None or not self.audio_cache.claim(key):
            return
        try:
            request = self._tts_request(0, Segment(index=segment, text=text))
            async with contextlib.aclosing(self.channel.synthesize(request, self.settings.tts_timeout_s)) as chunks:
                parts = [c.audio async for c in chunks]
            self.audio_cache.put(key, b"".join(parts))
        except TurnFailed as exc:
            log.warning("prefetch_failed", code=exc.error.code)
        finally:
            self.audio_cache.release(key)

    async def _speak_fixed(self, turn_id: int, text: str) -> None:
        """Speak a fixed text (greeting, re-prompt, goodbye) and record it as an assistant turn."""
        with bound_call(self.call_id, turn_id=turn_id):
            reply = Reply(turn_id=turn_id)
            self._reply = reply
            playback = Playback()
            self._add_segment(reply, playback, text)
            playback.items.put_nowait(None)
            self._set_state(CallState.SPEAKING)
            await self._play(reply, playback, {})
            if self._reply is reply:
                self._record_reply(reply, interrupted=False)

    async def _say_and_end(self, text: str, reason: str, *, close_code: int = 1000) -> None:
        """Stop whatever is going on, say a last message (the caller can't interrupt it), then end."""
        if self.state in (CallState.CLOSING, CallState.ENDED):
            return
        task = self._reply_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            heard = self.pacer.clear()
            await self.transport.send_clear()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if self._reply is not None:
                await self.channel.cancel(self._reply.turn_id, reason=reason)
                self._record_reply(self._reply, interrupted=True, heard_bytes=heard)
        self._set_state(CallState.CLOSING)
        try:
            await asyncio.wait_for(self._speak_fixed(self._next_turn(), text), timeout=30)
        except (TimeoutError, TurnFailed):
            log.warning("last_message_not_spoken", reason=reason)
        await self.end(reason, close_code=close_code)

    async def close_for_shutdown(self) -> None:
        """The gateway is going away and the drain timed out: cut whatever is playing, say the agent's
        shutdown goodbye (prefetched at start), then end (``gateway_shutdown``, 1012: call again). A call
        already saying another goodbye just finishes it."""
        say = asyncio.create_task(
            self._say_and_end(self.config.shutdown_text, "gateway_shutdown", close_code=CLOSE_RESTART)
        )
        ended = asyncio.create_task(self.wait_ended())
        # a caller who hangs up during the goodbye ends the call: stop waiting for its audio to play out
        await asyncio.wait({say, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not say.done():
            say.cancel()
        await asyncio.gather(say, return_exceptions=True)
        await ended

    # --- silence and duration --------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        """Re-prompt after a silence, hang up after a second one; end politely at the maximum duration."""
        turn = self.config.turn
        while self.state not in (CallState.ENDED, CallState.CLOSING):
            await asyncio.sleep(WATCHDOG_S)
            now = time.monotonic()
            if now - self._started_mono >= turn.max_call_s:
                log.info("max_call_duration_reached", max_call_s=turn.max_call_s)
                self._spawn(self._say_and_end(self.config.max_duration_message, "max_duration"))
                return
            if self.state == CallState.LISTENING and now - self._state_since >= turn.silence_timeout_s:
                if self._reprompted:
                    log.info("silence_timeout_hangup")
                    self._spawn(self._say_and_end(self.config.silence_goodbye_message, "silence_timeout"))
                    return
                log.info("silence_timeout_reprompt")
                self._reprompted = True
                self._start_reply(self._speak_fixed(self._next_turn(), self.config.reprompt_message))

    # --- history ---------------------------------------------------------------------------------------

    def _record_reply(
        self,
        reply: Reply,
        *,
        interrupted: bool,
        heard_bytes: int | None = None,
        marks: dict[str, float] | None = None,
        vad_end: float | None = None,
    ) -> None:
        """Record the assistant's turn as the caller heard it (all of it, or up to the barge-in)."""
        self._reply = None
        heard = (
            " ".join(s.text for s in reply.segments)
            if heard_bytes is None
            else _heard_text(reply.segments, heard_bytes)
        )
        latency: dict[str, float] = {}
        if marks and vad_end is not None:
            if self.pacer.first_send_at is not None:
                marks["first_audio_sent"] = self.pacer.first_send_at
            latency = {f"{k}_ms": round((v - vad_end) * 1000, 1) for k, v in marks.items()}
            for stage, value in latency.items():
                TURN_STAGE_SECONDS.labels(stage.removesuffix("_ms")).observe(value / 1000)
            self._send_soon({"type": "turn_metrics", "turn_id": reply.turn_id, **latency})
        if heard:
            self.history.append(ChatMessage(role="assistant", content=heard))
            self._send_soon(
                {
                    "type": "transcript",
                    "role": "assistant",
                    "text": heard,
                    "turn_id": reply.turn_id,
                    "interrupted": interrupted,
                }
            )
            self._record_turn(
                "assistant",
                heard,
                started_at=reply.started_at,
                ended_at=time.time(),
                interrupted=interrupted,
                latency=latency,
            )

    def _record_turn(
        self,
        role: Literal["user", "assistant"],
        text: str,
        *,
        started_at: float,
        ended_at: float,
        interrupted: bool = False,
        latency: dict[str, float] | None = None,
    ) -> None:
        self.outbox.put(
            TurnRecorded(
                call_id=self.call_id,
                turn_id=self._turn_id,
                seq=self._seq,
                role=role,
                text=text,
                started_at=started_at,
                ended_at=ended_at,
                interrupted=interrupted,
                latency_ms=latency or {},
            )
        )
        self._seq += 1

    def _send_soon(self, payload: dict[str, object]) -> None:
        task = asyncio.create_task(self._send_quietly(payload))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_quietly(self, payload: dict[str, object]) -> None:
        try:
            await self.transport.send_event(payload)
        except Exception:  # the client is gone; the receive loop ends the call
            pass

    # --- errors ----------------------------------------------------------------------------------------

    async def _fail(self, stage: str, error: ErrorInfo) -> None:
        """The error policy: a turn failed after its retry → apology, clean close, a ``call error`` event."""
        if self.state in (CallState.ENDED, CallState.CLOSING):
            return
        log.error("turn_failed", stage=stage, code=error.code, error=error.message)
        self.outbox.put(
            CallError(
                call_id=self.call_id,
                turn_id=self._turn_id,
                code=error.code,
                message=error.message[:500],
                stage=stage,
                critical=error.code not in CAPACITY_CODES,  # a busy minute is overload, not an outage to stop for
            )
        )
        await self._send_quietly({"type": "error", "code": f"{stage}_{error.code}", "message": error.message})
        await self._say_and_end(self.config.apology_message, "error", close_code=CLOSE_INTERNAL)


CAPACITY_CODES = frozenset({"busy"})  # workers refusing for capacity: recorded, never counted by the global stop


def _nothing() -> None:
    pass


def _heard_text(segments: list[Segment], heard_bytes: int) -> str:
    """Whole segments played before ``heard_bytes``, and the played share of the one cut off (by words)."""
    parts: list[str] = []
    for s in segments:
        if s.start < 0 or s.start >= heard_bytes:
            break
        if 0 <= s.end <= heard_bytes:
            parts.append(s.text)
            continue
        span = (s.end if s.end > s.start else heard_bytes + 1) - s.start
        words = s.text.split()
        keep = int(len(words) * (heard_bytes - s.start) / max(1, span))
        if keep:
            parts.append(" ".join(words[:keep]) + "…")
        break
    return " ".join(parts)
