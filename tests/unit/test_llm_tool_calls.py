"""Tool calling in the LLM providers, at the HTTP boundary for the cloud SDKs (respx serving the streamed
``chat.completion.chunk`` bodies OpenAI and Groq document for tool calls) and without a model for the local
provider's Hermes prompt and parser.

Recorded shapes: OpenAI streams a call as a first chunk with ``id``, ``type`` and ``function.name`` and empty
``arguments``, then chunks of argument fragments (same ``index``, no id or name), then a chunk with an empty
delta and ``finish_reason: "tool_calls"``, then (with ``stream_options.include_usage``) a chunk with no
choices and the usage, then ``[DONE]``. Groq streams the same shape, and often the whole call in one chunk,
with the usage also under ``x_groq.usage`` on the last chunk.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers.base import Delta
from services.llm_worker.providers.groq import GroqLlm
from services.llm_worker.providers.hermes_tools import CallText, parse_calls, render_chat
from services.llm_worker.providers.local_llama import LocalLlamaLlm
from services.llm_worker.providers.openai_compat import OpenAICompatLlm
from services.llm_worker.providers.tool_deltas import bounded_call
from shared.agent_tools import ToolDef, argument_errors
from shared.events import ChatMessage, ToolCall, ToolSpec
from shared.model_parts import QWEN_05B, model_file
from shared.worker import ProviderError

OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
GROQ_CHAT = "https://api.groq.com/openai/v1/chat/completions"
FAST = {"llm_retry_base_delay_s": 0.001, "llm_retry_max_delay_s": 0.01}
END_CALL = ToolSpec(
    name="end_call",
    description="Hang up once the caller says goodbye.",
    parameters={"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
)
TRANSFER = ToolSpec(
    name="transfer_call",
    description="Transfer the caller to a person.",
    parameters={"type": "object", "properties": {"target": {"type": "string", "enum": ["sales", "support"]}}},
)
MESSAGES = [
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="user", content="is the shop open?"),
    ChatMessage(
        role="assistant",
        content="Let me check.",
        tool_calls=[ToolCall(id="call_hours1", name="opening_hours", arguments='{"day": "today"}')],
    ),
    ChatMessage(role="tool", tool_call_id="call_hours1", content='{"open": "9-18"}'),
    ChatMessage(role="assistant", content="We are open from nine to six."),
    ChatMessage(role="user", content="great, thanks, bye"),
]


def openai_llm(**overrides: Any) -> OpenAICompatLlm:
    return OpenAICompatLlm(LlmWorkerSettings(**{"openai_api_key": "sk-test", **FAST, **overrides}))


def groq_llm(**overrides: Any) -> GroqLlm:
    return GroqLlm(LlmWorkerSettings(**{"groq_api_key": "gsk-test", **FAST, **overrides}))


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9x",
        "object": "chat.completion.chunk",
        "created": 1733000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0705bf87c0",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def call_start(index: int, call_id: str | None, name: str) -> dict[str, Any]:
    start: dict[str, Any] = {"index": index, "type": "function", "function": {"name": name, "arguments": ""}}
    if call_id is not None:
        start["id"] = call_id
    return start


def whole_call(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def args(index: int, fragment: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


USAGE = {
    "id": "chatcmpl-9x",
    "object": "chat.completion.chunk",
    "created": 1733000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [],
    "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99},
}
END_CALL_STREAM = [
    chunk({"role": "assistant", "content": None, "tool_calls": [call_start(0, "call_Xy12", "end_call")]}),
    chunk(args(0, '{"')),
    chunk(args(0, "reason")),
    chunk(args(0, '":"')),
    chunk(args(0, "caller said bye")),
    chunk(args(0, '"}')),
    chunk({}, "tool_calls"),
    USAGE,
]


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    if done:
        events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


async def collect(provider: Any, messages: list[ChatMessage] = MESSAGES, **kwargs: Any) -> list[Delta]:
    return [d async for d in provider.stream(messages, **kwargs)]


# --- OpenAI (AsyncOpenAI) -------------------------------------------------------------------------------------


@respx.mock
async def test_openai_assembles_a_streamed_call_and_sends_tools_and_tool_messages() -> None:
    route = respx.post(OPENAI_CHAT).mock(return_value=sse_response(sse(*END_CALL_STREAM)))
    deltas = await collect(openai_llm(), tools=[END_CALL, TRANSFER])
    call = ToolCall(id="call_Xy12", name="end_call", arguments='{"reason":"caller said bye"}')
    assert deltas == [Delta(finish_reason="tool_calls", prompt_tokens=82, completion_tokens=17, tool_calls=(call,))]
    body = json.loads(route.calls.last.request.content)
    assert body["tools"] == [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in (END_CALL, TRANSFER)
    ]
    assert body["messages"][2] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_hours1",
                "type": "function",
                "function": {"name": "opening_hours", "arguments": '{"day": "today"}'},
            }
        ],
    }
    assert body["messages"][3] == {"role": "tool", "content": '{"open": "9-18"}', "tool_call_id": "call_hours1"}
    assert body["messages"][5] == {"role": "user", "content": "great, thanks, bye"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"


@respx.mock
async def test_openai_speaks_text_first_then_two_parallel_calls_at_the_end() -> None:
    stream = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "One moment,"}),
        chunk({"content": " transferring you."}),
        chunk({"tool_calls": [call_start(0, "call_a", "transfer_call")]}),
        chunk(args(0, '{"target": "sales"}')),
        chunk({"tool_calls": [call_start(1, "call_b", "end_call")]}),
        chunk(args(1, '{"reason": "transferred"}')),
        chunk({}, "tool_calls"),
        USAGE,
    ]
    respx.post(OPENAI_CHAT).mock(return_value=sse_response(sse(*stream)))
    deltas = await collect(openai_llm(), tools=[END_CALL, TRANSFER])
    assert [d.text for d in deltas[:-1]] == ["One moment,", " transferring you."]
    assert all(not d.tool_calls and d.finish_reason is None for d in deltas[:-1])
    assert deltas[-1].finish_reason == "tool_calls"
    assert deltas[-1].tool_calls == (
        ToolCall(id="call_a", name="transfer_call", arguments='{"target": "sales"}'),
        ToolCall(id="call_b", name="end_call", arguments='{"reason": "transferred"}'),
    )


@respx.mock
async def test_without_tools_the_request_offers_none_and_the_reply_has_no_calls() -> None:
    route = respx.post(OPENAI_CHAT).mock(
        return_value=sse_response(sse(chunk({"content": "Bye!"}), chunk({}, "stop"), USAGE))
    )
    deltas = await collect(openai_llm())
    assert "tools" not in json.loads(route.calls.last.request.content)
    assert deltas == [Delta(text="Bye!"), Delta(finish_reason="stop", prompt_tokens=82, completion_tokens=17)]


@respx.mock
async def test_a_reply_cut_at_max_tokens_mid_arguments_calls_nothing() -> None:
    stream = [*END_CALL_STREAM[:3], chunk({}, "length"), USAGE]
    respx.post(OPENAI_CHAT).mock(return_value=sse_response(sse(*stream)))
    deltas = await collect(openai_llm(), tools=[END_CALL])
    assert deltas[-1].finish_reason == "length" and deltas[-1].tool_calls == ()


@respx.mock
async def test_a_compatible_server_without_ids_or_saying_stop_still_yields_tool_calls() -> None:
    """vLLM/Ollama-like: no call id, and "stop" as the finish reason of a reply that called a tool."""
    stream = [chunk({"tool_calls": [call_start(0, None, "end_call")]}), chunk(args(0, '{"reason": "bye"}'))]
    respx.post("http://127.0.0.1:11434/v1/chat/completions").mock(
        return_value=sse_response(sse(*stream, chunk({}, "stop")))
    )
    llm = openai_llm(openai_api_key="", openai_base_url="http://127.0.0.1:11434/v1")
    deltas = await collect(llm, tools=[END_CALL])
    (call,) = deltas[-1].tool_calls
    assert deltas[-1].finish_reason == "tool_calls"
    assert call.name == "end_call" and call.arguments == '{"reason": "bye"}'
    assert call.id.startswith("call_") and len(call.id) == 13


@respx.mock
async def test_calls_of_a_batch_numbered_zero_with_their_own_ids_stay_apart() -> None:
    """Ollama numbers every call of a parallel batch 0 and tells them apart by id."""
    stream = [
        chunk({"tool_calls": [whole_call(0, "call_1", "transfer_call", '{"target": "sales"}')]}),
        chunk({"tool_calls": [whole_call(0, "call_2", "end_call", "{}")]}),
        chunk({}, "tool_calls"),
    ]
    respx.post(OPENAI_CHAT).mock(return_value=sse_response(sse(*stream)))
    deltas = await collect(openai_llm(), tools=[END_CALL, TRANSFER])
    assert [(c.id, c.name, c.arguments) for c in deltas[-1].tool_calls] == [
        ("call_1", "transfer_call", '{"target": "sales"}'),
        ("call_2", "end_call", "{}"),
    ]


@respx.mock
async def test_a_call_out_of_bounds_is_an_error_for_the_gateway_not_a_failed_turn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A long id is clipped; a name over 64 characters or arguments over 20,000 become a call the gateway
    refuses (its arguments are no JSON object) and tells the model: never a ValidationError, never a retry."""
    long_name, long_id, huge = "end_call_" + "x" * 91, "call_" + "7" * 200, json.dumps({"reason": "1234" * 6000})
    stream = [
        chunk({"tool_calls": [whole_call(0, long_id, "end_call", '{"reason": "bye"}')]}),
        chunk({"tool_calls": [whole_call(1, "call_2", long_name, "{}")]}),
        chunk({"tool_calls": [whole_call(2, "call_3", "end_call", huge)]}),
        chunk({}, "tool_calls"),
    ]
    route = respx.post(OPENAI_CHAT).mock(return_value=sse_response(sse(*stream)))
    deltas = await collect(openai_llm(), tools=[END_CALL])
    clipped, named, oversized = deltas[-1].tool_calls
    assert route.call_count == 1 and deltas[-1].finish_reason == "tool_calls"
    assert clipped == ToolCall(id=long_id[:128], name="end_call", arguments='{"reason": "bye"}')
    assert named.id == "call_2" and named.name == long_name[:64] and oversized.name == "end_call"
    for call in (named, oversized):
        assert "malformed call, not run" in json.loads(call.arguments)
        assert argument_errors(ToolDef(kind="end_call"), json.loads(call.arguments)) == (
            "arguments must be a JSON object"
        )
    logged = capsys.readouterr().out
    assert "llm_tool_call_out_of_bounds" in logged and "1234" not in logged  # lengths, not what the model wrote


