"""The gateway's FastAPI application: the lifespan that owns the runtime, the HTTP edge, and every route (the
HTTP API, health probes and metrics, the call sockets, the dashboard)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI, WebSocket

from services.gateway.api.admin import router as admin_router
from services.gateway.api.agents import router as agents_router
from services.gateway.api.call_tokens import router as call_tokens_router
from services.gateway.api.calls import router as calls_router
from services.gateway.api.live import router as live_router
from services.gateway.api.probes import router as probes_router
from services.gateway.api.providers import router as providers_router
from services.gateway.edge.guards import install_edge
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
from shared.health import Detail, default_instance_id, register_service
from shared.logging import get_logger
from shared.running_loop import pin_running_loop, unpin_running_loop
from shared.settings import GatewaySettings

log = get_logger(__name__)

SocketEndpoint = Callable[[WebSocket, GatewayRuntime], Awaitable[None]]  # a call socket, given the runtime


def create_app(settings: GatewaySettings) -> FastAPI:
    app = FastAPI(title="Victoria gateway", version=__version__, lifespan=_lifespan(settings))
    app.state.api_keys = parse_keys(settings.api_keys.get_secret_value())
    if not app.state.api_keys:
        log.warning("api_open_without_keys", hint="set API_KEYS to require X-API-Key on /api/v1")
    install_edge(app, settings, app.state.api_keys)
    served = served_providers(settings)  # a provider not served has no webhook and no socket (404)
    for router in _routers(served):
        app.include_router(router)
    mount_dashboard(app)  # last: its catch-all must not shadow any route above
    return app


def _lifespan(settings: GatewaySettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The runtime's life: connected to NATS, started and answering pings before the first request; stopped
    (its live calls ended) after the last."""

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

    return lifespan


def _routers(served: set[str]) -> list[APIRouter]:
    """Every router, in the order they were always registered (the telephony ones only for served providers)."""
    routers = [agents_router, calls_router, admin_router, live_router, providers_router, call_tokens_router]
    routers += [twilio_router] if "twilio" in served else []
    routers += [telnyx_router] if "telnyx" in served else []
    return [*routers, probes_router, _socket_router(served)]


def _socket_router(served: set[str]) -> APIRouter:
    """The call sockets: the browser simulator always, a provider's media stream only where it is served."""
    router = APIRouter()
    sockets = [("/ws/simulator", "simulator", simulator_endpoint)]
    sockets += [("/twilio/media", "twilio_media", twilio_media_endpoint)] if "twilio" in served else []
    sockets += [("/telnyx/media", "telnyx_media", telnyx_media_endpoint)] if "telnyx" in served else []
    for path, name, endpoint in sockets:
        router.add_api_websocket_route(path, _on_runtime(endpoint), name=name)
    return router


def _on_runtime(endpoint: SocketEndpoint) -> Callable[[WebSocket], Awaitable[None]]:
    """A socket route for ``endpoint``, which is given the app's runtime with the socket."""

    async def serve(ws: WebSocket) -> None:
        await endpoint(ws, ws.app.state.runtime)

    return serve
