"""``/api/v1/live/calls`` and ``/api/v1/services``: what the dashboard's status page shows.

``GET /api/v1/live/calls`` is this gateway replica's live state: its calls (id, agent, client type, state, start),
whether it accepts new calls and the global stop it sees. Each replica answers for its own calls only (a call
lives on one replica). ``GET /api/v1/services`` pings every service over NATS (``svc.ping``) and groups the
answers per service with replica counts, like the readiness probe but with each replica's details.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.gateway.runtime import GatewayRuntime
from services.gateway.security import require_api_key
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


class LiveState(BaseModel):
    instance: str
    accepting_calls: bool
    refusal: str | None
    global_stop: GlobalStopState
    calls: list[LiveCall]


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
    """This replica's calls, oldest first."""
    runtime: GatewayRuntime = request.app.state.runtime
    now = time.time()
    calls = [
        LiveCall(
            call_id=s.call_id,
            agent_id=s.config.agent_id,
            agent_version=s.config.agent_version,
            client_type=s.transport.client_type,
            state=str(s.state),
            started_at=datetime.fromtimestamp(s.started_at, UTC),
            duration_s=round(max(0.0, now - s.started_at), 1),
        )
        for s in list(runtime.sessions.values())
    ]
    calls.sort(key=lambda c: c.started_at)
    refusal = runtime.refusal()
    return LiveState(
        instance=_instance(runtime),
        accepting_calls=refusal is None,
        refusal=refusal,
        global_stop=runtime.global_stop.state,
        calls=calls,
    )


@router.get("/services", response_model=ServicesOut)
async def services(request: Request) -> ServicesOut:
    """Every replica of every service that answers a ping within 0.3 s, grouped by service."""
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
