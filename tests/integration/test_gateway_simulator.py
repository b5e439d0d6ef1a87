"""The gateway's simulator WebSocket on the real stack (NATS, PostgreSQL, workers with fixed-latency test
providers, the recorder): a full call, bad input of every kind, and the history that results."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
import websockets

from tools.talk import synthesize, talk

RATE = 16000


_SPEECH: list[bytes] = []


async def speech() -> bytes:
    """A real spoken sentence (the offline piper voice), synthesised once: the VAD must hear a voice."""
    if not _SPEECH:
        _SPEECH.append(await synthesize("Hello, I would like to book a table."))
    return _SPEECH[0]


@pytest.fixture
async def stack(stacks):
    """The module's stack (one for all the tests: each makes calls of its own and checks only those)."""
    return await stacks.get()


def ws_url(gateway) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ws/simulator"


async def _wait_call(pool: asyncpg.Pool, call_id: str, timeout: float = 10.0) -> asyncpg.Record:
    for _ in range(int(timeout * 10)):
        row = await pool.fetchrow("SELECT * FROM calls WHERE call_id = $1 AND ended_at IS NOT NULL", call_id)
        if row is not None:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} not recorded as ended")


async def test_health_probes(stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, trust_env=False) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = (await client.get("/api/system/health")).json()
        assert ready["ready"] is True and ready["checks"]["nats"] and ready["checks"]["postgres"]
        assert all(n >= 1 for n in ready["checks"]["services"].values())
        metrics = (await client.get("/metrics")).text
        assert "victoria_calls_active" in metrics


async def test_a_call_is_spoken_and_recorded(stack, db_pool) -> None:
    conv = await talk(ws_url(stack), [await speech()], verbose=False, timeout_s=20)
    assert conv.greeting.startswith("Hello")
    assert conv.greeting_audio_s > 1.0
    turn = conv.turns[0]
    assert turn.user_text == "hello, I would like to book a table for two"
    assert turn.reply_text == "Sure. A table for two at eight."
    assert len(turn.reply_audio) / 2 / RATE > 1.0
    g = turn.gateway
    assert g["stt_done_ms"] <= g["llm_first_token_ms"] <= g["tts_first_audio_ms"] <= g["first_audio_sent_ms"]
    row = await _wait_call(db_pool, conv.call_id)
    assert row["end_reason"] == "caller_hangup" and row["status"] == "completed" and row["client_type"] == "browser"
    lines = await db_pool.fetch("SELECT seq, role, text FROM transcripts WHERE call_id = $1 ORDER BY seq", conv.call_id)
    assert [(r["role"], r["text"]) for r in lines] == [
        ("assistant", conv.greeting),
        ("user", turn.user_text),
        ("assistant", turn.reply_text),
    ]


async def _expect_close(ws: websockets.ClientConnection) -> tuple[list[dict], int]:
    msgs: list[dict] = []
    try:
        async for m in ws:
            if isinstance(m, str):
                msgs.append(json.loads(m))
    except websockets.ConnectionClosed:
        pass
    assert ws.close_code is not None
    return msgs, ws.close_code


async def test_first_message_must_be_a_valid_start(stack) -> None:
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(b"\x00\x01" * 160)
        msgs, code = await _expect_close(ws)
    assert code == 1008 and msgs[0]["code"] == "bad_start"
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 11025}))
        msgs, code = await _expect_close(ws)
    assert (code == 1008 and "sample_rate" in msgs[0]["message"]) or "Input should be" in msgs[0]["message"]
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "start", "agent_id": "no-such-agent"}))
        msgs, code = await _expect_close(ws)
    assert code == 1008 and msgs[0]["code"] == "unknown_agent"


async def test_bad_messages_get_errors_and_the_call_goes_on(stack, db_pool) -> None:
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        started = json.loads(await ws.recv())
        assert started["type"] == "started"
        for bad in (
            "{not json",
            json.dumps({"type": "dance"}),
            json.dumps([1, 2]),
            json.dumps({"type": "audio", "data": "***"}),
            json.dumps({"type": "start"}),
        ):
            await ws.send(bad)
        await ws.send(b"\x01\x02\x03")  # odd length: not PCM16
        codes: list[str] = []
        while len(codes) < 6:
            m = await asyncio.wait_for(ws.recv(), 5)
            if isinstance(m, str) and json.loads(m)["type"] == "error":
                codes.append(json.loads(m)["code"])
        assert codes == ["bad_json", "unknown_message", "bad_message", "bad_audio", "already_started", "bad_audio"]
        await ws.send(json.dumps({"type": "stop"}))
        msgs, code = await _expect_close(ws)
    assert code == 1000 and msgs[-1] == {"type": "ended", "reason": "caller_hangup"}
    row = await _wait_call(db_pool, started["call_id"])
    assert row["end_reason"] == "caller_hangup"


async def test_oversized_frame_closes_with_1009_and_history_is_kept(stack, db_pool) -> None:
    async with websockets.connect(ws_url(stack), max_size=None) as ws:
        await ws.send(json.dumps({"type": "start"}))
        started = json.loads(await ws.recv())
        await ws.send(bytes(300_000))
        msgs, code = await _expect_close(ws)
    assert code == 1009 and any(m.get("code") == "frame_too_big" for m in msgs)
    row = await _wait_call(db_pool, started["call_id"])
    assert row["end_reason"] == "protocol_error"


async def test_flood_of_bad_messages_closes_only_that_call(stack) -> None:
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "start"}))
        await ws.recv()
        for _ in range(25):
            await ws.send("garbage")
        _msgs, code = await _expect_close(ws)
    assert code == 1008
    conv = await talk(ws_url(stack), [await speech()], verbose=False, timeout_s=20)  # the gateway still serves calls
    assert conv.turns[0].reply_text


async def test_hangup_mid_reply_and_silent_caller_still_end_cleanly(stack, db_pool) -> None:
    async with websockets.connect(ws_url(stack)) as ws:  # a caller that sends nothing and drops
        await ws.send(json.dumps({"type": "start"}))
        silent = json.loads(await ws.recv())["call_id"]
    row = await _wait_call(db_pool, silent)
    assert row["end_reason"] == "caller_hangup" and row["status"] == "completed"


async def test_the_browser_sees_each_change_of_the_calls_state(stack) -> None:
    """Every transition of the call's state machine reaches the browser as a ``state`` message, in order."""
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
        assert json.loads(await ws.recv())["type"] == "started"
        states: list[dict] = []
        while len(states) < 2:
            m = await asyncio.wait_for(ws.recv(), 15)
            if isinstance(m, str) and json.loads(m)["type"] == "state":
                states.append(json.loads(m))
        await ws.send(json.dumps({"type": "stop"}))
        msgs, code = await _expect_close(ws)
    assert code == 1000
    assert states == [
        {"type": "state", "caller": "listening", "agent": "speaking", "event": "Greet"},
        {"type": "state", "caller": "listening", "agent": "idle", "event": "PlayedOut"},
    ]
    assert [m for m in msgs if m["type"] == "state"][-1]["agent"] == "ended" and msgs[-1]["type"] == "ended"
