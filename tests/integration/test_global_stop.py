"""The error policy's global stop on the real stack: repeated critical call errors (no LLM worker) trip it,
new calls are refused on every replica, the operator is notified by webhook, and the admin API shows and
resets it (never without the admin key)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest_asyncio

from shared.global_stop import GlobalStopState, write_state
from tools.simcaller import SimCaller
from tools.talk import synthesize

ADMIN_KEY = "secret"


class WebhookReceiver:
    """A minimal HTTP server that records the JSON bodies POSTed to it and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks/victoria"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if lines[0].startswith("POST "):
                self.bodies.append(json.loads(body))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> WebhookReceiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest_asyncio.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest_asyncio.fixture
async def clean_global_stop(bus) -> AsyncIterator[None]:
    """Start and end inactive, so a failure here can't leave the stop on for the tests that follow."""
    # a reset (reset_at): errors earlier tests left in the shared window never count here
    await write_state(bus.js, GlobalStopState(reset_at=time.time(), reset_by="pytest"))
    yield
    await write_state(bus.js, GlobalStopState(reset_at=time.time(), reset_by="pytest"))


def ws(gateway) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ws/simulator"


async def failing_call(gateway, speech: bytes) -> str:
    caller = SimCaller(ws(gateway))
    started = await caller.connect()
    assert started["type"] == "started", started
    await caller.next(lambda m: m["type"] == "transcript", timeout=10)  # the greeting
    await caller.send_frames(speech)
    error = await caller.next(lambda m: m["type"] == "error", timeout=10)
    assert error["code"] == "llm_no_worker"
    await caller.next(lambda m: m["type"] == "ended", timeout=15)
    await caller.close()
    return caller.call_id


async def accepting(client: httpx.AsyncClient) -> bool:
    return (await client.get("/api/system/health")).json()["accepting_calls"]


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_repeated_critical_errors_trip_the_global_stop(
    start_stack, run_service, webhook, clean_global_stop, db_pool
) -> None:
    since = datetime.now(UTC)
    speech = await synthesize("Hello there.")
    gateway = await start_stack(
        {
            "WORKER_ACK_TIMEOUT_S": "0.3",
            "GLOBAL_STOP_MAX_ERRORS_IN_WINDOW": "3",
            "GLOBAL_STOP_WINDOW_SECONDS": "60",
            "ADMIN_NOTIFICATION_WEBHOOK_URL": webhook.url,
            "ADMIN_API_KEY": ADMIN_KEY,
        },
        services=("stt_worker", "tts_worker", "call_recorder"),
        wait_ready=False,
    )
    admin = {"X-API-Key": ADMIN_KEY}
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
        state = (await client.get("/admin/global-stop", headers=admin)).json()
        assert state["active"] is False

        # three calls fail (no LLM worker): three critical call errors within the window
        call_ids = await asyncio.gather(*(failing_call(gateway, speech) for _ in range(3)))

        async def tripped() -> bool:
            return (await client.get("/admin/global-stop", headers=admin)).json()["active"]

        await wait_until(tripped, 15, "the global stop to trip")
        state = (await client.get("/admin/global-stop", headers=admin)).json()
        assert "3 critical call errors" in state["reason"] and "llm_no_worker x3" in state["reason"]
        assert sorted(state["errors"]) == sorted(call_ids)
        assert state["tripped_at"] is not None

        async def refusing() -> bool:
            return not await accepting(client)

        await wait_until(refusing, 3, "the gateway to refuse calls")
        refused = SimCaller(ws(gateway))
        error = await refused.connect()
        assert error["type"] == "error" and error["code"] == "global_stop"
        assert "global stop" in error["message"]
        with contextlib.suppress(ConnectionError):
            await refused.next(lambda m: False, timeout=5)
        await refused.close()
        assert refused.close_code == 1013

        # the operator was told once, with the reason
        async def notified() -> bool:
            return bool(webhook.bodies)

        await wait_until(notified, 10, "the webhook notification")
        await asyncio.sleep(0.5)
        assert len(webhook.bodies) == 1
        hook = webhook.bodies[0]
        assert hook["event"] == "global_stop_tripped"
        assert hook["reason"] == state["reason"] and sorted(hook["call_ids"]) == sorted(call_ids)

        # resetting needs the admin key
        assert (await client.post("/admin/global-stop/reset")).status_code == 401
        assert (await client.post("/admin/global-stop/reset", headers={"X-API-Key": "nope"})).status_code == 401
        assert (await client.get("/admin/global-stop")).status_code == 401
        reset = await client.post("/admin/global-stop/reset", headers=admin, json={"reset_by": "pytest"})
        assert reset.status_code == 200, reset.text
        assert reset.json()["active"] is False and reset.json()["reset_by"] == "pytest"
        assert (await client.get("/admin/global-stop", headers=admin)).json()["active"] is False

        await wait_until(lambda: accepting(client), 3, "the gateway to accept calls again")
        caller = SimCaller(ws(gateway))
        assert (await caller.connect())["type"] == "started"
        await caller.hang_up()

    rows = await db_pool.fetch("SELECT kind, detail FROM admin_events WHERE at >= $1 ORDER BY id", since)
    kinds = [r["kind"] for r in rows]
    assert kinds == ["global_stop_tripped", "global_stop_reset"]
    assert json.loads(rows[0]["detail"])["reason"] == state["reason"]
    assert json.loads(rows[1]["detail"])["reset_by"] == "pytest"

    # a gateway without ADMIN_API_KEY never opens the admin API
    bare = run_service("gateway", {"ADMIN_API_KEY": ""})
    await bare.wait_for_output("database_connected", timeout=30)
    async with httpx.AsyncClient(base_url=bare.url, trust_env=False, timeout=10) as client:
        closed = await client.post("/admin/global-stop/reset", headers=admin)
        assert closed.status_code == 503 and "ADMIN_API_KEY" in closed.text


