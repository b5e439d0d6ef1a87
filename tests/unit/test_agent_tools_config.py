"""An agent's tools, DTMF and webhook settings are validated when written, with the field's path; what the
LLM is offered is exactly what the config says; HMAC signatures verify and refuse tampering and replay."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.agent_tools import ToolDef, argument_errors
from shared.call_config import AgentSpec, CallConfig
from shared.events import ChatMessage, LlmChunk, ToolCall
from shared.signing import DEVELOPMENT_SECRET, key_for, sign, signing_secret, verify

WEATHER = {
    "kind": "http",
    "name": "get_weather",
    "description": "The weather in a city",
    "url": "https://tools.example.com/weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def agent(**fields: object) -> AgentSpec:
    return AgentSpec.model_validate(fields)


def error_of(**fields: object) -> str:
    with pytest.raises(ValidationError) as info:
        agent(**fields)
    return str(info.value)


def test_an_agent_with_every_kind_of_tool_resolves_into_the_call_config() -> None:
    spec = agent(
        tools=[
            {"kind": "end_call"},
            {"kind": "transfer_call", "targets": {"sales": "+34910000000", "support": "sip:help@pbx.example.com"}},
            {"kind": "send_dtmf"},
            WEATHER,
        ],
        dtmf={"mode": "collect", "sensitive": True},
        webhook={"url": "https://crm.example.com/victoria"},
    )
    config = CallConfig.resolve("a", 1, spec, "twilio")
    names = [tool.spec().name for tool in config.tools]
    assert names == ["end_call", "transfer_call", "send_dtmf", "get_weather"]
    transfer = config.tools[1].spec()
    assert transfer.parameters["properties"]["target"]["enum"] == ["sales", "support"]  # names, never numbers
    assert config.tools[3].spec().parameters == WEATHER["parameters"]
    assert config.dtmf.sensitive and str(config.webhook.url) == "https://crm.example.com/victoria"
    assert config.text("tool_filler_message") == "One moment, please."


def test_texts_for_actions_follow_the_agent_language() -> None:
    config = CallConfig.resolve("a", 1, agent(language="es-ES"), "browser")
    assert config.tool_filler_message == "Un momento, por favor."
    assert "Adiós" in config.end_call_message and config.transfer_message


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({"kind": "http", "url": "https://x.example.com"}, "needs a name and a url"),
        ({"kind": "http", "name": "t"}, "needs a name and a url"),
        ({"kind": "http", "name": "t", "url": "ftp://x.example.com"}, "URL scheme"),
        ({**WEATHER, "parameters": {"type": "array"}}, '"type": "object"'),
        ({**WEATHER, "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}, "valid JSON schema"),
        ({"kind": "end_call", "url": "https://x.example.com"}, "built in"),
        ({"kind": "transfer_call"}, "at least one target"),
        ({"kind": "transfer_call", "targets": {"boss": "0034910000000"}}, "neither an E.164"),
        ({"kind": "transfer_call", "targets": {"Boss Man": "+34910000000"}}, "transfer target name"),
        ({"kind": "send_dtmf", "targets": {"a": "+34910000000"}}, "transfer_call only"),
        ({**WEATHER, "name": "rm -rf"}, "pattern"),
        ({"kind": "shell", "name": "x"}, "kind"),
        ({**WEATHER, "timeout_s": 120}, "timeout_s"),
        ({"kind": "end_call", "cancellable": False}, "cancellable must be true"),
        ({"kind": "send_dtmf", "cancellable": False}, "cancellable must be true"),
        (
            {"kind": "transfer_call", "targets": {"sales": "+34910000000"}, "cancellable": False},
            "cancellable must be true",
        ),
        (
            {**WEATHER, "parameters": {"type": "object", "$ref": "https://evil.example.com/s.json"}},
            "parameters.$ref 'https://evil.example.com/s.json': only local references",
        ),
        (
            {
                **WEATHER,
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"anyOf": [{"type": "null"}, {"$ref": "other.json#/city"}]}},
                },
            },
            "parameters.properties.city.anyOf[1].$ref 'other.json#/city'",
        ),
    ],
)
def test_a_bad_tool_is_refused_with_its_path(tool: dict[str, object], message: str) -> None:
    error = error_of(tools=[tool])
    assert "tools.0" in error and message in error, error


def test_an_http_tool_may_run_past_a_barge_in_and_use_local_references() -> None:
    local = {
        "type": "object",
        "$defs": {"city": {"type": "string"}},
        "properties": {"city": {"$ref": "#/$defs/city"}, "$ref": {"type": "string"}},  # (a property named so)
    }
    spec = agent(tools=[{**WEATHER, "cancellable": False, "parameters": local}])
    [tool] = spec.tools
    assert not tool.cancellable
    assert argument_errors(tool, {"city": "Oslo"}) is None
    assert "is not of type 'string'" in (argument_errors(tool, {"city": 3}) or "")


def test_tool_names_are_unique() -> None:
    assert "two tools are named 'get_weather'" in error_of(tools=[WEATHER, WEATHER])
    assert "two tools are named 'end_call'" in error_of(tools=[{"kind": "end_call"}, {"kind": "end_call"}])


def test_bad_dtmf_and_webhook_settings_are_refused() -> None:
    assert "dtmf.mode" in error_of(dtmf={"mode": "sometimes"})
    assert "dtmf.timeout_s" in error_of(dtmf={"timeout_s": 0})
    assert "webhook.url" in error_of(webhook={"url": "not a url"})
    assert "tool_filler_after_ms" in error_of(tool_filler_after_ms=-1)


def test_arguments_are_checked_against_the_schema_before_anything_runs() -> None:
    weather = ToolDef.model_validate(WEATHER)
    assert argument_errors(weather, {"city": "Madrid"}) is None
    assert "'city' is a required property" in (argument_errors(weather, {}) or "")
    assert "must be a JSON object" in (argument_errors(weather, ["Madrid"]) or "")
    transfer = ToolDef.model_validate({"kind": "transfer_call", "targets": {"sales": "+34910000000"}})
    assert argument_errors(transfer, {"target": "sales"}) is None
    assert "is not one of" in (argument_errors(transfer, {"target": "+15550000000"}) or "")
    dtmf = ToolDef.model_validate({"kind": "send_dtmf"})
    assert argument_errors(dtmf, {"digits": "12#"}) is None
    assert argument_errors(dtmf, {"digits": "12; rm"}) is not None


def test_tool_calls_travel_on_the_bus_in_the_openai_shape() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Madrid"}')
    chunk = LlmChunk.model_validate_json(LlmChunk(call_id="c", done=True, tool_calls=[call]).model_dump_json())
    assert chunk.tool_calls == [call]
    asked = ChatMessage(role="assistant", content="", tool_calls=[call]).openai()
    assert asked["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Madrid"}'},
    }
    answered = ChatMessage(role="tool", content='{"temp": 21}', tool_call_id="call_1").openai()
    assert answered == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1"}
    assert ChatMessage(role="user", content="hi").openai() == {"role": "user", "content": "hi"}


def test_signatures_verify_and_refuse_tampering_replay_and_the_wrong_key() -> None:
    body = json.dumps({"city": "Madrid"}).encode()
    header = sign("s3cret", body, now=1_000_000)
    assert header.startswith("t=1000000,v1=")
    assert verify("s3cret", body, header, now=1_000_010)
    assert not verify("s3cret", body + b" ", header, now=1_000_010)  # altered body
    assert not verify("other", body, header, now=1_000_010)  # wrong key
    assert not verify("s3cret", body, header, now=1_000_000 + 301)  # replayed too late
    assert not verify("s3cret", body, "garbage", now=1_000_000)
    assert signing_secret("  ") == DEVELOPMENT_SECRET and signing_secret("k") == "k"
    # what a receiver holds is its own key (tests/unit/test_signing_keys.py): another URL's verifies nothing
    mine, theirs = key_for("s3cret", "https://a.example/tool"), key_for("s3cret", "https://b.example/tool")
    assert verify(mine, body, sign(mine, body)) and not verify(theirs, body, sign(mine, body))
