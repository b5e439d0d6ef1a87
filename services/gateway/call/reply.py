"""The reply pipeline of one call: the caller's turn → STT → LLM → segments → TTS → playback, over NATS
through :class:`CallChannel` (which retries and resumes a stage a worker lost: ``WorkerWatch``, attempts).

The LLM worker cuts the reply into segments and names them on its chunks (``LlmChunk.segments``); this
pipeline never cuts text. With ``CHAIN_STAGES`` the STT worker sends the LLM request and the LLM worker the
segments' TTS requests (``tts_chained`` on its chunks); otherwise the pipeline sends them. Segments
synthesise concurrently and play strictly in order. The pipeline tells the session what happened
(:class:`NoWords`, :class:`ReplyAudioStarted`, :class:`PlayedOut`) and never changes the call's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.gateway.call.channel import CallChannel, TurnFailed
from services.gateway.call.machine import CallEvent, NoWords, PlayedOut, ReplyAudioStarted
from services.gateway.call.output import AudioOutput
from services.gateway.call.record import CallRecord, Reply, Segment, latency_ms
from services.gateway.call.speech import SegmentAudio
from shared.call_config import CallConfig
from shared.events import ChatMessage, LlmContinuation, LlmRequest, SttRequest
from shared.logging import bound_call, get_logger
from shared.sentence_splitter import has_words
from shared.settings import GatewaySettings

log = get_logger(__name__)

STT_RATE = 16000


@dataclass
class Playback:
    """A reply's segments in speaking order, each with the queue its audio arrives on (None ends it)."""

    items: asyncio.Queue[tuple[Segment, asyncio.Queue[bytes | None]] | None] = field(default_factory=asyncio.Queue)
    fetches: list[asyncio.Task[None]] = field(default_factory=list)


