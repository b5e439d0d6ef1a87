"""Retention clean-up: calls older than a configured age are deleted with everything recorded about them
(transcripts, errors, provider status events), and the ids of applied events once no redelivery can come.

A call's age is when it happened (``ended_at``, else ``started_at``, else when its row was created). Deletion
runs in batches, one short transaction each, so a large first clean-up never holds locks on the history for
long and can be interrupted at any point without leaving a call half deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.logging import get_logger

log = get_logger(__name__)

# the rows of each call, deleted before the call itself (transcripts and status events would cascade, but
# counting them is what tells an operator what a run removed; call_errors has no foreign key)
_CHILD_TABLES = ("transcripts", "call_errors", "call_status_events")
# processed_events (the ids of applied events, so that a redelivery changes nothing) go by age instead: once
# older than the lifecycle stream keeps events (7 days, shared/bus.py) no redelivery can come, so they are
# pruned for every call; younger ones stay even for a deleted call, so that a replay cannot bring it back
EVENT_REPLAY_WINDOW = timedelta(days=8)


@dataclass
class RetentionReport:
    cutoff: datetime | None
    calls: int = 0
    batches: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*_CHILD_TABLES, "processed_events"), 0))

    def summary(self) -> str:
        if self.cutoff is None:
            return "retention disabled (RETENTION_DAYS=0): nothing deleted"
        children = ", ".join(f"{n} {table}" for table, n in self.rows.items())
        return (
            f"deleted {self.calls} calls older than {self.cutoff.isoformat(timespec='seconds')} "
            f"({children}) in {self.batches} batch(es)"
        )


async def delete_old_calls(
    conn: asyncpg.Connection, *, days: int, batch: int = 500, now: datetime | None = None
) -> RetentionReport:
    """Delete calls older than ``days`` (0 = keep everything) ``batch`` calls per transaction."""
    if days <= 0:
        return RetentionReport(cutoff=None)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    report = RetentionReport(cutoff=cutoff)
    present = {
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    children = [t for t in _CHILD_TABLES if t in present]
    while True:
        async with conn.transaction():
            ids = await conn.fetch(
                """
                SELECT call_id FROM calls
                WHERE COALESCE(ended_at, started_at, created_at) < $1
                ORDER BY COALESCE(ended_at, started_at, created_at)
                LIMIT $2 FOR UPDATE SKIP LOCKED
                """,
                cutoff,
                batch,
            )
            if not ids:
                break
            call_ids = [r["call_id"] for r in ids]
            for table in children:
                status = await conn.execute(f"DELETE FROM {table} WHERE call_id = ANY($1::text[])", call_ids)
                report.rows[table] += _count(status)
            report.calls += _count(await conn.execute("DELETE FROM calls WHERE call_id = ANY($1::text[])", call_ids))
        report.batches += 1
        log.info("retention_batch_deleted", calls=len(call_ids), total=report.calls)
        if len(call_ids) < batch:
            break
    if "processed_events" in present:
        report.rows["processed_events"] = await _prune_event_ids(conn, (now or datetime.now(UTC)), batch * 20)
    return report


async def _prune_event_ids(conn: asyncpg.Connection, now: datetime, batch: int) -> int:
    """Delete ids of events applied before the replay window, ``batch`` rows per transaction."""
    total = 0
    while True:
        status = await conn.execute(
            "DELETE FROM processed_events WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM processed_events WHERE processed_at < $1 LIMIT $2))",
            now - EVENT_REPLAY_WINDOW,
            batch,
        )
        deleted = _count(status)
        total += deleted
        if deleted < batch:
            return total


def _count(status: str) -> int:
    """Rows affected, from asyncpg's command status (``DELETE 12``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