async def test_workers_refusing_for_capacity_never_trip_the_global_stop(
    start_stack, clean_global_stop, db_pool
) -> None:
    """Overload is not an outage: LLM workers answering ``busy`` end those turns with the apology, but the
    errors are recorded as not critical and the global stop (here: one critical error trips it) stays off."""
    speech = await synthesize("Hello there.")
    gateway = await start_stack(
        {
            "CHAIN_STAGES": "false",
            "WORKER_CONCURRENCY": "1",  # holds 4 requests at once (1 running + 3 waiting): the rest is refused
            "FAKE_LLM_FIRST_TOKEN_MS": "6000",
            "GLOBAL_STOP_MAX_ERRORS_IN_WINDOW": "1",
            "MAX_BROWSER_CALLS_PER_CLIENT": "20",
            "ADMIN_API_KEY": ADMIN_KEY,
        }
    )
    callers = [SimCaller(ws(gateway)) for _ in range(9)]
    for caller in callers:
        assert (await caller.connect())["type"] == "started"
    for caller in callers:
        await caller.next(lambda m: m["type"] == "transcript", timeout=10)
    await asyncio.gather(*(c.send_frames(speech) for c in callers))

    async def error_of(caller: SimCaller) -> str:
        with contextlib.suppress(TimeoutError, AssertionError):
            return str((await caller.next(lambda m: m["type"] == "error", timeout=5))["code"])
        return ""

    errors = await asyncio.gather(*(error_of(c) for c in callers))
    assert "llm_busy" in errors, errors
    ids = [c.call_id for c in callers]
    for _ in range(100):
        rows = await db_pool.fetch("SELECT code, critical FROM call_errors WHERE call_id = ANY($1::text[])", ids)
        if len(rows) >= errors.count("llm_busy"):
            break
        await asyncio.sleep(0.1)
    busy = [r for r in rows if r["code"] == "busy"]
    assert busy and not any(r["critical"] for r in busy), rows
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        assert await accepting(client)
        stop = await client.get("/admin/global-stop", headers={"X-API-Key": ADMIN_KEY})
        assert stop.json()["active"] is False
    for caller in callers:
        await caller.close()
