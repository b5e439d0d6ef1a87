"""Agent actions on the real stack (NATS, PostgreSQL, the gateway, fake workers scripted with
``FAKE_LLM_TOOL_SCRIPT``, the recorder) with a browser caller: an HTTP tool served by a real local server,
signed and spoken; the filler for a slow tool; a barge-in cancelling a pending tool; ``end_call``; keypad
digits reaching the LLM and the history, masked when sensitive; tool turns in the DB history."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from nats.aio.msg import Msg

from shared import subjects
from shared.bus import Bus
from shared.events import LlmChunk, LlmRequest, ToolCall, WorkAck
from shared.signing import key_for, verify
from tests.integration.conftest import Stacks
from tests.integration.conftest import recorded_turns as history
from tests.unit.test_tools_http import ToolServer
from tools.simcaller import SimCaller
from tools.talk import synthesize

SECRET = "integration-signing-secret"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PIN = {"type": "object", "properties": {"pin": {"type": "string"}}, "required": ["pin"]}
SCRIPT = [
    {"when": "weather", "say": "Let me check that.", "call": "weather", "arguments": {"city": "Malaga"}},
    {"when": "goodbye", "call": "end_call"},
    {
        "when": "bye now",
        "say": "It was a pleasure talking to you, have a lovely evening and take care.",
        "call": "end_call",
    },
    {"when": "DTMF: 1234", "call": "verify_pin", "arguments": {"pin": "1234"}},
    {"when": "sales", "call": "transfer_call", "arguments": {"target": "sales"}},
    {"when": "menu", "say": "Pressing five.", "call": "send_dtmf", "arguments": {"digits": "5"}},
    {"when": "DTMF: 7", "say": "You pressed seven."},
]
_SPEECH: dict[str, bytes] = {}


async def say(text: str) -> bytes:
    if text not in _SPEECH:
        _SPEECH[text] = await synthesize(text)
    return _SPEECH[text]


async def stack(stacks: Stacks, heard: str, services: tuple[str, ...] | None = None, **env: str) -> Any:
    """The module's stack, where every caller turn is transcribed as ``heard`` (the tests are ordered so that
    those hearing the same share an STT worker; a new ``heard`` restarts that worker alone)."""
    environment = {
        "FAKE_STT_TEXT": heard,
        "FAKE_LLM_TOOL_SCRIPT": json.dumps(SCRIPT),
        "WEBHOOK_SIGNING_SECRET": SECRET,
        "CHAIN_STAGES": "true",
        **env,
    }
    if services is None:
        return await stacks.get(environment)
    return await stacks.get(environment, services=services, wait_ready=False)  # (not ready: no LLM service)


async def agent(gateway: Any, name: str, tools: list[dict[str, Any]], **fields: Any) -> str:
    """A new agent (its id: ``name`` made unique, the database lives for the whole session)."""
    agent_id = f"{name}-{uuid.uuid4().hex[:6]}"
    spec = {"agent_id": agent_id, "first_message": "Hi.", "tools": tools, **fields}
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
        resp = await client.post("/api/v1/agents", json=spec)
        assert resp.status_code == 201, resp.text
    return agent_id


async def caller(gateway: Any, agent_id: str, *, greeted: bool = True) -> SimCaller:
    sim = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
    await sim.connect(agent_id)
    if greeted:
        await sim.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=15)
    return sim


def http_tool(name: str, url: str, parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"kind": "http", "name": name, "url": url, "parameters": parameters, **fields}


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def assistant(m: dict[str, Any]) -> bool:
    return m["type"] == "transcript" and m["role"] == "assistant"


async def test_end_call_says_the_closing_line_and_hangs_up(stacks, db_pool) -> None:
    gateway = await stack(stacks, "thanks, goodbye")
    agent_id = await agent(gateway, "closer", [{"kind": "end_call"}])
    sim = await caller(gateway, agent_id)
    await sim.send_frames(await say("Thank you, goodbye."))
    closing = await sim.next(assistant, timeout=15)
    ended = await sim.next(lambda m: m["type"] == "ended", timeout=15)
    await asyncio.wait_for(sim.close(), 5)
    assert closing["text"] == "Thank you for calling. Goodbye!"
    assert ended["reason"] == "agent_hangup" and sim.close_code == 1000
    assert [m["name"] for m in sim.events("tool")] == ["end_call"]
    for _ in range(100):
        row = await db_pool.fetchrow("SELECT end_reason FROM calls WHERE call_id = $1", sim.call_id)
        if row is not None and row["end_reason"] is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None and row["end_reason"] == "agent_hangup"


async def test_speech_over_a_reply_that_ends_the_call_neither_cuts_it_off_nor_stops_the_hang_up(stacks) -> None:
    gateway = await stack(stacks, "okay, bye now")
    agent_id = await agent(gateway, "signoff", [{"kind": "end_call"}])
    sim = await caller(gateway, agent_id)
    await sim.send_frames(await say("Okay, bye now."))
    await sim.next(lambda m: m["type"] == "state" and m["agent"] == "ending", timeout=15)
    await sim.send_frames(await say("Wait, wait, there is one more thing about my booking, please."))
    ended = await sim.next(lambda m: m["type"] == "ended", timeout=30)
    await asyncio.wait_for(sim.close(), 5)
    assert ended["reason"] == "agent_hangup" and sim.close_code == 1000
    goodbye = [m for m in sim.events("transcript") if m["role"] == "assistant"][-1]
    assert goodbye["text"] == SCRIPT[2]["say"] and not goodbye.get("interrupted"), goodbye
    assert not sim.events("clear")  # (nothing was cut off)
    assert [m["text"] for m in sim.events("transcript") if m["role"] == "user"] == ["okay, bye now"]


async def test_keypad_digits_reach_the_llm_and_are_masked_in_the_history(stacks, db_pool) -> None:
    gateway = await stack(stacks, "hello", FAKE_LLM_TOOL_REPLY="Your PIN is verified.")
    async with ToolServer(body=b'{"pin": "1234", "valid": true}') as server:
        dtmf = {"mode": "collect", "terminator": "#", "sensitive": True}
        agent_id = await agent(gateway, "pin", [http_tool("verify_pin", server.url, PIN)], dtmf=dtmf)
        sim = await caller(gateway, agent_id)
        assert sim.ws is not None
        for key in "1234#":
            await sim.ws.send(json.dumps({"type": "dtmf", "digit": key}))
        typed = await sim.next(lambda m: m["type"] == "transcript" and m["role"] == "user", timeout=10)
        tool = await sim.next(lambda m: m["type"] == "tool", timeout=15)
        reply = await sim.next(assistant, timeout=15)
        await sim.hang_up()
    assert json.loads(server.seen[0].body) == {"pin": "1234"}  # the LLM had the real digits
    assert typed["text"] == "••••"
    assert "1234" not in tool["text"] and tool["status"] == "ok"
    assert reply["text"] == "Your PIN is verified."
    rows = await history(db_pool, sim.call_id, 4)
    assert [(r["role"], r["dtmf"]) for r in rows[:3]] == [("assistant", False), ("user", True), ("tool", False)]
    assert rows[1]["text"] == "••••"
    recorded = as_json(rows[2]["tool"])
    assert recorded["arguments"] == '{"pin": "••••"}' and "1234" not in recorded["result"]
    assert all("1234" not in r["text"] for r in rows)


async def test_a_key_pressed_over_the_agent_barges_in_and_is_answered(stacks, db_pool) -> None:
    gateway = await stack(stacks, "hello")
    greeting = "Welcome to the keypad line. " + " ".join(f"Option {i} is available." for i in range(1, 9))
    agent_id = await agent(gateway, "keys", [], first_message=greeting, dtmf={"mode": "each"})
    sim = await caller(gateway, agent_id, greeted=False)
    await sim.next(lambda m: m["type"] == "state" and m["agent"] == "speaking", timeout=15)
    await asyncio.sleep(0.5)  # the greeting is playing
    assert sim.ws is not None
    await sim.ws.send(json.dumps({"type": "dtmf", "digit": "7"}))
    await sim.next(lambda m: m["type"] == "clear", timeout=5)
    cut = await sim.next(assistant, timeout=5)
    typed = await sim.next(lambda m: m["type"] == "transcript" and m["role"] == "user", timeout=5)
    reply = await sim.next(assistant, timeout=15)
    await sim.hang_up()
    assert cut["interrupted"] and greeting.startswith(cut["text"].rstrip("…"))
    assert typed["text"] == "7" and reply["text"] == "You pressed seven."
    rows = await history(db_pool, sim.call_id, 3)
    assert [(r["role"], r["dtmf"], r["text"]) for r in rows[1:3]] == [
        ("user", True, "7"),
        ("assistant", False, reply["text"]),
    ]


async def test_transfer_over_the_browser_says_the_message_tells_the_page_and_ends(stacks, db_pool) -> None:
    gateway = await stack(stacks, "put me through to sales")
    agent_id = await agent(gateway, "desk", [{"kind": "transfer_call", "targets": {"sales": "+34910000001"}}])
    sim = await caller(gateway, agent_id)
    await sim.send_frames(await say("Put me through to sales, please."))
    moved = await sim.next(lambda m: m["type"] == "transferred", timeout=15)
    ended = await sim.next(lambda m: m["type"] == "ended", timeout=10)
    await asyncio.wait_for(sim.close(), 5)
    said = [m["text"] for m in sim.events("transcript") if m["role"] == "assistant"]
    assert moved["target"] == "+34910000001" and said[-1] == "I'm transferring you now. Please hold."
    assert ended["reason"] == "transferred" and sim.close_code == 1000
    for _ in range(100):
        row = await db_pool.fetchrow("SELECT end_reason, transferred_to FROM calls WHERE call_id = $1", sim.call_id)
        if row is not None and row["end_reason"] is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None and (row["end_reason"], row["transferred_to"]) == ("transferred", "+34910000001")


def _keys_heard(pcm: bytes, rate: int) -> str:
    """The DTMF keys in ``pcm``, from 40 ms windows whose two strongest key frequencies stand out (the fake
    TTS speaks a single sine, which is no key)."""
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    keys = ("123A", "456B", "789C", "*0#D")
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    size = rate // 25
    heard, last = [], ""
    for start in range(0, len(samples) - size, size // 2):
        spectrum = np.abs(np.fft.rfft(samples[start : start + size]))
        power = {f: spectrum[round(f * size / rate)] for f in (*rows, *cols)}
        row, col = max(rows, key=power.__getitem__), max(cols, key=power.__getitem__)
        others = max(p for f, p in power.items() if f not in (row, col))
        key = keys[rows.index(row)][cols.index(col)] if min(power[row], power[col]) > 8 * others + 1e5 else ""
        if key and key != last:
            heard.append(key)
        last = key
    return "".join(heard)


async def test_send_dtmf_over_the_browser_plays_the_tones_after_the_words(stacks) -> None:
    gateway = await stack(stacks, "press through the menu", FAKE_LLM_TOOL_REPLY="Done.")
    agent_id = await agent(gateway, "dialer", [{"kind": "send_dtmf"}])
    sim = await caller(gateway, agent_id)
    greeted_at = sim.last_at
    await sim.send_frames(await say("Get me through the menu."))
    tool = await sim.next(lambda m: m["type"] == "tool", timeout=15)
    reply = await sim.next(assistant, timeout=15)
    await sim.hang_up()
    assert (tool["name"], tool["status"]) == ("send_dtmf", "ok")
    assert reply["text"] == "Pressing five. Done."
    assert _keys_heard(b"".join(r.data for r in sim.audio_after(greeted_at)), 16000) == "5"


async def test_a_slow_tool_gets_the_filler(stacks) -> None:
    gateway = await stack(stacks, "what is the weather in malaga")
    async with ToolServer(delay_s=2.0) as server:
        agent_id = await agent(gateway, "slow", [http_tool("weather", server.url, CITY)], tool_filler_after_ms=500)
        sim = await caller(gateway, agent_id)
        await sim.send_frames(await say("What is the weather like?"))
        reply = await sim.next(assistant, timeout=20)
        await sim.hang_up()
    assert reply["text"].startswith("Let me check that. One moment, please. Done:"), reply["text"]


async def test_a_barge_in_cancels_the_pending_tool(stacks, db_pool) -> None:
    gateway = await stack(stacks, "what is the weather in malaga")
    async with ToolServer(delay_s=20.0) as server:
        agent_id = await agent(gateway, "barge", [http_tool("weather", server.url, CITY)], tool_filler_after_ms=300)
        sim = await caller(gateway, agent_id)
        await sim.send_frames(await say("What is the weather like?"))
        await sim.next(lambda m: m["type"] == "state" and m["event"] == "ReplyAudioStarted", timeout=15)
        await asyncio.wait_for(server.arrived.wait(), 10)
        await sim.send_frames(await say("Actually, never mind."))
        tool = await sim.next(lambda m: m["type"] == "tool", timeout=10)
        await asyncio.wait_for(server.gone.wait(), 5)  # the request was dropped, not left to finish
        await sim.hang_up()
    assert (tool["name"], tool["status"]) == ("weather", "cancelled")
    rows = await history(db_pool, sim.call_id, 4)
    tools = [as_json(r["tool"]) for r in rows if r["role"] == "tool"]
    assert [(t["name"], t["status"]) for t in tools] == [("weather", "cancelled")], tools
    cut = [r["text"] for r in rows if r["role"] == "assistant" and r["interrupted"]]
    assert cut and cut[0].startswith("Let"), [(r["role"], r["text"]) for r in rows]  # heard up to the barge-in


@pytest.mark.parametrize("chain", ["true", "false"], ids=["chained", "unchained"])
async def test_an_http_tool_is_called_signed_and_its_result_spoken(stacks, db_pool, chain: str) -> None:
    gateway = await stack(stacks, "what is the weather in malaga", CHAIN_STAGES=chain)
    async with ToolServer(body=b'{"sky": "sunny", "temp_c": 21}') as server:
        agent_id = await agent(gateway, "weather", [http_tool("weather", server.url, CITY)])
        sim = await caller(gateway, agent_id)
        await sim.send_frames(await say("What is the weather like?"))
        tool = await sim.next(lambda m: m["type"] == "tool", timeout=15)
        reply = await sim.next(assistant, timeout=15)
        metrics = [m for m in sim.events("turn_metrics") if m["turn_id"] == reply["turn_id"]]
        await sim.hang_up()
    [seen] = server.seen
    assert json.loads(seen.body) == {"city": "Malaga"}
    assert verify(key_for(SECRET, server.url), seen.body, seen.headers["x-victoria-signature"])
    assert seen.headers["x-victoria-call-id"] == sim.call_id and seen.headers["x-victoria-tool"] == "weather"
    assert (tool["name"], tool["status"]) == ("weather", "ok") and "sunny" in tool["text"]
    assert reply["text"].startswith("Let me check that.") and "sunny" in reply["text"] and "21" in reply["text"]
    assert metrics and metrics[0]["tools_ms"] > 0
    rows = await history(db_pool, sim.call_id, 4)
    assert [r["role"] for r in rows] == ["assistant", "user", "tool", "assistant"]
    recorded = as_json(rows[2]["tool"])
    assert (recorded["name"], recorded["kind"], recorded["status"]) == ("weather", "http", "ok")
    assert json.loads(recorded["arguments"]) == {"city": "Malaga"} and "sunny" in recorded["result"]


class ToolHappyLlm:
    """An LLM worker in the queue group, driven by the test: every answer says "Checking." and calls the
    weather tool again, so only the gateway's round limit ends the turn."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.requests: list[LlmRequest] = []

    async def start(self) -> None:
        await self.bus.subscribe(subjects.LLM_REQUEST, LlmRequest, self._on_request, queue=subjects.LLM_QUEUE)

    async def _on_request(self, req: LlmRequest, msg: Msg) -> None:
        self.requests.append(req)
        await msg.respond(WorkAck(worker="tool-happy").model_dump_json().encode())
        call = ToolCall(id=f"call_{len(self.requests)}", name="weather", arguments='{"city": "Oslo"}')
        chunk = LlmChunk(
            call_id=req.call_id,
            turn_id=req.turn_id,
            delta="Checking.",
            segments=["Checking."],
            done=True,
            finish_reason="tool_calls",
            tool_calls=[call],
            attempt=req.attempt,
        )
        await self.bus.publish(req.reply_to, chunk)


