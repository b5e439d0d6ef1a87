"""Publishes lifecycle events to JetStream without ever blocking a call's audio path.

Events go into an outbox drained by one task that publishes with a JetStream ack and retries with backoff
while NATS is away (``Nats-Msg-Id`` makes a retried publish land once). With a spool
(``services/gateway/lifecycle/spool.py``) each event is also written to disk until JetStream acknowledged
it, and what a crashed predecessor left there is replayed first on start, so neither a NATS outage nor a
gateway crash loses a call's history. On shutdown the outbox is flushed before the bus closes.

The outbox can never be blocked: an event that cannot be serialised (a lone surrogate that slipped past the
edge) or that JetStream refuses for good (too big, a bad request) is not retried. It is logged whole, counted
in ``victoria_lifecycle_dead_lettered_total`` and published, ASCII-escaped, to the dead-letter stream
(``deadletter.lifecycle.*``, the recorder's), and the events behind it flow on. Only outages are retried.
"""

from __future__ import annotations

import asyncio
import json
import time

from nats.errors import MaxPayloadError
from nats.js.errors import APIError, ServiceUnavailableError
from pydantic_core import PydanticSerializationError

from services.gateway.lifecycle.spool import LifecycleSpool
from services.gateway.metrics import LIFECYCLE_DEAD_LETTERED
from shared import subjects
from shared.bus import Bus
from shared.events import CallEnded, CallError, CallStarted, CallStatusChanged, Event, TurnRecorded
from shared.logging import get_logger

log = get_logger(__name__)

DEADLETTER_PREFIX = "deadletter.lifecycle"  # the recorder's CALL_LIFECYCLE_DLQ stream

_SUBJECT = {
    CallStarted: subjects.CALL_STARTED,
    TurnRecorded: subjects.CALL_TURN,
    CallEnded: subjects.CALL_ENDED,
    CallError: subjects.CALL_ERROR,
    CallStatusChanged: subjects.CALL_STATUS,
}


class LifecycleOutbox:
    def __init__(
        self, bus: Bus, *, max_backoff_s: float = 5.0, spool: LifecycleSpool | None = None, instance: str = ""
    ) -> None:
        self.bus = bus
        self.max_backoff_s = max_backoff_s
        self.spool = spool
        self.instance = instance  # stamped on CallStarted: the reconciliation knows whose beats to watch
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.replayed = 0

    def start(self) -> None:
        """Open the spool (replaying what a previous process left, before any new event) and start draining."""
        if self.spool is not None:
            for _subject, event in self.spool.open():
                self._queue.put_nowait(event)
                self.replayed += 1
        self._task = asyncio.create_task(self._run(), name="lifecycle-outbox")

    def put(self, event: CallStarted | TurnRecorded | CallEnded | CallError | CallStatusChanged) -> None:
        if isinstance(event, CallStarted) and event.gateway is None and self.instance:
            event = event.model_copy(update={"gateway": self.instance})
        if self.spool is not None:
            try:
                body = event.model_dump_json()
            except Exception:  # unserialisable: never spooled, the drain dead-letters it
                pass
            else:
                try:
                    self.spool.put(event.event_id, _SUBJECT[type(event)], body)
                except OSError as exc:  # a full or broken disk: the event still goes out from memory
                    log.error("lifecycle_spool_write_failed", event_id=event.event_id, error=str(exc))
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
                    self._done(event)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if permanent(exc):
                        await self._dead_letter(event, exc)
                        self._done(event)
                        break
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

    def _done(self, event: Event) -> None:
        if self.spool is not None:
            try:
                self.spool.ack(event.event_id)
            except OSError as exc:  # a full disk: the event may be replayed once more (deduped downstream)
                log.error("lifecycle_spool_ack_failed", event_id=event.event_id, error=str(exc))

    async def _dead_letter(self, event: Event, exc: BaseException) -> None:
        subject = _SUBJECT[type(event)]
        reason = f"{type(exc).__name__}: {exc}"[:500]
        body = json.dumps(event.model_dump(mode="python"), default=str)  # ensure_ascii: surrogates escaped
        LIFECYCLE_DEAD_LETTERED.labels(subject.rsplit(".", 1)[-1]).inc()
        log.error("lifecycle_event_dead_lettered", call_id=event.call_id, subject=subject, reason=reason, payload=body)
        headers = {
            "Victoria-Reason": reason,
            "Victoria-Original-Subject": subject,
            "Victoria-Dead-Lettered-At": str(time.time()),
        }
        try:
            await self.bus.js.publish(
                f"{DEADLETTER_PREFIX}.{subject.rsplit('.', 1)[-1]}", body.encode()[:900_000], headers=headers, timeout=2
            )
        except Exception as dlq_exc:  # the log line above is the record of last resort
            log.error("lifecycle_dead_letter_publish_failed", error=str(dlq_exc) or type(dlq_exc).__name__)

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
        if self.spool is not None:
            self.spool.close()  # what is left unflushed stays spooled for the next start


def permanent(exc: BaseException) -> bool:
    """Will publishing this event fail however often it is retried? (An outage is not permanent.)"""
    if isinstance(exc, PydanticSerializationError | UnicodeError | ValueError | TypeError | MaxPayloadError):
        return True
    if isinstance(exc, ServiceUnavailableError):
        return False
    return isinstance(exc, APIError) and exc.code is not None and 400 <= int(exc.code) < 500 and exc.code != 408
