"""Ends in history the calls whose gateway died: ``gateway_lost``, driven by the gateways' heartbeats.

Every gateway publishes a ``GatewayBeat`` (its instance and live call ids) every ~2 s on ``gateway.beat.<id>``,
and stamps its instance on ``CallStarted`` (``calls.gateway_instance``). Every recorder replica hears every
beat (plain subscription, no queue group) and, every ``RECONCILE_INTERVAL_S``, ends the unended calls

- of a gateway whose beats stopped ``GATEWAY_LOST_AFTER_S`` ago (``ended_at`` = its last beat),
- that their still-beating gateway has not listed for ``GATEWAY_LOST_AFTER_S`` (its end event was lost with
  a crash before the spool existed, or the same instance id restarted): ``ended_at`` = when it was last listed
  (never heard listed: its last turn, or its start),
- of a gateway never heard since this recorder started, or with no owner recorded, once the recorder has
  listened for ``GATEWAY_LOST_AFTER_S`` + ``RECONCILE_GRACE_S`` (``ended_at`` = its last turn or its start).

A recorder that was cut off from NATS itself (a reconnect) judges nobody's silence for one more
``GATEWAY_LOST_AFTER_S``. Each update is ``... WHERE ended_at IS NULL``, so several replicas doing it at once
are harmless, and a real ``CallEnded`` arriving later (replayed from a spool) overwrites it. A call marked
lost that a live gateway lists again (a NATS partition, not a crash) is reopened. Turns already recorded are
never touched.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
from nats.aio.msg import Msg
from prometheus_client import Counter

from shared import subjects
from shared.bus import Bus
from shared.db import webhook_deliveries
from shared.events import GatewayBeat
from shared.logging import get_logger

log = get_logger(__name__)

LOST = Counter("victoria_recorder_calls_gateway_lost_total", "Calls ended in history because their gateway died")
REOPENED = Counter("victoria_recorder_calls_reopened_total", "Calls marked gateway_lost that a live gateway listed")

UNENDED_SQL = """
    SELECT call_id, gateway_instance, extract(epoch FROM started_at) AS started,
           extract(epoch FROM updated_at) AS updated
    FROM calls WHERE ended_at IS NULL AND started_at IS NOT NULL
    ORDER BY started_at LIMIT 10000
"""
# ended_at: the given time, else the call's last recorded turn or its start; never before the start
LOSE_SQL = """
    UPDATE calls c SET
        ended_at = GREATEST(c.started_at, COALESCE(to_timestamp(v.ended_at),
                            (SELECT max(t.ended_at) FROM transcripts t WHERE t.call_id = c.call_id), c.started_at)),
        end_reason = 'gateway_lost', status = 'failed', updated_at = now(),
        extracted_data = COALESCE(c.extracted_data, $3::jsonb)
    FROM unnest($1::text[], $2::float8[]) AS v(call_id, ended_at)
    WHERE c.call_id = v.call_id AND c.ended_at IS NULL
    RETURNING c.call_id, c.gateway_instance, extract(epoch FROM c.ended_at) AS ended_at
"""
DURATION_SQL = """
    UPDATE calls SET duration_s = GREATEST(0, extract(epoch FROM ended_at - started_at))
    WHERE call_id = ANY($1::text[]) AND end_reason = 'gateway_lost'
"""
REOPEN_SQL = """
    UPDATE calls SET ended_at = NULL, duration_s = NULL, end_reason = NULL, status = 'in_progress',
                     updated_at = now()
    WHERE call_id = ANY($1::text[]) AND end_reason = 'gateway_lost'
    RETURNING call_id
"""


@dataclass
class GatewaySeen:
    last_ts: float  # the last beat's own time (the gateway's clock): a lost call's end
    heard_at: float  # when we heard it (our clock): whether the gateway still lives
    calls: frozenset[str] = field(default_factory=frozenset)


class BeatBook:
    """What the beats said: each gateway's last beat, and when each call was last listed as live."""

    def __init__(self) -> None:
        self.gateways: dict[str, GatewaySeen] = {}
        self.listed: dict[str, float] = {}  # call id -> last beat time that listed it

    def on_beat(self, beat: GatewayBeat, now: float | None = None) -> None:
        self.gateways[beat.instance] = GatewaySeen(beat.ts, time.time() if now is None else now, frozenset(beat.calls))
        for call_id in beat.calls:
            self.listed[call_id] = beat.ts

    def pardon(self, now: float) -> None:
        """We were cut off ourselves (a reconnect): nobody's silence until ``now`` counts against them."""
        for seen in self.gateways.values():
            seen.heard_at = max(seen.heard_at, now)

    def forget_before(self, cutoff: float) -> None:
        """Drop gateways and listings not heard of since ``cutoff`` (bounded memory over days of calls)."""
        self.gateways = {k: g for k, g in self.gateways.items() if g.heard_at >= cutoff}
        self.listed = {k: ts for k, ts in self.listed.items() if ts >= cutoff}


