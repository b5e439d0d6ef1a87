"""Taking the caller's turn sooner and better, for one call: the reply started at a pause and held back
until the turn ends there (preemptive reply), the end-of-turn model's judgement of a pause, and what a false
interruption gives back.

The session's state machine decides *when* (its actions ``PREEMPT``, ``JUDGE_TURN``, ``DROP_PREEMPTED``,
``RESPOND``, ``RESUME``); this module does the work and keeps what it needs between them:

- **Preemptive reply.** At a pause of ``turn.preempt_ms`` the turn's audio so far goes to STT (chained: LLM
  and TTS follow on their own) under a :class:`Hold`. If the turn ends at that pause (the caller said no more),
  the hold opens and the reply is already on its way; if the caller goes on, it is cancelled, and the workers
  with it. Only the audio of that same pause is reused: nothing is compared, nothing is guessed.
- **End-of-turn model.** At a pause of ``turn.pause_ms`` the words of the reply held there decide first
  ("...a table for" waits, a question ends the turn); when they do not, the model (one per process, shared
  by every call) gives the probability that the caller has finished; at ``turn.eot_threshold`` or above the
  turn ends now, below it the agent waits, up to ``turn.max_silence_ms``. An answer about a pause the caller
  has since broken is dropped. If the model cannot answer (overloaded, failed), the fixed window
  ``turn.vad_stop_ms`` decides.
- **False interruption.** What the caller had not heard of a reply they cut off is kept (text and audio); if
  their turn then holds no words, or only a backchannel, the agent plays it and goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from services.gateway.call.hold import Hold
from services.gateway.call.machine import Action, CallEvent, FalseInterruption
from services.gateway.call.reply import STT_RATE, ReplyPipeline
from services.gateway.call.turn_detector import PausePoint, PreemptPoint, TurnDetector, TurnEnded, VadEngine
from services.gateway.call.unfinished import sounds_unfinished
from services.gateway.metrics import END_OF_TURN_DECISIONS, INTERRUPTIONS, PREEMPTIVE_REPLIES, TURN_END_SILENCE
from shared.call_config import TurnSpec
from shared.logging import get_logger

log = get_logger(__name__)

BYTES_PER_S = 2 * STT_RATE  # the turn's audio: PCM16 mono at the STT rate
MAX_CARRIED_BYTES = 10 * BYTES_PER_S  # at most 10 s of a turn cut too soon is carried into the next
TRANSCRIPT_WAIT_S = 1.5  # the longest a complete-sounding pause waits for its words (a slow STT: decide without)


def detector_for(vad: VadEngine, turn: TurnSpec, *, max_turn_s: float, with_model: bool) -> TurnDetector:
    """The call's turn detector: with the model, turns end at a pause it judges complete (``max_silence_ms``
    at the latest); without (``end_of_turn`` "silence", or no model in this process), after ``vad_stop_ms``."""
    model = with_model and turn.end_of_turn == "model"
    return TurnDetector(
        vad,
        start_ms=turn.vad_start_ms,
        stop_ms=turn.max_silence_ms if model else turn.vad_stop_ms,
        preroll_ms=turn.vad_preroll_ms,
        max_turn_s=max_turn_s,
        preempt_ms=turn.preempt_ms,
        pause_ms=turn.pause_ms if model else 0,
        interrupt_ms=turn.interrupt_min_ms,
    )


COMPLETE = frozenset({"complete", "question"})


def decided_by_words(words: str | None, language: str) -> str | None:
    """A pause's verdict from what the caller said, when that settles it: words that plainly go on ("...a table
    for") keep the turn open; a question the recogniser closed with "?" ends it (the model often hears a Spanish
    question as unfinished). None: the words (if known) leave it to how the caller sounds."""
    if words is None:
        return None
    if sounds_unfinished(words, language):
        return "unfinished_words"
    if words.rstrip().endswith("?"):
        return "question"
    return None


class TurnModel(Protocol):
    """An end-of-turn model: the probability that the caller has finished, from their turn's audio so far
    (PCM16, 16 kHz); raises when it cannot answer in time."""

    async def probability(self, audio: bytes) -> float: ...


@dataclass
class Held:
    """A reply started at a pause: its turn, its task, the hold that keeps it back."""

    turn_id: int
    task: asyncio.Task[None]
    hold: Hold
    pause: int


@dataclass
class Cut:
    """A reply the caller cut off: what they had not heard of it, should the cut prove false."""

    parts: list[tuple[str, bytes]]
    turn_id: int | None = None  # the caller's turn it waits on (set when that turn is answered)


TURN_ACTIONS = frozenset(
    {Action.RESPOND, Action.PREEMPT, Action.JUDGE_TURN, Action.DROP_PREEMPTED, Action.BACKCHANNEL, Action.RESUME}
)


class TurnTaking:
    def __init__(
        self,
        *,
        turn: TurnSpec,
        detector: TurnDetector,
        model: TurnModel | None,
        pipeline: ReplyPipeline,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        dispatch: Callable[[CallEvent], Awaitable[None]],
    ) -> None:
        self.turn = turn
        self.language = pipeline.config.language
        self.detector = detector
        self.model = model
        self.channel = pipeline.channel
        self.record = pipeline.record
        self.pipeline = pipeline
        self.spawn = spawn
        self.dispatch = dispatch
        self.held: Held | None = None
        self.cut: Cut | None = None
        self.answering: tuple[int, bytes] | None = None  # the turn being answered and its audio
        self.carried = b""  # a turn ended too soon (the caller went on before its words were taken): its audio

    async def act(self, action: Action, event: CallEvent) -> asyncio.Task[None] | None:
        """Run one of :data:`TURN_ACTIONS`; the call's new reply task, when it starts one."""
        if action == Action.RESPOND:
            assert isinstance(event, TurnEnded)
            return await self.respond(event)
        if action == Action.PREEMPT:
            assert isinstance(event, PreemptPoint)
            await self.preempt(event)
        elif action == Action.JUDGE_TURN:
            assert isinstance(event, PausePoint)
            self.judge(event)
        elif action == Action.DROP_PREEMPTED:
            await self.drop()
        elif action == Action.BACKCHANNEL:
            assert isinstance(event, TurnEnded)
            INTERRUPTIONS.labels("backchannel").inc()
            log.info("backchannel_ignored", speech_s=round(len(event.audio) / BYTES_PER_S - event.silence_s, 2))
        elif action == Action.RESUME:
            assert isinstance(event, FalseInterruption)
            INTERRUPTIONS.labels("resumed").inc()
            log.info("false_interruption_resumed", parts=len(event.parts))
            return asyncio.create_task(self.pipeline.resume(self.record.next_turn(), list(event.parts)))
        return None

    # --- the reply started at a pause --------------------------------------------------------------------

    async def preempt(self, event: PreemptPoint) -> None:
        """Start the reply on the turn so far, held back until the turn ends at this pause."""
        if self.held is not None and self.held.pause == event.pause:
            return  # (a later point of the same pause: the reply is already on its way)
        await self.drop()  # (one held at an earlier pause: the caller went on from it)
        turn_id, hold = self.record.next_turn(), Hold()
        audio = self.carried + event.audio
        reply = self.pipeline.respond(turn_id, audio, time.time(), hold=hold, after_cut=self._after_cut())
        self.held = Held(turn_id, self.spawn(reply), hold, event.pause)
        log.debug("reply_preempted", turn_id=turn_id, audio_s=round(len(event.audio) / BYTES_PER_S, 2))

    async def drop(self) -> None:
        """The caller went on after the pause: the held reply is cancelled, and its workers' work."""
        held, self.held = self.held, None
        if held is None:
            return
        PREEMPTIVE_REPLIES.labels("dropped").inc()
        held.hold.heard(None)  # (a pause being judged on its words stops waiting for them)
        held.task.cancel()
        await asyncio.gather(held.task, return_exceptions=True)
        await self.channel.cancel(held.turn_id, reason="caller_went_on")

    async def respond(self, event: TurnEnded) -> asyncio.Task[None]:
        """The turn ended: the reply held at its last pause is released, or a reply starts now."""
        TURN_END_SILENCE.labels(event.reason).observe(event.silence_s)
        after_cut = self._after_cut()
        if self.held is not None and self.held.pause != self.detector.pause_count:
            await self.drop()  # (held at an earlier pause: the turn went on after it)
        held, self.held = self.held, None
        audio, self.carried = self.carried + event.audio, b""
        if held is not None:
            PREEMPTIVE_REPLIES.labels("used").inc()
            held.hold.open(time.time())
            turn_id, task = held.turn_id, held.task
        else:
            turn_id = self.record.next_turn()
            task = asyncio.create_task(self.pipeline.respond(turn_id, audio, time.time(), after_cut=after_cut))
        self.answering = (turn_id, audio)
        if self.cut is not None:
            self.cut.turn_id = turn_id
        return task

    # --- the end-of-turn model ---------------------------------------------------------------------------

    def judge(self, event: PausePoint) -> None:
        """Ask the model about this pause, off the caller's audio path."""
        if self.model is None:
            return
        self.spawn(self._judge(event, self.model))

    async def _judge(self, event: PausePoint, model: TurnModel) -> None:
        """The words first (the reply held at this pause is transcribing them anyway), the model only when they
        do not settle the pause: no CPU spent on "...a table for" or on a question. Its answer comes after the
        transcript, while the LLM and TTS work on the held reply, so it costs the reply nothing."""
        decision = decided_by_words(await self._words(event.pause), self.language)
        if decision is None:
            try:
                probability = await model.probability(event.audio)
            except Exception as exc:  # overloaded or broken: the fixed window decides this pause
                END_OF_TURN_DECISIONS.labels("unavailable").inc()
                log.warning("end_of_turn_fallback", error=str(exc) or type(exc).__name__)
                ended = self.detector.end_after(self.turn.vad_stop_ms, event.pause)
                if ended is not None:
                    await self.dispatch(ended)
                return
            decision = "complete" if probability >= self.turn.eot_threshold else "incomplete"
            log.debug("end_of_turn", probability=round(probability, 3), decision=decision, pause=event.pause)
        END_OF_TURN_DECISIONS.labels(decision).inc()
        ended = self.detector.end_after(0, event.pause) if decision in COMPLETE else None
        if ended is not None:
            await self.dispatch(ended)

    async def _words(self, pause: int) -> str | None:
        """What the caller said up to ``pause``, when a reply is held there (its STT result). Waiting for it
        costs the reply nothing: the reply is that STT result → LLM → TTS anyway."""
        held = self.held
        if held is None or held.pause != pause:
            return None
        return await held.hold.transcript(timeout_s=TRANSCRIPT_WAIT_S)

    def went_on(self, *, spoken: bool) -> None:
        """The caller spoke (``spoken``; or keyed) over the agent: if the turn being answered had not had its
        words taken yet (its STT is cut now), it was ended too soon, and its audio opens the caller's next
        spoken turn, so nothing they said is lost."""
        if spoken and self.answering is not None and self.record.heard_turn != self.answering[0]:
            self.carried = self.answering[1][-MAX_CARRIED_BYTES:]
            log.info("turn_carried_over", turn_id=self.answering[0], audio_s=round(len(self.carried) / BYTES_PER_S, 2))
        self.answering = None

    # --- false interruptions -----------------------------------------------------------------------------

    def keep_cut(self, parts: list[tuple[str, bytes]]) -> None:
        """The caller cut a reply off; ``parts`` is what they had not heard of it."""
        self.cut = Cut(parts) if parts and self.turn.resume_after_false_interruption else None

    def resumable(self, turn_id: int | None) -> list[tuple[str, bytes]] | None:
        """What to play again when the caller's turn ``turn_id`` (which cut the agent off) had no words."""
        cut, self.cut = self.cut, None
        if cut is None or cut.turn_id is None or cut.turn_id != turn_id:
            return None
        return cut.parts

    def _after_cut(self) -> bool:
        """Whether the caller's turn now ending is the one that cut the agent off (a cut already answered by an
        earlier turn is forgotten: it was real)."""
        if self.cut is not None and self.cut.turn_id is not None:
            self.cut = None
        return self.cut is not None
