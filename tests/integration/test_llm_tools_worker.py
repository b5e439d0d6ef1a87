"""Tool calls through a real LLM worker on a real NATS: a request that offers tools gets, from the fake provider
scripted by ``FAKE_LLM_TOOL_SCRIPT``, the scripted words and then the call on its ``done`` chunk (chained to TTS
too, the gateway's default), and a request whose last message is the tool's result gets ``FAKE_LLM_TOOL_REPLY``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared import subjects
from shared.bus import Bus
from shared.events import (
    ChatMessage,
    LlmChunk,
    LlmRequest,
    ToolCall,
    ToolSpec,
    TtsChunk,
    TtsContinuation,
    new_id,
)

SCRIPT = [
    {"when": "goodbye", "say": "Bye now, take care.", "call": "end_call", "arguments": {"reason": "caller said bye"}},
    {"when": "DTMF: 1234", "call": "transfer_call", "arguments": {"target": "sales"}},
]
ENV = {
    "LLM_PROVIDER": "fake",
    "TTS_PROVIDER": "fake",
    "FAKE_LLM_FIRST_TOKEN_MS": "20",
    "FAKE_LLM_TOKENS_PER_S": "200",
    "FAKE_LLM_TOOL_SCRIPT": json.dumps(SCRIPT),
    "FAKE_LLM_TOOL_REPLY": "All set: {result}",
    "FAKE_TTS_FIRST_BYTE_MS": "10",
}
TOOLS = [
    ToolSpec(name="end_call", parameters={"type": "object", "properties": {"reason": {"type": "string"}}}),
    ToolSpec(name="transfer_call", parameters={"type": "object", "properties": {"target": {"type": "string"}}}),
]
SYSTEM = ChatMessage(role="system", content="You are a booking agent.")


async def _wait_workers(bus: Bus, service: str) -> None:
    from shared.health import ping_services

    for _ in range(200):
        if await ping_services(bus, service, window_s=0.1):
            return
    raise AssertionError(f"no {service} worker came up")


async def _reply(bus: Bus, call_id: str, turn_id: int, **fields: Any) -> list[LlmChunk]:
    """Send one LlmRequest and collect its chunks up to the done one."""
    chunks: asyncio.Queue[LlmChunk] = asyncio.Queue()

    async def on_chunk(chunk: LlmChunk, _msg: object) -> None:
        await chunks.put(chunk)

    sub = await bus.subscribe(subjects.call_subject(call_id, "llm"), LlmChunk, on_chunk)
    try:
        req = LlmRequest(
            call_id=call_id,
            turn_id=turn_id,
            reply_to=subjects.call_subject(call_id, "llm"),
            **{"tools": TOOLS, **fields},
        )
        assert await bus.submit_work(subjects.LLM_REQUEST, req, ack_timeout_s=2) is None
        got = [await asyncio.wait_for(chunks.get(), timeout=5)]
        while not got[-1].done:
            got.append(await asyncio.wait_for(chunks.get(), timeout=5))
    finally:
        await sub.unsubscribe()
    assert [c.seq for c in got] == list(range(len(got)))
    assert all(c.error is None and c.turn_id == turn_id for c in got)
    return got


async def test_scripted_tool_calls_arrive_on_the_done_chunk_and_a_result_gets_the_tool_reply(
    run_service, bus: Bus
) -> None:
    run_service("llm_worker", {**ENV, "INSTANCE_ID": "llm-tools"})
    await _wait_workers(bus, "llm")
    call_id = f"tools-{new_id()}"

    dtmf = await _reply(bus, call_id, 1, messages=[SYSTEM, ChatMessage(role="user", content="DTMF: 1234")])
    assert len(dtmf) == 1 and dtmf[0].delta == ""
    assert dtmf[0].finish_reason == "tool_calls" and dtmf[0].provider == "fake" and dtmf[0].worker == "llm-tools"
    (call,) = dtmf[0].tool_calls or []
    assert call.name == "transfer_call" and json.loads(call.arguments) == {"target": "sales"}

    result = [
        SYSTEM,
        ChatMessage(role="user", content="DTMF: 1234"),
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id=call.id, content="transferred to sales"),
    ]
    reply = await _reply(bus, call_id, 2, messages=result)
    assert "".join(c.delta for c in reply) == "All set: transferred to sales"
    assert reply[-1].finish_reason == "stop" and not reply[-1].tool_calls

    # a request that does not offer the tool never gets its call: the words only
    plain = await _reply(bus, call_id, 3, messages=[SYSTEM, ChatMessage(role="user", content="goodbye")], tools=[])
    assert "".join(c.delta for c in plain) == "Bye now, take care."
    assert plain[-1].finish_reason == "stop" and not plain[-1].tool_calls


async def test_chained_reply_speaks_its_words_through_tts_then_ends_with_the_call(run_service, bus: Bus) -> None:
    run_service("llm_worker", {**ENV, "INSTANCE_ID": "llm-tools-chained"})
    run_service("tts_worker", ENV)
    await _wait_workers(bus, "llm")
    await _wait_workers(bus, "tts")
    call_id = f"tools-chained-{new_id()}"
    audio: asyncio.Queue[TtsChunk] = asyncio.Queue()

    async def on_audio(chunk: TtsChunk, _msg: object) -> None:
        await audio.put(chunk)

    tts_subject = subjects.call_subject(call_id, "tts")
    sub = await bus.subscribe(tts_subject, TtsChunk, on_audio)
    try:
        chunks = await _reply(
            bus,
            call_id,
            1,
            messages=[SYSTEM, ChatMessage(role="user", content="Thanks, GOODBYE!")],
            tts=TtsContinuation(reply_to=tts_subject),
        )
        first_audio = await asyncio.wait_for(audio.get(), timeout=5)
    finally:
        await sub.unsubscribe()
    assert all(c.tts_chained for c in chunks)
    assert [s for c in chunks for s in c.segments or []] == ["Bye now, take care."]
    done = chunks[-1]
    assert done.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in done.tool_calls or []] == [
        ("end_call", {"reason": "caller said bye"})
    ]
    assert isinstance(done.tool_calls[0], ToolCall) and done.tool_calls[0].id.startswith("call_")
    assert first_audio.segment == 0 and first_audio.error is None and first_audio.audio