def judge(
    rows: list[tuple[str, str | None, float, float]],
    book: BeatBook,
    *,
    now: float,
    lost_after_s: float,
    judge_unknown: bool,
) -> dict[str, float | None]:
    """The calls (id -> end time, None = from its turns) to end as ``gateway_lost``. Rows: (call id, owning
    gateway or None, started, last updated), all epoch seconds."""
    lost: dict[str, float | None] = {}
    for call_id, owner, started, updated in rows:
        seen = book.gateways.get(owner) if owner else None
        if seen is None:
            # never heard beating since we listen (or no owner recorded): after the grace, it has no live owner
            if judge_unknown and now - updated > lost_after_s and now - started > lost_after_s:
                lost[call_id] = None
        elif now - seen.heard_at > lost_after_s:
            lost[call_id] = seen.last_ts
        elif call_id not in seen.calls:
            listed = book.listed.get(call_id)
            if seen.last_ts - (listed if listed is not None else started) > lost_after_s:
                lost[call_id] = listed  # never heard listed: ended at its last turn
    return lost


class Reconciler:
    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        *,
        lost_after_s: float,
        interval_s: float,
        grace_s: float = 0.0,
        pending_extraction: str | None = None,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.lost_after_s = lost_after_s
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.pending_extraction = pending_extraction
        self.book = BeatBook()
        self.listening_since = time.time()
        self._task: asyncio.Task[None] | None = None
        self._sub = None
        self._reconnects = 0

    async def start(self) -> None:
        async def on_beat(beat: GatewayBeat, _msg: Msg) -> None:
            self.book.on_beat(beat)

        self._sub = await self.bus.subscribe(subjects.GATEWAY_BEAT_ALL, GatewayBeat, on_beat)
        self.listening_since = time.time()
        self._task = asyncio.create_task(self._run(), name="gateway-lost-reconciler")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: next round
                log.warning("reconcile_failed", error=str(exc) or type(exc).__name__)

    async def sweep(self) -> list[str]:
        """One round: reopen what live gateways list, end what lost its gateway. Returns the calls ended."""
        now = time.time()
        if not self.bus.connected:  # we hear no beats: nobody's silence is news
            return []
        reconnects = int(self.bus.nc.stats.get("reconnects", 0))
        if reconnects != self._reconnects:  # our own outage: give every gateway a fresh chance to beat
            self._reconnects = reconnects
            self.book.pardon(now)
            self.listening_since = now
            log.info("reconcile_pardoned_after_reconnect", gateways=len(self.book.gateways))
            return []
        self.book.forget_before(now - max(600.0, 10 * self.lost_after_s))
        live = [c for g in self.book.gateways.values() if now - g.heard_at <= self.lost_after_s for c in g.calls]
        async with asyncio.timeout(30):
            if live:
                for row in await self.pool.fetch(REOPEN_SQL, live):
                    REOPENED.inc()
                    log.warning("call_reopened", call_id=row["call_id"])
            rows = [
                (r["call_id"], r["gateway_instance"], float(r["started"]), float(r["updated"]))
                for r in await self.pool.fetch(UNENDED_SQL)
            ]
            judge_unknown = now - self.listening_since >= self.lost_after_s + self.grace_s
            lost = judge(rows, self.book, now=now, lost_after_s=self.lost_after_s, judge_unknown=judge_unknown)
            if not lost:
                return []
            async with self.pool.acquire() as conn, conn.transaction():  # ended and its duration seen together
                ended = await conn.fetch(LOSE_SQL, list(lost), list(lost.values()), self.pending_extraction)
                ids = [r["call_id"] for r in ended]
                if ids:
                    await conn.execute(DURATION_SQL, ids)
                for call_id in ids if self.pending_extraction is None else ():  # no extraction to wait for
                    await webhook_deliveries.enqueue(conn, call_id, "extraction")
        for r in ended:
            LOST.inc()
            log.warning(
                "call_gateway_lost", call_id=r["call_id"], gateway=r["gateway_instance"], ended_at=r["ended_at"]
            )
        return ids

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # closed with the connection
                pass
