"""The error policy's global stop, recorder side: count critical call errors in a sliding window (by event
time) and, when ``GLOBAL_STOP_MAX_ERRORS_IN_WINDOW`` of them fall within ``GLOBAL_STOP_WINDOW_SECONDS``, trip
the shared stop (``shared/global_stop.py``), log ``global_stop_tripped``, notify the operator's webhook in the
background and (best effort) record it in ``admin_events``.

The count does not wait for PostgreSQL: ``ErrorStreamCounter`` reads ``lifecycle.call.error`` straight from
JetStream with a durable consumer of its own (``GLOBAL_STOP_DURABLE``), shared by every recorder replica, and
the window itself lives in the global stop's KV bucket (key ``errors``, updated by compare-and-set), so every
replica counts into the same window and three errors trip the stop whichever replicas they reach. Errors that
are not critical (capacity refusals such as ``busy``: the gateway sets ``critical=false``) are never counted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, OrderedDict, deque
from dataclasses import asdict, dataclass

import asyncpg
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from prometheus_client import Counter as MetricCounter

from shared import subjects
from shared.admin_notify import Notifier, record_admin_event
from shared.events import CallError
from shared.global_stop import GlobalStopState, ensure_bucket, read_state, trip
from shared.logging import get_logger

log = get_logger(__name__)

WINDOW_KEY = "errors"  # the shared window, beside the stop's own "state" key in the same bucket

COUNTED = MetricCounter(
    "victoria_global_stop_errors_total", "Call errors read by the global stop's counter", ["outcome"]
)


@dataclass(frozen=True)
class ErrorRecord:
    event_id: str
    call_id: str
    stage: str
    code: str
    ts: float

    @property
    def label(self) -> str:
        return f"{self.stage}_{self.code}"


class ErrorWindow:
    """Critical errors of the last ``window_s`` seconds, by event time; an event id is counted once."""

    def __init__(self, window_s: float, *, remember: int = 4096) -> None:
        self.window_s = window_s
        self._records: deque[ErrorRecord] = deque()  # in insertion order; pruned by ts
        self._seen: OrderedDict[str, None] = OrderedDict()  # recent event ids, bounded
        self._remember = remember
        self.latest = 0.0  # newest event time seen: the window's "now" when none is given

    def add(self, record: ErrorRecord) -> bool:
        """Count ``record``; False when its event id was already counted."""
        if record.event_id in self._seen:
            return False
        self._seen[record.event_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self._records.append(record)
        self.latest = max(self.latest, record.ts)
        return True

    def records(self, now: float | None = None) -> list[ErrorRecord]:
        """The records inside the window ending at ``now`` (default: the newest event time), oldest first."""
        # forget what is out of the window for good only relative to the newest event (time never goes back)
        self._records = deque(r for r in self._records if r.ts > self.latest - self.window_s)
        end = self.latest if now is None else now
        return sorted((r for r in self._records if end - self.window_s < r.ts <= end), key=lambda r: r.ts)

    def count(self, now: float | None = None) -> int:
        return len(self.records(now))

    def discard_until(self, ts: float) -> None:
        """Forget records at or before ``ts`` (e.g. errors from before an operator's reset)."""
        self._records = deque(r for r in self._records if r.ts > ts)

    def clear(self) -> None:
        self._records.clear()

    def to_json(self) -> bytes:
        """The window as stored in KV: the records still inside it and the recently counted event ids."""
        self.records()  # prune
        seen = list(self._seen)[-512:]
        return json.dumps({"records": [asdict(r) for r in self._records], "seen": seen}).encode()

    @classmethod
    def from_json(cls, window_s: float, value: bytes | None) -> ErrorWindow:
        window = cls(window_s)
        if not value:
            return window
        try:
            data = json.loads(value)
            for event_id in data.get("seen", []):
                window._seen[str(event_id)] = None
            for r in data.get("records", []):
                record = ErrorRecord(
                    str(r["event_id"]), str(r["call_id"]), str(r["stage"]), str(r["code"]), float(r["ts"])
                )
                window._records.append(record)
                window.latest = max(window.latest, record.ts)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("global_stop_window_invalid", error=str(exc)[:200])
        return window


def describe(records: list[ErrorRecord], window_s: float) -> str:
    """``3 critical call errors within 60s: llm_no_worker x3``."""
    counts = Counter(r.label for r in records)
    parts = ", ".join(f"{label} x{n}" for label, n in counts.most_common())
    return f"{len(records)} critical call errors within {window_s:g}s: {parts}"


class GlobalStopPolicy:
    """Counts one critical error into the shared window and trips the stop at the threshold."""

    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool | None,
        *,
        max_errors: int,
        window_s: float,
        webhook_url: str = "",
        instance: str = "",
    ) -> None:
        self.js = js
        self.pool = pool
        self.max_errors = max_errors
        self.window_s = window_s
        self.notifier = Notifier(webhook_url)
        self.instance = instance

    async def on_critical_error(self, event: CallError) -> bool:
        """Count one critical error; True when it tripped the global stop."""
        if time.time() - event.ts > self.window_s:
            # a backlog being caught up (a recorder restarted after a long outage): history, not a live incident
            log.info("stale_error_not_counted", call_id=event.call_id, age_s=round(time.time() - event.ts, 1))
            COUNTED.labels("stale").inc()
            return False
        record = ErrorRecord(event.event_id, event.call_id, event.stage, event.code, event.ts)
        state = await read_state(self.js)
        records = await self._count(record, state)
        if len(records) < self.max_errors:
            return False
        return await self._trip(records)

    async def _count(self, record: ErrorRecord, state: GlobalStopState) -> list[ErrorRecord]:
        """Add ``record`` to the shared window (compare-and-set on its KV key); the records now in it. A record
        counted before (a redelivery) changes nothing but is answered too: if the trip it should have caused
        failed half-way, the redelivery trips it (tripping is a compare-and-set, never done twice)."""
        kv = await ensure_bucket(self.js)
        for _ in range(20):
            try:
                entry = await kv.get(WINDOW_KEY)
                value, revision = entry.value, entry.revision or 0
            except KeyNotFoundError:
                value, revision = None, 0
            window = ErrorWindow.from_json(self.window_s, value)
            added = window.add(record)
            if state.active:  # already stopped: nothing counts until an operator resets it
                window.clear()
                records: list[ErrorRecord] = []
            else:
                if state.reset_at is not None:  # errors from before the last reset don't count again
                    window.discard_until(state.reset_at)
                records = window.records()
            if not added and not state.active:
                COUNTED.labels("duplicate").inc()
                return records
            try:
                if revision:
                    await kv.update(WINDOW_KEY, window.to_json(), last=revision)
                else:
                    await kv.create(WINDOW_KEY, window.to_json())
            except KeyWrongLastSequenceError:  # another replica counted meanwhile: count again on its window
                continue
            COUNTED.labels("counted" if added else "duplicate").inc()
            return records
        raise RuntimeError("the global stop window kept changing under us")

    async def _trip(self, records: list[ErrorRecord]) -> bool:
        reason = describe(records, self.window_s)
        tripped = GlobalStopState(
            active=True,
            reason=reason,
            tripped_at=time.time(),
            errors=list(dict.fromkeys(r.call_id for r in records)),
            tripped_by="error_policy",
        )
        if await trip(self.js, tripped) is None:  # already active (an admin or another replica)
            return False
        await self._consume(max(r.ts for r in records))
        detail = {
            "reason": reason,
            "tripped_at": tripped.tripped_at,
            "tripped_by": "error_policy",
            "call_ids": tripped.errors,
            "errors": [{"call_id": r.call_id, "stage": r.stage, "code": r.code, "ts": r.ts} for r in records],
            "threshold": self.max_errors,
            "window_seconds": self.window_s,
            "instance": self.instance,
        }
        log.error("global_stop_tripped", **detail)
        self.notifier.notify({"event": "global_stop_tripped", **detail})
        asyncio.create_task(self._record(detail))  # noqa: RUF006  # PostgreSQL may be down: never wait for it
        return True

    async def _consume(self, until: float) -> None:
        """The trip used the window's errors up to ``until``: drop them (best effort; a reset's ``reset_at``
        would discard them anyway)."""
        try:
            kv = await ensure_bucket(self.js)
            for _ in range(5):
                entry = await kv.get(WINDOW_KEY)
                window = ErrorWindow.from_json(self.window_s, entry.value)
                window.discard_until(until)
                try:
                    await kv.update(WINDOW_KEY, window.to_json(), last=entry.revision)
                    return
                except KeyWrongLastSequenceError:
                    continue
        except Exception as exc:
            log.warning("global_stop_window_not_cleared", error=str(exc) or type(exc).__name__)

    async def _record(self, detail: dict[str, object]) -> None:
        if self.pool is not None:  # the stop is in force anyway; the audit row is best effort
            await record_admin_event(self.pool, "global_stop_tripped", detail, timeout_s=10)

    async def close(self, timeout: float = 5.0) -> None:
        await self.notifier.close(timeout)


