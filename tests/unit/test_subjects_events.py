"""Subjects, call-id tokens and the event envelope."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from shared import subjects
from shared.events import (
    CallStarted,
    ChatMessage,
    EventDecodeError,
    LlmChunk,
    LlmContinuation,
    LlmRequest,
    SttRequest,
    TtsChunk,
    TtsContinuation,
    TtsRequest,
    TurnRecorded,
    VoiceSpec,
    decode_as,
    decode_event,
)


@pytest.mark.parametrize(
    "call_id",
    ["abc123", "v3:Tn8X.ab-cd_ef", "CA1234567890abcdef", "a b*c>d.e", "ñandú:1", "__", "_41"],
)
def test_safe_token_is_a_single_reversible_subject_token(call_id: str) -> None:
    token = subjects.safe_token(call_id)
    assert all(ch.isalnum() or ch in "-_" for ch in token)
    assert subjects.unsafe_token(token) == call_id


def test_safe_token_is_injective_for_escape_lookalikes() -> None:
    assert subjects.safe_token("_41") != subjects.safe_token("A")
    assert subjects.safe_token("a:b") != subjects.safe_token("a_3Ab")


def test_telnyx_id_makes_a_valid_call_subject() -> None:
    subject = subjects.call_subject("v3:abc.def", "tts")
    assert subject.count(".") == 2 and subject.startswith("call.") and subject.endswith(".tts")


def test_empty_call_id_is_rejected() -> None:
    with pytest.raises(ValueError):
        subjects.safe_token("")


def test_audio_round_trips_as_base64_json() -> None:
    audio = bytes(range(256)) * 4
    req = SttRequest(call_id="c1", turn_id=3, audio=audio, reply_to="call.c1.stt")
    wire = json.loads(req.to_bytes())
    assert wire["type"] == "stt.request" and wire["v"] == 1 and isinstance(wire["audio"], str)
    back = decode_event(req.to_bytes())
    assert isinstance(back, SttRequest) and back.audio == audio and back.trace_id == req.trace_id


def test_decode_dispatches_on_type() -> None:
    chunk = LlmChunk(call_id="c", turn_id=1, seq=2, delta="hi")
    assert isinstance(decode_event(chunk.to_bytes()), LlmChunk)
    turn = TurnRecorded(call_id="c", seq=0, role="user", text="x", started_at=1.0, ended_at=2.0)
    assert decode_as(turn.to_bytes(), TurnRecorded).text == "x"


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"type":"nope","call_id":"x"}',
        b'{"type":"tts.chunk"}',
        b'{"type":"call.started","call_id":""}',
    ],
)
def test_malformed_events_raise_a_clear_error(data: bytes) -> None:
    with pytest.raises(EventDecodeError) as info:
        decode_event(data)
    assert str(info.value)


def test_decode_as_rejects_another_event_type() -> None:
    with pytest.raises(EventDecodeError):
        decode_as(TtsChunk(call_id="c").to_bytes(), CallStarted)


def test_events_have_unique_ids_and_timestamps() -> None:
    a, b = CallStarted(call_id="x"), CallStarted(call_id="x")
    assert a.event_id != b.event_id and a.ts > 0


def test_audio_events_travel_as_raw_bytes_with_a_json_header() -> None:
    audio = bytes(range(256)) * 100
    req = SttRequest(call_id="c1", turn_id=2, audio=audio, reply_to="call.c1.stt")
    payload, headers = req.to_wire()
    assert payload == audio  # no base64
    assert "audio" not in json.loads(headers["Victoria-Event"])
    back = decode_as(payload, SttRequest, headers)
    assert back == req


def test_events_without_audio_travel_as_json() -> None:
    chunk = LlmChunk(call_id="c", seq=1, delta="hi")
    payload, headers = chunk.to_wire()
    assert headers == {} and decode_as(payload, LlmChunk, headers) == chunk
    empty = TtsChunk(call_id="c", done=True)  # the last chunk may carry no audio
    payload, headers = empty.to_wire()
    assert decode_as(payload, TtsChunk, headers) == empty


@pytest.mark.parametrize("header", ["not json", "[1, 2]", '{"type": "stt.request"}'])
def test_bad_event_headers_are_clear_errors(header: str) -> None:
    with pytest.raises(EventDecodeError):
        decode_as(b"\x00\x01", SttRequest, {"Victoria-Event": header})


def test_a_tts_continuation_makes_the_request_it_carries() -> None:
    voice = VoiceSpec(provider="azure", name="es-ES-Elvira", style="calm", rate=1.2, pitch=-5.0)
    cont = TtsContinuation(voice=voice, language="es-ES", sample_rate=8000, encoding="mulaw", reply_to="call.x.tts")
    req = cont.request("call-1", 4, 2, "Hola.", trace_id="t-1")
    assert (req.call_id, req.turn_id, req.segment, req.text, req.trace_id) == ("call-1", 4, 2, "Hola.", "t-1")
    assert (req.voice, req.language, req.sample_rate, req.encoding, req.reply_to) == (
        voice,
        "es-ES",
        8000,
        "mulaw",
        "call.x.tts",
    )
    assert (req.skip_bytes, req.attempt) == (0, 0)
    assert cont.request("call-1", 4, 2, "Hola.").trace_id != "t-1"  # a fresh trace when none is given


def test_an_llm_continuation_adds_the_callers_words_and_keeps_the_rest() -> None:
    tts = TtsContinuation(reply_to="call.x.tts")
    system = ChatMessage(role="system", content="Be brief.")
    cont = LlmContinuation(
        messages=[system], provider="groq", model="m", temperature=0.2, max_tokens=64, reply_to="call.x.llm", tts=tts
    )
    req = cont.request("call-1", 5, "What time is it?", trace_id="t-2")
    assert req.messages == [system, ChatMessage(role="user", content="What time is it?")]
    assert cont.messages == [system]  # the continuation itself is not changed
    assert (req.provider, req.model, req.temperature, req.max_tokens, req.reply_to, req.tts) == (
        "groq",
        "m",
        0.2,
        64,
        "call.x.llm",
        tts,
    )
    assert (req.call_id, req.turn_id, req.trace_id, req.post_call, req.resume, req.attempt) == (
        "call-1",
        5,
        "t-2",
        False,
        "",
        0,
    )


@pytest.mark.parametrize(
    ("continuation", "request_type"), [(TtsContinuation, TtsRequest), (LlmContinuation, LlmRequest)]
)
def test_a_continuation_and_its_request_validate_shared_fields_alike(
    continuation: type[BaseModel], request_type: type[BaseModel]
) -> None:
    """One definition: every field a continuation carries is the request's field, with the same limits."""
    for name, field in continuation.model_fields.items():
        theirs = request_type.model_fields[name]
        mine = (field.annotation, field.metadata, field.default, field.default_factory)
        assert mine == (theirs.annotation, theirs.metadata, theirs.default, theirs.default_factory), name
