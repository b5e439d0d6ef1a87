"""The call-history API (``/api/v1/calls``) over rows written straight to PostgreSQL, and once end to end over a
real call recorded by the call recorder. The tests share the module's gateway (``stacks``), those with the same
settings one after another."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx

from tests.integration.conftest import Stacks
from tools.simcaller import SimCaller

BASE = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


def api(gateway, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10, headers=headers)


async def start_gateway(stacks: Stacks, env: dict[str, str] | None = None):
    """The module's gateway (no workers: these tests write the history themselves), answering /health."""
    gateway = await stacks.get(env, services=(), wait_ready=False)
    async with api(gateway) as client:
        for _ in range(100):  # the log line can come just before the socket is bound
            try:
                if (await client.get("/health")).status_code == 200:
                    return gateway
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("gateway did not answer /health")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def insert_call(
    pool,
    call_id: str,
    agent_id: str,
    started_at: datetime | None,
    *,
    client_type: str = "browser",
    status: str = "completed",
    lines: Sequence[tuple[int, str, str]] = (),
    errors: Sequence[tuple[str, str, str]] = (),
    extracted: dict | None = None,
) -> None:
    ended_at = started_at + timedelta(seconds=30) if started_at else None
    await pool.execute(
        """
        INSERT INTO calls (call_id, agent_id, client_type, from_number, to_number, started_at, ended_at, duration_s,
                           end_reason, status, turns, latency_summary, extracted_data)
        VALUES ($1, $2, $3, '+15550001', '+15550002', $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb)
        """,
        call_id,
        agent_id,
        client_type,
        started_at,
        ended_at,
        30.0 if started_at else None,
        "caller_hangup" if status != "in_progress" else None,
        status,
        len(lines),
        json.dumps({"first_audio_p50_ms": 420.0}),
        json.dumps(extracted) if extracted is not None else None,
    )
    t0 = started_at or BASE
    for seq, role, text in lines:
        await pool.execute(
            "INSERT INTO transcripts (call_id, seq, role, text, started_at, ended_at, interrupted, latency_ms,"
            " event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)",
            call_id,
            seq,
            role,
            text,
            t0 + timedelta(seconds=seq),
            t0 + timedelta(seconds=seq, milliseconds=500),
            seq == 2,
            json.dumps({"first_audio_sent_ms": 400 + seq}),
            unique("ev"),
        )
    for i, (code, stage, message) in enumerate(errors):
        await pool.execute(
            "INSERT INTO call_errors (event_id, call_id, code, stage, message, critical, at)"
            " VALUES ($1, $2, $3, $4, $5, false, $6)",
            unique("err"),
            call_id,
            code,
            stage,
            message,
            t0 + timedelta(seconds=10 + i),
        )


async def ids(client: httpx.AsyncClient, **params) -> list[str]:
    resp = await client.get("/api/v1/calls", params=params)
    assert resp.status_code == 200, resp.text
    return [item["call_id"] for item in resp.json()["items"]]


