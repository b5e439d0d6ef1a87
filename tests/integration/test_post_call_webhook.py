"""The post-call webhook on a real NATS, PostgreSQL and HTTP receiver: a call whose agent names a webhook is
posted, signed, once its extraction is stored; a failed POST is retried with backoff until it is delivered or
given up; several delivery loops never deliver one row twice; the history API shows the deliveries and queues a
resend."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import asyncpg
import httpx

from services.call_recorder.webhooks import WebhookDeliverer
from shared import subjects
from shared.bus import Bus
from shared.call_config import AgentSpec
from shared.db import webhook_deliveries
from shared.events import CallEnded, CallStarted, ToolTurn, TurnRecorded
from shared.health import ping_services
from shared.signing import key_for, verify
from tests.webhook_receiver import Receiver

SECRET = "test-webhook-secret"
EXTRACTED = {
    "summary": "The caller asked for a person and was transferred.",
    "intent": "talk_to_human",
    "sentiment": "neutral",
    "entities": {"customer_number": "1234"},
    "next_action": "none",
}
FAST_LLM = {
    "LLM_PROVIDER": "fake",
    "FAKE_LLM_REPLY": json.dumps(EXTRACTED),
    "FAKE_LLM_FIRST_TOKEN_MS": "5",
    "FAKE_LLM_TOKENS_PER_S": "2000",
}
RECORDER = {
    "WEBHOOK_SIGNING_SECRET": SECRET,
    "WEBHOOK_RETRY_BASE_S": "0.2",
    "WEBHOOK_POLL_S": "0.1",
    "WEBHOOK_TIMEOUT_S": "3",
}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def create_agent(pool: asyncpg.Pool, webhook_url: str | None) -> str:
    """An agent stored as the API stores it (``AgentSpec`` JSON), with or without a webhook."""
    agent_id = unique("hook")
    spec = AgentSpec.model_validate({"name": "Hook", "webhook": {"url": webhook_url}})
    await pool.execute("INSERT INTO agents (agent_id, spec) VALUES ($1, $2::jsonb)", agent_id, spec.model_dump_json())
    return agent_id


async def publish_transferred_call(bus: Bus, call_id: str, agent_id: str) -> None:
    """A phone call with a keypad turn and a tool call, ended by a transfer."""
    await bus.ensure_lifecycle_stream()
    started = CallStarted(
        call_id=call_id,
        agent_id=agent_id,
        client_type="twilio",
        transport_ids={"call_sid": "CA123"},
        from_number="+15550001",
        to_number="+15550002",
    )
    tool = ToolTurn(
        call_id="call_ab12cd34",
        name="transfer_call",
        kind="transfer_call",
        arguments='{"target": "sales"}',
        result="transferring",
        duration_ms=12.5,
    )
    turns = [
        TurnRecorded(call_id=call_id, seq=0, role="assistant", text="Hello.", started_at=1.0, ended_at=2.0),
        TurnRecorded(call_id=call_id, seq=1, role="user", text="1234", started_at=3.0, ended_at=4.0, dtmf=True),
        TurnRecorded(call_id=call_id, seq=2, role="user", text="A person, please.", started_at=5.0, ended_at=6.0),
        TurnRecorded(
            call_id=call_id, seq=3, role="tool", text="transfer_call sales", started_at=7.0, ended_at=7.1, tool=tool
        ),
    ]
    await bus.publish_lifecycle(subjects.CALL_STARTED, started)
    for turn in turns:
        await bus.publish_lifecycle(subjects.CALL_TURN, turn)
    ended = CallEnded(call_id=call_id, reason="transferred", duration_s=8.0, transferred_to="+15550003")
    await bus.publish_lifecycle(subjects.CALL_ENDED, ended)


async def wait_for(predicate, what: str, timeout: float = 20.0):
    for _ in range(int(timeout * 10)):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_requests(receiver: Receiver, n: int, timeout: float = 20.0) -> list:
    async def enough() -> list | None:
        got = receiver.received()
        return got if len(got) >= n else None

    return await wait_for(enough, f"{n} webhook requests (got {len(receiver.received())})", timeout)


async def start_gateway(run_service, env: dict[str, str] | None = None):
    gateway = run_service("gateway", env or {})
    await gateway.wait_for_output("database_connected")
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
        for _ in range(100):
            try:
                if (await client.get("/health")).status_code == 200:
                    return gateway
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("gateway did not answer /health")


async def test_a_failed_delivery_is_retried_then_delivered_and_can_be_resent(
    run_service, bus: Bus, db_pool: asyncpg.Pool
) -> None:
    with Receiver(statuses=[500, 200, 200]) as receiver:
        agent_id = await create_agent(db_pool, receiver.url)
        run_service("llm_worker", FAST_LLM)
        for _ in range(150):
            if await ping_services(bus, "llm", window_s=0.1):
                break
        run_service("call_recorder", {**RECORDER, "RECORDER_DURABLE": unique("rec")})
        call_id = unique("hooked")
        await publish_transferred_call(bus, call_id, agent_id)

        first, second = await wait_requests(receiver, 2)
        await asyncio.sleep(1.0)  # the 200 ends it: nothing more comes
        assert len(receiver.received()) == 2
        assert (first.answered, second.answered) == (500, 200)
        delivery_id = first.headers["X-Victoria-Delivery"]
        assert second.headers["X-Victoria-Delivery"] == delivery_id
        assert second.headers["X-Victoria-Event"] == "call.completed"
        assert second.headers["Content-Type"] == "application/json"
        key = key_for(SECRET, receiver.url)  # the receiver's own key, not the master
        assert verify(key, second.body, second.headers["X-Victoria-Signature"])
        assert not verify(SECRET, second.body, second.headers["X-Victoria-Signature"])

        payload = json.loads(second.body)
        assert payload["event"] == "call.completed" and payload["delivery_id"] == delivery_id
        assert payload["call_id"] == call_id and payload["client_type"] == "twilio"
        assert payload["transport_ids"] == {"call_sid": "CA123"}
        assert (payload["from_number"], payload["to_number"]) == ("+15550001", "+15550002")
        assert payload["agent"] == {"id": agent_id, "version": 1}
        assert payload["end_reason"] == "transferred" and payload["transferred_to"] == "+15550003"
        assert payload["duration_s"] == 8.0 and payload["started_at"] and payload["ended_at"]
        assert [t["role"] for t in payload["transcript"]] == ["assistant", "user", "user", "tool"]
        assert [t["dtmf"] for t in payload["transcript"]] == [False, True, False, False]
        tool = payload["transcript"][3]["tool"]
        assert tool["name"] == "transfer_call" and tool["arguments"] == '{"target": "sales"}'
        assert tool["status"] == "ok" and tool["duration_ms"] == 12.5
        assert payload["extraction_status"] == "ok"
        assert payload["extraction"]["intent"] == "talk_to_human"

        gateway = await start_gateway(run_service)
        async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
            detail = (await client.get(f"/api/v1/calls/{call_id}")).json()
            assert detail["transferred_to"] == "+15550003"
            assert (
                detail["transcript"][1]["dtmf"] is True and detail["transcript"][3]["tool"]["kind"] == "transfer_call"
            )
            [delivery] = detail["webhook_deliveries"]
            assert delivery["id"] == delivery_id and delivery["status"] == "delivered"
            assert delivery["attempts"] == 2 and delivery["last_status_code"] == 200
            assert delivery["requested_by"] == "extraction" and delivery["delivered_at"]
            assert delivery["url"] == receiver.url and delivery["last_error"] is None

            resent = await client.post(f"/api/v1/calls/{call_id}/webhook/resend")
            assert resent.status_code == 202, resent.text
            again = resent.json()
            assert again["requested_by"] == "resend" and again["status"] == "pending" and again["id"] != delivery_id

            third = (await wait_requests(receiver, 3))[2]
            assert third.headers["X-Victoria-Delivery"] == again["id"] and third.answered == 200
            assert verify(key, third.body, third.headers["X-Victoria-Signature"])

            async def both_delivered() -> list | None:
                got = (await client.get(f"/api/v1/calls/{call_id}")).json()["webhook_deliveries"]
                return got if [d["status"] for d in got] == ["delivered", "delivered"] else None

            listed = await wait_for(both_delivered, "the resend to be delivered")
            assert [d["requested_by"] for d in listed] == ["extraction", "resend"]


async def deliverer(database_url: str) -> tuple[WebhookDeliverer, asyncpg.Pool]:
    """A delivery loop of its own (its own pool, as another replica has), stepped by the test."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    loop = WebhookDeliverer(pool, secret=SECRET, retry_base_s=0.05, max_attempts=3, timeout_s=2.0, poll_s=0.05)
    return loop, pool


