"""The global stop counted from the lifecycle stream: three real provider failures trip it within a second on
every gateway replica; capacity refusals never count; it trips with PostgreSQL unreachable for the recorders
(whose replicas count into one shared window); an admin can trip it by hand, never without the admin key."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest_asyncio

from shared import subjects
from shared.events import CallError
from shared.global_stop import GlobalStopState, read_state, write_state
from tools.simcaller import SimCaller
from tools.talk import synthesize

ADMIN_KEY = "admin-secret-key"
BAD_DATABASE_URL = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest_asyncio.fixture
async def clean_global_stop(bus):
    # a reset (reset_at): errors earlier tests left in the shared window never count here
    await write_state(bus.js, GlobalStopState(reset_at=time.time(), reset_by="pytest"))
    yield
    await write_state(bus.js, GlobalStopState(reset_at=time.time(), reset_by="pytest"))


def durable() -> str:
    return f"global-stop-{uuid.uuid4().hex[:8]}"


async def wait_for(predicate, timeout: float, what: str) -> float:
    """Poll until ``predicate()``; returns when (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic()


async def counter_ready(recorder) -> None:
    await recorder.wait_for_output("global_stop_counting", timeout=30)


async def test_three_provider_failures_trip_every_gateway_within_a_second(
    start_stack, run_service, clean_global_stop
) -> None:
    env = {
        "GLOBAL_STOP_DURABLE": durable(),
        "GLOBAL_STOP_MAX_ERRORS_IN_WINDOW": "3",
        "LLM_PROVIDER": "openai",  # a provider that fails for real: nothing listens on its port
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "LLM_MAX_RETRIES": "0",
        "PROVIDER_FALLBACKS": "",
    }
    first = await start_stack(env)
    second = run_service("gateway", env)
    await second.wait_ready(timeout=60)
    speech = await synthesize("Hello there.")

    async def failing_call() -> float:
        caller = SimCaller(f"ws://127.0.0.1:{first.port}/ws/simulator")
        assert (await caller.connect())["type"] == "started"
        await caller.next(lambda m: m["type"] == "transcript", timeout=10)
        await caller.send_frames(speech)
        error = await caller.next(lambda m: m["type"] == "error", timeout=20)
        assert error["code"].startswith("llm_") and error["code"] != "llm_busy", error
        at = time.monotonic()
        await caller.close()
        return at

    async with (
        httpx.AsyncClient(base_url=first.url, trust_env=False, timeout=5) as a,
        httpx.AsyncClient(base_url=second.url, trust_env=False, timeout=5) as b,
    ):

        async def both_refuse() -> bool:
            health = await asyncio.gather(a.get("/api/system/health"), b.get("/api/system/health"))
            return not any(h.json()["accepting_calls"] for h in health)

        assert not await both_refuse()
        errors_at = await asyncio.gather(*(failing_call() for _ in range(3)))
        refused_at = await wait_for(both_refuse, 5, "both gateways to refuse new calls")
        assert refused_at - max(errors_at) <= 1.0, f"tripped {refused_at - max(errors_at):.2f}s after the third error"
        refused = SimCaller(f"ws://127.0.0.1:{second.port}/ws/simulator")
        answer = await refused.connect()
        assert answer["type"] == "error" and answer["code"] == "global_stop"
        await refused.close()


async def test_busy_errors_never_count_and_replicas_trip_without_postgres(bus, run_service, clean_global_stop) -> None:
    """Two recorders that cannot reach PostgreSQL share the counter's durable: a burst of ``busy`` refusals
    does not trip the stop; three critical errors do (each replica sees only its share of them)."""
    env = {
        "DATABASE_URL": BAD_DATABASE_URL,
        "GLOBAL_STOP_DURABLE": durable(),
        "GLOBAL_STOP_MAX_ERRORS_IN_WINDOW": "3",
    }
    recorders = [run_service("call_recorder", env) for _ in range(2)]
    for recorder in recorders:
        await counter_ready(recorder)
        await recorder.wait_for_output("database_unavailable", timeout=30)

    for i in range(20):
        busy = CallError(call_id=f"busy-{i}", code="busy", message="all replicas busy", stage="llm", critical=False)
        await bus.publish_lifecycle(subjects.CALL_ERROR, busy)
    await asyncio.sleep(1.5)
    assert not (await read_state(bus.js)).active

    start = time.monotonic()
    for i in range(3):
        failed = CallError(
            call_id=f"crit-{uuid.uuid4().hex[:6]}-{i}", code="provider_error", message="500", stage="tts"
        )
        await bus.publish_lifecycle(subjects.CALL_ERROR, failed)

    async def tripped() -> bool:
        return (await read_state(bus.js)).active

    await wait_for(tripped, 5, "the global stop to trip")
    assert time.monotonic() - start <= 1.0
    state = await read_state(bus.js)
    assert "3 critical call errors" in state.reason and "tts_provider_error x3" in state.reason
    assert state.tripped_by == "error_policy"
    outputs = "".join(r.output() for r in recorders)
    assert outputs.count('"global_stop_tripped"') == 1, "exactly one replica trips (compare-and-set)"

    # after a reset: the same error delivered three times (no Nats-Msg-Id to stop it) counts once
    await write_state(bus.js, GlobalStopState(reset_at=time.time(), reset_by="pytest"))
    again = CallError(call_id="dup", code="provider_error", message="500", stage="llm")
    for _ in range(3):
        await bus.js.publish(subjects.CALL_ERROR, again.to_bytes())
    await asyncio.sleep(1.5)
    assert not (await read_state(bus.js)).active
    for i in range(2):
        other = CallError(call_id=f"more-{i}", code="provider_error", message="500", stage="llm")
        await bus.publish_lifecycle(subjects.CALL_ERROR, other)
    await wait_for(tripped, 5, "the stop to trip again on three distinct errors")


async def test_admin_can_trip_the_stop_by_hand_with_the_admin_key_in_production(
    run_service, bus, clean_global_stop
) -> None:
    from tests.integration.test_global_stop import WebhookReceiver

    async with WebhookReceiver() as webhook:
        gateway = run_service(
            "gateway",
            {
                "APP_ENV": "production",
                "API_KEYS": "api-key",
                "ADMIN_API_KEY": ADMIN_KEY,
                "STREAM_TOKEN_SECRET": "x" * 40,
                "WEBHOOK_SIGNING_SECRET": "w" * 40,
                "PUBLIC_HOST": "victoria.example.test",
                "TELEPHONY_PROVIDERS": "twilio",
                "TWILIO_AUTH_TOKEN": "twilio-token",
                "ADMIN_NOTIFICATION_WEBHOOK_URL": webhook.url,
            },
        )
        await gateway.wait_for_output("database_connected", timeout=30)
        async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
            body = {"reason": "provider outage announced", "tripped_by": "ops-oncall"}
            assert (await client.post("/admin/global-stop/trip", json=body)).status_code == 401
            wrong = await client.post("/admin/global-stop/trip", json=body, headers={"X-API-Key": "api-key"})
            assert wrong.status_code == 401  # an API key is not the admin key
            assert not (await read_state(bus.js)).active
            admin = {"X-API-Key": ADMIN_KEY}
            assert (await client.post("/admin/global-stop/trip", json={}, headers=admin)).status_code == 422
            resp = await client.post("/admin/global-stop/trip", json=body, headers=admin)
            assert resp.status_code == 200, resp.text
            state = resp.json()
            assert state["active"] and state["tripped_by"] == "ops-oncall" and "provider outage" in state["reason"]
            assert (await read_state(bus.js)).active
            health = (await client.get("/api/system/health")).json()
            assert health["accepting_calls"] is False
            # tripping again changes nothing
            again = await client.post("/admin/global-stop/trip", json={"reason": "again"}, headers=admin)
            assert again.json()["tripped_at"] == state["tripped_at"]

            async def notified() -> bool:
                return bool(webhook.bodies)

            await wait_for(notified, 10, "the webhook")
            await asyncio.sleep(0.3)
            assert len(webhook.bodies) == 1
            assert webhook.bodies[0]["event"] == "global_stop_tripped"
            assert webhook.bodies[0]["tripped_by"] == "ops-oncall"
            assert "global_stop_tripped" in gateway.output()
