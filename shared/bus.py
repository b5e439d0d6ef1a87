"""A thin layer over nats-py: typed events in and out, reconnect logging, JetStream for lifecycle events.

It adds only what every service needs the same way: JSON encoding of events, dropping (and counting) bad
messages instead of crashing, the work-request acknowledgement, and a drain on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from shared import subjects
from shared.events import ErrorInfo, Event, EventDecodeError, WorkAck, decode_as
from shared.logging import get_logger
from shared.metrics import BUS_DROPPED

log = get_logger(__name__)

E = TypeVar("E", bound=Event)
TRACE_HEADER = "Victoria-Trace-Id"


class NoWorkerError(RuntimeError):
    """Nobody listens on a work subject (no worker of that kind is running)."""


class WorkerBusyError(RuntimeError):
    """Workers answered but none accepted the request in time."""


class Bus:
    def __init__(self, nc: NATS, name: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.name = name

    @classmethod
    async def connect(cls, url: str, name: str, *, connect_timeout: float = 5.0) -> Bus:
        async def on_disconnect() -> None:
            log.warning("nats_disconnected", client=name)

        async def on_reconnect() -> None:
            log.info("nats_reconnected", client=name, server=str(nc.connected_url.netloc if nc.connected_url else ""))

        async def on_error(exc: Exception) -> None:
            log.warning("nats_error", client=name, error=str(exc) or type(exc).__name__)

        async def on_closed() -> None:
            log.info("nats_closed", client=name)

        nc = await nats.connect(
            servers=[s.strip() for s in url.split(",") if s.strip()],
            name=name,
            connect_timeout=connect_timeout,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            error_cb=on_error,
            closed_cb=on_closed,
        )
        log.info("nats_connected", client=name, server=url, max_payload=nc.max_payload)
        return cls(nc, name)

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload)

    async def publish(self, subject: str, event: Event) -> None:
        payload, headers = event.to_wire()
        await self.nc.publish(subject, payload, headers={TRACE_HEADER: event.trace_id, **headers})

    async def request_work(self, subject: str, event: Event, timeout: float) -> WorkAck:
        """Send a work request to a queue group and wait for a worker to accept it."""
        payload, headers = event.to_wire()
        try:
            msg = await self.nc.request(
                subject, payload, timeout=timeout, headers={TRACE_HEADER: event.trace_id, **headers}
            )
        except NoRespondersError as exc:
            raise NoWorkerError(f"no worker listens on {subject}") from exc
        except NatsTimeoutError as exc:
            raise WorkerBusyError(f"no worker accepted {subject} within {timeout:.1f}s") from exc
        try:
            return WorkAck.model_validate_json(msg.data)
        except ValidationError as exc:
            raise WorkerBusyError(f"bad acknowledgement on {subject}") from exc

    async def submit_work(self, subject: str, req: Event, *, ack_timeout_s: float) -> ErrorInfo | None:
        """Send a work request to a queue group; a request nobody accepts is sent once more (the queue group
        picks a replica at random). None once a worker accepted it, else the last reason it wasn't."""
        last: ErrorInfo | None = None
        for attempt in range(2):
            try:
                ack = await self.request_work(subject, req, timeout=ack_timeout_s)
            except NoWorkerError as exc:
                last = ErrorInfo(code="no_worker", message=str(exc), retryable=True)
            except WorkerBusyError as exc:
                last = ErrorInfo(code="timeout", message=str(exc), retryable=True)
            else:
                if ack.accepted:
                    return None
                last = ack.error or ErrorInfo(code="refused", message=f"{ack.worker} refused", retryable=True)
            log.warning("work_not_accepted", subject=subject, attempt=attempt + 1, code=last.code)
            if attempt == 0:
                await asyncio.sleep(0.05)
        return last

    async def subscribe(
        self,
        subject: str,
        model: type[E],
        handler: Callable[[E, Msg], Awaitable[None]],
        *,
        queue: str = "",
    ) -> Subscription:
        """Subscribe with decoding: a message that is not a valid ``model`` is logged, counted and dropped."""

        async def on_msg(msg: Msg) -> None:
            try:
                event = decode_as(msg.data, model, msg.headers)
            except EventDecodeError as exc:
                BUS_DROPPED.labels(subject=_kind(msg.subject), reason="malformed").inc()
                log.warning("bus_message_dropped", subject=msg.subject, reason="malformed", error=str(exc)[:300])
                if msg.reply:
                    ack = WorkAck(worker=self.name, accepted=False)
                    await msg.respond(ack.model_dump_json().encode())
                return
            try:
                await handler(event, msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                BUS_DROPPED.labels(subject=_kind(msg.subject), reason="handler_error").inc()
                log.exception("bus_handler_failed", subject=msg.subject, call_id=event.call_id)

        return await self.nc.subscribe(subject, queue=queue, cb=on_msg)

    # --- JetStream (lifecycle) ---------------------------------------------------------------------------

    async def ensure_lifecycle_stream(self) -> None:
        """Create the lifecycle stream if missing (idempotent; every publisher and the recorder call it)."""
        config = StreamConfig(
            name=subjects.LIFECYCLE_STREAM,
            subjects=[f"{subjects.LIFECYCLE_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=7 * 24 * 3600,
            discard=DiscardPolicy.OLD,
            duplicate_window=120,
        )
        try:
            await self.js.stream_info(subjects.LIFECYCLE_STREAM)
        except NotFoundError:
            await self.js.add_stream(config)
            log.info("lifecycle_stream_created", stream=subjects.LIFECYCLE_STREAM)

    async def publish_lifecycle(self, subject: str, event: Event, *, timeout: float = 5.0) -> None:
        """Publish to JetStream and wait for the store's ack; ``Nats-Msg-Id`` makes retries idempotent."""
        await self.js.publish(
            subject,
            event.to_bytes(),
            timeout=timeout,
            headers={"Nats-Msg-Id": event.event_id, TRACE_HEADER: event.trace_id},
        )

    async def close(self) -> None:
        """Drain: finish in-flight handlers and flush what we published, then close."""
        if self.nc.is_closed:
            return
        try:
            await asyncio.wait_for(self.nc.drain(), timeout=10)
        except Exception as exc:  # drain can fail if the server is gone; closing is still right
            log.warning("nats_drain_failed", error=str(exc) or type(exc).__name__)
            await self.nc.close()


def _kind(subject: str) -> str:
    """Subject without the call token, so metric labels stay bounded (``call.*.tts`` not one per call)."""
    parts = subject.split(".")
    if parts[0] == "call" and len(parts) >= 3:
        return f"call.*.{parts[-1]}"
    return ".".join(parts[:2])
