"""The runtime every stateless worker shares: queue-group subscription, acknowledgement, concurrency,
cancellation by call and turn, metrics and error reporting.

A worker only supplies ``handle(request, emit)``; ``emit`` publishes a result event to the request's
``reply_to`` subject, and ``chain`` (set on handlers that have the attribute) sends the next stage's request
straight to its queue group. Every replica listens on ``call.*.cancel``: a barge-in or hang-up cancels the
handler task of that call's turn wherever it runs (and with it the provider stream), and drops requests for
that turn that arrive later (a chained request may still be on its way when the cancel lands).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import subjects
from shared.bus import Bus
from shared.events import CancelTurn, ErrorInfo, Event, WorkAck, WorkerBeat, work_key
from shared.health import Detail, default_instance_id, register_service
from shared.heartbeat import Heartbeat
from shared.logging import bound_call, get_logger
from shared.metrics import BUS_DELIVERY, WORK_IN_FLIGHT, WORK_REQUESTS
from shared.provider_cache import Emit, ProviderCache, ProviderError
from shared.settings import WorkerSettings

log = get_logger(__name__)

R = TypeVar("R", bound=Event)
# the handlers import these from here, the worker runtime they plug into
__all__ = ["Chain", "Emit", "ProviderCache", "ProviderError", "WorkerHandler", "WorkerRuntime", "serve_worker"]
CANCEL_MEMORY_S = 120.0  # how long a finished turn's late requests are still recognised and dropped


def _segment_of(key: str) -> int | None:
    """The segment in a ``work_key`` (``call|turn|stage|segment|attempt``; the call id may hold ``|``)."""
    parts = key.rsplit("|", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class Chain:
    """What a chaining handler uses to hand the next stage's work on itself, without the gateway."""

    def __init__(self, bus: Bus, ack_timeout_s: float) -> None:
        self.bus = bus
        self.ack_timeout_s = ack_timeout_s

    async def submit(self, subject: str, req: Event) -> ErrorInfo | None:
        """The request to a queue group (retried once); None when a worker accepted it, else why not."""
        return await self.bus.submit_work(subject, req, ack_timeout_s=self.ack_timeout_s)

    async def publish(self, subject: str, event: Event) -> None:
        await self.bus.publish(subject, event)


class WorkerHandler(Protocol[R]):
    """What a worker service supplies: load its default provider, handle a request, describe a failure."""

    async def warmup(self) -> None: ...

    async def handle(self, req: R, emit: Emit) -> None: ...

    def error_event(self, req: R, error: ErrorInfo) -> Event: ...


async def serve_worker(
    settings: WorkerSettings,
    stop: asyncio.Event,
    *,
    service: str,
    subject: str,
    queue: str,
    model: type[R],
    make_handler: Callable[[str], WorkerHandler[R]],
    metadata: dict[str, str] | None = None,
) -> None:
    """Run one worker replica until ``stop``: warm the provider up (so the first caller doesn't pay for
    loading a model), take work from the queue group, then drain on SIGTERM. ``metadata`` is what the
    replica's micro service says about it (its providers: see ``shared.provider_catalog``)."""
    instance = settings.instance_id or default_instance_id()
    handler = make_handler(instance)
    await handler.warmup()
    bus = await Bus.connect(settings.nats_url, f"{service}-{instance}")
    runtime = WorkerRuntime(
        bus,
        service=service,
        instance=instance,
        subject=subject,
        queue=queue,
        model=model,
        handle=handler.handle,
        on_error=handler.error_event,
        concurrency=settings.worker_concurrency,
        timeout_s=settings.request_timeout_s,
        beat_s=settings.worker_beat_s,
    )
    if hasattr(handler, "chain"):  # a handler that can send the next stage's request itself
        handler.chain = runtime.chain_with(settings.worker_ack_timeout_s)
    await runtime.start(metadata)
    await stop.wait()
    await runtime.drain(settings.worker_drain_timeout_s)


