"""Graceful drain: what a gateway does between SIGTERM and exit, so a deploy drops no call.

1. At once: the runtime is ``draining``. Readiness (``GET /api/system/health``) answers 503 ``draining`` so the
   load balancer sends new calls elsewhere, and every way in refuses a new call: the simulator socket closes
   1013 ``draining``, Twilio's webhook answers ``<Reject reason="busy"/>``, Telnyx's ``call.initiated`` is
   rejected ``USER_BUSY``, ``POST /api/v1/simulator/tokens`` answers 503 with ``Retry-After``. A phone call
   answered just before (its stream not connected yet) may still connect.
2. Live calls go on normally until they end, for up to ``DRAIN_TIMEOUT_S``.
3. The calls still live then hear the agent's ``shutdown_message`` (in its language) and end with
   ``gateway_shutdown`` (close 1012: call again), within ``GOODBYE_TIMEOUT_S``.
4. Only then does uvicorn shut down: a call still live (the goodbye timed out) is ended ``gateway_shutdown``
   before the sockets close, then the lifespan flushes the lifecycle events and closes the connections.

A second SIGTERM or SIGINT skips the rest: the calls still live end at once (``gateway_shutdown``, 1012, no
goodbye) and uvicorn stops.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from services.gateway.metrics import DRAIN_CALLS_REMAINING, GATEWAY_DRAINING
from services.gateway.runtime import GatewayRuntime
from shared.logging import get_logger

if TYPE_CHECKING:
    from services.gateway.call.session import CallSession

log = get_logger(__name__)

GOODBYE_TIMEOUT_S = 10.0  # for the shutdown goodbyes of the calls left when the drain times out
POLL_S = 0.1


async def drain_gateway(runtime: GatewayRuntime, timeout_s: float) -> None:
    """Stop taking calls, wait for the live ones (and phone calls already answered) to end for up to
    ``timeout_s``, then close the rest politely. Returns when no call is left, or the goodbyes timed out."""
    runtime.draining = True
    GATEWAY_DRAINING.set(1)
    started = time.monotonic()
    log.info("gateway_draining", live_calls=len(runtime.sessions), load=runtime.load(), timeout_s=timeout_s)
    while runtime.load() > 0 and time.monotonic() - started < timeout_s:
        DRAIN_CALLS_REMAINING.set(len(runtime.sessions))
        await asyncio.sleep(POLL_S)
    left = [s for s in runtime.sessions.values() if not s.ended]
    DRAIN_CALLS_REMAINING.set(len(left))
    if left:
        log.info("gateway_drain_timeout", calls_left=len(left), waited_s=round(time.monotonic() - started, 1))
        await _close_politely(left)
    DRAIN_CALLS_REMAINING.set(len(runtime.sessions))
    log.info("gateway_drained", calls_left=len(runtime.sessions), took_s=round(time.monotonic() - started, 1))


async def _close_politely(sessions: list[CallSession]) -> None:
    """Every remaining call hears its goodbye at once; one that outlasts the bound is ended by
    ``GatewayRuntime.end_calls_now``."""
    tasks = [asyncio.create_task(s.close_for_shutdown()) for s in sessions]
    _done, pending = await asyncio.wait(tasks, timeout=GOODBYE_TIMEOUT_S)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.warning("shutdown_goodbye_failed", error=str(result) or type(result).__name__)
    if pending:
        log.warning("shutdown_goodbyes_timed_out", calls=len(pending), timeout_s=GOODBYE_TIMEOUT_S)


class DrainingServer(uvicorn.Server):
    """uvicorn whose first SIGTERM/SIGINT drains (``drain``) before the usual shutdown begins.

    uvicorn calls ``handle_exit`` from its signal handler; the drain then runs on the server's loop while it
    keeps serving HTTP (readiness, metrics, the refusals) and the live calls' sockets. A clean drain exits 0:
    the signal is not re-raised, as uvicorn does with the signals it handled itself."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: Callable[[], Awaitable[None]],
        end_calls: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._end_calls = end_calls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self.drain_requested = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._end_calls is not None and self.started and not self.force_exit:
            try:
                await self._end_calls()
            except Exception:
                log.exception("gateway_end_calls_failed")
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_requested or not self.started or self.should_exit or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal, or one during start-up: stop now
            return
        self.drain_requested = True
        self._loop.call_soon_threadsafe(self._start_drain, signal.Signals(sig).name)

    def _start_drain(self, signame: str) -> None:
        log.info("gateway_drain_requested", signal=signame, hint="send it again to stop at once")
        self._drain_task = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain()
        except Exception:
            log.exception("gateway_drain_failed")
        finally:
            self.should_exit = True
