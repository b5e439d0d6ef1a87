"""Health probes and metrics: liveness (``/health``), readiness (``/api/system/health``) and ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway.runtime import GatewayRuntime
from shared import __version__
from shared.health import ping_services

WORKER_KINDS = ("stt", "llm", "tts", "call_recorder")

router = APIRouter()


@router.get("/health", tags=["health"])
async def health() -> dict[str, str]:
    """Liveness: the process serves HTTP. Depends on nothing else."""
    return {"status": "ok"}


@router.get("/api/system/health", tags=["health"])
async def readiness(request: Request) -> JSONResponse:
    """Readiness: NATS connected, PostgreSQL answering, and at least one replica of every service
    answering a ping over NATS. 503 with the failing checks otherwise, and 503 ``draining`` from SIGTERM on."""
    runtime: GatewayRuntime = request.app.state.runtime
    if runtime.draining:  # SIGTERM: out of the load balancer at once, while the live calls finish
        body = {"ready": False, "status": "draining", "version": __version__, "active_calls": len(runtime.sessions)}
        return JSONResponse({**body, "accepting_calls": False}, status_code=503)
    checks: dict[str, object] = {"nats": runtime.bus.connected}
    db_ok = await _database_answers(runtime)
    checks["postgres"] = db_ok
    replicas = await _ready_replicas(runtime)
    checks["services"] = replicas
    ready = bool(checks["nats"]) and db_ok and all(replicas.values())
    body = {
        "ready": ready,
        "version": __version__,
        "active_calls": len(runtime.sessions),
        "accepting_calls": runtime.refusal() is None,
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def _database_answers(runtime: GatewayRuntime) -> bool:
    if runtime.pool is None:
        return False
    try:
        async with runtime.pool.acquire(timeout=2) as conn:
            return await asyncio.wait_for(conn.fetchval("SELECT 1"), 2) == 1
    except Exception:
        return False


async def _ready_replicas(runtime: GatewayRuntime) -> dict[str, int]:
    """How many ready replicas of each service answered a ping (all 0 while NATS is down)."""
    replicas: dict[str, int] = dict.fromkeys(WORKER_KINDS, 0)
    if runtime.bus.connected:
        for info in await ping_services(runtime.bus, window_s=0.2):
            if info.service in replicas and info.ready:
                replicas[info.service] += 1
    return replicas


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
