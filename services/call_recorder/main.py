"""Call recorder wiring: migrations, the database pool, the lifecycle consumer and its readiness."""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from services.call_recorder.consumer import LifecycleConsumer
from services.call_recorder.extraction import Extractor
from services.call_recorder.global_stop import ErrorStreamCounter, GlobalStopPolicy
from services.call_recorder.prompt_budget import provider_context_tokens
from services.call_recorder.reconcile import Reconciler
from services.call_recorder.store import HistoryStore
from services.call_recorder.webhooks import WebhookDeliverer
from shared.bus import Bus
from shared.db.migrate import apply_migrations, ensure_database
from shared.global_stop import ensure_bucket
from shared.health import Detail, default_instance_id, register_service
from shared.logging import get_logger
from shared.service import run_service
from shared.settings import RecorderSettings
from shared.signing import signing_secret

log = get_logger(__name__)
SERVICE = "call_recorder"


async def _connect_db(dsn: str, stop: asyncio.Event) -> asyncpg.Pool | None:
    """Wait for PostgreSQL (it may start after us), then migrate and open the pool."""
    delay = 0.5
    while not stop.is_set():
        try:
            await ensure_database(dsn)
            await apply_migrations(dsn)
            return await asyncpg.create_pool(dsn, min_size=1, max_size=4, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning("database_unavailable", error=str(exc) or type(exc).__name__, retry_s=delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(10.0, delay * 2)
    return None


async def serve(settings: RecorderSettings, stop: asyncio.Event) -> None:
    instance = settings.instance_id or default_instance_id()
    # the global stop counts from the stream first: it must work while PostgreSQL is still away (or down)
    bus = await Bus.connect(settings.nats_url, f"recorder-{instance}")
    await ensure_bucket(bus.js)
    await bus.ensure_lifecycle_stream()
    global_stop = GlobalStopPolicy(
        bus.js,
        None,
        max_errors=settings.global_stop_max_errors_in_window,
        window_s=settings.global_stop_window_seconds,
        webhook_url=settings.admin_notification_webhook_url,
        instance=instance,
    )
    counter = ErrorStreamCounter(bus.js, global_stop, durable=settings.global_stop_durable)
    await counter.setup()
    counting = asyncio.create_task(counter.run(stop), name="global-stop-counter")
    log.info("global_stop_counting", durable=settings.global_stop_durable)
    try:
        await _serve_history(settings, stop, bus, instance, global_stop)
    finally:
        stop.set()
        await asyncio.gather(counting, return_exceptions=True)
        await counter.close()
        await global_stop.close()
        await bus.close()


async def _serve_history(
    settings: RecorderSettings, stop: asyncio.Event, bus: Bus, instance: str, global_stop: GlobalStopPolicy
) -> None:
    pool = await _connect_db(settings.database_url.get_secret_value(), stop)
    if pool is None:
        return
    global_stop.pool = pool  # the audit rows of trips, from now on
    deliverer = _deliverer(settings, pool)
    extractor = _extractor(settings, bus, pool, instance, deliverer) if settings.extraction_enabled else None
    store = HistoryStore(pool, extraction=settings.extraction_enabled)
    consumer = LifecycleConsumer(
        bus,
        store,
        durable=settings.recorder_durable,
        batch=settings.recorder_batch,
        ack_wait_s=settings.recorder_ack_wait_s,
        max_deliver=settings.recorder_max_deliver,
        extractor=extractor,
    )
    await consumer.setup()
    reconciler = Reconciler(
        bus,
        pool,
        lost_after_s=settings.gateway_lost_after_s,
        interval_s=settings.reconcile_interval_s,
        grace_s=settings.reconcile_grace_s,
        pending_extraction=store.pending_extraction,
    )
    await reconciler.start()

    def readiness() -> tuple[bool, Detail]:
        detail: Detail = {"database": consumer.db_ok, "applied": consumer.applied}
        if consumer.last_error:
            detail["last_error"] = consumer.last_error[:200]
        return consumer.db_ok and bus.connected, detail

    await register_service(bus, SERVICE, instance, readiness)
    log.info("recorder_consuming", durable=settings.recorder_durable)
    await consumer.run(stop)
    await consumer.close()
    await reconciler.close()
    if extractor is not None:
        await extractor.close()
    await deliverer.close()
    await pool.close()


def _extractor(
    settings: RecorderSettings, bus: Bus, pool: asyncpg.Pool, instance: str, deliverer: WebhookDeliverer
) -> Extractor:
    """Post-call extraction, started; each result it stores may queue a webhook delivery, delivered at once."""
    extractor = Extractor(
        bus,
        pool,
        max_attempts=settings.extraction_max_attempts,
        timeout_s=settings.extraction_timeout_s,
        concurrency=settings.extraction_concurrency,
        sweep_s=10.0,
        provider=settings.extraction_provider or None,
        model=settings.extraction_model or None,
        instance=instance,
        context_tokens=provider_context_tokens(
            settings.extraction_provider or settings.llm_provider, settings, settings.extraction_context_tokens
        ),
        on_webhook=deliverer.wake,
    )
    extractor.start()
    return extractor


def _deliverer(settings: RecorderSettings, pool: asyncpg.Pool) -> WebhookDeliverer:
    """The post-call webhook's delivery loop, started."""
    configured = settings.webhook_signing_secret.get_secret_value()
    if not configured.strip():
        log.warning("webhook_signing_development_key", hint="set WEBHOOK_SIGNING_SECRET: receivers cannot trust it")
    deliverer = WebhookDeliverer(
        pool,
        secret=signing_secret(configured),
        retry_base_s=settings.webhook_retry_base_s,
        max_attempts=settings.webhook_max_attempts,
        timeout_s=settings.webhook_timeout_s,
        poll_s=settings.webhook_poll_s,
    )
    deliverer.start()
    return deliverer


def main() -> None:
    settings = RecorderSettings()
    if settings.app_env == "production" and not settings.webhook_signing_secret.get_secret_value().strip():
        # post-call webhooks signed with the development key would be trusted by nobody (or, worse, by anybody)
        print(
            "call_recorder: refusing to start (APP_ENV=production): WEBHOOK_SIGNING_SECRET is not set"
            "\nsee docs/SECURITY.md for what each secret protects and how to generate it",
            file=sys.stderr,
        )
        sys.exit(2)
    run_service(SERVICE, settings, lambda stop: serve(settings, stop))
