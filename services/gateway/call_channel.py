"""One call's link to the workers: sends work requests to the queue groups and routes the results that
stream back on the call's own subjects (``call.<token>.stt|llm|tts``) to the turn that asked for them.

Any gateway replica can own a call: results are addressed to the call, not to a replica. A request that no
worker accepts (none running, or all busy) is retried once on another worker before the turn fails.

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
)
from shared.logging import get_logger
from shared.metrics import BUS_DELIVERY

log = get_logger(__name__)

Q = TypeVar("Q", LlmRequest, TtsRequest)
C = TypeVar("C", LlmChunk, TtsChunk)


class TurnFailed(Exception):
    """A stage of a turn could not complete; ``stage`` and ``error`` go into the ``call error`` event."""

    def __init__(self, stage: str, error: ErrorInfo) -> None:
        super().__init__(f"{stage}: {error.code}: {error.message}")
        self.stage = stage
        self.error = error


class CallChannel:
    def __init__(self, bus: Bus, call_id: str, *, ack_timeout_s: float) -> None:
        self.bus = bus
        self.call_id = call_id
        self.ack_timeout_s = ack_timeout_s
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
        queue = self._llm.get(turn)
        if queue is None and turn in self._chained:
            queue = self._llm[turn] = asyncio.Queue()
        if queue is not None:
            queue.put_nowait(ev)

    async def _on_tts(self, ev: TtsChunk, _msg: Msg) -> None:
        if ev.seq == 0:
            BUS_DELIVERY.labels("tts.chunk").observe(max(0.0, time.time() - ev.ts))
        key = (_turn(ev.turn_id), ev.segment)
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

    # --- requests --------------------------------------------------------------------------------------

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
            async with asyncio.timeout(timeout_s):  # (3.11's wait_for would start a task per wait)
                result = await fut
        except TimeoutError as exc:
            raise TurnFailed(
                "stt", ErrorInfo(code="timeout", message=f"no transcript in {timeout_s:.0f}s", retryable=True)
            ) from exc
        finally:
            self._stt.pop(turn, None)
        if result.error:
            raise TurnFailed("stt", result.error)
        return result

    def generate(self, req: LlmRequest, timeout_s: float, *, chained: bool = False) -> AsyncGenerator[LlmChunk, None]:
        """The reply's chunks in order; ``timeout_s`` bounds the wait for each chunk. A retryable failure
        before the first chunk is retried once (after it, the caller has heard part of the reply). Close the
        generator (``aclosing``) to stop early: that releases the call's routing at once. ``chained``: a
        worker already sent ``req``; wait for its results and send it only as the retry."""
        return self._retry_before_first(self._generate_once, req, timeout_s, "llm", chained)

    def synthesize(self, req: TtsRequest, timeout_s: float, *, chained: bool = False) -> AsyncGenerator[TtsChunk, None]:
        """One segment's audio chunks in order, with the same retry and chaining rules as :meth:`generate`."""
        return self._retry_before_first(self._synthesize_once, req, timeout_s, "tts", chained)

    async def _retry_before_first(
        self,
        once: Callable[[Q, float, bool], AsyncGenerator[C, None]],
        req: Q,
        timeout_s: float,
        stage: str,
        chained: bool,
    ) -> AsyncGenerator[C, None]:
        for attempt in (1, 2):
            started = False
            submit = attempt == 2 or not chained
            try:
                async with contextlib.aclosing(once(req, timeout_s, submit)) as chunks:  # cleaned up now, not at GC
                    async for chunk in chunks:
                        started = True
                        yield chunk
                return
            except TurnFailed as exc:
                if started or attempt == 2 or not exc.error.retryable:
                    raise
                log.warning("stage_retry", stage=stage, code=exc.error.code)
                if exc.error.code != NOT_CHAINED:  # (nobody has a request that was never handed on)
                    await self.cancel(req.turn_id, reason="retry", final=False)

    async def _generate_once(
        self, req: LlmRequest, timeout_s: float, submit: bool = True
    ) -> AsyncGenerator[LlmChunk, None]:
        turn = _turn(req.turn_id)
        queue: asyncio.Queue[LlmChunk] = asyncio.Queue() if submit else self._llm.get(turn, asyncio.Queue())
        self._llm[turn] = queue
        try:
            if submit:
                await self._submit(subjects.LLM_REQUEST, "llm", req)
            async for chunk in _ordered(queue, timeout_s, "llm"):
                yield chunk
        finally:
            self._llm.pop(turn, None)

    async def _synthesize_once(
        self, req: TtsRequest, timeout_s: float, submit: bool = True
    ) -> AsyncGenerator[TtsChunk, None]:
        key = (_turn(req.turn_id), req.segment)
        queue: asyncio.Queue[TtsChunk] = asyncio.Queue() if submit else self._tts.get(key, asyncio.Queue())
        self._tts[key] = queue
        try:
            if submit:
                await self._submit(subjects.TTS_REQUEST, "tts", req)
            async for chunk in _ordered(queue, timeout_s, "tts"):
                yield chunk
        finally:
            self._tts.pop(key, None)

    async def cancel(self, turn_id: int | None, reason: str, *, final: bool = True) -> None:
        """Tell the workers to stop this turn's work (they stop calling the provider); ``final``: and to
        drop its requests that arrive later (False when the same work is about to be sent again)."""
        await self.bus.publish(
            subjects.call_subject(self.call_id, "cancel"),
            CancelTurn(call_id=self.call_id, turn_id=turn_id, reason=reason, final=final),
        )


async def _ordered(queue: asyncio.Queue, timeout_s: float, stage: str) -> AsyncIterator:  # type: ignore[type-arg]
    """Re-order chunks by ``seq`` (core NATS keeps order per publisher, but be strict) until ``done``."""
    expected = 0
    held: dict[int, Event] = {}
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                chunk = await queue.get()
        except TimeoutError as exc:
            raise TurnFailed(
                stage, ErrorInfo(code="timeout", message=f"{stage} stalled for {timeout_s:.0f}s", retryable=True)
            ) from exc
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


def _turn(turn_id: int | None) -> int:
    """Routing key of a turn: the same for a request and its results (0 is a real turn: the prefetch)."""
    return -1 if turn_id is None else turn_id
