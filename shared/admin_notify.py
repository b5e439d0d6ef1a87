"""Telling the operator: POST a JSON body to ``ADMIN_NOTIFICATION_WEBHOOK_URL`` with a few retries, in the
background (a slow or dead webhook never delays the global stop it reports); and the ``admin_events`` audit row
of an action already done."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import httpx

from shared.logging import get_logger

if TYPE_CHECKING:
    import asyncpg

log = get_logger(__name__)

ADMIN_EVENT_SQL = "INSERT INTO admin_events (kind, detail) VALUES ($1, $2::jsonb)"

WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 1.0  # then 2 s


async def post_notification(url: str, payload: dict[str, object]) -> bool:
    """POST ``payload`` to ``url``, retrying with backoff; True once it was accepted (2xx)."""
    delay = WEBHOOK_BACKOFF_S
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S, trust_env=False) as client:
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                resp = await client.post(url, json=payload)
                resp.raise_for_status()
                log.info("admin_notified", status=resp.status_code, attempt=attempt, kind=payload.get("event"))
                return True
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
    return False


class Notifier:
    """Background notifications that a shutdown can wait for briefly."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._tasks: set[asyncio.Task[bool]] = set()

    def notify(self, payload: dict[str, object]) -> None:
        if not self.url:
            return
        task = asyncio.create_task(post_notification(self.url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, timeout: float = 5.0) -> None:
        """Give pending notifications a moment to finish, then cancel them."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()


async def record_admin_event(
    pool: asyncpg.Pool | None, kind: str, detail: dict[str, object], *, timeout_s: float = 5.0
) -> None:
    """The audit row of an admin action or a trip, best effort: the action stands even while PostgreSQL is down
    (``admin_event_not_recorded`` in the log says what is missing)."""
    if pool is None:
        log.error("admin_event_not_recorded", kind=kind, error="database not connected")
        return
    try:
        async with asyncio.timeout(timeout_s):
            await pool.execute(ADMIN_EVENT_SQL, kind, json.dumps(detail))
    except Exception as exc:
        log.error("admin_event_not_recorded", kind=kind, error=str(exc) or type(exc).__name__)
