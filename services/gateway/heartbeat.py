"""The gateway's heartbeat: every ``GATEWAY_BEAT_INTERVAL_S`` a ``GatewayBeat`` on ``gateway.beat.<instance>``
(core NATS) naming this replica's live calls. The recorder ends in history (``gateway_lost``) the in-progress
calls of a gateway whose beats stopped, or that its beats no longer list (services/call_recorder/reconcile.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from shared import subjects
from shared.bus import Bus
from shared.events import GatewayBeat
from shared.logging import get_logger

log = get_logger(__name__)


class Heartbeat:
    def __init__(self, bus: Bus, instance: str, live_calls: Callable[[], Iterable[str]], interval_s: float) -> None:
        self.bus = bus
        self.instance = instance
        self.live_calls = live_calls
        self.interval_s = interval_s
        self.subject = subjects.gateway_beat_subject(instance)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-heartbeat")

    async def beat(self) -> None:
        event = GatewayBeat(instance=self.instance, calls=sorted(self.live_calls()), interval_s=self.interval_s)
        await self.bus.publish(self.subject, event)

    async def _run(self) -> None:
        while True:
            try:
                if self.bus.connected:
                    await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: the next beat tries again
                log.warning("gateway_beat_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
