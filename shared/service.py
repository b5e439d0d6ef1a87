"""Process runner shared by every service: logging, metrics port, signals, and an orderly shutdown.

A service supplies ``main(stop)``; it starts its work, then awaits ``stop`` (set by SIGTERM or SIGINT),
and cleans up (drain NATS, close pools) before returning. ``run_worker`` is that for the three stateless
workers, which differ only in their request, subjects and handler.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.events import Event
from shared.logging import configure_logging, get_logger
from shared.metrics import serve_metrics
from shared.running_loop import pin_running_loop, unpin_running_loop
from shared.settings import CommonSettings, WorkerSettings
from shared.worker import WorkerHandler, serve_worker

log = get_logger(__name__)

S = TypeVar("S", bound=WorkerSettings)
R = TypeVar("R", bound=Event)


def tune_gc() -> None:
    """Fewer, cheaper garbage collections: move everything alive after start-up (modules, models, config)
    out of the collector's sight and collect young objects less often. A full collection over a large heap
    stalls the event loop for tens of milliseconds, which a caller hears as a late reply."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def apply_nice(settings: CommonSettings) -> None:
    """PROCESS_NICE: lower (or, with the privilege, raise) this process's CPU priority."""
    if settings.process_nice:
        try:
            os.nice(settings.process_nice)
            log.info("process_nice_applied", nice=os.nice(0))
        except OSError as exc:
            log.warning("process_nice_refused", nice=settings.process_nice, error=str(exc))


def run_service(name: str, settings: CommonSettings, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    configure_logging(name, settings.log_level, settings.log_format)
    apply_nice(settings)
    tune_gc()
    serve_metrics(settings.metrics_port, settings.metrics_host)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("service_starting", version=_version())
        pin_running_loop()
        try:
            await main(stop)
        finally:
            unpin_running_loop()
        log.info("service_stopped")

    try:
        import uvloop

        uvloop.run(runner())
    except ImportError:  # pragma: no cover - uvloop is a dependency, asyncio is the fallback
        asyncio.run(runner())


def run_worker(
    settings: S,
    service: str,
    subject: str,
    queue: str,
    model: type[R],
    handler: Callable[[S, str], WorkerHandler[R]],
    metadata: dict[str, str],
    /,
) -> None:
    """A stateless worker's process (``{service}_worker``): ``run_service`` around one queue-group replica
    that takes ``model`` requests on ``subject`` (queue group ``queue``) and hands each to
    ``handler(settings, instance)``; ``metadata`` describes its providers. Positional, so that each worker's
    ``main`` is one line naming its pieces."""
    run_service(
        f"{service}_worker",
        settings,
        lambda stop: serve_worker(
            settings,
            stop,
            service=service,
            subject=subject,
            queue=queue,
            model=model,
            metadata=metadata,
            make_handler=lambda instance: handler(settings, instance),
        ),
    )


def _version() -> str:
    from shared import __version__

    return __version__