@pytest.mark.parametrize(
    ("call_id", "name", "arguments"),
    [("", "x" * 65, "{}"), ("i" * 129, "end_call", "{}"), ("c", "end_call", "[" * 20_001), ("c", "n" * 999, "")],
)
def test_bounded_call_never_raises(call_id: str, name: str, arguments: str) -> None:
    call = bounded_call(call_id, name, arguments)
    assert 1 <= len(call.id) <= 128 and len(call.name) <= 64 and len(call.arguments) <= 20_000


@respx.mock
async def test_an_error_event_before_any_delta_is_retried_and_after_one_is_final() -> None:
    error = {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}
    route = respx.post(OPENAI_CHAT).mock(
        side_effect=[sse_response(sse(error, done=False)), sse_response(sse(*END_CALL_STREAM))]
    )
    deltas = await collect(openai_llm(), tools=[END_CALL])
    assert route.call_count == 2 and deltas[-1].tool_calls[0].name == "end_call"

    respx.post(OPENAI_CHAT).mock(return_value=sse_response(sse(chunk({"content": "Sure"}), error, done=False)))
    seen: list[str] = []
    with pytest.raises(ProviderError) as err:
        async for delta in openai_llm().stream(MESSAGES):
            seen.append(delta.text)
    assert seen == ["Sure"]
    assert err.value.code == "internal" and not err.value.retryable and "server had an error" in str(err.value)


