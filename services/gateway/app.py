"""The gateway's FastAPI application: health probes, metrics, the simulator WebSocket and its page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway.api_admin import router as admin_router
from services.gateway.api_agents import router as agents_router
from services.gateway.api_calls import router as calls_router
from services.gateway.runtime import GatewayRuntime
from services.gateway.security import parse_keys
from services.gateway.simulator_ws import simulator_endpoint
from shared import __version__
from shared.bus import Bus
from shared.health import ping_services
from shared.logging import get_logger
from shared.settings import GatewaySettings

log = get_logger(__name__)

STATIC = Path(__file__).with_name("static")
WORKER_KINDS = ("stt", "llm", "tts", "call_recorder")


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = await Bus.connect(settings.nats_url, "gateway")
        runtime = GatewayRuntime(settings, bus)
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="Victoria gateway", version=__version__, lifespan=lifespan)
    app.state.api_keys = parse_keys(settings.api_keys.get_secret_value())
    if not app.state.api_keys:
        log.warning("api_open_without_keys", hint="set API_KEYS to require X-API-Key on /api/v1")
    app.include_router(agents_router)
    app.include_router(calls_router)
    app.include_router(admin_router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        """Liveness: the process serves HTTP. Depends on nothing else."""
        return {"status": "ok"}

    @app.get("/api/system/health", tags=["health"])
    async def readiness(request: Request) -> JSONResponse:
        """Readiness: NATS connected, PostgreSQL answering, and at least one replica of every service
        answering a ping over NATS. 503 with the failing checks otherwise."""
        runtime: GatewayRuntime = request.app.state.runtime
        checks: dict[str, object] = {"nats": runtime.bus.connected}
        db_ok = False
        if runtime.pool is not None:
            try:
                async with runtime.pool.acquire(timeout=2) as conn:
                    db_ok = await asyncio.wait_for(conn.fetchval("SELECT 1"), 2) == 1
            except Exception:
                db_ok = False
        checks["postgres"] = db_ok
        replicas: dict[str, int] = dict.fromkeys(WORKER_KINDS, 0)
        if runtime.bus.connected:
            for info in await ping_services(runtime.bus, window_s=0.2):
                if info.service in replicas and info.ready:
                    replicas[info.service] += 1
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

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/ws/simulator")
    async def simulator(ws: WebSocket) -> None:
        await simulator_endpoint(ws, ws.app.state.runtime)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "simulator.html")

    return app