class WorkerRuntime(Generic[R]):
    def __init__(
        self,
        bus: Bus,
        *,
        service: str,
        instance: str,
        subject: str,
        queue: str,
        model: type[R],
        handle: Callable[[R, Emit], Awaitable[None]],
        on_error: Callable[[R, ErrorInfo], Event],
        concurrency: int,
        timeout_s: float,
        beat_s: float = 0.25,
    ) -> None:
        self.bus = bus
        self.service = service
        self.instance = instance
        self.subject = subject
        self.queue = queue
        self.model = model
        self.handle = handle
        self.on_error = on_error
        self.timeout_s = timeout_s
        self.slots = asyncio.Semaphore(concurrency)
        self.max_waiting = concurrency * 4
        self.tasks: set[asyncio.Task[None]] = set()
        self.handled = 0
        self.draining = False
        self._sub: Subscription | None = None
        self._running: dict[tuple[str, int | None], set[asyncio.Task[None]]] = {}
        self._cancelled: dict[tuple[str, int | None], float] = {}  # (call, turn or None = all) → when
        self._holding: dict[asyncio.Task[None], str] = {}  # accepted work → its work_key (in the beats)
        # which work this replica holds, every beat_s: gateways notice in a second that a replica died (its beats
        # stop) or that a request it accepted went missing (it is no longer listed, no result came)
        self.heartbeat = Heartbeat(
            bus,
            f"{subjects.WORKER_BEAT_PREFIX}.{service}",
            lambda: WorkerBeat(service=self.service, instance=self.instance, holding=self.holding()),
            beat_s,
        )

    def chain_with(self, ack_timeout_s: float) -> Chain:
        return Chain(self.bus, ack_timeout_s)

    def is_cancelled(self, call_id: str, turn_id: int | None) -> bool:
        return (call_id, turn_id) in self._cancelled or (call_id, None) in self._cancelled

    async def start(self, metadata: dict[str, str] | None = None) -> None:
        self._sub = await self.bus.subscribe(self.subject, self.model, self._on_request, queue=self.queue)
        # one subscription for every call's cancels (rare messages), not a SUB/UNSUB per request
        await self.bus.subscribe(subjects.CANCEL_ALL, CancelTurn, self._on_cancel)
        await register_service(self.bus, self.service, self.instance, self._readiness, metadata)
        self.heartbeat.start()
        log.info("worker_listening", subject=self.subject, queue=self.queue)

    def holding(self) -> list[str]:
        return list(self._holding.values())

    def _key(self, req: R) -> str:
        return work_key(req.call_id, req.turn_id, self.service, getattr(req, "segment", 0), getattr(req, "attempt", 0))

    def _readiness(self) -> tuple[bool, Detail]:
        detail: Detail = {"in_flight": len(self.tasks), "handled": self.handled}
        if self.draining:
            detail["draining"] = True
        return self.bus.connected and not self.draining, detail

    async def _on_request(self, req: R, msg: Msg) -> None:
        if len(self.tasks) >= self.max_waiting:
            # refuse fast so the gateway can send the work to another replica
            ack = WorkAck(
                worker=self.instance,
                accepted=False,
                error=ErrorInfo(code="busy", message="worker at capacity", retryable=True),
            )
            if msg.reply:
                await msg.respond(ack.model_dump_json().encode())
            WORK_REQUESTS.labels(self.service, "-", "refused").inc()
            return
        # the work is scheduled before the acknowledgement is written, so the provider call starts first: the
        # ack's trip (through nats-server and back to the sender) is not on the reply's critical path
        task = asyncio.create_task(self._run(req))
        self.tasks.add(task)
        self._holding[task] = self._key(req)  # listed from the next beat on, until the task is over
        task.add_done_callback(self._forget)
        if msg.reply:
            await msg.respond(WorkAck(worker=self.instance).model_dump_json().encode())

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._holding.pop(task, None)

    async def _on_cancel(self, ev: CancelTurn, _msg: Msg) -> None:
        """Cancel this replica's work for a call's turn (or all its turns): the provider stream closes; a
        final cancel is remembered for a while, so that requests for the turn that arrive later are dropped."""
        if ev.stage is not None and ev.stage != self.service:
            return  # a retry of another stage's work: this turn's work here goes on
        if ev.final:
            now = time.monotonic()
            if len(self._cancelled) > 1000:
                self._cancelled = {k: t for k, t in self._cancelled.items() if now - t < CANCEL_MEMORY_S}
            self._cancelled[(ev.call_id, ev.turn_id)] = now
        for (call_id, turn_id), tasks in list(self._running.items()):
            if call_id == ev.call_id and (ev.turn_id is None or ev.turn_id == turn_id):
                with bound_call(call_id, turn_id=turn_id):
                    log.info("work_cancelled", reason=ev.reason, requests=len(tasks))
                for task in tasks:
                    if ev.segment is None or _segment_of(self._holding.get(task, "")) == ev.segment:
                        task.cancel()

    async def _run(self, req: R) -> None:
        delay = time.time() - req.ts
        BUS_DELIVERY.labels(self.subject).observe(max(0.0, delay))
        if delay > 1.0:  # a backlog, a stalled process or clocks apart: worth a line in the logs
            log.warning("slow_request_delivery", call_id=req.call_id, turn_id=req.turn_id, delay_s=round(delay, 3))
        post_call = bool(getattr(req, "post_call", False))
        key = (req.call_id, req.turn_id) if not post_call else (f"{req.call_id}#post-call", None)
        if not post_call and self.is_cancelled(*key):  # the turn was cancelled before its (chained) request got here
            with bound_call(req.call_id, turn_id=req.turn_id):
                log.info("work_dropped_cancelled_turn")
            WORK_REQUESTS.labels(self.service, getattr(req, "provider", None) or "default", "cancelled").inc()
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.setdefault(key, set()).add(task)  # a turn may have several (TTS segments)
        with bound_call(req.call_id, turn_id=req.turn_id, trace_id=req.trace_id):
            try:
                async with self.slots:
                    WORK_IN_FLIGHT.labels(self.service).inc()
                    started = time.perf_counter()
                    try:
                        async with asyncio.timeout(self.timeout_s):
                            await self.handle(req, self._emitter(req))
                        outcome = "ok"
                    except TimeoutError:
                        outcome = "timeout"
                        await self._fail(
                            req,
                            ErrorInfo(
                                code="timeout",
                                message=f"{self.service} took over {self.timeout_s:.0f}s",
                                retryable=True,
                            ),
                        )
                    except ProviderError as exc:
                        outcome = exc.code
                        log.warning("provider_failed", code=exc.code, error=str(exc))
                        await self._fail(req, exc.info())
                    except Exception as exc:
                        outcome = "internal"
                        log.exception("worker_handler_crashed")
                        await self._fail(req, ErrorInfo(code="internal", message=type(exc).__name__, retryable=True))
                    finally:
                        WORK_IN_FLIGHT.labels(self.service).dec()
                    self.handled += 1
                    WORK_REQUESTS.labels(self.service, getattr(req, "provider", None) or "default", outcome).inc()
                    log.debug("work_done", outcome=outcome, ms=round((time.perf_counter() - started) * 1000, 1))
            except asyncio.CancelledError:
                WORK_REQUESTS.labels(self.service, getattr(req, "provider", None) or "default", "cancelled").inc()
            finally:
                same_turn = self._running.get(key)
                if same_turn is not None:
                    same_turn.discard(task)
                    if not same_turn:
                        del self._running[key]

    def _emitter(self, req: R) -> Emit:
        reply_to: str = req.reply_to

        async def emit(event: Event) -> None:
            await self.bus.publish(reply_to, event)
            # a provider that streams faster than real time would otherwise hold the loop for its whole
            # burst: yield after each event so new requests (and other calls' first chunks) get through
            await asyncio.sleep(0)

        return emit

    async def _fail(self, req: R, error: ErrorInfo) -> None:
        try:
            await self.bus.publish(req.reply_to, self.on_error(req, error))
        except Exception:
            log.exception("error_report_failed")

    async def drain(self, grace_s: float = 20.0) -> None:
        """SIGTERM: take no new work, let the requests held finish (up to ``grace_s``, ``WORKER_DRAIN_TIMEOUT_S``),
        then close the bus. The request subscription is drained, not dropped: requests the server had already
        routed here are still accepted and done, so none waits for an ack that never comes; from then on the
        queue group sends new work to the other replicas (or the sender hears "no responders" at once). Cancels
        keep arriving meanwhile, so a barge-in still stops work held here."""
        self.draining = True
        started = time.monotonic()
        if self._sub is not None:
            try:
                await asyncio.wait_for(self._sub.drain(), timeout=max(1.0, grace_s))
            except Exception as exc:  # NATS gone: nothing more can arrive anyway
                log.warning("request_drain_failed", error=str(exc) or type(exc).__name__)
        if self.tasks:
            log.info("worker_draining", in_flight=len(self.tasks), timeout_s=grace_s)
            left = max(0.0, grace_s - (time.monotonic() - started))
            _done, pending = await asyncio.wait(set(self.tasks), timeout=left)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("worker_drain_timeout", cancelled=len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        log.info("worker_drained", handled=self.handled, took_s=round(time.monotonic() - started, 2))
        await self.heartbeat.stop()  # after the held work: it stays listed until it is over
        await self.bus.close()