class BrokenStream(httpx.AsyncByteStream):
    """A body that breaks after its first event, as a dropped connection does."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection reset by peer")


@respx.mock
async def test_a_connection_broken_mid_stream_is_internal_and_final() -> None:
    body = BrokenStream(sse(chunk({"content": "Sure"}), done=False))
    respx.post(OPENAI_CHAT).mock(return_value=httpx.Response(200, stream=body))
    seen: list[str] = []
    with pytest.raises(ProviderError) as err:
        async for delta in openai_llm().stream(MESSAGES):
            seen.append(delta.text)
    assert seen == ["Sure"]
    assert err.value.code == "internal" and not err.value.retryable and "stream broken" in str(err.value)


@respx.mock
@pytest.mark.parametrize(("status", "code", "retried"), [(403, "auth", False), (408, "timeout", True)])
async def test_sdk_status_errors_keep_their_classes(status: int, code: str, retried: bool) -> None:
    route = respx.post(OPENAI_CHAT).mock(return_value=httpx.Response(status, json={"error": {"message": "no"}}))
    with pytest.raises(ProviderError) as err:
        await collect(openai_llm(llm_max_retries=1), tools=[END_CALL])
    assert err.value.code == code
    assert route.call_count == (2 if retried else 1)


# --- Groq (AsyncGroq) -----------------------------------------------------------------------------------------


@respx.mock
async def test_groq_assembles_fragments_like_openai_and_sends_the_same_body() -> None:
    route = respx.post(GROQ_CHAT).mock(return_value=sse_response(sse(*END_CALL_STREAM)))
    deltas = await collect(groq_llm(), tools=[END_CALL])
    assert deltas[-1].tool_calls == (
        ToolCall(id="call_Xy12", name="end_call", arguments='{"reason":"caller said bye"}'),
    )
    assert deltas[-1].prompt_tokens == 82
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer gsk-test"
    body = json.loads(request.content)
    assert body["model"] == "llama-3.1-8b-instant"
    assert [t["function"]["name"] for t in body["tools"]] == ["end_call"]
    assert body["messages"][3] == {"role": "tool", "content": '{"open": "9-18"}', "tool_call_id": "call_hours1"}
    assert body["stream_options"] == {"include_usage": True}


@respx.mock
async def test_groq_whole_call_in_one_chunk_with_x_groq_usage() -> None:
    x_groq = {"id": "req_01j", "usage": {"queue_time": 0.01, "prompt_tokens": 240, "completion_tokens": 21}}
    stream = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [whole_call(0, "call_9f2k", "transfer_call", '{"target":"support"}')]}),
        chunk({}, "tool_calls", x_groq=x_groq),
    ]
    respx.post(GROQ_CHAT).mock(return_value=sse_response(sse(*stream)))
    deltas = await collect(groq_llm(), tools=[TRANSFER])
    assert deltas == [
        Delta(
            finish_reason="tool_calls",
            prompt_tokens=240,
            completion_tokens=21,
            tool_calls=(ToolCall(id="call_9f2k", name="transfer_call", arguments='{"target":"support"}'),),
        )
    ]


@respx.mock
async def test_groq_stream_stopped_early_by_x_groq_error_is_internal_and_retried() -> None:
    stopped = sse(chunk({}, None, x_groq={"id": "req_1", "error": "over capacity"}))
    route = respx.post(GROQ_CHAT).mock(side_effect=[sse_response(stopped), sse_response(sse(*END_CALL_STREAM))])
    deltas = await collect(groq_llm(), tools=[END_CALL])
    assert route.call_count == 2
    assert deltas[-1].finish_reason == "tool_calls"

    respx.post(GROQ_CHAT).mock(return_value=sse_response(stopped))
    with pytest.raises(ProviderError) as err:
        await collect(groq_llm(llm_max_retries=0), tools=[END_CALL])
    assert err.value.code == "internal" and err.value.retryable and "over capacity" in str(err.value)


# --- local llama.cpp: the Hermes prompt and parser (no model run) ---------------------------------------------


@pytest.fixture(scope="module")
def qwen_template() -> str:
    """Qwen2.5's own chat template, read from the installed GGUF's metadata (no weights loaded)."""
    pytest.importorskip("llama_cpp")
    for part in QWEN_05B.parts:
        pytest.importorskip(part.package)
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_file(QWEN_05B)), vocab_only=True, verbose=False)
    return str(llm.metadata["tokenizer.chat_template"])


def _qwen(template: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=template, eos_token="<|im_end|>", bos_token="")
    return formatter(messages=messages, tools=tools).prompt  # type: ignore[arg-type]


def test_the_rendered_chat_is_what_qwens_template_makes_of_tools_calls_and_results(qwen_template: str) -> None:
    messages = [*MESSAGES[:4], ChatMessage(role="tool", tool_call_id="call_x", content="second result"), MESSAGES[5]]
    native = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "is the shop open?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [{"type": "function", "function": {"name": "opening_hours", "arguments": {"day": "today"}}}],
        },
        {"role": "tool", "content": '{"open": "9-18"}'},
        {"role": "tool", "content": "second result"},
        {"role": "user", "content": "great, thanks, bye"},
    ]
    tools = [{"type": "function", "function": t.model_dump()} for t in (END_CALL, TRANSFER)]
    expected = _qwen(qwen_template, native, tools)
    assert "<tools>" in expected and "<tool_response>\nsecond result" in expected
    assert _qwen(qwen_template, render_chat(messages, [END_CALL, TRANSFER])) == expected


def test_without_tools_the_chat_is_the_plain_chat() -> None:
    plain = [MESSAGES[0], MESSAGES[1]]
    assert render_chat(plain, []) == [{"role": m.role, "content": m.content} for m in plain]
    (system,) = render_chat([], [END_CALL])  # no system message: one is added for the tools
    assert system["role"] == "system" and system["content"].startswith("# Tools") and '"end_call"' in system["content"]


def _feed(pieces: list[str], names: set[str]) -> tuple[str, str, tuple[ToolCall, ...]]:
    """(text spoken while streaming, text spoken at the end, calls)."""
    text = CallText(names)
    spoken = "".join(text.feed(p) for p in pieces)
    rest, calls = text.finish()
    return spoken, rest, calls


def test_text_before_a_tool_call_is_spoken_and_the_tag_split_across_tokens_is_not() -> None:
    pieces = ["Sure,", " ending", " the call.\n", "<", "tool", "_call", ">\n", '{"name": "end_call", ',
              '"arguments": {"reason": "bye"}}', "\n</tool_call>"]  # fmt: skip
    spoken, rest, calls = _feed(pieces, {"end_call"})
    assert spoken == "Sure, ending the call.\n" and rest == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("end_call", {"reason": "bye"})]
    assert calls[0].id.startswith("call_")


def test_a_lookalike_of_the_tag_is_spoken_once_it_cannot_be_the_tag() -> None:
    text = CallText({"end_call"})
    assert text.feed("Press <to") == "Press "  # held: may be the start of <tool_call>
    assert text.feed("p> now") == "<top> now"
    assert text.feed(" <") == " "
    assert text.finish() == ("<", ())  # the stream ended: the held "<" is spoken


def test_bare_json_call_without_tags_as_small_models_write_it() -> None:
    spoken, rest, calls = _feed(
        ["\n", '{"name": "transfer_call", ', '"arguments": {"target": "sales"}}'], {"transfer_call"}
    )
    assert spoken == rest == ""
    assert [(c.name, c.arguments) for c in calls] == [("transfer_call", '{"target": "sales"}')]


def test_a_leading_json_object_that_is_no_call_is_spoken_at_the_end() -> None:
    spoken, rest, calls = _feed(['{"free": ', '["10:00"]}'], {"end_call"})
    assert (spoken, rest, calls) == ("", '{"free": ["10:00"]}', ())


@pytest.mark.parametrize(
    ("held", "names"),
    [
        ('<tool_call>\n{"name": "format_disk", "arguments": {}}\n</tool_call>', ["format_disk"]),  # not offered
        ('<tool_call>\n{"name": "end_call", "arguments": {"reason": \n</tool_call>', []),  # broken JSON
        ('<tool_call>\n{"name": "end_call", "arguments": "not json"}\n</tool_call>', []),
        ('<tool_call>\n{"name": "end_call", "arguments": [1, 2]}\n</tool_call>', []),
    ],
)
def test_malformed_or_unoffered_calls_run_nothing_and_are_not_spoken(held: str, names: list[str]) -> None:
    assert _feed(["Okay. ", held], {"end_call"}) == ("Okay. ", "", ())


def test_a_local_call_with_oversized_arguments_or_a_non_string_name_never_raises() -> None:
    huge = '<tool_call>\n{"name": "end_call", "arguments": {"reason": "' + "9" * 25_000 + '"}}\n</tool_call>'
    (call,) = parse_calls(huge, {"end_call"})
    assert call.name == "end_call" and "malformed call, not run" in json.loads(call.arguments)
    assert parse_calls('<tool_call>\n{"name": ["end_call"], "arguments": {}}\n</tool_call>', {"end_call"}) == ()


def test_unparsed_tool_call_text_is_logged_by_its_length_only(capsys: pytest.CaptureFixture[str]) -> None:
    held = '<tool_call>\n{"name": "verify_pin", "arguments": {"pin": "987654'
    assert _feed(["One moment. ", held], {"verify_pin"}) == ("One moment. ", "", ())
    logged = capsys.readouterr().out
    assert "local_tool_call_unparsed" in logged and "987654" not in logged


def test_several_calls_string_arguments_and_a_missing_closing_tag() -> None:
    held = (
        '<tool_call>\n{"name": "transfer_call", "arguments": "{\\"target\\": \\"support\\"}"}\n</tool_call>\n'
        '<tool_call>\n{"name": "end_call", "arguments": {"reason": "transferred"}}'
    )
    calls = parse_calls(held, {"end_call", "transfer_call"})
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("transfer_call", {"target": "support"}),
        ("end_call", {"reason": "transferred"}),
    ]
    assert len({c.id for c in calls}) == 2


class _ScriptedLlama(LocalLlamaLlm):
    """The local provider with llama.cpp replaced by canned token texts (what ``_generate`` yields)."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__(LlmWorkerSettings())
        self.texts = texts
        self.chats: list[list[dict[str, str]]] = []
        self.stopped = threading.Event()

    def _generate(self, family: str, chat: Any, temperature: float, max_tokens: int, cancel: Any) -> Any:
        self.chats.append(chat)
        try:
            for text in self.texts:
                if cancel.is_set():
                    return
                time.sleep(0.005)
                yield Delta(text=text)
            yield Delta(finish_reason="stop", prompt_tokens=300, completion_tokens=len(self.texts))
        finally:
            self.stopped.set()


