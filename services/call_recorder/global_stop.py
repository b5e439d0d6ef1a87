"""The error policy's global stop, recorder side: count critical call errors in a sliding window (by event
time) and, when ``GLOBAL_STOP_MAX_ERRORS_IN_WINDOW`` of them fall within ``GLOBAL_STOP_WINDOW_SECONDS``, trip
the shared stop (``shared/global_stop.py``), record it in ``admin_events``, log ``global_stop_tripped`` and
notify the operator's webhook in the background.

The window is per recorder replica: with several replicas sharing the durable consumer, each sees only its
share of the errors, so the stop trips later (see docs/OPERATIONS.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

import asyncpg
import httpx
from nats.js.client import JetStreamContext

from shared.events import CallError
from shared.global_stop import GlobalStopState, read_state, write_state
from shared.logging import get_logger

log = get_logger(__name__)

ADMIN_EVENT_SQL = "INSERT INTO admin_events (kind, detail) VALUES ($1, $2::jsonb)"

WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 1.0  # then 2 s


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


def describe(records: list[ErrorRecord], window_s: float) -> str:
    """``3 critical call errors within 60s: llm_no_worker x3``."""
    counts = Counter(r.label for r in records)
    parts = ", ".join(f"{label} x{n}" for label, n in counts.most_common())
    return f"{len(records)} critical call errors within {window_s:g}s: {parts}"


class GlobalStopPolicy:
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
        self.window = ErrorWindow(window_s)
        self.webhook_url = webhook_url
        self.instance = instance
        self._tasks: set[asyncio.Task[None]] = set()
        self.trips = 0

    async def on_critical_error(self, event: CallError) -> bool:
        """Count one critical error applied by the consumer; True when it tripped the global stop."""
        record = ErrorRecord(event.event_id, event.call_id, event.stage, event.code, event.ts)
        if time.time() - event.ts > self.window.window_s:
            # a backlog being caught up (recorder restarted, new replica): history, not a live incident
            log.info("stale_error_not_counted", call_id=event.call_id, age_s=round(time.time() - event.ts, 1))
            return False
        if not self.window.add(record) or self.window.count() < self.max_errors:
            return False
        state = await read_state(self.js)
        if state.active:  # already stopped: nothing more to do until an operator resets it
            self.window.clear()
            return False
        if state.reset_at is not None:  # errors from before the last reset don't count again
            self.window.discard_until(state.reset_at)
        records = self.window.records()
        if len(records) < self.max_errors:
            return False
        await self._trip(records)
        return True

    async def _trip(self, records: list[ErrorRecord]) -> None:
        reason = describe(records, self.window.window_s)
        tripped = GlobalStopState(
            active=True, reason=reason, tripped_at=time.time(), errors=list(dict.fromkeys(r.call_id for r in records))
        )
        await write_state(self.js, tripped)
        self.window.clear()
        self.trips += 1
        detail = {
            "reason": reason,
            "tripped_at": tripped.tripped_at,
            "call_ids": tripped.errors,
            "errors": [{"call_id": r.call_id, "stage": r.stage, "code": r.code, "ts": r.ts} for r in records],
            "threshold": self.max_errors,
            "window_seconds": self.window.window_s,
            "instance": self.instance,
        }
        log.error("global_stop_tripped", **detail)
        await self._record(detail)
        if self.webhook_url:
            task = asyncio.create_task(self._notify({"event": "global_stop_tripped", **detail}))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _record(self, detail: dict[str, object]) -> None:
        if self.pool is None:
            return
        try:
            await self.pool.execute(ADMIN_EVENT_SQL, "global_stop_tripped", json.dumps(detail))
        except Exception as exc:  # the stop is in force anyway; the audit row is best effort
            log.error("admin_event_not_recorded", kind="global_stop_tripped", error=str(exc) or type(exc).__name__)

    async def _notify(self, payload: dict[str, object]) -> None:
        delay = WEBHOOK_BACKOFF_S
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S, trust_env=False) as client:
            for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
                try:
                    resp = await client.post(self.webhook_url, json=payload)
                    resp.raise_for_status()
                    log.info("admin_notified", status=resp.status_code, attempt=attempt)
                    return
                except Exception as exc:
                    log.warning(
                        "admin_notification_failed",
                        attempt=attempt,
                        attempts=WEBHOOK_ATTEMPTS,
                        error=str(exc) or type(exc).__name__,
                    )
                if attempt < WEBHOOK_ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
        log.error("admin_notification_gave_up", attempts=WEBHOOK_ATTEMPTS)

    async def close(self, timeout: float = 5.0) -> None:
        """Give pending notifications a moment to finish, then cancel them."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
