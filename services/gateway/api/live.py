"""``/api/v1/live/calls`` and ``/api/v1/services``: what the dashboard's status page shows.

``GET /api/v1/live/calls`` is the live state of every gateway replica: their calls (id, agent, client type, state,
start, the replica that holds it), gathered over NATS (``gateway.live``: each replica answers for its own calls
within a short window), whether this replica accepts new calls and the global stop it sees, and per replica
whether it does. ``GET /api/v1/services`` asks every service over NATS (the service API's
``$SRV.STATS``: see ``shared.health``) and groups the answers per service with replica counts, like the
readiness probe but with each replica's details.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.gateway.edge.security import require_api_key
from services.gateway.runtime import GatewayRuntime
from shared.global_stop import GlobalStopState
from shared.health import default_instance_id, ping_services

router = APIRouter(prefix="/api/v1", tags=["live"], dependencies=[Depends(require_api_key)])

PING_WINDOW_S = 0.3
SERVICE_ORDER = ("gateway", "stt", "llm", "tts", "call_recorder")


class LiveCall(BaseModel):
    call_id: str
    agent_id: str
    agent_version: int
    client_type: str
    state: str
    started_at: datetime
    duration_s: float
    instance: str = Field(description="the gateway replica that holds the call")


class ReplicaLive(BaseModel):
    instance: str
    accepting_calls: bool
    refusal: str | None
    calls: int


class LiveState(BaseModel):
    instance: str
    accepting_calls: bool
    refusal: str | None
    global_stop: GlobalStopState
    calls: list[LiveCall]
    replicas: list[ReplicaLive] = Field(default_factory=list, description="every gateway replica that answered")


class ServiceInstance(BaseModel):
    instance: str
    version: str
    uptime_s: float
    ready: bool
    detail: dict[str, str | int | float | bool]


class ServiceGroup(BaseModel):
    service: str
    replicas: int
    ready_replicas: int
    instances: list[ServiceInstance]


class ServicesOut(BaseModel):
    services: list[ServiceGroup]


def _instance(runtime: GatewayRuntime) -> str:
    return runtime.settings.instance_id or default_instance_id()


@router.get("/live/calls", response_model=LiveState)
async def live_calls(request: Request) -> LiveState:
    """Every replica's calls, oldest first (replicas that do not answer within 0.25 s are left out)."""
    runtime: GatewayRuntime = request.app.state.runtime
    now = time.time()
    replies = await runtime.call_control.gather_live()
    calls = [
        LiveCall(
            **c.model_dump(exclude={"started_at"}),
            started_at=datetime.fromtimestamp(c.started_at, UTC),
            duration_s=round(max(0.0, now - c.started_at), 1),
        )
        for reply in replies
        for c in reply.calls
    ]
    calls.sort(key=lambda c: c.started_at)
    refusal = runtime.refusal()
    return LiveState(
        instance=_instance(runtime),
        accepting_calls=refusal is None,
        refusal=refusal,
        global_stop=runtime.global_stop.state,
        calls=calls,
        replicas=sorted(
            (
                ReplicaLive(
                    instance=r.instance, accepting_calls=r.accepting_calls, refusal=r.refusal, calls=len(r.calls)
                )
                for r in replies
            ),
            key=lambda r: r.instance,
        ),
    )


@router.get("/services", response_model=ServicesOut)
async def services(request: Request) -> ServicesOut:
    """Every replica of every service that answers within 0.3 s, grouped by service."""
    runtime: GatewayRuntime = request.app.state.runtime
    infos = await ping_services(runtime.bus, window_s=PING_WINDOW_S) if runtime.bus.connected else []
    groups: dict[str, list[ServiceInstance]] = {}
    for info in infos:
        groups.setdefault(info.service, []).append(
            ServiceInstance(
                instance=info.instance,
                version=info.version,
                uptime_s=info.uptime_s,
                ready=info.ready,
                detail=info.detail,
            )
        )

    def order(name: str) -> tuple[int, str]:
        return (SERVICE_ORDER.index(name) if name in SERVICE_ORDER else len(SERVICE_ORDER), name)

    return ServicesOut(
        services=[
            ServiceGroup(
                service=name,
                replicas=len(members),
                ready_replicas=sum(m.ready for m in members),
                instances=sorted(members, key=lambda m: m.instance),
            )
            for name, members in sorted(groups.items(), key=lambda kv: order(kv[0]))
        ]
    )
