"""The reply pipeline of one call: the caller's turn → STT → LLM → segments → TTS → playback, over NATS
through :class:`CallChannel` (which retries and resumes a stage a worker lost: ``WorkerWatch``, attempts).

The LLM worker cuts the reply into segments and names them on its chunks (``LlmChunk.segments``); this
pipeline never cuts text. With ``CHAIN_STAGES`` the STT worker sends the LLM request and the LLM worker the
segments' TTS requests (``tts_chained`` on its chunks); otherwise the pipeline sends them. Segments
synthesise concurrently and play strictly in order. The pipeline tells the session what happened
(:class:`NoWords`, :class:`ReplyAudioStarted`, :class:`PlayedOut`, or instead of the last: the reply ended the
call, :class:`AgentHangUp`, :class:`Transferred`) and never changes the call's state.

Tools: a reply whose stream ends with tool calls runs them (:mod:`.tools`) and asks the LLM again with their
results, in the same turn — up to :data:`MAX_ROUNDS` requests — and every round's segments play in order in
the one reply. A caller's keypad entry is answered like a spoken turn, without STT (:meth:`respond_digits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from services.gateway.call.backchannel import is_backchannel
from services.gateway.call.channel import STAGE_ATTEMPTS, CallChannel, TurnFailed
from services.gateway.call.dtmf import llm_text
from services.gateway.call.hold import Hold
from services.gateway.call.machine import (
    AgentHangUp,
    CallEvent,
    EndingCall,
    NoWords,
    PlayedOut,
    ReplyAudioStarted,
    Transferred,
)
from services.gateway.call.output import AudioOutput
from services.gateway.call.record import CallRecord, Reply, Segment, latency_ms
from services.gateway.call.speech import SegmentAudio
from services.gateway.call.tools import TOO_MANY_ROUNDS, RoundCancelled, ToolOutcome, ToolRunner, run_round
from shared.call_config import CallConfig
from shared.events import ChatMessage, LlmContinuation, LlmRequest, SttRequest, ToolCall
from shared.logging import bound_call, get_logger
from shared.sentence_splitter import has_words
from shared.settings import GatewaySettings

log = get_logger(__name__)

STT_RATE = 16000
MAX_ROUNDS = 4  # LLM requests in one turn: tool calls in the last one's answer are not run


@dataclass
class Playback:
    """A reply's segments in speaking order, each with the queue its audio arrives on (None ends it); an
    Event in the line is set once everything before it has played."""

    items: asyncio.Queue[tuple[Segment, asyncio.Queue[bytes | None]] | asyncio.Event | None] = field(
        default_factory=asyncio.Queue
    )
    fetches: list[asyncio.Task[None]] = field(default_factory=list)
    then: CallEvent | None = None  # what the reply ends with instead of PlayedOut (it ended the call)
    filler_said: bool = False


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
        tools: ToolRunner,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]],
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
        self.tools = tools
        self.spawn = spawn  # a task the call owns (a tool left running past a barge-in)
        self.handed_over: str | None = None  # a transfer went through in a round a barge-in cut (see _run_tools)

    async def respond(
        self, turn_id: int, audio: bytes, vad_end: float, *, hold: Hold | None = None, after_cut: bool = False
    ) -> None:
        """Answer the caller's turn (``audio``: PCM16 at 16 kHz, ended at ``vad_end``). With ``hold`` the turn
        has not ended yet (a pause): STT runs now and, chained, the LLM and TTS too, but nothing is recorded,
        played or failed until the session opens the hold (the turn ended there; ``vad_end`` is then its
        end) — or cancels the task (the caller went on). ``after_cut``: the turn cut the agent off, and
        only a backchannel in it counts as no words (a false interruption)."""
        with bound_call(self.call_id, turn_id=turn_id):
            marks: dict[str, float] = {}
            chain = self.settings.chain_stages
            cont = self.llm_continuation(chain)
            if chain:  # the LLM's chunks and TTS audio may arrive before this session asks for them
                self.channel.expect_chained(turn_id)
            try:
                request = self._stt_request(turn_id, audio, cont if chain else None)
                try:
                    stt = await self.channel.transcribe(request, self.settings.stt_timeout_s)
                except TurnFailed:
                    if hold is not None:  # (a failure, too, is the turn's only once the turn is over)
                        hold.heard(None)
                        await hold.opened()
                    raise
                if hold is not None:
                    hold.heard(stt.text)
                    vad_end = await hold.opened()
                marks["stt_done"] = time.time()
                text = stt.text.strip()
                if not has_words(text) or (after_cut and is_backchannel(text, self.config.language)):
                    log.info("turn_without_words", audio_s=stt.audio_seconds, backchannel=has_words(text))
                    await self.notify(NoWords(turn_id))
                    return
                # the LLM request goes out first; the caller's transcript is shown alongside, not before it
                started = vad_end - len(audio) / 2 / STT_RATE
                self.record.user(turn_id, text, started_at=started, ended_at=vad_end, stt_ms=stt.provider_ms)
                await self._stream_reply(cont.request(self.call_id, turn_id, text), vad_end, marks, chained=stt.chained)
            except TurnFailed as exc:
                self.on_failure(exc)
            finally:
                self.channel.forget_turn(turn_id)

    async def resume(self, turn_id: int, parts: list[tuple[str, bytes]]) -> None:
        """Play again what a false interruption cut off (each part: the text and the audio not yet heard),
        recorded as the agent's turn; no worker is asked for anything."""
        with bound_call(self.call_id, turn_id=turn_id):
            reply = self.record.begin_reply(turn_id)
            playback = Playback()
            for text, audio in parts:
                segment = Segment(index=len(reply.segments), text=text)
                reply.segments.append(segment)
                queue: asyncio.Queue[bytes | None] = asyncio.Queue()
                queue.put_nowait(audio)
                queue.put_nowait(None)
                playback.items.put_nowait((segment, queue))
            playback.items.put_nowait(None)
            await self.play(reply, playback, {})
            if self.record.reply is reply:
                self.record.assistant(reply, interrupted=False)

    async def respond_digits(self, turn_id: int, digits: str, *, sensitive: bool) -> None:
        """Answer the caller's keypad entry: the LLM gets ``DTMF: <digits>``, the record the (masked) digits."""
        with bound_call(self.call_id, turn_id=turn_id):
            chain = self.settings.chain_stages
            cont = self.llm_continuation(chain)
            if chain:  # the LLM worker sends the TTS requests: their audio may arrive before it is asked for
                self.channel.expect_chained(turn_id)
            try:
                self.record.keypad(turn_id, digits, sensitive=sensitive)
                request = cont.request(self.call_id, turn_id, llm_text(digits))
                await self._stream_reply(request, time.time(), {}, chained=False)
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
            tools=[tool.spec() for tool in self.config.tools],
        )

    async def _stream_reply(
        self, request: LlmRequest, vad_end: float, marks: dict[str, float], *, chained: bool
    ) -> None:
        """Stream the reply (``chained``: the STT worker already sent ``request``) and its tool rounds, playing
        the segments the LLM worker names; then record it, and tell the session if it ended the call."""
        assert request.turn_id is not None
        reply = self.record.begin_reply(request.turn_id)
        playback = Playback()
        self.output.reset_latency_probe()
        player = asyncio.create_task(self.play(reply, playback, marks))
        try:
            playback.then = await self._rounds(request, reply, playback, marks, chained=chained)
            if isinstance(playback.then, AgentHangUp):  # (from now on nothing the caller does cuts it off)
                await self.notify(EndingCall())
            playback.items.put_nowait(None)
            await player
        finally:
            if not player.done():
                player.cancel()
                await asyncio.gather(player, return_exceptions=True)
        if self.record.reply is reply:
            latency = latency_ms(marks, vad_end, self.output.first_send_at) if marks else None
            if latency is not None and reply.tools_ms:
                latency["tools_ms"] = round(reply.tools_ms, 1)
            self.record.assistant(reply, interrupted=False, latency=latency)
        if playback.then is not None:
            await self.notify(playback.then)

    async def _rounds(
        self, request: LlmRequest, reply: Reply, playback: Playback, marks: dict[str, float], *, chained: bool
    ) -> CallEvent | None:
        """Ask the LLM, run the tools it calls, ask again with their results, up to :data:`MAX_ROUNDS` requests.
        Each round is a request of its own (``attempt`` from ``round * STAGE_ATTEMPTS``: its chunks and its
        retries never mix with an earlier round's) whose chained segments number on after the reply's."""
        for round_ in range(MAX_ROUNDS):
            calls = await self._generate(request, reply, playback, marks, chained=chained and round_ == 0)
            if not calls:
                return None
            if round_ == MAX_ROUNDS - 1:
                self._exhausted(reply, playback, calls)
                return None
            outcomes, exchange = await self._run_tools(reply, playback, calls)
            ending = self._ending(reply, outcomes)
            if ending is not None:
                return ending
            request = request.model_copy(
                update={
                    "messages": [*request.messages, *exchange],
                    "resume": "",
                    "resume_segments": len(reply.segments),
                    "attempt": (round_ + 1) * STAGE_ATTEMPTS,
                }
            )
        return None

    async def _generate(
        self, request: LlmRequest, reply: Reply, playback: Playback, marks: dict[str, float], *, chained: bool
    ) -> list[ToolCall]:
        """One LLM request's stream into the reply's segments; the tool calls its last chunk carries."""
        calls: list[ToolCall] = []
        generate = self.channel.generate(request, self.settings.llm_timeout_s, chained=chained)
        async with contextlib.aclosing(generate) as chunks:
            async for chunk in chunks:
                if chunk.delta and "llm_first_token" not in marks:
                    marks["llm_first_token"] = time.time()
                tts_chained = chunk.tts_chained and request.tts is not None
                for text in chunk.segments or ():
                    self._add_segment(reply, playback, text, chained=tts_chained)
                if chunk.done and chunk.tool_calls:
                    calls = list(chunk.tool_calls)
        return calls

    async def _run_tools(
        self, reply: Reply, playback: Playback, calls: list[ToolCall]
    ) -> tuple[list[ToolOutcome], list[ChatMessage]]:
        """Run a round's calls (the filler if they take long); record them, and what was said before them, in
        the history — also when a barge-in cuts the round, so every call there has its result."""
        said = " ".join(s.text for s in reply.segments[reply.in_history :])
        reply.in_history = len(reply.segments)
        silent = self.tools.any_http(calls) and not playback.filler_said  # (built-ins are quick or speak)
        started = time.monotonic()
        try:
            outcomes = await run_round(
                self.tools,
                calls,
                say_first=lambda text: self._say_and_wait(reply, playback, text),
                filler=(lambda: self._filler(reply, playback)) if silent else None,
                filler_after_s=self.config.tool_filler_after_ms / 1000,
                spawn=self.spawn,
                on_late=lambda outcome: self.record.late_tool(reply.turn_id, outcome),
            )
        except RoundCancelled as cut:
            self._record_tools(reply, said, calls, cut.outcomes)
            moved = [o.transferred_to for o in cut.outcomes if o.transferred_to is not None]
            if moved:  # the provider took the call before the cut: the session ends it, transferred
                self.handed_over = moved[0]
            raise
        finally:
            reply.tools_ms += (time.monotonic() - started) * 1000
        return outcomes, self._record_tools(reply, said, calls, outcomes)

    def _record_tools(
        self, reply: Reply, said: str, calls: list[ToolCall], outcomes: list[ToolOutcome]
    ) -> list[ChatMessage]:
        for outcome in outcomes:
            if not outcome.running:
                self.record.tool(reply.turn_id, outcome)
        return self.record.tool_exchange(said, calls, outcomes)

    def _exhausted(self, reply: Reply, playback: Playback, calls: list[ToolCall]) -> None:
        """The turn's last allowed request still asked for tools: none runs; each call is recorded (and answered
        in the history) as an error, and a turn that said nothing at all says the re-prompt instead of silence."""
        log.warning("tool_rounds_exhausted", rounds=MAX_ROUNDS, calls=[c.name for c in calls])
        said = " ".join(s.text for s in reply.segments[reply.in_history :])
        reply.in_history = len(reply.segments)
        outcomes = [ToolOutcome(c, self.tools.kind(c), TOO_MANY_ROUNDS, "error") for c in calls]
        self._record_tools(reply, said, calls, outcomes)
        if not reply.segments:
            self._add_segment(reply, playback, self.config.text("reprompt_message"))

    def _filler(self, reply: Reply, playback: Playback) -> None:
        """A tool round is taking long: say so (once per turn), so the line is not silent."""
        playback.filler_said = True
        self._add_segment(reply, playback, self.config.text("tool_filler_message"))

    async def _say_and_wait(self, reply: Reply, playback: Playback, text: str | None) -> None:
        """Return once the caller has heard what the reply has said so far, and then ``text`` (if any)."""
        if text:
            self._add_segment(reply, playback, text)
        played = asyncio.Event()
        playback.items.put_nowait(played)
        await played.wait()

    def _ending(self, reply: Reply, outcomes: list[ToolOutcome]) -> CallEvent | None:
        """How a round's calls end the call, if they do: a transfer that went through, or ``end_call``
        (the closing line is said unless the reply said something of its own)."""
        for outcome in outcomes:
            if outcome.transferred_to is not None:
                return Transferred(outcome.transferred_to)
        if any(outcome.end_call for outcome in outcomes):
            filler = self.config.text("tool_filler_message")
            return AgentHangUp(spoke=any(s.text != filler for s in reply.segments))
        return None

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
                if isinstance(item, asyncio.Event):
                    self.output.mark(item.set)
                    continue
                segment, audio = item
                segment.start = self.output.queued_total
                while (chunk := await audio.get()) is not None:
                    if "tts_first_audio" not in marks:
                        marks["tts_first_audio"] = time.time()
                        await self.notify(ReplyAudioStarted())
                    reply.keep_audio(self.output.queued_total, chunk)  # (a false interruption replays it)
                    self.output.push(chunk)
                segment.end = self.output.queued_total
                self.output.mark(_nothing)  # a mark after each utterance: barge-in knows exactly what was heard
            played = asyncio.Event()
            self.output.mark(played.set)
            await played.wait()
            if playback.then is None:
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
