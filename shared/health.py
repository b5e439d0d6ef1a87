"""Liveness, readiness and self-description across services, with the NATS service API (``nats.micro``).

Every service registers a micro service named for it (``stt_worker``, ``llm_worker``, ``tts_worker``,
``call_recorder``, ``gateway``), so any NATS tool (``nats micro ls``, ``nats micro stats``) sees it too. Its
service metadata says which service and replica it is (and, for a worker, its providers: see
``shared.provider_catalog``); its one endpoint, ``status``, carries the replica's readiness in the endpoint's
STATS ``data``. So a ``$SRV.STATS.<name>`` request is the ping: every replica answers it with who it is, whether
it is ready and why, and the gateway's readiness counts the replicas that answer within a short window — a real
round trip through NATS, not a guess.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointStats, Service
from pydantic import BaseModel, Field, ValidationError

from shared import __version__
from shared.bus import Bus
from shared.logging import get_logger

log = get_logger(__name__)

STARTED_AT = time.time()
SRV_STATS = "$SRV.STATS"
# the micro service name of each service (the workers' kinds name their subjects; their services say "worker")
MICRO_NAMES = {"stt": "stt_worker", "llm": "llm_worker", "tts": "tts_worker"}

Detail = dict[str, str | int | float | bool]
ReadinessFn = Callable[[], tuple[bool, Detail]]


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def micro_name(service: str) -> str:
    """The micro service name ``service`` (a worker kind, ``call_recorder``, ``gateway``) registers as."""
    return MICRO_NAMES.get(service, service)


def stats_subject(service: str | None = None) -> str:
    """Where every replica (of ``service``, or of every service) answers with its stats."""
    return f"{SRV_STATS}.{micro_name(service)}" if service else SRV_STATS


class ServiceInfo(BaseModel):
    """One replica as it describes itself: who, since when, ready or not (and why), and its metadata."""

    service: str
    instance: str
    version: str = __version__
    uptime_s: float = 0.0
    ready: bool = True
    detail: Detail = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)


class EndpointAnswer(BaseModel):
    name: str
    data: dict[str, Any] | None = None


class StatsAnswer(BaseModel):
    """The part of a micro ``io.nats.micro.v1.stats_response`` read here."""

    version: str
    metadata: dict[str, str] = Field(default_factory=dict)
    endpoints: list[EndpointAnswer] = Field(default_factory=list)


def _status(service: str, instance: str, readiness: ReadinessFn | None) -> ServiceInfo:
    ready, detail = readiness() if readiness else (True, {})
    return ServiceInfo(
        service=service, instance=instance, uptime_s=round(time.time() - STARTED_AT, 1), ready=ready, detail=detail
    )


async def register_service(
    bus: Bus,
    service: str,
    instance: str,
    readiness: ReadinessFn | None = None,
    metadata: dict[str, str] | None = None,
) -> Service:
    """Register this replica as a micro service; its ``status`` endpoint (and its STATS) report ``readiness``."""

    def stats(_endpoint: EndpointStats) -> dict[str, Any]:
        return _status(service, instance, readiness).model_dump(include={"uptime_s", "ready", "detail"})

    async def status(request: Request) -> None:
        await request.respond(_status(service, instance, readiness).model_dump_json().encode())

    described = {**(metadata or {}), "service": service, "instance": instance}
    micro = await add_service(
        bus.nc,
        name=micro_name(service),
        version=__version__,
        description=f"Victoria {service}",
        metadata=described,
        stats_handler=stats,
    )
    await micro.add_endpoint(name="status", subject=f"victoria.status.{service}", handler=status)
    return micro


def parse_stats(data: bytes) -> ServiceInfo | None:
    """A replica's STATS answer as a :class:`ServiceInfo`; None for a micro service that is not one of ours."""
    try:
        stats = StatsAnswer.model_validate_json(data)
    except ValidationError:
        log.warning("bad_stats_reply", data=data[:200])
        return None
    service, instance = stats.metadata.get("service"), stats.metadata.get("instance")
    status = next((e.data for e in stats.endpoints if e.name == "status" and e.data is not None), None)
    if not service or not instance or status is None:
        return None
    return ServiceInfo(service=service, instance=instance, version=stats.version, metadata=stats.metadata, **status)


async def ping_services(bus: Bus, service: str | None = None, window_s: float = 0.25) -> list[ServiceInfo]:
    """Every replica (of ``service``, or of every service) that answers a STATS request within ``window_s``."""
    inbox = bus.nc.new_inbox()
    found: list[ServiceInfo] = []

    async def on_reply(msg: Msg) -> None:
        info = parse_stats(msg.data)
        if info is not None:
            found.append(info)

    sub = await bus.nc.subscribe(inbox, cb=on_reply)
    try:
        await bus.nc.publish(stats_subject(service), b"", reply=inbox)
        await asyncio.sleep(window_s)
    finally:
        await sub.unsubscribe()
    return found
