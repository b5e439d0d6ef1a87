"""Gateway wiring: settings, logging, the FastAPI app and uvicorn. SIGTERM first drains (``drain.py``: no new
calls, live ones finish for up to ``DRAIN_TIMEOUT_S``, then a goodbye); then uvicorn shuts down and the app's
lifespan ends anything left and flushes lifecycle events before the process exits."""

from __future__ import annotations

import sys

import uvicorn

from services.gateway.app import create_app
from services.gateway.drain import DrainingServer, drain_gateway
from services.gateway.edge.production import production_problems
from shared.logging import configure_logging
from shared.metrics import serve_metrics
from shared.service import apply_nice, tune_gc
from shared.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    problems = production_problems(settings)
    if problems:
        print(
            f"gateway: refusing to start (APP_ENV={settings.app_env}): " + "; ".join(problems),
            "\nsee docs/SECURITY.md for what each secret protects and how to generate it",
            file=sys.stderr,
        )
        sys.exit(2)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    apply_nice(settings)
    tune_gc()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="warning",
        ws_max_size=max(4 * 1024 * 1024, 4 * settings.max_ws_message_bytes),  # our own bound answers first
        ws_ping_interval=20,
        ws_per_message_deflate=False,  # audio doesn't compress; deflate only burns CPU on both ends
        ws_ping_timeout=20,
        timeout_graceful_shutdown=10,
    )
    server = DrainingServer(
        config,
        drain=lambda: drain_gateway(app.state.runtime, settings.drain_timeout_s),
        end_calls=lambda: app.state.runtime.end_calls_now(),
    )
    server.run()
    if not server.started:  # start-up failed (the port taken, the lifespan raised), as uvicorn.run reports it
        sys.exit(3)