class ReplyPipeline:
    def __init__(
        self,
        *,
        call_id: str,
        channel: CallChannel,
        config: CallConfig,
        settings: GatewaySettings,
        speech: SegmentAudio,
        output: AudioOutput,
        record: CallRecord,
        notify: Callable[[CallEvent], Awaitable[None]],
        on_failure: Callable[[TurnFailed], None],
    ) -> None:
        self.call_id = call_id
        self.channel = channel
        self.config = config
        self.settings = settings
        self.speech = speech
        self.output = output
        self.record = record
        self.notify = notify  # tells the session's state machine
        self.on_failure = on_failure

    async def respond(self, turn_id: int, audio: bytes, vad_end: float) -> None:
        """Answer the caller's turn (``audio``: PCM16 at 16 kHz, ended at ``vad_end``)."""
        with bound_call(self.call_id, turn_id=turn_id):
            marks: dict[str, float] = {}
            chain = self.settings.chain_stages
            cont = self.llm_continuation(chain)
            if chain:  # the LLM's chunks and TTS audio may arrive before this session asks for them
                self.channel.expect_chained(turn_id)
            try:
                request = self._stt_request(turn_id, audio, cont if chain else None)
                stt = await self.channel.transcribe(request, self.settings.stt_timeout_s)
                marks["stt_done"] = time.time()
                text = stt.text.strip()
                if not has_words(text):
                    log.info("turn_without_words", audio_s=stt.audio_seconds)
                    await self.notify(NoWords())
                    return
                # the LLM request goes out first; the caller's transcript is shown alongside, not before it
                started = vad_end - len(audio) / 2 / STT_RATE
                self.record.user(turn_id, text, started_at=started, ended_at=vad_end, stt_ms=stt.provider_ms)
                await self._stream_reply(cont.request(self.call_id, turn_id, text), vad_end, marks, chained=stt.chained)
            except TurnFailed as exc:
                self.on_failure(exc)
            finally:
                self.channel.forget_turn(turn_id)

    def _stt_request(self, turn_id: int, audio: bytes, cont: LlmContinuation | None) -> SttRequest:
        return SttRequest(
            call_id=self.call_id,
            turn_id=turn_id,
            audio=audio,
            sample_rate=STT_RATE,
            language=self.config.stt.language or self.config.language.split("-")[0],
            provider=self.config.stt.provider,
            model=self.config.stt.model,
            reply_to=self.channel.subject_stt,
            llm=cont,
        )

    def llm_continuation(self, chain: bool) -> LlmContinuation:
        """The turn's LLM request without the caller's message (STT sends it on when chaining); with a TTS
        continuation when chaining, so the LLM worker sends the segments to TTS itself."""
        return LlmContinuation(
            messages=[ChatMessage(role="system", content=self.config.system_prompt), *self.record.recent()],
            provider=self.config.llm.provider,
            model=self.config.llm.model,
            temperature=self.config.llm.temperature,
            max_tokens=self.config.llm.max_tokens,
            language=self.config.language,
            reply_to=self.channel.subject_llm,
            tts=self.speech.continuation() if chain else None,
        )

    async def _stream_reply(
        self, request: LlmRequest, vad_end: float, marks: dict[str, float], *, chained: bool
    ) -> None:
        """Stream the reply (``chained``: the STT worker already sent ``request``), playing the segments the
        LLM worker names; their TTS requests leave from here unless the worker sent them (``tts_chained``)."""
        assert request.turn_id is not None
        reply = self.record.begin_reply(request.turn_id)
        playback = Playback()
        self.output.reset_latency_probe()
        player = asyncio.create_task(self.play(reply, playback, marks))
        try:
            generate = self.channel.generate(request, self.settings.llm_timeout_s, chained=chained)
            async with contextlib.aclosing(generate) as chunks:
                async for chunk in chunks:
                    if chunk.delta and "llm_first_token" not in marks:
                        marks["llm_first_token"] = time.time()
                    tts_chained = chunk.tts_chained and request.tts is not None
                    for text in chunk.segments or ():
                        self._add_segment(reply, playback, text, chained=tts_chained)
            playback.items.put_nowait(None)
            await player
        finally:
            if not player.done():
                player.cancel()
                await asyncio.gather(player, return_exceptions=True)
        if self.record.reply is reply:
            latency = latency_ms(marks, vad_end, self.output.first_send_at) if marks else None
            self.record.assistant(reply, interrupted=False, latency=latency)

    def _add_segment(self, reply: Reply, playback: Playback, text: str, *, chained: bool = False) -> None:
        """A segment is cut: its TTS request leaves now, or has left from the LLM worker (``chained``);
        segments synthesise concurrently and play in order."""
        segment = Segment(index=len(reply.segments), text=text)
        reply.segments.append(segment)
        audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        playback.fetches.append(asyncio.create_task(self.speech.fetch(reply.turn_id, segment, audio, chained)))
        playback.items.put_nowait((segment, audio))

    async def play(self, reply: Reply, playback: Playback, marks: dict[str, float]) -> None:
        """Play the reply's segments strictly in order as their audio arrives, then wait until heard."""
        try:
            while (item := await playback.items.get()) is not None:
                segment, audio = item
                segment.start = self.output.queued_total
                while (chunk := await audio.get()) is not None:
                    if "tts_first_audio" not in marks:
                        marks["tts_first_audio"] = time.time()
                        await self.notify(ReplyAudioStarted())
                    self.output.push(chunk)
                segment.end = self.output.queued_total
                self.output.mark(_nothing)  # a mark after each utterance: barge-in knows exactly what was heard
            played = asyncio.Event()
            self.output.mark(played.set)
            await played.wait()
            await self.notify(PlayedOut())
        finally:
            for task in playback.fetches:
                task.cancel()
            await asyncio.gather(*playback.fetches, return_exceptions=True)

    async def speak_fixed(self, turn_id: int, text: str) -> None:
        """Speak a fixed text (greeting, re-prompt, goodbye) and record it as an assistant turn."""
        with bound_call(self.call_id, turn_id=turn_id):
            reply = self.record.begin_reply(turn_id)
            playback = Playback()
            self._add_segment(reply, playback, text)
            playback.items.put_nowait(None)
            await self.play(reply, playback, {})
            if self.record.reply is reply:
                self.record.assistant(reply, interrupted=False)


def _nothing() -> None:
    pass
