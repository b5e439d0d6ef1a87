"""One call's link to the workers: sends work requests to the queue groups and routes the results that
stream back on the call's own subjects (``call.<token>.stt|llm|tts``) to the turn that asked for them.

Any gateway replica can own a call: results are addressed to the call, not to a replica. A request that no
worker accepts (none running, or all busy) is retried once on another worker before the turn fails.

Work a worker accepted is watched through the workers' beats (:class:`WorkerWatch`): when no live replica
lists it for ``WORKER_LOST_AFTER_S`` (the replica died, or its result was lost in a NATS restart), the stage is
retried at once on another replica, from where it stopped: an LLM reply resumes after the text already
received (``LlmRequest.resume``), a segment's audio after the bytes already received (``skip_bytes``). Each
retry has its own ``attempt`` number (the request's plus one per retry: a turn's later tool rounds start at a
higher one), echoed on its chunks, so a late chunk of an earlier attempt is dropped.

Chained turns: a worker may send the next stage's request itself (STT → LLM, LLM → TTS), so results can
arrive for a turn's LLM stream or TTS segment before the session asked for them. For a turn announced with
:meth:`expect_chained` such results are kept until asked for; ``chained=True`` then waits for them without
sending the request, and sends it only as the retry (the chaining worker reported ``not_chained``, or the
chained work failed retryably before its first result).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.gateway.call.worker_watch import WorkerWatch
from shared import subjects
from shared.bus import Bus
from shared.events import (
    NOT_CHAINED,
    CancelTurn,
    ErrorInfo,
    Event,
    LlmChunk,
    LlmRequest,
    SttRequest,
    SttResult,
    TtsChunk,
    TtsRequest,
    work_key,
)
from shared.logging import get_logger
from shared.metrics import BUS_DELIVERY

log = get_logger(__name__)

Q = TypeVar("Q", LlmRequest, TtsRequest)
C = TypeVar("C", LlmChunk, TtsChunk)
STAGE_ATTEMPTS = 3  # a streamed stage: the request, then up to two retries (each from where it stopped)


class TurnFailed(Exception):
    """A stage of a turn could not complete; ``stage`` and ``error`` go into the ``call error`` event."""

    def __init__(self, stage: str, error: ErrorInfo) -> None:
        super().__init__(f"{stage}: {error.code}: {error.message}")
        self.stage = stage
        self.error = error


class CallChannel:
    def __init__(self, bus: Bus, call_id: str, *, ack_timeout_s: float, watch: WorkerWatch | None = None) -> None:
        self.bus = bus
        self.call_id = call_id
        self.ack_timeout_s = ack_timeout_s
        self.watch = watch
        # how often a wait looks at the watch: a lost request is retried within lost_after + this
        self.check_s = min(0.25, watch.lost_after_s / 4) if watch is not None else 0.0
        self._attempt: dict[tuple[str, int, int], int] = {}  # (stage, turn, segment) → attempt in progress
        self._subs: list[Subscription] = []
        self._stt: dict[int, asyncio.Future[SttResult]] = {}
        self._llm: dict[int, asyncio.Queue[LlmChunk]] = {}
        self._tts: dict[tuple[int, int], asyncio.Queue[TtsChunk]] = {}
        self._chained: set[int] = set()  # turns whose results may arrive before they are asked for
        self.subject_stt = subjects.call_subject(call_id, "stt")
        self.subject_llm = subjects.call_subject(call_id, "llm")
        self.subject_tts = subjects.call_subject(call_id, "tts")

    async def open(self) -> None:
        self._subs = [
            await self.bus.subscribe(self.subject_stt, SttResult, self._on_stt),
            await self.bus.subscribe(self.subject_llm, LlmChunk, self._on_llm),
            await self.bus.subscribe(self.subject_tts, TtsChunk, self._on_tts),
        ]

    async def close(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # connection closing: the subscription is gone anyway
                pass
        self._subs = []

    # --- routing ---------------------------------------------------------------------------------------

    async def _on_stt(self, ev: SttResult, _msg: Msg) -> None:
        BUS_DELIVERY.labels("stt.result").observe(max(0.0, time.time() - ev.ts))
        fut = self._stt.get(_turn(ev.turn_id))
        if fut is not None and not fut.done():
            fut.set_result(ev)

    async def _on_llm(self, ev: LlmChunk, _msg: Msg) -> None:
        if ev.seq == 0:
            BUS_DELIVERY.labels("llm.chunk").observe(max(0.0, time.time() - ev.ts))
        turn = _turn(ev.turn_id)
        if ev.attempt != self._attempt.get(("llm", turn, 0), 0):
            return  # a late chunk of an attempt already given up on
        queue = self._llm.get(turn)
        if queue is None and turn in self._chained:
            queue = self._llm[turn] = asyncio.Queue()
        if queue is not None:
            queue.put_nowait(ev)

    async def _on_tts(self, ev: TtsChunk, _msg: Msg) -> None:
        if ev.seq == 0:
            BUS_DELIVERY.labels("tts.chunk").observe(max(0.0, time.time() - ev.ts))
        key = (_turn(ev.turn_id), ev.segment)
        if ev.attempt != self._attempt.get(("tts", key[0], ev.segment), 0):
            return
        queue = self._tts.get(key)
        if queue is None and key[0] in self._chained:
            queue = self._tts[key] = asyncio.Queue()
        if queue is not None:
            queue.put_nowait(ev)

    def expect_chained(self, turn_id: int | None) -> None:
        """Keep this turn's LLM and TTS results that arrive before they are asked for (chained requests)."""
        self._chained.add(_turn(turn_id))

    def forget_turn(self, turn_id: int | None) -> None:
        """The turn is over: drop what it buffered, and route its late results nowhere."""
        turn = _turn(turn_id)
        self._chained.discard(turn)
        self._llm.pop(turn, None)
        for key in [k for k in self._tts if k[0] == turn]:
            del self._tts[key]
        for key in [k for k in self._attempt if k[1] == turn]:
            del self._attempt[key]

    # --- requests --------------------------------------------------------------------------------------

    def _slice(self, deadline: float) -> float:
        """How long the next wait may take: to the deadline, or to the next look at the watch."""
        left = max(0.0, deadline - time.monotonic())
        return min(left, self.check_s) if self.check_s else left

    def _check(self, key: str, since: float, deadline: float, stage: str, exc: BaseException, *, what: str) -> None:
        """A wait's slice ran out: raise when the stage timed out, or when no live worker holds its work."""
        if time.monotonic() >= deadline:
            raise TurnFailed(stage, ErrorInfo(code="timeout", message=what, retryable=True)) from exc
        if self.watch is not None and self.watch.lost(key, since):
            log.warning("work_lost", stage=stage, key=key, waited_s=round(time.monotonic() - since, 2))
            raise TurnFailed(
                stage,
                ErrorInfo(code="worker_lost", message="no live worker holds the request", retryable=True),
            ) from exc

    async def _submit(self, subject: str, stage: str, req: Event) -> None:
        last = await self.bus.submit_work(subject, req, ack_timeout_s=self.ack_timeout_s)
        if last is None:
            return
        # already retried on another worker: the stage-level retry must not multiply the attempts
        raise TurnFailed(stage, last.model_copy(update={"retryable": False}))

    async def transcribe(self, req: SttRequest, timeout_s: float) -> SttResult:
        """One transcript; a retryable failure (worker died, timed out, refused) is retried once."""
        try:
            return await self._transcribe_once(req, timeout_s)
        except TurnFailed as exc:
            if not exc.error.retryable:
                raise
            log.warning("stage_retry", stage="stt", code=exc.error.code)
            return await self._transcribe_once(req, timeout_s)

    async def _transcribe_once(self, req: SttRequest, timeout_s: float) -> SttResult:
        fut: asyncio.Future[SttResult] = asyncio.get_running_loop().create_future()
        turn = _turn(req.turn_id)
        self._stt[turn] = fut
        try:
            await self._submit(subjects.STT_REQUEST, "stt", req)
            key = work_key(self.call_id, req.turn_id, "stt")
            deadline = time.monotonic() + timeout_s
            since = time.monotonic()
            while True:
                try:
                    async with asyncio.timeout(self._slice(deadline)):  # (3.11's wait_for starts a task per wait)
                        result = await asyncio.shield(fut)
                    break
                except TimeoutError as exc:
                    self._check(key, since, deadline, "stt", exc, what=f"no transcript in {timeout_s:.0f}s")
        finally:
            self._stt.pop(turn, None)
        if result.error:
            raise TurnFailed("stt", result.error)
        return result

    def generate(self, req: LlmRequest, timeout_s: float, *, chained: bool = False) -> AsyncGenerator[LlmChunk, None]:
        """The reply's chunks in order; ``timeout_s`` bounds the wait for each chunk. A retryable failure is
        retried (up to :data:`STAGE_ATTEMPTS` in all); after the first chunk the retry resumes the reply after
        the text already yielded, so nothing is said twice. Close the generator (``aclosing``) to stop early:
        that releases the call's routing at once. ``chained``: a worker already sent ``req``; wait for its
        results and send it only as the retry."""
        return self._resilient(self._generate_once, req, timeout_s, "llm", chained)

    def synthesize(self, req: TtsRequest, timeout_s: float, *, chained: bool = False) -> AsyncGenerator[TtsChunk, None]:
        """One segment's audio chunks in order, with the same retry and chaining rules as :meth:`generate`
        (a retry mid-segment skips the audio bytes already yielded)."""
        return self._resilient(self._synthesize_once, req, timeout_s, "tts", chained)

    async def _resilient(
        self,
        once: Callable[[Q, float, bool], AsyncGenerator[C, None]],
        req: Q,
        timeout_s: float,
        stage: str,
        chained: bool,
    ) -> AsyncGenerator[C, None]:
        progress = _Progress()
        current = req
        for attempt in range(STAGE_ATTEMPTS):
            submit = attempt > 0 or not chained
            try:
                async with contextlib.aclosing(once(current, timeout_s, submit)) as chunks:  # cleaned up now
                    async for chunk in chunks:
                        progress.add(chunk)
                        yield chunk
                return
            except TurnFailed as exc:
                if attempt == STAGE_ATTEMPTS - 1 or not exc.error.retryable:
                    raise
                log.warning(
                    "stage_retry", stage=stage, code=exc.error.code, attempt=attempt + 1, resumed=progress.started
                )
                if exc.error.code != NOT_CHAINED:  # (nobody has a request that was never handed on)
                    await self.cancel(req.turn_id, reason="retry", final=False, stage=stage, segment=_segment(req))
                current = progress.resume(req, req.attempt + attempt + 1)  # (a tool round starts above 0)

    async def _generate_once(
        self, req: LlmRequest, timeout_s: float, submit: bool = True
    ) -> AsyncGenerator[LlmChunk, None]:
        turn = _turn(req.turn_id)
        self._attempt[("llm", turn, 0)] = req.attempt
        queue: asyncio.Queue[LlmChunk] = asyncio.Queue() if submit else self._llm.get(turn, asyncio.Queue())
        self._llm[turn] = queue
        try:
            if submit:
                await self._submit(subjects.LLM_REQUEST, "llm", req)
            key = work_key(self.call_id, req.turn_id, "llm", 0, req.attempt)
            async for chunk in self._ordered(queue, timeout_s, "llm", key):
                yield chunk
        finally:
            self._llm.pop(turn, None)

    async def _synthesize_once(
        self, req: TtsRequest, timeout_s: float, submit: bool = True
    ) -> AsyncGenerator[TtsChunk, None]:
        key = (_turn(req.turn_id), req.segment)
        self._attempt[("tts", key[0], req.segment)] = req.attempt
        queue: asyncio.Queue[TtsChunk] = asyncio.Queue() if submit else self._tts.get(key, asyncio.Queue())
        self._tts[key] = queue
        try:
            if submit:
                await self._submit(subjects.TTS_REQUEST, "tts", req)
            work = work_key(self.call_id, req.turn_id, "tts", req.segment, req.attempt)
            async for chunk in self._ordered(queue, timeout_s, "tts", work):
                yield chunk
        finally:
            self._tts.pop(key, None)

    async def _ordered(self, queue: asyncio.Queue, timeout_s: float, stage: str, key: str) -> AsyncIterator:  # type: ignore[type-arg]
        """Re-order chunks by ``seq`` (core NATS keeps order per publisher, but be strict) until ``done``;
        ``timeout_s`` bounds the wait for each chunk, the watch the wait for work no live worker holds."""
        expected = 0
        held: dict[int, Event] = {}
        since = time.monotonic()
        while True:
            deadline = since + timeout_s
            while True:
                try:
                    async with asyncio.timeout(self._slice(deadline)):
                        chunk = await queue.get()  # (a cancelled get loses nothing)
                    break
                except TimeoutError as exc:
                    self._check(key, since, deadline, stage, exc, what=f"{stage} stalled for {timeout_s:.0f}s")
            since = time.monotonic()
            if chunk.error:
                raise TurnFailed(stage, chunk.error)
            held[chunk.seq] = chunk
            while expected in held:
                ready = held.pop(expected)
                expected += 1
                yield ready
                if ready.done:
                    return
            if chunk.done and chunk.seq < expected:
                return

    async def cancel(
        self,
        turn_id: int | None,
        reason: str,
        *,
        final: bool = True,
        stage: str | None = None,
        segment: int | None = None,
    ) -> None:
        """Tell the workers to stop this turn's work (they stop calling the provider); ``final``: and to
        drop its requests that arrive later (False when the same work is about to be sent again); ``stage``
        and ``segment`` narrow it to one stage's work (a retry must not stop the turn's other segments)."""
        await self.bus.publish(
            subjects.call_subject(self.call_id, "cancel"),
            CancelTurn(call_id=self.call_id, turn_id=turn_id, reason=reason, final=final, stage=stage, segment=segment),
        )


class _Progress:
    """What a streamed stage has yielded so far, and the request that resumes after it."""

    def __init__(self) -> None:
        self.started = False
        self.text: list[str] = []
        self.segments = 0
        self.audio_bytes = 0

    def add(self, chunk: LlmChunk | TtsChunk) -> None:
        self.started = True
        if isinstance(chunk, LlmChunk):
            self.text.append(chunk.delta)
            self.segments += len(chunk.segments or ())
        else:
            self.audio_bytes += len(chunk.audio)

    def resume(self, req: Q, attempt: int) -> Q:
        if isinstance(req, LlmRequest):
            text, segments = req.resume + "".join(self.text), req.resume_segments + self.segments
            return req.model_copy(update={"resume": text, "resume_segments": segments, "attempt": attempt})
        return req.model_copy(update={"skip_bytes": req.skip_bytes + self.audio_bytes, "attempt": attempt})


def _segment(req: LlmRequest | TtsRequest) -> int | None:
    return req.segment if isinstance(req, TtsRequest) else None


def _turn(turn_id: int | None) -> int:
    """Routing key of a turn: the same for a request and its results (0 is a real turn: the prefetch)."""
    return -1 if turn_id is None else turn_id
