"""Which accepted work is still held by a live worker, from the workers' beats (``worker.beat.*``).

A worker acknowledges a request, then lists it (its ``work_key``) in every beat until it is over. A call's
stage that waits for results asks :meth:`WorkerWatch.lost`: work that no beat has listed for
``WORKER_LOST_AFTER_S`` is gone — the replica died (kill -9, OOM: its beats stop), or it finished and the result
never arrived (a NATS restart between the two) — so the gateway retries it at once instead of waiting out the
stage's whole timeout. While this gateway's own connection is down, or has just come back, nothing is judged
lost: beats could not reach it either.
"""

from __future__ import annotations

import time

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import subjects
from shared.bus import Bus
from shared.events import WorkerBeat
from shared.logging import get_logger

log = get_logger(__name__)

PRUNE_EVERY_S = 5.0


class WorkerWatch:
    def __init__(self, bus: Bus, *, lost_after_s: float) -> None:
        self.bus = bus
        self.lost_after_s = lost_after_s
        self._seen: dict[str, float] = {}  # work_key → when a beat last listed it (monotonic)
        self._alive: dict[str, float] = {}  # "service/instance" → last beat
        self._sub: Subscription | None = None
        self._blind_until = 0.0  # judge nothing before this (the connection was down, or we just started)
        self._reconnects = 0  # the connection's reconnect count when last judged
        self._pruned = time.monotonic()

    async def start(self) -> None:
        self._sub = await self.bus.subscribe(subjects.WORKER_BEAT_ALL, WorkerBeat, self._on_beat)
        self._blind_until = time.monotonic() + self.lost_after_s

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # the connection is closing: the subscription goes with it
                pass
            self._sub = None

    async def _on_beat(self, beat: WorkerBeat, _msg: Msg) -> None:
        now = time.monotonic()
        self._alive[f"{beat.service}/{beat.instance}"] = now
        for key in beat.holding:
            self._seen[key] = now
        if now - self._pruned > PRUNE_EVERY_S:
            self._pruned = now
            horizon = now - max(10.0, 4 * self.lost_after_s)
            self._seen = {k: t for k, t in self._seen.items() if t > horizon}
            self._alive = {k: t for k, t in self._alive.items() if t > horizon}

    def judging(self) -> bool:
        """False while this gateway cannot hear beats (disconnected, or reconnected less than a period ago)."""
        now = time.monotonic()
        if not self.bus.connected:
            return False
        reconnects = int(self.bus.nc.stats.get("reconnects", 0))
        if reconnects != self._reconnects:  # came back since last asked: give the workers a period to be heard
            self._reconnects = reconnects
            self._blind_until = now + self.lost_after_s
        return now >= self._blind_until

    def lost(self, key: str, waiting_since: float) -> bool:
        """Has the work ``key``, awaited since ``waiting_since`` (monotonic), gone missing?"""
        now = time.monotonic()
        if now - waiting_since < self.lost_after_s or not self.judging():
            return False
        return now - self._seen.get(key, waiting_since) >= self.lost_after_s

    def replicas(self, service: str) -> int:
        """Replicas of ``service`` heard within the last period (for logs and the readiness answer)."""
        now = time.monotonic()
        return sum(1 for k, t in self._alive.items() if k.startswith(f"{service}/") and now - t < self.lost_after_s)
