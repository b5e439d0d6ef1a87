"""The browser protocol's models (``transports/protocol.py``): the generated TypeScript is in step with them, each
message survives a round trip, and the simulator socket maps every kind of bad message to its documented code."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from services.gateway.transports import browser
from services.gateway.transports.protocol import (
    CLIENT_MESSAGE,
    CLIENT_MESSAGES,
    SERVER_MESSAGE,
    SERVER_MESSAGES,
    AudioMessage,
    Clear,
    ClientMessage,
    DtmfMessage,
    Ended,
    ErrorMessage,
    ServerMessage,
    Started,
    StartMessage,
    StateChanged,
    StopMessage,
    ToolActivity,
    Transcript,
    Transferred,
    TurnMetrics,
)
from tools import gen_protocol_ts

SAMPLES: dict[type[BaseModel], BaseModel] = {
    StartMessage: StartMessage(sample_rate=8000, agent_id="shop", token="v1.abc"),
    AudioMessage: AudioMessage(data="AAA="),
    StopMessage: StopMessage(),
    DtmfMessage: DtmfMessage(digit="#"),
    Started: Started(call_id="c1", sample_rate=16000, agent_id="default"),
    Transcript: Transcript(role="assistant", text="Hello", turn_id=2, interrupted=True),
    Clear: Clear(),
    TurnMetrics: TurnMetrics(turn_id=1, stt_done_ms=120.5, first_audio_sent_ms=450.0),
    StateChanged: StateChanged(caller="listening", agent="thinking", event="caller_turn_ended"),
    ErrorMessage: ErrorMessage(code="busy", message="the gateway is at capacity"),
    ToolActivity: ToolActivity(turn_id=3, name="lookup", status="ok", text="lookup({}) → {}", duration_ms=12.5),
    Transferred: Transferred(target="+34910000000"),
    Ended: Ended(reason="caller_hangup"),
}


def test_the_committed_typescript_is_what_the_models_generate() -> None:
    committed = gen_protocol_ts.OUT.read_text(encoding="utf-8")
    assert committed == gen_protocol_ts.render(), "protocol.ts is stale: run `make protocol`"
    assert committed.startswith("// Generated") and "do not edit" in committed.splitlines()[0]


def test_the_typescript_has_every_message_and_both_unions() -> None:
    ts = gen_protocol_ts.render()
    for model in (*CLIENT_MESSAGES, *SERVER_MESSAGES):
        assert f"export interface {model.__name__} {{" in ts
        assert f"  type: '{model.model_fields['type'].default}';" in ts  # the tag is never optional
    assert "export type ClientMessage = StartMessage | AudioMessage | StopMessage | DtmfMessage;" in ts
    assert "  agent: 'idle' | 'thinking' | 'speaking' | 'ending' | 'closing' | 'ended';" in ts
    assert "  stt_done_ms?: number | null;" in ts and "  turn_id: number;" in ts
    assert "  sample_rate?: 8000 | 16000 | 24000 | 48000;" in ts


def test_check_fails_on_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "protocol.ts"
    monkeypatch.setattr(gen_protocol_ts, "OUT", out)
    assert gen_protocol_ts.main([]) == 0 and gen_protocol_ts.main(["--check"]) == 0
    out.write_text(out.read_text() + "// edited by hand\n")
    assert gen_protocol_ts.main(["--check"]) == 1


def test_a_schema_outside_the_translated_subset_is_an_error() -> None:
    with pytest.raises(ValueError, match="no TypeScript translation"):
        gen_protocol_ts.ts_type({"type": "array", "items": {"type": "string"}})
    assert gen_protocol_ts.ts_type({"anyOf": [{"const": "it's"}, {"type": "null"}]}) == "'it\\'s' | null"


def test_the_unions_and_the_tuples_list_the_same_messages() -> None:
    def members(union: object) -> set[type]:
        return set(typing.get_args(typing.get_args(union)[0]))

    assert members(ServerMessage) == set(SERVER_MESSAGES)
    assert members(ClientMessage) == set(CLIENT_MESSAGES)
    assert set(SAMPLES) == set(SERVER_MESSAGES) | set(CLIENT_MESSAGES)


@pytest.mark.parametrize("model", SERVER_MESSAGES, ids=lambda m: m.__name__)
def test_server_messages_round_trip(model: type[BaseModel]) -> None:
    sample = SAMPLES[model]
    wire = sample.model_dump_json(exclude_none=True)
    assert json.loads(wire)["type"] == model.model_fields["type"].default
    assert "null" not in wire  # unset optional fields are left out
    assert SERVER_MESSAGE.validate_json(wire) == sample


@pytest.mark.parametrize("model", CLIENT_MESSAGES, ids=lambda m: m.__name__)
def test_client_messages_round_trip(model: type[BaseModel]) -> None:
    sample = SAMPLES[model]
    assert CLIENT_MESSAGE.validate_json(sample.model_dump_json(exclude_none=True)) == sample


def test_server_messages_are_exact_and_client_messages_tolerate_new_fields() -> None:
    with pytest.raises(ValidationError):
        Ended(reason="x", extra_field=1)  # type: ignore[call-arg]
    assert CLIENT_MESSAGE.validate_python({"type": "stop", "from_a_newer_client": 1}) == StopMessage()
    with pytest.raises(ValidationError):  # the tag is required on the wire even though the model defaults it
        CLIENT_MESSAGE.validate_python({"sample_rate": 16000})
    with pytest.raises(ValidationError):
        CLIENT_MESSAGE.validate_python({"type": "start", "sample_rate": 11025})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"start","sample_rate":16000,"agent_id":"shop","future":1}', "shop"),
        ('{"type":"start"}', None),
        ('{"sample_rate":16000}', "Unable to extract tag"),
        ('{"type":"stop"}', "must be a start message, not 'stop'"),
        ('{"type":"start","sample_rate":11025}', "Input should be 8000, 16000, 24000 or 48000"),
        ("{not json", "Invalid JSON"),
        (None, "not binary audio"),
    ],
)
def test_the_first_message_must_be_a_start(text: str | None, expected: str | None) -> None:
    parsed = browser._parse_start(text)
    if isinstance(parsed, StartMessage):
        assert parsed.agent_id == expected
    else:
        assert expected is not None and expected in parsed


class _Session:
    def __init__(self) -> None:
        self.audio: list[bytes] = []

    async def on_audio(self, data: bytes) -> None:
        self.audio.append(data)


@pytest.mark.parametrize(
    ("text", "code", "audio"),
    [
        ('{"type":"stop"}', "stop", None),
        ('{"type":"stop","reason":"bye"}', "stop", None),
        ('{"type":"audio","data":"AAAAAA=="}', None, bytes(4)),
        ('{"type":"audio","data":"AAAAAA==","seq":7}', None, bytes(4)),
        ('{"type":"audio"}', None, b""),
        ('{"type":"audio","data":"AAAA"}', "bad_audio", None),  # 3 bytes: not PCM16
        ('{"type":"audio","data":"***"}', "bad_audio", None),
        ('{"type":"audio","data":"\\u00e9\\u00e9\\u00e9\\u00e9"}', "bad_audio", None),
        ('{"type":"audio","data":12}', "bad_audio", None),
        ('{"type":"audio","data":null}', "bad_audio", None),
        ('{"type":"start"}', "already_started", None),
        ('{"type":"start","sample_rate":"x"}', "already_started", None),
        ('{"type":"dance"}', "unknown_message", None),
        ('{"type":["stop"]}', "unknown_message", None),
        ("{}", "unknown_message", None),
        ("[1, 2]", "bad_message", None),
        ('"stop"', "bad_message", None),
        ("{not json", "bad_json", None),
        ('{"type":"audio","data":' + "9" * 5000 + "}", "bad_json", None),
        ('{"type":' + "[" * 5000, "bad_json", None),
    ],
)
async def test_control_messages_keep_their_error_codes(text: str, code: str | None, audio: bytes | None) -> None:
    session = _Session()
    problem = await browser._control(session, text)  # type: ignore[arg-type]
    assert (problem[0] if problem else None) == code
    assert session.audio == ([] if audio is None else [audio])