async def ended_call(pool: asyncpg.Pool, agent_id: str) -> str:
    call_id = unique("ended")
    await pool.execute(
        "INSERT INTO calls (call_id, agent_id, started_at, ended_at, duration_s, end_reason, status)"
        " VALUES ($1, $2, now(), now(), 1, 'caller_hangup', 'completed')",
        call_id,
        agent_id,
    )
    return call_id


async def drain(*loops: WebhookDeliverer, rounds: int = 40) -> None:
    """Run the loops' rounds side by side, as replicas would."""
    for _ in range(rounds):
        await asyncio.gather(*(loop.deliver_due() for loop in loops))
        await asyncio.sleep(0.02)


async def test_two_delivery_loops_deliver_each_row_once(database_url: str, db_pool: asyncpg.Pool) -> None:
    with Receiver(statuses=[200], delay_s=0.05) as receiver:
        agent_id = await create_agent(db_pool, receiver.url)
        calls = [await ended_call(db_pool, agent_id) for _ in range(40)]  # more than one claim's batch
        queued = [await webhook_deliveries.enqueue(db_pool, c, "resend") for c in calls]
        (a, pool_a), (b, pool_b) = await deliverer(database_url), await deliverer(database_url)
        try:
            await drain(a, b, rounds=10)
        finally:
            for loop, pool in ((a, pool_a), (b, pool_b)):
                await loop.client.aclose()
                await pool.close()
        seen = Counter(r.headers["X-Victoria-Delivery"] for r in receiver.received())
        assert seen == Counter({d.id: 1 for d in queued if d is not None}) and len(seen) == 40
        statuses = await db_pool.fetch(
            "SELECT status, attempts FROM webhook_deliveries WHERE call_id = ANY($1::text[])", calls
        )
        assert {(r["status"], r["attempts"]) for r in statuses} == {("delivered", 1)}


