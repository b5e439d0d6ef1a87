"""The gateway's FastAPI application: health probes, metrics, the simulator WebSocket and its page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway.api.admin import router as admin_router
from services.gateway.api.agents import router as agents_router
from services.gateway.api.call_tokens import router as call_tokens_router
from services.gateway.api.calls import router as calls_router
from services.gateway.api.live import router as live_router
from services.gateway.api.providers import router as providers_router
from services.gateway.edge.http_guard import (
    BodyLimit,
    JsonHygiene,
    RateLimiter,
    SecurityHeaders,
    request_validation_handler,
)
from services.gateway.edge.production import served_providers
from services.gateway.edge.security import parse_keys
from services.gateway.runtime import GatewayRuntime
from services.gateway.telephony.telnyx.media import telnyx_media_endpoint
from services.gateway.telephony.telnyx.webhooks import router as telnyx_router
from services.gateway.telephony.twilio.media import twilio_media_endpoint
from services.gateway.telephony.twilio.webhooks import router as twilio_router
from services.gateway.transports.browser import simulator_endpoint
from services.gateway.web.dashboard import mount_dashboard
from shared import __version__
from shared.bus import Bus
from shared.health import Detail, default_instance_id, ping_services, register_service
from shared.logging import get_logger
from shared.running_loop import pin_running_loop, unpin_running_loop
from shared.settings import GatewaySettings

log = get_logger(__name__)

WORKER_KINDS = ("stt", "llm", "tts", "call_recorder")


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = await Bus.connect(settings.nats_url, "gateway")
        runtime = GatewayRuntime(settings, bus)
        await runtime.start()
        app.state.runtime = runtime

        def readiness() -> tuple[bool, Detail]:
            return runtime.refusal() is None, {"active_calls": len(runtime.sessions), "draining": runtime.draining}

        await register_service(bus, "gateway", settings.instance_id or default_instance_id(), readiness)
        pin_running_loop()
        try:
            yield
        finally:
            unpin_running_loop()
            await runtime.stop()

    app = FastAPI(title="Victoria gateway", version=__version__, lifespan=lifespan)
    app.state.api_keys = parse_keys(settings.api_keys.get_secret_value())
    if not app.state.api_keys:
        log.warning("api_open_without_keys", hint="set API_KEYS to require X-API-Key on /api/v1")

    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    async def unstorable_text(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # a NUL character (``\x00``, ``\u0000``) in a query or body: PostgreSQL stores no such text, so it is the
        # request that is bad (found by schemathesis: these were 500s)
        return JSONResponse({"detail": "the request contains a NUL character, which cannot be stored"}, 400)

    app.include_router(agents_router)
    app.include_router(calls_router)
    app.include_router(admin_router)
    app.include_router(live_router)
    app.include_router(providers_router)
    app.include_router(call_tokens_router)
    app.add_exception_handler(RequestValidationError, request_validation_handler)  # a 422 that cannot be a 500
    admin_key = settings.admin_api_key.get_secret_value().strip().encode()
    app.add_middleware(JsonHygiene)  # innermost: reads a body BodyLimit has bounded
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(
        RateLimiter,
        per_minute=settings.api_rate_limit_per_minute,
        burst=settings.api_rate_limit_burst,
        keys=[*app.state.api_keys, admin_key],
    )
    app.add_middleware(SecurityHeaders)  # outermost: 429s and 413s get the headers too
    served = served_providers(settings)  # a provider not served has no webhook and no socket (404)
    if "twilio" in served:
        app.include_router(twilio_router)
    if "telnyx" in served:
        app.include_router(telnyx_router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        """Liveness: the process serves HTTP. Depends on nothing else."""
        return {"status": "ok"}

    @app.get("/api/system/health", tags=["health"])
    async def readiness(request: Request) -> JSONResponse:
        """Readiness: NATS connected, PostgreSQL answering, and at least one replica of every service
        answering a ping over NATS. 503 with the failing checks otherwise, and 503 ``draining`` from SIGTERM on."""
        runtime: GatewayRuntime = request.app.state.runtime
        if runtime.draining:  # SIGTERM: out of the load balancer at once, while the live calls finish
            body = {"ready": False, "status": "draining", "version": __version__, "active_calls": len(runtime.sessions)}
            return JSONResponse({**body, "accepting_calls": False}, status_code=503)
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

    if "twilio" in served:

        @app.websocket("/twilio/media")
        async def twilio_media(ws: WebSocket) -> None:
            await twilio_media_endpoint(ws, ws.app.state.runtime)

    if "telnyx" in served:

        @app.websocket("/telnyx/media")
        async def telnyx_media(ws: WebSocket) -> None:
            await telnyx_media_endpoint(ws, ws.app.state.runtime)

    mount_dashboard(app)  # last: its catch-all must not shadow any route above

    return app