async def test_a_turn_asks_the_llm_at_most_four_times(stacks, nats_url: str, db_pool) -> None:
    services = ("stt_worker", "tts_worker", "call_recorder")  # the LLM is the test's
    # the test's LLM sends no worker beats: a slow answer on a loaded machine must not look like lost work
    gateway = await stack(stacks, "what is the weather", services=services, WORKER_LOST_AFTER_S="30")
    bus = await Bus.connect(nats_url, "tool-happy-llm")
    llm = ToolHappyLlm(bus)
    await llm.start()
    try:
        async with ToolServer() as server:
            agent_id = await agent(gateway, "loop", [http_tool("weather", server.url, CITY)])
            sim = await caller(gateway, agent_id)
            await sim.send_frames(await say("What is the weather like?"))
            reply = await sim.next(assistant, timeout=20)
            await sim.hang_up()
    finally:
        await bus.close()
    # one request per round (a round's request re-sent after a slow ack on a loaded machine is the same round)
    rounds: dict[int, LlmRequest] = {}
    for request in llm.requests:
        rounds.setdefault(request.attempt // 3, request)
    assert sorted(rounds) == [0, 1, 2, 3] and len(server.seen) == 3  # the 4th answer's call is not run
    firsts = [rounds[i] for i in range(4)]
    assert [r.attempt for r in firsts] == [0, 3, 6, 9]  # each round's chunks and retries its own
    assert [r.resume_segments for r in firsts] == [0, 1, 2, 3]  # segments number on across rounds
    assert all(r.resume == "" and r.turn_id == firsts[0].turn_id for r in llm.requests)
    last = firsts[-1].messages
    assert [m.role for m in last[-7:]] == ["user", *["assistant", "tool"] * 3]
    ran = [m.tool_calls[0].id for m in last if m.tool_calls]
    assert len(ran) == 3 and all(i.startswith("call_") for i in ran)
    assert reply["text"] == "Checking. Checking. Checking. Checking."
    rows = await history(db_pool, sim.call_id, 7)
    tools = [as_json(r["tool"]) for r in rows if r["role"] == "tool"]  # the 4th answer's call: dropped, recorded
    assert [t["status"] for t in tools] == ["ok", "ok", "ok", "error"]
    assert [t["call_id"] for t in tools[:3]] == ran
    assert json.loads(tools[-1]["result"]) == {"error": "too many tool rounds in one turn"}
