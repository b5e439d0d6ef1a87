"""Decoding bus messages into typed events (the inverse of ``Event.to_bytes`` / ``Event.to_wire``)."""

from __future__ import annotations

import json
from typing import Annotated, TypeVar

from pydantic import Field, TypeAdapter, ValidationError

from shared.events.envelope import EVENT_HEADER, Event
from shared.events.lifecycle import CallEnded, CallError, CallStarted, CallStatusChanged, TurnRecorded
from shared.events.work import CancelTurn, LlmChunk, LlmRequest, SttRequest, SttResult, TtsChunk, TtsRequest

AnyEvent = Annotated[
    SttRequest
    | SttResult
    | LlmRequest
    | LlmChunk
    | TtsRequest
    | TtsChunk
    | CancelTurn
    | CallStarted
    | TurnRecorded
    | CallEnded
    | CallError
    | CallStatusChanged,
    Field(discriminator="type"),
]
_any_event: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

E = TypeVar("E", bound=Event)


class EventDecodeError(ValueError):
    """A bus message that is not valid JSON or not a known event of the expected type."""


def decode_event(data: bytes) -> AnyEvent:
    try:
        return _any_event.validate_json(data)
    except ValidationError as exc:
        raise EventDecodeError(_short(exc)) from exc


def decode_as(data: bytes, model: type[E], headers: dict[str, str] | None = None) -> E:
    """Decode a bus message into ``model``: JSON payload, or audio payload + JSON header (``to_wire``)."""
    try:
        meta = headers.get(EVENT_HEADER) if headers else None
        if meta is None:
            return model.model_validate_json(data)
        fields = json.loads(meta)
        if not isinstance(fields, dict):
            raise EventDecodeError("the event header must be a JSON object")
        return model.model_validate({**fields, "audio": data})
    except ValidationError as exc:
        raise EventDecodeError(_short(exc)) from exc
    except json.JSONDecodeError as exc:
        raise EventDecodeError(f"the event header is not JSON: {exc}") from exc


def _short(exc: ValidationError) -> str:
    errs = exc.errors(include_url=False)[:3]
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errs)