async def test_a_poll_claims_what_its_pool_serves_when_more_is_due(database_url: str, db_pool: asyncpg.Pool) -> None:
    """Ten rows due for a pool of four connections: a poll claims three (one connection left to the rest of
    the recorder), so no attempt waits for a connection while its lease runs; the rest wait their turn, still
    unclaimed, and every row is delivered once in the end."""
    with Receiver(statuses=[200], delay_s=0.2) as receiver:
        agent_id = await create_agent(db_pool, receiver.url)
        calls = [await ended_call(db_pool, agent_id) for _ in range(10)]
        queued = {d.id for d in [await webhook_deliveries.enqueue(db_pool, c, "resend") for c in calls] if d}
        loop, pool = await deliverer(database_url)
        try:
            assert loop.batch() == 3 and await loop.deliver_due() == 3
            rows = await db_pool.fetch(
                "SELECT status, attempts FROM webhook_deliveries WHERE id = ANY($1::text[])", list(queued)
            )
            counts = Counter((r["status"], r["attempts"]) for r in rows)
            assert counts[("pending", 0)] >= 7 and counts[("delivering", 1)] == 0  # none claimed and left waiting
            await drain(loop, rounds=10)
        finally:
            await loop.client.aclose()
            await pool.close()
        seen = Counter(r.headers["X-Victoria-Delivery"] for r in receiver.received())
        assert seen == Counter(dict.fromkeys(queued, 1))


async def test_retries_give_up_as_failed_and_a_dead_claim_is_taken_over(
    database_url: str, db_pool: asyncpg.Pool
) -> None:
    with Receiver(statuses=[503]) as failing, Receiver(statuses=[302]) as moved, Receiver() as fine:
        doomed = await ended_call(db_pool, await create_agent(db_pool, failing.url))
        redirected = await ended_call(db_pool, await create_agent(db_pool, moved.url))
        orphan = await ended_call(db_pool, await create_agent(db_pool, fine.url))
        ids = {}
        for call_id in (doomed, redirected, orphan):
            queued = await webhook_deliveries.enqueue(db_pool, call_id, "extraction")
            assert queued is not None
            ids[call_id] = queued.id
        # a replica claimed the orphan's row and died: the claim's lease ran out a while ago
        await db_pool.execute(
            "UPDATE webhook_deliveries SET status = 'delivering', attempts = 1,"
            " next_attempt_at = now() - interval '1 second' WHERE id = $1",
            ids[orphan],
        )
        loop, pool = await deliverer(database_url)
        try:
            await drain(loop)
        finally:
            await loop.client.aclose()
            await pool.close()
        rows = {
            r["call_id"]: r
            for r in await db_pool.fetch("SELECT * FROM webhook_deliveries WHERE call_id = ANY($1::text[])", list(ids))
        }
        assert len(failing.received()) == 3  # WEBHOOK_MAX_ATTEMPTS
        assert (rows[doomed]["status"], rows[doomed]["attempts"]) == ("failed", 3)
        assert rows[doomed]["last_status_code"] == 503 and rows[doomed]["last_error"] == "HTTP 503"
        assert [r.path for r in moved.received()] == ["/hook"] * 3  # never followed to /elsewhere
        assert (rows[redirected]["status"], rows[redirected]["last_status_code"]) == ("failed", 302)
        assert (rows[orphan]["status"], rows[orphan]["attempts"]) == ("delivered", 2)
        assert [r.headers["X-Victoria-Delivery"] for r in fine.received()] == [ids[orphan]]


