"""Cloud providers tested at the HTTP boundary (respx), with the vendors' documented request/response shapes.

The ``live`` tests call the real APIs and run only when their key is set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers import build_provider as build_llm
from services.llm_worker.providers.base import Delta
from services.llm_worker.providers.groq import GroqLlm
from services.llm_worker.providers.openai_compat import OpenAICompatLlm
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers import build_provider as build_stt
from services.stt_worker.providers.groq_whisper import GroqWhisperStt
from shared.events import ChatMessage
from shared.metrics import PROVIDER_ERRORS
from shared.worker import ProviderError

GROQ = "https://api.groq.com/openai/v1"
GROQ_CHAT = f"{GROQ}/chat/completions"
GROQ_STT = f"{GROQ}/audio/transcriptions"
MESSAGES = [
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="user", content="book a table please"),
]
FAST = {"llm_retry_base_delay_s": 0.001, "llm_retry_max_delay_s": 0.01}
PCM = b"\x00\x00\x10\x00" * 8000  # 1 s at 16 kHz


def groq_llm(**overrides: Any) -> GroqLlm:
    return GroqLlm(LlmWorkerSettings(**{"groq_api_key": "gsk-test", **FAST, **overrides}))


def whisper(**overrides: Any) -> GroqWhisperStt:
    values = {"groq_api_key": "gsk-test", "stt_retry_base_delay_s": 0.001, "stt_retry_max_delay_s": 0.01}
    return GroqWhisperStt(SttWorkerSettings(**{**values, **overrides}))


def chunk(content: str | None = None, finish: str | None = None, role: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "llama-3.1-8b-instant",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24},
}
REPLY = [chunk("", role="assistant"), chunk("Sure"), chunk(","), chunk(" when?"), chunk(finish="stop"), USAGE]


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    if done:
        events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


async def collect(provider: Any, **kwargs: Any) -> list[Delta]:
    return [d async for d in provider.stream(MESSAGES, **kwargs)]


def errors(provider: str, error_class: str, service: str = "llm") -> float:
    return PROVIDER_ERRORS.labels(service, provider, error_class)._value.get()


# --- LLM: success ------------------------------------------------------------------------------------------


@respx.mock
async def test_groq_streams_deltas_in_order_then_finish_and_usage() -> None:
    route = respx.post(GROQ_CHAT).mock(return_value=sse_response(sse(*REPLY)))
    deltas = await collect(groq_llm(), temperature=0.2, max_tokens=50)
    assert [d.text for d in deltas[:-1]] == ["Sure", ",", " when?"]
    assert deltas[-1] == Delta(finish_reason="stop", prompt_tokens=21, completion_tokens=3)
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer gsk-test"
    body = json.loads(request.content)
    assert body["model"] == "llama-3.1-8b-instant"
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "book a table please"},
    ]


@respx.mock
async def test_openai_compatible_with_custom_base_url_and_model() -> None:
    route = respx.post("http://vllm.internal:8000/v1/chat/completions").mock(
        return_value=sse_response(sse(chunk("Hi"), chunk(finish="length"), USAGE))
    )
    settings = LlmWorkerSettings(openai_api_key="sk-test", openai_base_url="http://vllm.internal:8000/v1/", **FAST)
    llm = OpenAICompatLlm(settings)
    deltas = await collect(llm, model="qwen2.5-7b")
    assert [d.text for d in deltas] == ["Hi", ""]
    assert deltas[-1].finish_reason == "length"
    assert json.loads(route.calls.last.request.content)["model"] == "qwen2.5-7b"
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"


@respx.mock
async def test_self_hosted_server_needs_no_key() -> None:
    route = respx.post("http://127.0.0.1:11434/v1/chat/completions").mock(
        return_value=sse_response(sse(chunk("ok"), chunk(finish="stop")))
    )
    llm = OpenAICompatLlm(LlmWorkerSettings(openai_api_key="", openai_base_url="http://127.0.0.1:11434/v1", **FAST))
    await llm.warmup()
    deltas = await collect(llm)
    assert deltas[0].text == "ok"
    assert deltas[-1].prompt_tokens is None
    assert "authorization" not in route.calls.last.request.headers


def test_registries_know_the_cloud_providers() -> None:
    assert isinstance(build_llm("groq", LlmWorkerSettings()), GroqLlm)
    assert type(build_llm("openai", LlmWorkerSettings())) is OpenAICompatLlm
    assert isinstance(build_stt("groq", SttWorkerSettings()), GroqWhisperStt)


# --- LLM: errors and retries -------------------------------------------------------------------------------


async def test_missing_key_is_an_auth_error_naming_the_env_var() -> None:
    llm = GroqLlm(LlmWorkerSettings(groq_api_key=""))
    with pytest.raises(ProviderError) as err:
        await llm.warmup()
    assert err.value.code == "auth" and "GROQ_API_KEY" in str(err.value)
    openai = OpenAICompatLlm(LlmWorkerSettings(openai_api_key=""))
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        await collect(openai)


@respx.mock
async def test_401_is_auth_and_not_retried() -> None:
    route = respx.post(GROQ_CHAT).mock(
        return_value=httpx.Response(
            401, json={"error": {"message": "Invalid API Key", "type": "invalid_request_error"}}
        )
    )
    before = errors("groq", "auth")
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm())
    assert err.value.code == "auth" and not err.value.retryable
    assert "GROQ_API_KEY" in str(err.value) and "Invalid API Key" in str(err.value)
    assert route.call_count == 1
    assert errors("groq", "auth") == before + 1


@respx.mock
async def test_429_honours_retry_after_then_succeeds() -> None:
    route = respx.post(GROQ_CHAT).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {"message": "rate limited"}}),
            sse_response(sse(*REPLY)),
        ]
    )
    before = errors("groq", "quota")
    deltas = await collect(groq_llm())
    assert "".join(d.text for d in deltas) == "Sure, when?"
    assert route.call_count == 2
    assert errors("groq", "quota") == before + 1


@respx.mock
async def test_429_retry_after_is_capped_by_setting() -> None:
    respx.post(GROQ_CHAT).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3600"}), sse_response(sse(*REPLY))]
    )
    deltas = await asyncio.wait_for(collect(groq_llm()), timeout=1.0)  # waits llm_retry_max_delay_s, not 1 h
    assert deltas[-1].finish_reason == "stop"


@respx.mock
async def test_exhausted_quota_is_not_retried() -> None:
    route = respx.post(GROQ_CHAT).mock(
        return_value=httpx.Response(429, json={"error": {"message": "no credit", "code": "insufficient_quota"}})
    )
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm())
    assert err.value.code == "quota" and not err.value.retryable
    assert route.call_count == 1


@respx.mock
async def test_500_is_unavailable_after_max_retries() -> None:
    route = respx.post(GROQ_CHAT).mock(return_value=httpx.Response(500, text="oops"))
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm(llm_max_retries=2))
    assert err.value.code == "unavailable" and err.value.retryable
    assert route.call_count == 3


@respx.mock
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_bad_request_and_not_retried(status: int) -> None:
    route = respx.post(GROQ_CHAT).mock(
        return_value=httpx.Response(status, json={"error": {"message": "model not found"}})
    )
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm())
    assert err.value.code == "bad_request" and not err.value.retryable
    assert "model not found" in str(err.value)
    assert route.call_count == 1


@respx.mock
async def test_read_timeout_is_timeout_class() -> None:
    route = respx.post(GROQ_CHAT).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm(llm_max_retries=1))
    assert err.value.code == "timeout" and err.value.retryable
    assert route.call_count == 2


@respx.mock
async def test_connect_error_is_unavailable() -> None:
    respx.post(GROQ_CHAT).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm(llm_max_retries=0))
    assert err.value.code == "unavailable"


@respx.mock
async def test_malformed_line_after_a_delta_is_internal_and_not_retried() -> None:
    body = sse(chunk("Sure"), done=False) + b"data: {not json\n\n"
    route = respx.post(GROQ_CHAT).mock(return_value=sse_response(body))
    seen: list[str] = []
    with pytest.raises(ProviderError) as err:
        async for delta in groq_llm().stream(MESSAGES):
            seen.append(delta.text)
    assert err.value.code == "internal" and not err.value.retryable
    assert seen == ["Sure"]
    assert route.call_count == 1


@respx.mock
async def test_malformed_first_line_is_retried() -> None:
    route = respx.post(GROQ_CHAT).mock(side_effect=[sse_response(b"data: {not json\n\n"), sse_response(sse(*REPLY))])
    deltas = await collect(groq_llm())
    assert deltas[0].text == "Sure"
    assert route.call_count == 2


@respx.mock
async def test_stream_ending_without_done_or_finish_is_internal() -> None:
    respx.post(GROQ_CHAT).mock(return_value=sse_response(sse(chunk("Sure"), done=False)))
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm())
    assert err.value.code == "internal" and not err.value.retryable


# --- LLM: cancellation -------------------------------------------------------------------------------------


class RecordingStream(httpx.AsyncByteStream):
    """A response body that records how far it was read and whether it was closed."""

    def __init__(self, events: list[bytes]) -> None:
        self.events = events
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            self.sent += 1
            yield event
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        self.closed = True


def long_reply() -> RecordingStream:
    return RecordingStream([sse(chunk(f"word{i} "), done=False) for i in range(50)] + [b"data: [DONE]\n\n"])


@respx.mock
async def test_aclose_mid_stream_closes_the_response() -> None:
    body = long_reply()
    respx.post(GROQ_CHAT).mock(return_value=httpx.Response(200, stream=body))
    stream = groq_llm().stream(MESSAGES)
    first = await anext(stream)
    assert first.text == "word0 "
    await stream.aclose()
    assert body.closed
    assert body.sent < len(body.events)


@respx.mock
async def test_task_cancellation_mid_stream_closes_the_response() -> None:
    body = long_reply()
    respx.post(GROQ_CHAT).mock(return_value=httpx.Response(200, stream=body))
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _ in groq_llm().stream(MESSAGES):
            got_one.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), timeout=1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert body.closed
    assert body.sent < len(body.events)


# --- STT: Groq Whisper -------------------------------------------------------------------------------------


@respx.mock
async def test_whisper_sends_wav_multipart_and_returns_text() -> None:
    route = respx.post(GROQ_STT).mock(
        return_value=httpx.Response(200, json={"text": " Two people at eight. ", "x_groq": {"id": "req_1"}})
    )
    result = await whisper().transcribe(PCM, 16000, language="en-US")
    assert result.text == "Two people at eight."
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer gsk-test"
    assert request.headers["content-type"].startswith("multipart/form-data")
    content = request.content
    assert b'name="file"; filename="turn.wav"' in content
    assert b"RIFF" in content and b"WAVE" in content
    assert b'name="model"\r\n\r\nwhisper-large-v3-turbo\r\n' in content
    assert b'name="language"\r\n\r\nen\r\n' in content
    assert b'name="response_format"\r\n\r\njson\r\n' in content
    assert b'name="temperature"\r\n\r\n0\r\n' in content


@respx.mock
async def test_whisper_without_language_sends_no_hint() -> None:
    route = respx.post(GROQ_STT).mock(return_value=httpx.Response(200, json={"text": "hola"}))
    result = await whisper().transcribe(PCM, 8000, model="whisper-large-v3")
    assert result.text == "hola"
    assert b'name="language"' not in route.calls.last.request.content
    assert b'name="model"\r\n\r\nwhisper-large-v3\r\n' in route.calls.last.request.content


@respx.mock
async def test_whisper_400_is_bad_request_not_retried() -> None:
    route = respx.post(GROQ_STT).mock(
        return_value=httpx.Response(400, json={"error": {"message": "file is too short"}})
    )
    before = errors("groq", "bad_request", service="stt")
    with pytest.raises(ProviderError) as err:
        await whisper().transcribe(PCM, 16000)
    assert err.value.code == "bad_request" and "too short" in str(err.value)
    assert route.call_count == 1
    assert errors("groq", "bad_request", service="stt") == before + 1


@respx.mock
async def test_whisper_retries_5xx_then_succeeds() -> None:
    route = respx.post(GROQ_STT).mock(
        side_effect=[httpx.Response(503), httpx.ReadTimeout("slow"), httpx.Response(200, json={"text": "yes"})]
    )
    assert (await whisper().transcribe(PCM, 16000)).text == "yes"
    assert route.call_count == 3


@respx.mock
async def test_whisper_401_names_the_key() -> None:
    route = respx.post(GROQ_STT).mock(return_value=httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(ProviderError) as err:
        await whisper().transcribe(PCM, 16000)
    assert err.value.code == "auth" and "GROQ_API_KEY" in str(err.value)
    assert route.call_count == 1


async def test_whisper_missing_key_is_auth() -> None:
    with pytest.raises(ProviderError) as err:
        await GroqWhisperStt(SttWorkerSettings(groq_api_key="")).warmup()
    assert err.value.code == "auth" and "GROQ_API_KEY" in str(err.value)


# --- live ----------------------------------------------------------------------------------------------------


@pytest.mark.live(env="GROQ_API_KEY")
async def test_live_groq_llm_and_whisper() -> None:
    llm = GroqLlm(LlmWorkerSettings())
    deltas = await collect(llm, temperature=0.0, max_tokens=10)
    assert "".join(d.text for d in deltas).strip()
    assert deltas[-1].finish_reason in ("stop", "length")
    stt = GroqWhisperStt(SttWorkerSettings())
    result = await stt.transcribe(PCM, 16000, language="en")
    assert isinstance(result.text, str)
    await llm.aclose()
    await stt.aclose()


@pytest.mark.live(env="OPENAI_API_KEY")
async def test_live_openai_llm() -> None:
    llm = OpenAICompatLlm(LlmWorkerSettings())
    deltas = await collect(llm, temperature=0.0, max_tokens=10)
    assert "".join(d.text for d in deltas).strip()
    assert deltas[-1].completion_tokens
    await llm.aclose()