async def test_cursor_pagination_and_filters(stacks, db_pool) -> None:
    agent = unique("hist")
    prefix = unique("page")
    starts = [BASE, BASE + timedelta(minutes=1), BASE + timedelta(minutes=2), BASE + timedelta(minutes=2)]
    starts += [BASE + timedelta(minutes=3), BASE + timedelta(minutes=4), None]  # a tie, and an unknown start
    kinds = {1: "twilio", 5: "telnyx"}
    states = {0: "in_progress", 4: "failed"}
    for i, started in enumerate(starts):
        await insert_call(
            db_pool,
            f"{prefix}-{i}",
            agent,
            started,
            client_type=kinds.get(i, "browser"),
            status=states.get(i, "completed"),
        )
    await insert_call(db_pool, f"{prefix}-other", unique("other"), BASE)
    expected = [f"{prefix}-{i}" for i in (5, 4, 3, 2, 1, 0, 6)]  # newest first, ties by id, no start last

    gateway = await start_gateway(stacks)
    async with api(gateway) as client:
        pages: list[list[str]] = []
        cursor = None
        while True:
            params: dict[str, object] = {"agent_id": agent, "limit": 3}
            if cursor:
                params["cursor"] = cursor
            resp = await client.get("/api/v1/calls", params=params)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            pages.append([item["call_id"] for item in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 5
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [c for p in pages for c in p] == expected

        first = (await client.get("/api/v1/calls", params={"agent_id": agent, "limit": 1})).json()["items"][0]
        assert first["call_id"] == f"{prefix}-5" and first["client_type"] == "telnyx"
        assert first["from_number"] == "+15550001" and first["to_number"] == "+15550002"
        assert first["duration_s"] == 30.0 and first["end_reason"] == "caller_hangup" and first["turns"] == 0
        assert first["latency_summary"] == {"first_audio_p50_ms": 420.0}
        assert datetime.fromisoformat(first["started_at"]) == BASE + timedelta(minutes=4)

        assert await ids(client) != []  # no filter at all works too
        assert await ids(client, agent_id=agent, since=(BASE + timedelta(minutes=2)).isoformat()) == expected[:4]
        assert await ids(client, agent_id=agent, until=(BASE + timedelta(minutes=2)).isoformat()) == expected[4:6]
        assert await ids(client, agent_id=agent, since="2031-03-01T12:01:00Z", until="2031-03-01T12:03:00Z") == [
            f"{prefix}-3",
            f"{prefix}-2",
            f"{prefix}-1",
        ]
        assert await ids(client, agent_id=agent, client_type="twilio") == [f"{prefix}-1"]
        assert await ids(client, agent_id=agent, status="failed") == [f"{prefix}-4"]
        assert await ids(client, agent_id=agent, status="in_progress") == [f"{prefix}-0"]
        assert await ids(client, agent_id=unique("nobody")) == []

        for params in (
            {"client_type": "fax"},
            {"status": "lost"},
            {"since": "yesterday"},
            {"limit": 0},
            {"limit": 201},
        ):
            assert (await client.get("/api/v1/calls", params=params)).status_code == 422, params
        bad_json = base64.urlsafe_b64encode(b'{"t": 5}').decode()
        bad_time = base64.urlsafe_b64encode(b'{"t": "soon", "id": "x"}').decode()
        for bad in ("%%%not-base64", "bm90IGpzb24", bad_json, bad_time):
            resp = await client.get("/api/v1/calls", params={"cursor": bad})
            assert resp.status_code == 400 and "cursor" in resp.json()["detail"], (bad, resp.text)


async def test_search_and_call_detail(stacks, db_pool) -> None:
    agent = unique("search")
    refund, booking, underscore = unique("refund"), unique("booking"), unique("under")
    await insert_call(
        db_pool,
        refund,
        agent,
        BASE,
        status="failed",
        lines=[
            (2, "assistant", "Your 100% refund is on its way."),  # inserted out of order on purpose
            (0, "assistant", "Hello, how can I help?"),
            (1, "user", "I want a full refund."),
        ],
        errors=[("llm_timeout", "llm", "no first token"), ("tts_failed", "tts", "synthesis failed")],
        extracted={"intent": "refund"},
    )
    await insert_call(db_pool, booking, agent, BASE + timedelta(minutes=1), lines=[(0, "user", "Table for TWO")])
    await insert_call(
        db_pool, underscore, agent, BASE + timedelta(minutes=2), lines=[(0, "user", "100 percent, file a_b")]
    )

    gateway = await start_gateway(stacks)
    async with api(gateway) as client:
        assert await ids(client, agent_id=agent, q="two") == [booking]  # case-insensitive
        assert await ids(client, agent_id=agent, q="REFUND") == [refund]
        assert await ids(client, agent_id=agent, q="100") == [underscore, refund]
        assert await ids(client, agent_id=agent, q="100%") == [refund]  # % is literal, not a wildcard
        assert await ids(client, agent_id=agent, q="%") == [refund]
        assert await ids(client, agent_id=agent, q="a_b") == [underscore]
        assert await ids(client, agent_id=agent, q="_") == [underscore]  # _ is literal too
        assert await ids(client, agent_id=agent, q="\\") == []
        assert await ids(client, agent_id=agent, q="refund", status="completed") == []

        resp = await client.get(f"/api/v1/calls/{refund}")
        assert resp.status_code == 200, resp.text
        call = resp.json()
        assert call["call_id"] == refund and call["agent_id"] == agent and call["status"] == "failed"
        assert [line["seq"] for line in call["transcript"]] == [0, 1, 2]
        assert [line["role"] for line in call["transcript"]] == ["assistant", "user", "assistant"]
        assert call["transcript"][1]["text"] == "I want a full refund."
        assert call["transcript"][2]["interrupted"] is True and call["transcript"][0]["interrupted"] is False
        assert call["transcript"][2]["latency_ms"] == {"first_audio_sent_ms": 402}
        assert datetime.fromisoformat(call["transcript"][1]["started_at"]) == BASE + timedelta(seconds=1)
        assert [(e["code"], e["stage"]) for e in call["errors"]] == [("llm_timeout", "llm"), ("tts_failed", "tts")]
        assert call["errors"][0]["message"] == "no first token" and call["errors"][0]["at"]
        assert call["extracted_data"] == {"intent": "refund"}

        plain = (await client.get(f"/api/v1/calls/{booking}")).json()
        assert plain["errors"] == [] and plain["extracted_data"] is None and len(plain["transcript"]) == 1

        missing = await client.get(f"/api/v1/calls/{unique('nope')}")
        assert missing.status_code == 404 and "no call" in missing.json()["detail"]


async def test_export_csv_and_json(stacks, db_pool) -> None:
    agent = unique("export")
    prefix = unique("exp")
    for i in range(3):
        await insert_call(db_pool, f"{prefix}-{i}", agent, BASE + timedelta(minutes=i), client_type="twilio")
    await insert_call(db_pool, f"{prefix}-web", agent, BASE + timedelta(minutes=9))

    gateway = await start_gateway(stacks)
    async with api(gateway) as client:
        resp = await client.get("/api/v1/calls/export", params={"format": "csv", "agent_id": agent})
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("text/csv")
        assert resp.headers["content-disposition"] == "attachment; filename=calls.csv"
        rows = list(csv.reader(io.StringIO(resp.text)))
        assert rows[0] == [
            "call_id",
            "agent_id",
            "client_type",
            "from_number",
            "to_number",
            "started_at",
            "ended_at",
            "duration_s",
            "end_reason",
            "status",
            "turns",
            "latency_summary",
        ]
        assert [r[0] for r in rows[1:]] == [f"{prefix}-web", f"{prefix}-2", f"{prefix}-1", f"{prefix}-0"]
        record = dict(zip(rows[0], rows[2], strict=True))
        assert record["agent_id"] == agent and record["client_type"] == "twilio" and record["status"] == "completed"
        assert datetime.fromisoformat(record["started_at"]) == BASE + timedelta(minutes=2)
        assert json.loads(record["latency_summary"]) == {"first_audio_p50_ms": 420.0}

        filtered = await client.get("/api/v1/calls/export", params={"agent_id": agent, "client_type": "twilio"})
        assert filtered.headers["content-type"].startswith("text/csv")  # csv is the default
        assert len(list(csv.reader(io.StringIO(filtered.text)))) == 4

        as_json = await client.get("/api/v1/calls/export", params={"format": "json", "agent_id": agent})
        assert as_json.status_code == 200
        body = as_json.json()
        assert isinstance(body, list) and [c["call_id"] for c in body][:2] == [f"{prefix}-web", f"{prefix}-2"]
        assert body[0]["latency_summary"] == {"first_audio_p50_ms": 420.0}

        assert (await client.get("/api/v1/calls/export", params={"format": "xml"})).status_code == 422


async def test_tool_and_keypad_turns_and_the_transfer_round_trip(stacks, db_pool) -> None:
    """What the recorder's store writes from the events (a DTMF turn, a tool turn, where a transfer went) is what
    the call's detail shows; an event applied twice changes nothing."""
    from services.call_recorder.store import HistoryStore
    from shared.events import CallEnded, CallStarted, ToolTurn, TurnRecorded

    store = HistoryStore(db_pool, extraction=False)
    call_id = unique("actions")
    tool = ToolTurn(
        call_id="call_1a2b3c4d",
        name="lookup_order",
        kind="http",
        arguments='{"order": "A-1"}',
        result='{"status": "shipped"}',
        status="error",
        duration_ms=830.0,
    )
    events = [
        CallStarted(call_id=call_id, agent_id="default", started_at=BASE.timestamp()),
        TurnRecorded(call_id=call_id, seq=0, role="user", text="****", started_at=1.0, ended_at=2.0, dtmf=True),
        TurnRecorded(call_id=call_id, seq=1, role="tool", text="lookup_order", started_at=3, ended_at=4, tool=tool),
        CallEnded(call_id=call_id, reason="transferred", duration_s=9.0, transferred_to="sip:desk@example.com"),
    ]
    for event in events:
        assert await store.apply(event)
    assert not await store.apply(events[1])  # a redelivery

    gateway = await start_gateway(stacks)
    async with api(gateway) as client:
        call = (await client.get(f"/api/v1/calls/{call_id}")).json()
        assert call["transferred_to"] == "sip:desk@example.com" and call["end_reason"] == "transferred"
        assert call["turns"] == 2 and call["webhook_deliveries"] == []  # the default agent has no webhook
        keypad, called = call["transcript"]
        assert (keypad["role"], keypad["text"], keypad["dtmf"], keypad["tool"]) == ("user", "****", True, None)
        assert called["role"] == "tool" and called["dtmf"] is False
        assert called["tool"] == tool.model_dump()

        other = unique("plain")
        await insert_call(db_pool, other, "default", BASE, lines=[(0, "user", "hi")])
        plain = (await client.get(f"/api/v1/calls/{other}")).json()
        assert plain["transferred_to"] is None and plain["transcript"][0]["dtmf"] is False
        assert plain["transcript"][0]["tool"] is None


async def test_a_real_call_shows_up_in_the_history(stacks) -> None:
    gateway = await stacks.get()
    caller = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
    await caller.connect()
    greeting = await caller.next(lambda m: m["type"] == "transcript")
    await caller.hang_up()
    assert caller.call_id

    async with api(gateway) as client:
        found = None
        for _ in range(100):  # the recorder writes asynchronously
            items = (await client.get("/api/v1/calls", params={"agent_id": "default", "limit": 200})).json()["items"]
            found = next((c for c in items if c["call_id"] == caller.call_id and c["ended_at"]), None)
            if found:
                detail = (await client.get(f"/api/v1/calls/{caller.call_id}")).json()
                if detail["transcript"]:
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"call {caller.call_id} not in the history")
        assert found["client_type"] == "browser" and found["end_reason"] == "caller_hangup"
        assert found["status"] == "completed" and found["started_at"]
        assert detail["transcript"][0]["role"] == "assistant"
        assert detail["transcript"][0]["text"] == greeting["text"]


async def test_api_key_is_required_when_configured(stacks, db_pool) -> None:
    call_id = unique("keyed")
    await insert_call(db_pool, call_id, unique("keys"), BASE)
    gateway = await start_gateway(stacks, {"API_KEYS": "history-key"})
    async with api(gateway) as client:
        for path in ("/api/v1/calls", f"/api/v1/calls/{call_id}", "/api/v1/calls/export"):
            assert (await client.get(path)).status_code == 401, path
            assert (await client.get(path, headers={"X-API-Key": "wrong"})).status_code == 401, path
            assert (await client.get(path, headers={"X-API-Key": "history-key"})).status_code == 200, path


async def test_webhook_resend_refusals(stacks, db_pool) -> None:
    hooked = unique("hooked")
    await db_pool.execute(
        "INSERT INTO agents (agent_id, spec) VALUES ($1, $2::jsonb)",
        hooked,
        json.dumps({"webhook": {"url": "http://127.0.0.1:9/hook"}}),
    )
    live, silent = unique("live"), unique("silent")
    await insert_call(db_pool, live, hooked, BASE, status="in_progress")
    await db_pool.execute("UPDATE calls SET ended_at = NULL WHERE call_id = $1", live)
    await insert_call(db_pool, silent, "default", BASE)
    gateway = await start_gateway(stacks, {"API_KEYS": "history-key"})
    async with api(gateway, **{"X-API-Key": "history-key"}) as client:
        resp = await client.post(f"/api/v1/calls/{unique('nope')}/webhook/resend")
        assert resp.status_code == 404 and "no call" in resp.json()["detail"]
        resp = await client.post(f"/api/v1/calls/{live}/webhook/resend")
        assert resp.status_code == 409 and "has not ended" in resp.json()["detail"]
        resp = await client.post(f"/api/v1/calls/{silent}/webhook/resend")
        assert resp.status_code == 409 and "no webhook URL" in resp.json()["detail"]
        assert (await client.get(f"/api/v1/calls/{silent}")).json()["webhook_deliveries"] == []
    async with api(gateway) as client:
        assert (await client.post(f"/api/v1/calls/{silent}/webhook/resend")).status_code == 401
