"""Liveness and readiness across services: every service answers ``svc.ping.<service>`` with who it is.

The gateway's readiness asks each worker kind and counts the replicas that answer within a short window,
so "workers answering" means a real round trip through NATS, not a guess.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from pydantic import BaseModel, Field

from shared import __version__, subjects
from shared.bus import Bus
from shared.logging import get_logger

log = get_logger(__name__)

STARTED_AT = time.time()


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceInfo(BaseModel):
    service: str
    instance: str
    version: str = __version__
    uptime_s: float = 0.0
    ready: bool = True
    detail: dict[str, str | int | float | bool] = Field(default_factory=dict)


ReadinessFn = Callable[[], Awaitable[tuple[bool, dict[str, str | int | float | bool]]]]


async def answer_pings(bus: Bus, service: str, instance: str, readiness: ReadinessFn | None = None) -> None:
    """Answer ``svc.ping`` (all services) and ``svc.ping.<service>`` with this replica's ServiceInfo."""

    async def on_ping(msg: Msg) -> None:
        ready, detail = (await readiness()) if readiness else (True, {})
        info = ServiceInfo(
            service=service, instance=instance, uptime_s=round(time.time() - STARTED_AT, 1), ready=ready, detail=detail
        )
        if msg.reply:
            await msg.respond(info.model_dump_json().encode())

    await bus.nc.subscribe(subjects.PING_ALL, cb=on_ping)
    await bus.nc.subscribe(subjects.ping_subject(service), cb=on_ping)


async def ping_services(bus: Bus, service: str | None = None, window_s: float = 0.25) -> list[ServiceInfo]:
    """Collect every answer to a ping within ``window_s`` (one per replica)."""
    inbox = bus.nc.new_inbox()
    found: list[ServiceInfo] = []

    async def on_reply(msg: Msg) -> None:
        try:
            found.append(ServiceInfo.model_validate_json(msg.data))
        except ValueError:
            log.warning("bad_ping_reply", data=msg.data[:200])

    sub = await bus.nc.subscribe(inbox, cb=on_reply)
    try:
        subject = subjects.ping_subject(service) if service else subjects.PING_ALL
        await bus.nc.publish(subject, b"", reply=inbox)
        await asyncio.sleep(window_s)
    finally:
        await sub.unsubscribe()
    return found
