"""The conversation engine on the real stack with fixed-latency providers: agent config and overlays,
greeting cache, streaming, barge-in, silence, maximum duration and the apology policy.

The tests share the module's stack (``stacks``), in an order where those with the same settings follow each other.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tools.simcaller import SimCaller
from tools.talk import synthesize

_SPEECH: dict[str, bytes] = {}


async def say(text: str) -> bytes:
    if text not in _SPEECH:
        _SPEECH[text] = await synthesize(text)
    return _SPEECH[text]


def api(gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10)


def ws(gateway) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ws/simulator"


async def create_agent(gateway, agent_id: str, **fields) -> dict:
    async with api(gateway) as client:
        resp = await client.post("/api/v1/agents", json={"agent_id": agent_id, **fields})
        assert resp.status_code == 201, resp.text
        return resp.json()


async def test_agents_api_validates_and_versions(stacks) -> None:
    gateway = await stacks.get()
    async with api(gateway) as client:
        listed = (await client.get("/api/v1/agents")).json()
        ids = [a["agent_id"] for a in listed]  # seeded: default, and es, the Spanish agent (0006_agent_es.sql)
        assert {"default", "es"} <= set(ids) and ids == sorted(ids)  # (other tests add agents of their own)
        default = await client.get("/api/v1/agents/default")
        assert default.headers["etag"] == '"1"' and default.json()["spec"]["first_message"]

        bad = await client.post("/api/v1/agents", json={"agent_id": "x", "system_prompt": "   "})
        assert bad.status_code == 422 and "system_prompt" in bad.text
        bad = await client.post("/api/v1/agents", json={"agent_id": "x", "llm": {"provider": "skynet"}})
        assert bad.status_code == 422 and "llm.provider" in bad.text and "local_llama" in bad.text
        bad = await client.post("/api/v1/agents", json={"agent_id": "x", "turn": {"vad_stop_ms": 5}})
        assert bad.status_code == 422
        assert any(e["loc"][-2:] == ["turn", "vad_stop_ms"] for e in bad.json()["detail"])
        for field, value in (  # the turn-taking fields: out of range, wrong type, not a number
            ("eot_threshold", "NaN"),
            ("eot_threshold", "Infinity"),
            ("eot_threshold", "1.5"),
            ("pause_ms", "NaN"),
            ("pause_ms", '"soon"'),
            ("pause_ms", "200.5"),
            ("preempt_ms", "-1"),
            ("max_silence_ms", "100"),
            ("interrupt_min_ms", "[500]"),
            ("end_of_turn", '"vad"'),
            ("resume_after_false_interruption", '"maybe"'),
        ):
            body = f'{{"agent_id": "x", "turn": {{"{field}": {value}}}}}'  # raw: json.dumps would refuse NaN
            bad = await client.post("/api/v1/agents", content=body, headers={"content-type": "application/json"})
            assert bad.status_code == 422, (field, value, bad.status_code, bad.text)
            assert any(e["loc"][-2:] == ["turn", field] for e in bad.json()["detail"]), (field, value, bad.text)
        assert (await client.get("/api/v1/agents/x")).status_code == 404  # nothing half-made
        bad = await client.post(
            "/api/v1/agents", json={"agent_id": "x", "overlays": {"twilio": {"voice": {"rate": 9}}}}
        )
        assert bad.status_code == 422 and "overlays.twilio.voice.rate" in bad.text
        bad = await client.post("/api/v1/agents", json={"agent_id": "Bad Id!"})
        assert bad.status_code == 422

        made = await client.post("/api/v1/agents", json={"agent_id": "sales", "first_message": "Sales, hi!"})
        assert made.status_code == 201 and made.json()["version"] == 1
        assert (await client.post("/api/v1/agents", json={"agent_id": "sales"})).status_code == 409

        spec = made.json()["spec"] | {"first_message": "Sales here."}
        ok = await client.put("/api/v1/agents/sales", json=spec, headers={"If-Match": '"1"'})
        assert ok.status_code == 200 and ok.json()["version"] == 2
        stale = await client.put("/api/v1/agents/sales", json=spec, headers={"If-Match": '"1"'})
        assert stale.status_code == 409
        assert (await client.put("/api/v1/agents/nobody", json=spec)).status_code == 404
        assert (await client.delete("/api/v1/agents/default")).status_code == 409
        assert (await client.delete("/api/v1/agents/sales")).status_code == 204
        assert (await client.get("/api/v1/agents/sales")).status_code == 404


async def test_edited_greeting_and_overlay_apply_to_the_next_call(stacks) -> None:
    gateway = await stacks.get()
    await create_agent(
        gateway,
        "shop",
        first_message="Welcome to the shop.",
        overlays={"browser": {"first_message": "Welcome, web visitor."}},
    )
    caller = SimCaller(ws(gateway))
    await caller.connect("shop")
    greeting = await caller.next(lambda m: m["type"] == "transcript")
    assert greeting["text"] == "Welcome, web visitor."  # the browser overlay wins
    await caller.hang_up()

    async with api(gateway) as client:
        current = (await client.get("/api/v1/agents/shop")).json()
        spec = current["spec"]
        spec["overlays"] = {}
        spec["first_message"] = "The shop is open."
        assert (await client.put("/api/v1/agents/shop", json=spec)).status_code == 200
    caller = SimCaller(ws(gateway))
    await caller.connect("shop")
    greeting = await caller.next(lambda m: m["type"] == "transcript")
    assert greeting["text"] == "The shop is open."  # the cached config was dropped on write
    await caller.hang_up()


async def test_silence_reprompts_then_says_goodbye(stacks, db_pool) -> None:
    gateway = await stacks.get()
    await create_agent(gateway, "quiet", first_message="Hi.", turn={"silence_timeout_s": 2})
    caller = SimCaller(ws(gateway))
    await caller.connect("quiet")
    texts = []
    while True:
        m = await caller.next(lambda m: m["type"] in ("transcript", "ended"), timeout=10)
        if m["type"] == "ended":
            break
        texts.append(m["text"])
    assert texts == ["Hi.", "Are you still there?", "I haven't heard from you, so I'll hang up now. Goodbye!"]
    assert m["reason"] == "silence_timeout"
    await caller.close()
    row = await _call(db_pool, caller.call_id)
    assert row["end_reason"] == "silence_timeout" and row["turns"] == 3


async def test_max_call_duration_ends_politely(stacks) -> None:
    gateway = await stacks.get()
    await create_agent(gateway, "brief", first_message="Hi.", turn={"max_call_s": 10, "silence_timeout_s": 60})
    caller = SimCaller(ws(gateway))
    await caller.connect("brief")
    ended = await caller.next(lambda m: m["type"] == "ended", timeout=25)  # 10 s + the goodbye (~4.5 s)
    assert ended["reason"] == "max_duration"
    said = [m["text"] for m in caller.events("transcript")]
    assert said[-1].startswith("We've reached the time limit")
    await caller.close()


async def test_caller_audio_after_hangup_and_silent_caller(stacks, db_pool) -> None:
    gateway = await stacks.get()
    caller = SimCaller(ws(gateway))
    await caller.connect()
    await caller.hang_up()
    with pytest.raises(Exception):  # noqa: B017 - the socket is closed; sending must fail, not crash anything
        await caller.ws.send(bytes(640))
    row = await _call(db_pool, caller.call_id)
    assert row["end_reason"] == "caller_hangup" and row["started_at"] is not None


async def test_greeting_is_cached_after_the_first_call(stacks) -> None:
    gateway = await stacks.get({"FAKE_TTS_FIRST_BYTE_MS": "400"})
    # an agent of its own: the module's gateway has cached the greetings of the agents its earlier calls had
    await create_agent(gateway, "cached", first_message="Welcome, this greeting is new to the cache.")
    waits = []
    for _ in range(2):
        caller = SimCaller(ws(gateway))
        await caller.connect("cached")
        started_at = caller.last_at
        await caller.next(lambda m: m["type"] == "transcript", timeout=15)
        first_audio = caller.audio_after(started_at)[0].at
        waits.append(first_audio - started_at)
        await caller.hang_up()
    assert waits[0] >= 0.4  # the first call waited for TTS
    assert waits[1] < 0.15, waits  # the second played the cached greeting at once


async def test_barge_in_clears_cancels_and_keeps_what_was_heard(stacks, db_pool) -> None:
    long_reply = "Sure. " + " ".join(f"Option number {i} is available for you." for i in range(1, 12))
    gateway = await stacks.get({"FAKE_LLM_REPLY": long_reply, "FAKE_LLM_TOKENS_PER_S": "100"})
    caller = SimCaller(ws(gateway))
    await caller.connect()
    await caller.next(lambda m: m["type"] == "transcript")  # greeting played
    await caller.send_frames(await say("What options do I have?"))
    await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "user")
    asked_at = caller.last_at
    while not caller.has_audio_after(asked_at):
        await caller.send_silence(0.02)
    await caller.send_silence(1.0)  # let the agent talk for a second, then talk over it
    onset = await caller.send_frames(await say("Stop, the second one please."))
    assert await caller.next(lambda m: m["type"] == "clear") == {"type": "clear"}
    clear_at = caller.last_at
    assert clear_at < onset  # cleared while the caller was still speaking
    heard = await caller.next(lambda m: m["type"] == "transcript" and m.get("interrupted"))
    assert heard["text"].startswith("Sure.") and len(heard["text"]) < len(long_reply)
    await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "user", timeout=10)
    second_at = caller.last_at
    while not caller.has_audio_after(second_at):  # the next turn is answered as usual
        await caller.send_silence(0.02)
    await caller.send_silence(0.5)
    await caller.hang_up()
    rows = await _transcripts(db_pool, caller.call_id, 5)
    assert [r["role"] for r in rows] == ["assistant", "user", "assistant", "user", "assistant"]
    assert rows[2]["interrupted"] and rows[2]["text"] == heard["text"]
    assert rows[4]["interrupted"]  # the hang-up cut the second reply: recorded as heard, and marked


async def test_api_keys_are_required_when_configured(stacks) -> None:
    gateway = await stacks.get({"API_KEYS": "old-key, new-key"})
    async with api(gateway) as client:
        assert (await client.get("/api/v1/agents")).status_code == 401
        assert (await client.get("/api/v1/agents", headers={"X-API-Key": "nope"})).status_code == 401
        for key in ("old-key", "new-key"):  # rotation: both keys work
            assert (await client.get("/api/v1/agents", headers={"X-API-Key": key})).status_code == 200
        assert (await client.get("/health")).status_code == 200  # probes stay open


async def test_failed_stage_speaks_the_apology_and_records_the_error(stacks, db_pool) -> None:
    # no LLM worker at all (chaining on: the STT worker cannot chain, then the gateway's own try fails too): the
    # turn fails after its retry, the agent apologises and closes
    gateway = await stacks.get(
        {"WORKER_ACK_TIMEOUT_S": "0.3"}, services=("stt_worker", "tts_worker", "call_recorder"), wait_ready=False
    )
    caller = SimCaller(ws(gateway))
    await caller.connect()
    await caller.next(lambda m: m["type"] == "transcript", timeout=10)
    await caller.send_frames(await say("Hello there."))
    error = await caller.next(lambda m: m["type"] == "error", timeout=10)
    error_at = caller.last_at
    assert error["code"] == "llm_no_worker"
    ended = await caller.next(lambda m: m["type"] == "ended", timeout=10)
    assert ended["reason"] == "error"
    apology = caller.events("transcript")[-1]
    assert apology["text"].startswith("I'm sorry, I'm having a technical problem")
    assert caller.has_audio_after(error_at)  # it was spoken
    await caller.close()
    assert caller.close_code == 1011
    row = await _call(db_pool, caller.call_id)
    assert row["status"] == "failed" and row["end_reason"] == "error"
    errors = await db_pool.fetch("SELECT stage, code FROM call_errors WHERE call_id = $1", caller.call_id)
    assert [(e["stage"], e["code"]) for e in errors] == [("llm", "no_worker")]


async def _call(pool, call_id: str):
    for _ in range(100):
        row = await pool.fetchrow("SELECT * FROM calls WHERE call_id = $1 AND ended_at IS NOT NULL", call_id)
        if row:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} not recorded")


async def _transcripts(pool, call_id: str, at_least: int):
    for _ in range(100):
        rows = await pool.fetch("SELECT * FROM transcripts WHERE call_id = $1 ORDER BY seq", call_id)
        if len(rows) >= at_least:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id}: fewer than {at_least} transcript lines")