async def test_local_provider_puts_tools_in_the_prompt_and_ends_with_the_calls() -> None:
    llm = _ScriptedLlama(["Te paso", " con ventas.", "\n<tool_call>", '\n{"name": "transfer_call", "arguments": ',
                          '{"target": "sales"}}\n</tool_call>'])  # fmt: skip
    deltas = await collect(llm, [MESSAGES[0], ChatMessage(role="user", content="ventas")], tools=[TRANSFER])
    assert "".join(d.text for d in deltas) == "Te paso con ventas.\n"
    last = deltas[-1]
    assert last.finish_reason == "tool_calls" and last.prompt_tokens == 300
    assert [(c.name, c.arguments) for c in last.tool_calls] == [("transfer_call", '{"target": "sales"}')]
    (chat,) = llm.chats
    assert chat[0]["content"].startswith("Be brief.\n\n# Tools") and '"transfer_call"' in chat[0]["content"]


async def test_local_provider_without_tools_passes_text_through_unchanged() -> None:
    llm = _ScriptedLlama(['{"free": true}', " <tool_call>"])
    deltas = await collect(llm, MESSAGES[:2])
    assert [d.text for d in deltas] == ['{"free": true}', " <tool_call>", ""]
    assert deltas[-1].finish_reason == "stop" and deltas[-1].tool_calls == ()
    assert llm.chats == [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "is the shop open?"}]]


async def test_closing_the_local_stream_with_tools_stops_generation() -> None:
    llm = _ScriptedLlama([f"word{i} " for i in range(200)])
    stream = llm.stream(MESSAGES[:2], tools=[END_CALL])
    assert (await anext(stream)).text == "word0 "
    await stream.aclose()  # barge-in
    assert await asyncio.to_thread(llm.stopped.wait, 2.0)