class ErrorStreamCounter:
    """Feeds ``lifecycle.call.error`` from JetStream to the policy, with a durable consumer of its own (shared
    by the recorder replicas): counted as soon as the gateway published the error, PostgreSQL up or not. A
    message is acked once counted; a KV failure naks it for a retry (duplicates are counted once)."""

    def __init__(self, js: JetStreamContext, policy: GlobalStopPolicy, *, durable: str) -> None:
        self.js = js
        self.policy = policy
        self.durable = durable
        self._sub: JetStreamContext.PullSubscription | None = None

    async def setup(self) -> None:
        self._sub = await self.js.pull_subscribe(
            subjects.CALL_ERROR,
            durable=self.durable,
            stream=subjects.LIFECYCLE_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,  # a new deployment starts from now, not from the stream's past
                ack_wait=10,
                max_ack_pending=1000,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        assert self._sub is not None, "setup() first"
        while not stop.is_set():
            try:
                msgs = await self._sub.fetch(16, timeout=1.0)
            except NatsTimeoutError:
                continue
            except Exception as exc:  # NATS reconnecting
                log.warning("global_stop_fetch_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        try:
            event = CallError.model_validate_json(msg.data)
        except ValueError:  # malformed: the history consumer dead-letters it; nothing to count here
            await msg.ack()
            return
        if not event.critical:
            COUNTED.labels("not_critical").inc()
            await msg.ack()
            return
        try:
            await self.policy.on_critical_error(event)
        except Exception as exc:
            log.error("global_stop_check_failed", call_id=event.call_id, error=str(exc) or type(exc).__name__)
            await msg.nak(delay=1.0)
            return
        await msg.ack()

    async def close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                log.info("consumer_unsubscribe_failed", error=str(exc) or type(exc).__name__)
