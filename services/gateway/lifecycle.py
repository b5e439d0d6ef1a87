"""Publishes lifecycle events to JetStream without ever blocking a call's audio path.

Events go into an in-memory outbox drained by one task that publishes with a JetStream ack and retries
with backoff while NATS is away (``Nats-Msg-Id`` makes a retried publish land once). On shutdown the
outbox is flushed before the bus closes, so a call's history is not lost by a restart.
"""

from __future__ import annotations

import asyncio

from shared import subjects
from shared.bus import Bus
from shared.events import CallEnded, CallError, CallStarted, CallStatusChanged, Event, TurnRecorded
from shared.logging import get_logger

log = get_logger(__name__)

_SUBJECT = {
    CallStarted: subjects.CALL_STARTED,
    TurnRecorded: subjects.CALL_TURN,
    CallEnded: subjects.CALL_ENDED,
    CallError: subjects.CALL_ERROR,
    CallStatusChanged: subjects.CALL_STATUS,
}


class LifecycleOutbox:
    def __init__(self, bus: Bus, *, max_backoff_s: float = 5.0) -> None:
        self.bus = bus
        self.max_backoff_s = max_backoff_s
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lifecycle-outbox")

    def put(self, event: CallStarted | TurnRecorded | CallEnded | CallError) -> None:
        self._queue.put_nowait(event)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            backoff = 0.1
            while True:
                try:
                    await self.bus.publish_lifecycle(_SUBJECT[type(event)], event)
                    self.published += 1
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "lifecycle_publish_retry",
                        call_id=event.call_id,
                        type=type(event).__name__,
                        error=str(exc) or type(exc).__name__,
                        backoff_s=backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(self.max_backoff_s, backoff * 2)
            self._queue.task_done()

    async def flush(self, timeout_s: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.error("lifecycle_events_unflushed", backlog=self._queue.qsize())

    async def stop(self) -> None:
        await self.flush()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
