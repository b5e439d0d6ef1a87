"""Writes lifecycle events into the call history, idempotently.

Each event is applied in one transaction that first claims its ``event_id`` in ``processed_events``: a
redelivered or duplicated event finds its id taken and changes nothing. Events may arrive in any order
(a turn or the end before the start, after a redelivery): every write creates the call row if missing
and only fills what it knows, so the final row is the same whatever the order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg

from shared.db import webhook_deliveries
from shared.events import CallEnded, CallError, CallStarted, CallStatusChanged, LifecycleEvent, TurnRecorded


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


class HistoryStore:
    def __init__(self, pool: asyncpg.Pool, *, extraction: bool = True) -> None:
        self.pool = pool
        # with extraction on, ending a call marks its extraction pending in the same transaction
        self.pending_extraction = '{"status": "pending"}' if extraction else None

    async def apply(self, event: LifecycleEvent) -> bool:
        """Apply one event; returns False when it had already been applied."""
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "INSERT INTO processed_events(event_id, call_id, type) VALUES ($1, $2, $3) "
                "ON CONFLICT (event_id) DO NOTHING RETURNING true",
                event.event_id,
                event.call_id,
                event.type,
            )
            if not claimed:
                return False
            if isinstance(event, CallStarted):
                await self._started(conn, event)
            elif isinstance(event, TurnRecorded):
                await self._turn(conn, event)
            elif isinstance(event, CallEnded):
                await self._ended(conn, event)
            elif isinstance(event, CallError):
                await self._error(conn, event)
            elif isinstance(event, CallStatusChanged):
                await self._status(conn, event)
            return True

    async def _status(self, conn: asyncpg.Connection, ev: CallStatusChanged) -> None:
        """The provider's status changes, in their own table (a status callback may come before the call)."""
        await self._ensure_call(conn, ev.call_id)
        await conn.execute(
            "INSERT INTO call_status_events (event_id, call_id, provider, status, at, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            ev.event_id,
            ev.call_id,
            ev.provider,
            ev.status,
            _ts(ev.at),
            json.dumps(ev.detail),
        )
        # a provider's status never relabels a call that started as another kind (a forged Telnyx id naming a
        # browser call must not turn its history into a Telnyx call)
        await conn.execute(
            "UPDATE calls SET provider_status = $2, client_type = $3, updated_at = now() "
            "WHERE call_id = $1 AND (started_at IS NULL OR client_type = $3)",
            ev.call_id,
            ev.status,
            ev.provider,
        )

    async def _started(self, conn: asyncpg.Connection, ev: CallStarted) -> None:
        await conn.execute(
            """
            INSERT INTO calls (call_id, agent_id, client_type, transport_ids, from_number, to_number, started_at,
                               gateway_instance, agent_version)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)
            ON CONFLICT (call_id) DO UPDATE SET
                agent_id = EXCLUDED.agent_id, agent_version = EXCLUDED.agent_version,
                client_type = EXCLUDED.client_type,
                transport_ids = EXCLUDED.transport_ids, from_number = EXCLUDED.from_number,
                to_number = EXCLUDED.to_number, started_at = EXCLUDED.started_at,
                gateway_instance = EXCLUDED.gateway_instance, updated_at = now()
            """,
            ev.call_id,
            ev.agent_id,
            ev.client_type,
            json.dumps(ev.transport_ids),
            ev.from_number,
            ev.to_number,
            _ts(ev.started_at),
            ev.gateway,
            ev.agent_version,
        )

    async def _ensure_call(self, conn: asyncpg.Connection, call_id: str) -> None:
        await conn.execute("INSERT INTO calls (call_id) VALUES ($1) ON CONFLICT (call_id) DO NOTHING", call_id)

    async def _turn(self, conn: asyncpg.Connection, ev: TurnRecorded) -> None:
        await self._ensure_call(conn, ev.call_id)
        inserted = await conn.fetchval(
            """
            INSERT INTO transcripts (call_id, seq, role, text, started_at, ended_at, interrupted, latency_ms, event_id,
                                     dtmf, tool)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11::jsonb)
            ON CONFLICT (call_id, seq) DO NOTHING RETURNING true
            """,
            ev.call_id,
            ev.seq,
            ev.role,
            ev.text,
            _ts(ev.started_at),
            _ts(ev.ended_at),
            ev.interrupted,
            json.dumps(ev.latency_ms),
            ev.event_id,
            ev.dtmf,
            ev.tool.model_dump_json() if ev.tool is not None else None,
        )
        if inserted:
            await conn.execute("UPDATE calls SET turns = turns + 1, updated_at = now() WHERE call_id = $1", ev.call_id)

    async def _ended(self, conn: asyncpg.Connection, ev: CallEnded) -> None:
        await self._ensure_call(conn, ev.call_id)
        summary = await conn.fetchrow(
            """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY (latency_ms->>'first_audio_sent_ms')::float) AS p50,
                   max((latency_ms->>'first_audio_sent_ms')::float) AS worst,
                   count(*) FILTER (WHERE latency_ms ? 'first_audio_sent_ms') AS n
            FROM transcripts WHERE call_id = $1 AND role = 'assistant'
            """,
            ev.call_id,
        )
        latency = {
            "first_audio_p50_ms": summary["p50"],
            "first_audio_max_ms": summary["worst"],
            "replies_measured": summary["n"],
        }
        status = "failed" if ev.reason in ("error", "internal_error") else "completed"
        await conn.execute(
            """
            UPDATE calls SET ended_at = $2, duration_s = $3, end_reason = $4,
                   status = CASE WHEN status = 'failed' AND end_reason IS DISTINCT FROM 'gateway_lost'
                                 THEN status ELSE $5 END,
                   latency_summary = $6::jsonb, updated_at = now(),
                   extracted_data = COALESCE(extracted_data, $7::jsonb), transferred_to = $8
            WHERE call_id = $1
            """,
            ev.call_id,
            _ts(ev.ended_at),
            ev.duration_s,
            ev.reason,
            status,
            json.dumps(latency),
            self.pending_extraction,
            ev.transferred_to,
        )
        if self.pending_extraction is None:  # no extraction to wait for: the call is complete now
            await webhook_deliveries.enqueue(conn, ev.call_id, "extraction")

    async def _error(self, conn: asyncpg.Connection, ev: CallError) -> None:
        await self._ensure_call(conn, ev.call_id)
        await conn.execute(
            "INSERT INTO call_errors (event_id, call_id, code, stage, message, critical, at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            ev.event_id,
            ev.call_id,
            ev.code,
            ev.stage,
            ev.message,
            ev.critical,
            _ts(ev.ts),
        )
        if ev.critical:
            await conn.execute("UPDATE calls SET status = 'failed', updated_at = now() WHERE call_id = $1", ev.call_id)
