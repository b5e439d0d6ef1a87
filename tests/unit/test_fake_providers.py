"""The fixed-latency providers must be exact (benchmarks subtract their latency) and must stop when cancelled."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers import build_provider as build_llm
from services.llm_worker.providers.fake import FakeLlm
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers import build_provider as build_stt
from services.stt_worker.providers.fake import FakeStt
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers import build_provider as build_tts
from services.tts_worker.providers.fake import FakeTts
from shared.events import ChatMessage, ToolCall, ToolSpec, VoiceSpec

SLACK_S = 0.05  # scheduler jitter allowed on top of a configured latency
MESSAGES = [ChatMessage(role="user", content="book a table please")]


async def test_fake_stt_answers_configured_text_after_configured_latency() -> None:
    stt = FakeStt(SttWorkerSettings(fake_stt_latency_ms=80, fake_stt_text="two people at eight"))
    started = time.perf_counter()
    result = await stt.transcribe(b"\x00\x01" * 16000, 16000, language="en")
    elapsed = time.perf_counter() - started
    assert result.text == "two people at eight"
    assert result.language == "en"
    assert 0.08 <= elapsed < 0.08 + SLACK_S


async def test_fake_llm_answers_a_model_its_own_reply() -> None:
    """A canned post-call extraction (EXTRACTION_MODEL) while the calls keep the conversational reply."""
    settings = LlmWorkerSettings(
        fake_llm_first_token_ms=0,
        fake_llm_tokens_per_s=10_000,
        fake_llm_reply="Sure.",
        fake_llm_model_replies={"extract": '{"summary": "booked"}'},
    )
    llm = FakeLlm(settings)
    said = [d.text async for d in llm.stream(MESSAGES, model="extract") if d.text]
    plain = [d.text async for d in llm.stream(MESSAGES) if d.text]
    assert "".join(said) == '{"summary": "booked"}'
    assert plain == ["Sure."]


async def test_fake_stt_is_cancellable() -> None:
    stt = FakeStt(SttWorkerSettings(fake_stt_latency_ms=5000))
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stt.transcribe(b"\x00\x00" * 1600, 16000), timeout=0.05)
    assert time.perf_counter() - started < 0.5


async def test_fake_llm_streams_words_on_an_exact_schedule() -> None:
    reply = "Sure. I can help you with that booking today."
    llm = FakeLlm(LlmWorkerSettings(fake_llm_first_token_ms=100, fake_llm_tokens_per_s=50, fake_llm_reply=reply))
    started = time.perf_counter()
    stamps: list[float] = []
    deltas = []
    async for delta in llm.stream(MESSAGES, max_tokens=100):
        stamps.append(time.perf_counter() - started)
        deltas.append(delta)
    texts = [d.text for d in deltas[:-1]]
    assert texts == ["Sure. ", "I ", "can ", "help ", "you ", "with ", "that ", "booking ", "today."]
    assert "".join(texts) == reply
    assert 0.1 <= stamps[0] < 0.1 + SLACK_S
    # token i is due at first + i/rate from the start: no drift accumulates
    expected_last = 0.1 + (len(texts) - 1) / 50
    assert expected_last - 0.002 <= stamps[len(texts) - 1] < expected_last + SLACK_S
    last = deltas[-1]
    assert last.text == ""
    assert last.finish_reason == "stop"
    assert last.completion_tokens == len(texts)
    assert last.prompt_tokens == 4


async def test_fake_llm_stops_at_max_tokens() -> None:
    llm = FakeLlm(LlmWorkerSettings(fake_llm_first_token_ms=0, fake_llm_tokens_per_s=1000, fake_llm_reply="a b c d e"))
    deltas = [d async for d in llm.stream(MESSAGES, max_tokens=3)]
    assert [d.text for d in deltas[:-1]] == ["a ", "b ", "c "]
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].completion_tokens == 3


async def test_fake_llm_stops_when_closed_or_cancelled() -> None:
    llm = FakeLlm(
        LlmWorkerSettings(fake_llm_first_token_ms=0, fake_llm_tokens_per_s=20, fake_llm_reply="one two three four")
    )
    stream = llm.stream(MESSAGES)
    assert (await anext(stream)).text == "one "
    await stream.aclose()  # barge-in: the consumer closes the iterator
    with pytest.raises(StopAsyncIteration):
        await anext(stream)

    slow = FakeLlm(LlmWorkerSettings(fake_llm_first_token_ms=5000))
    task = asyncio.create_task(anext(slow.stream(MESSAGES)))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


SCRIPT = [
    {"when": "Goodbye", "say": "Bye now, take care.", "call": "end_call", "arguments": {"reason": "caller said bye"}},
    {"when": "DTMF: 1234", "call": "transfer_call", "arguments": {"target": "sales"}},
    {"when": "bye", "say": "This rule is shadowed by the first one."},
    {"when": "weather", "say": "Sunny all day."},
]
TOOLS = [ToolSpec(name="end_call"), ToolSpec(name="transfer_call")]


def scripted(**overrides: object) -> FakeLlm:
    values = {"fake_llm_first_token_ms": 0, "fake_llm_tokens_per_s": 10_000, "fake_llm_reply": "Plain reply."}
    return FakeLlm(LlmWorkerSettings(**{**values, "fake_llm_tool_script": SCRIPT, **overrides}))


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content=text)]


async def test_fake_llm_script_says_its_line_then_calls_the_offered_tool() -> None:
    deltas = [d async for d in scripted().stream(user("ok GOODBYE then"), tools=TOOLS)]
    assert [d.text for d in deltas[:-1]] == ["Bye ", "now, ", "take ", "care."]
    last = deltas[-1]
    assert last.finish_reason == "tool_calls" and last.completion_tokens == 4
    (call,) = last.tool_calls
    assert call.name == "end_call" and json.loads(call.arguments) == {"reason": "caller said bye"}
    assert re.fullmatch(r"call_[0-9a-f]{8}", call.id)


async def test_fake_llm_script_call_without_words_and_on_a_dtmf_turn() -> None:
    deltas = [d async for d in scripted().stream(user("DTMF: 1234"), tools=TOOLS)]
    assert len(deltas) == 1 and deltas[0].finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in deltas[0].tool_calls] == [("transfer_call", {"target": "sales"})]


async def test_fake_llm_script_does_not_call_a_tool_the_request_does_not_offer() -> None:
    for tools in (None, [ToolSpec(name="transfer_call")]):
        deltas = [d async for d in scripted().stream(user("goodbye"), tools=tools)]
        assert "".join(d.text for d in deltas) == "Bye now, take care."
        assert deltas[-1].finish_reason == "stop" and deltas[-1].tool_calls == ()


async def test_fake_llm_script_rule_without_call_and_no_match_fall_back_to_the_reply() -> None:
    said = [d async for d in scripted().stream(user("what's the weather?"), tools=TOOLS)]
    assert "".join(d.text for d in said) == "Sunny all day." and said[-1].finish_reason == "stop"
    plain = [d async for d in scripted().stream(user("book a table"), tools=TOOLS)]
    assert "".join(d.text for d in plain) == "Plain reply." and plain[-1].tool_calls == ()
    # the rule only reads the caller's last message: an assistant's last word matches nothing
    after = [*user("goodbye"), ChatMessage(role="assistant", content="goodbye")]
    assert "".join([d.text async for d in scripted().stream(after, tools=TOOLS)]) == "Plain reply."


async def test_fake_llm_answers_a_tool_result_with_the_tool_reply() -> None:
    result = "x" * 150 + "y" * 100
    messages = [
        *user("goodbye"),
        ChatMessage(role="assistant", tool_calls=[ToolCall(id="call_1", name="end_call")]),
        ChatMessage(role="tool", tool_call_id="call_1", content=result),
    ]
    default = [d async for d in scripted().stream(messages, tools=TOOLS)]
    assert "".join(d.text for d in default) == "Done: " + result[:200]
    assert default[-1].finish_reason == "stop" and default[-1].tool_calls == ()
    custom = scripted(fake_llm_tool_reply="The {result} is booked.")
    messages[-1] = ChatMessage(role="tool", tool_call_id="call_1", content="table for two")
    assert "".join([d.text async for d in custom.stream(messages, tools=TOOLS)]) == "The table for two is booked."


async def test_fake_llm_script_keeps_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the environment, as the workers read it; the first word and a bare call both wait the first-token time."""
    monkeypatch.setenv("FAKE_LLM_TOOL_SCRIPT", json.dumps(SCRIPT))
    llm = FakeLlm(LlmWorkerSettings(fake_llm_first_token_ms=80, fake_llm_tokens_per_s=1000))
    for text in ("goodbye", "DTMF: 1234#"):
        started = time.perf_counter()
        first = await anext(llm.stream(user(text), tools=TOOLS))
        assert 0.08 <= time.perf_counter() - started < 0.08 + SLACK_S
        assert first.text or first.tool_calls


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000])
async def test_fake_tts_first_byte_then_tone_faster_than_real_time(sample_rate: int) -> None:
    tts = FakeTts(TtsWorkerSettings(fake_tts_first_byte_ms=100, tts_chunk_ms=200))
    text = "Hello there, how are you?"  # 25 characters -> 1.5 s of audio
    started = time.perf_counter()
    first = None
    chunks: list[bytes] = []
    async for chunk, rate in tts.synthesize(text, VoiceSpec(), language="en-US", sample_rate=sample_rate):
        first = first if first is not None else time.perf_counter() - started
        assert rate == sample_rate
        chunks.append(chunk)
    elapsed = time.perf_counter() - started
    assert first is not None and 0.1 <= first < 0.1 + SLACK_S
    assert elapsed < 0.1 + SLACK_S  # the 1.5 s of audio arrives at once after the first byte
    samples = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert samples.size == round(len(text) * 0.06 * sample_rate)
    assert all(len(c) == sample_rate * 200 // 1000 * 2 for c in chunks[:-1])
    assert 0 < np.abs(samples).max() <= 0.11 * 32767  # quiet, not silent


async def test_fake_tts_is_cancellable_before_first_byte() -> None:
    tts = FakeTts(TtsWorkerSettings(fake_tts_first_byte_ms=5000))
    stream = tts.synthesize("hello", VoiceSpec(), language="en-US", sample_rate=16000)
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), timeout=0.05)
    assert time.perf_counter() - started < 0.5


def test_registries_build_fakes_and_reject_unknown_names() -> None:
    assert isinstance(build_stt("fake", SttWorkerSettings()), FakeStt)
    assert isinstance(build_llm("fake", LlmWorkerSettings()), FakeLlm)
    assert isinstance(build_tts("fake", TtsWorkerSettings()), FakeTts)
    with pytest.raises(ValueError, match="local_whisper"):
        build_stt("nope", SttWorkerSettings())
    with pytest.raises(ValueError, match="local_llama"):
        build_llm("nope", LlmWorkerSettings())
    with pytest.raises(ValueError, match="local_piper"):
        build_tts("nope", TtsWorkerSettings())


def test_registries_do_not_import_model_libraries() -> None:
    code = (
        "import sys\n"
        "import services.stt_worker.providers, services.llm_worker.providers, services.tts_worker.providers\n"
        "heavy = {'faster_whisper', 'ctranslate2', 'llama_cpp', 'piper', 'onnxruntime'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
