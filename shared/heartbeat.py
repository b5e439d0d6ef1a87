"""A heartbeat: every ``interval_s`` the event ``make_beat()`` returns, on one core-NATS subject.

Two kinds of replica beat with it. Workers say which work they hold (``WorkerBeat`` on
``worker.beat.<service>``), so a gateway knows within a second that a request went missing
(services/gateway/call/worker_watch.py). Gateways name their live calls (``GatewayBeat`` on
``gateway.beat.<instance>``), so the recorder ends as ``gateway_lost`` the calls of one that died
(services/call_recorder/reconcile.py). Nothing is published while disconnected: a beat buffered by the client
and flushed at reconnect would describe a moment long gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.bus import Bus
from shared.events import Event
from shared.logging import get_logger

log = get_logger(__name__)


class Heartbeat:
    def __init__(self, bus: Bus, subject: str, make_beat: Callable[[], Event], interval_s: float) -> None:
        self.bus = bus
        self.subject = subject
        self.make_beat = make_beat
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat {self.subject}")

    async def beat(self) -> None:
        await self.bus.publish(self.subject, self.make_beat())

    async def _run(self) -> None:
        while True:
            try:
                if self.bus.connected:
                    await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection went between the check and the publish: next beat
                log.warning("heartbeat_failed", subject=self.subject, error=str(exc) or type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