async def test_one_delivery_per_call_for_its_extraction(db_pool: asyncpg.Pool) -> None:
    """Storing an extraction twice (a redelivered event, two replicas) queues one delivery; resends add more;
    an agent without a webhook, or a client-type overlay that sets its own, is respected."""
    agent_id = await create_agent(db_pool, "http://127.0.0.1:9/hook")
    call_id = await ended_call(db_pool, agent_id)
    assert await webhook_deliveries.enqueue(db_pool, call_id, "extraction") is not None
    assert await webhook_deliveries.enqueue(db_pool, call_id, "extraction") is None
    assert await webhook_deliveries.enqueue(db_pool, call_id, "resend") is not None
    assert [d.requested_by for d in await webhook_deliveries.for_call(db_pool, call_id)] == ["extraction", "resend"]

    silent = await ended_call(db_pool, await create_agent(db_pool, None))
    assert await webhook_deliveries.webhook_url(db_pool, silent) is None
    assert await webhook_deliveries.enqueue(db_pool, silent, "extraction") is None

    overlaid = unique("overlay")
    spec = AgentSpec.model_validate(
        {"webhook": {"url": "http://base.example/hook"}, "overlays": {"twilio": {"webhook": {"url": None}}}}
    )
    await db_pool.execute(
        "INSERT INTO agents (agent_id, spec) VALUES ($1, $2::jsonb)", overlaid, spec.model_dump_json()
    )
    browser_call, phone_call = await ended_call(db_pool, overlaid), await ended_call(db_pool, overlaid)
    await db_pool.execute("UPDATE calls SET client_type = 'twilio' WHERE call_id = $1", phone_call)
    assert await webhook_deliveries.webhook_url(db_pool, browser_call) == "http://base.example/hook"
    assert await webhook_deliveries.webhook_url(db_pool, phone_call) is None
    # nobody listens on port 9: leave no pending row for the other tests' delivery loops
    await db_pool.execute("DELETE FROM webhook_deliveries WHERE call_id = $1", call_id)


async def test_a_receivers_retry_after_postpones_the_next_attempt(database_url: str, db_pool: asyncpg.Pool) -> None:
    with Receiver(statuses=[503], retry_after="60") as busy:
        call_id = await ended_call(db_pool, await create_agent(db_pool, busy.url))
        queued = await webhook_deliveries.enqueue(db_pool, call_id, "extraction")
        assert queued is not None
        loop, pool = await deliverer(database_url)
        try:
            await drain(loop, rounds=5)
        finally:
            await loop.client.aclose()
            await pool.close()
        row = await db_pool.fetchrow(
            "SELECT status, attempts, extract(epoch FROM next_attempt_at - now()) AS wait_s"
            " FROM webhook_deliveries WHERE id = $1",
            queued.id,
        )
        assert len(busy.received()) == 1  # not again within the rounds: it asked for a minute
        assert (row["status"], row["attempts"]) == ("pending", 1) and 55 <= row["wait_s"] <= 60
        await db_pool.execute("DELETE FROM webhook_deliveries WHERE id = $1", queued.id)


async def test_with_extraction_off_the_end_of_the_call_queues_its_delivery(db_pool: asyncpg.Pool) -> None:
    from services.call_recorder.store import HistoryStore

    store = HistoryStore(db_pool, extraction=False)
    agent_id = await create_agent(db_pool, "http://127.0.0.1:9/hook")
    call_id = unique("no-extraction")
    assert await store.apply(CallStarted(call_id=call_id, agent_id=agent_id))
    assert await webhook_deliveries.for_call(db_pool, call_id) == []  # not before it ends
    assert await store.apply(CallEnded(call_id=call_id, reason="caller_hangup", duration_s=2.0))
    assert await store.apply(CallEnded(call_id=call_id, reason="caller_hangup", duration_s=2.0))  # another end event
    [queued] = await webhook_deliveries.for_call(db_pool, call_id)
    assert (queued.requested_by, queued.status, queued.url) == ("extraction", "pending", "http://127.0.0.1:9/hook")
    await db_pool.execute("DELETE FROM webhook_deliveries WHERE call_id = $1", call_id)
