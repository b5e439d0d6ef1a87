"""Consumes the lifecycle stream with a durable pull consumer and explicit acks.

- A message is acked only after its event is committed to PostgreSQL, so a crash or restart redelivers it
  (and the store's event-id claim makes the redelivery harmless).
- PostgreSQL down: the message is nak'ed with a growing delay and readiness reports the outage; nothing is
  acked, so nothing is lost, and the consumer catches up when the database is back.
- A message that can never be applied (not JSON, not a lifecycle event) is a poison message: it is copied
  to the dead-letter stream with the reason in its headers, logged with its call id when one can be read,
  and then terminated, so it does not block the stream.
"""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge

from services.call_recorder.extraction import Extractor
from services.call_recorder.store import HistoryStore
from shared import subjects
from shared.bus import Bus
from shared.events import (
    CallEnded,
    CallError,
    CallStarted,
    CallStatusChanged,
    EventDecodeError,
    TurnRecorded,
    decode_event,
)
from shared.logging import bound_call, get_logger

log = get_logger(__name__)

DEADLETTER_STREAM = "CALL_LIFECYCLE_DLQ"
DEADLETTER_PREFIX = "deadletter.lifecycle"

EVENTS = Counter("victoria_recorder_events_total", "Lifecycle events handled", ["type", "outcome"])
LAG = Gauge("victoria_recorder_pending_messages", "Lifecycle messages not yet acknowledged by the recorder")

_LIFECYCLE = (CallStarted, TurnRecorded, CallEnded, CallError, CallStatusChanged)


class LifecycleConsumer:
    def __init__(
        self,
        bus: Bus,
        store: HistoryStore,
        *,
        durable: str,
        batch: int,
        ack_wait_s: float,
        max_deliver: int,
        extractor: Extractor | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.extractor = extractor
        self.durable = durable
        self.batch = batch
        self.ack_wait_s = ack_wait_s
        self.max_deliver = max_deliver
        self.db_ok = True
        self.last_error: str | None = None
        self.applied = 0

    async def setup(self) -> None:
        await self.bus.ensure_lifecycle_stream()
        try:
            await self.bus.js.stream_info(DEADLETTER_STREAM)
        except NotFoundError:
            await self.bus.js.add_stream(
                StreamConfig(
                    name=DEADLETTER_STREAM,
                    subjects=[f"{DEADLETTER_PREFIX}.>"],
                    retention=RetentionPolicy.LIMITS,
                    max_age=30 * 24 * 3600,
                )
            )
        self.sub = await self.bus.js.pull_subscribe(
            f"{subjects.LIFECYCLE_PREFIX}.>",
            durable=self.durable,
            stream=subjects.LIFECYCLE_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait_s,
                max_deliver=self.max_deliver,
                max_ack_pending=1000,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.db_ok:
                # PostgreSQL is away: fetch nothing until it answers again. Every fetch counts as a delivery,
                # and a long outage must not use up a message's redeliveries (then it would never be written)
                await self._wait_for_db(stop)
                continue
            try:
                msgs = await self.sub.fetch(self.batch, timeout=1.0)
            except NatsTimeoutError:
                continue
            except Exception as exc:  # NATS reconnecting: wait and try again
                log.warning("lifecycle_fetch_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for i, msg in enumerate(msgs):
                if stop.is_set():  # SIGTERM: the message in hand was finished; the rest go back at once
                    await self._hand_back(msgs[i:])
                    break
                await self.handle(msg)
            try:
                info = await self.sub.consumer_info()
                LAG.set(info.num_pending + info.num_ack_pending)
            except Exception:  # metrics only
                pass

    async def _hand_back(self, msgs: list[Msg]) -> None:
        """Fetched but not started: nak them, so JetStream redelivers them now (to another replica, or to us
        after the restart) rather than after ``ack_wait``."""
        for msg in msgs:
            try:
                await msg.nak()
            except Exception as exc:  # NATS gone: they come back after ack_wait instead
                log.info("lifecycle_nak_failed", error=str(exc) or type(exc).__name__)
                return
        log.info("lifecycle_messages_handed_back", count=len(msgs))

    async def close(self) -> None:
        """Stop pulling (an open pull request would otherwise hold the connection's drain)."""
        try:
            await self.sub.unsubscribe()
        except Exception as exc:  # already closed with the connection
            log.info("consumer_unsubscribe_failed", error=str(exc) or type(exc).__name__)

    async def handle(self, msg: Msg) -> None:
        try:
            event = decode_event(msg.data)
            if not isinstance(event, _LIFECYCLE):
                raise EventDecodeError(f"{event.type} is not a lifecycle event")
        except EventDecodeError as exc:
            await self._dead_letter(msg, str(exc))
            return
        with bound_call(event.call_id, event_type=event.type):
            try:
                applied = await self.store.apply(event)
            except (
                TimeoutError,
                OSError,
                asyncpg.PostgresConnectionError,
                asyncpg.InterfaceError,
                # the server shutting down (AdminShutdownError, CrashShutdownError) or starting up
                # (CannotConnectNowError): the database is unavailable, the event is fine
                asyncpg.OperatorInterventionError,
                # a session terminated mid-transaction can leave asyncpg's protocol in this state
                asyncpg.InternalClientError,
            ) as exc:
                self._db_down(exc)
                delay = min(30.0, 0.5 * 2 ** min(msg.metadata.num_delivered, 6))
                await msg.nak(delay=delay)
                await asyncio.sleep(min(delay, 2.0))
                return
            except asyncpg.PostgresError as exc:
                # the database rejected this event (constraint, bad data): retrying cannot help
                await self._dead_letter(msg, f"database rejected event: {exc}")
                return
            if not self.db_ok:
                log.info("database_recovered")
            self.db_ok = True
            self.last_error = None
            await msg.ack()
            self.applied += 1
            EVENTS.labels(event.type, "applied" if applied else "duplicate").inc()
            if not applied:
                log.info("duplicate_event_ignored", event_id=event.event_id)
            elif isinstance(event, CallEnded) and self.extractor is not None:
                self.extractor.submit(event.call_id)

    async def _wait_for_db(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                async with asyncio.timeout(5):
                    await self.store.pool.fetchval("SELECT 1")
                log.info("database_recovered")
                self.db_ok = True
                self.last_error = None
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, TimeoutError):
                try:
                    async with asyncio.timeout(delay):
                        await stop.wait()
                except TimeoutError:
                    pass
                delay = min(5.0, delay * 2)

    def _db_down(self, exc: BaseException) -> None:
        if self.db_ok:
            log.error("database_unavailable", error=str(exc) or type(exc).__name__)
        self.db_ok = False
        self.last_error = str(exc) or type(exc).__name__
        EVENTS.labels("-", "retry").inc()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        call_id = _peek_call_id(msg.data)
        log.error("lifecycle_event_dead_lettered", call_id=call_id, subject=msg.subject, reason=reason[:300])
        headers = {
            "Victoria-Reason": reason[:500],
            "Victoria-Original-Subject": msg.subject,
            "Victoria-Dead-Lettered-At": str(time.time()),
        }
        await self.bus.js.publish(f"{DEADLETTER_PREFIX}.{msg.subject.split('.')[-1]}", msg.data, headers=headers)
        await msg.term()
        EVENTS.labels("-", "dead_lettered").inc()


def _peek_call_id(data: bytes) -> str | None:
    try:
        value = json.loads(data)
        return str(value.get("call_id")) if isinstance(value, dict) and value.get("call_id") else None
    except ValueError:
        return None
