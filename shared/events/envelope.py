"""The envelope every bus event shares, and the error a worker reports.

Every event carries ``call_id``, ``turn_id`` and ``trace_id`` so that a log line or a trace can follow one
turn across the gateway and the workers. Audio travels as base64 inside JSON: it costs a third more bytes
but keeps one self-describing format on every subject (bounded by ``MAX_TURN_SECONDS``; see ARCHITECTURE.md).
"""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
EVENT_HEADER = "Victoria-Event"


def new_id() -> str:
    return uuid.uuid4().hex


class Event(BaseModel):
    """Common envelope: version, ids and a wall-clock timestamp (seconds since the epoch)."""

    model_config = ConfigDict(extra="ignore", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    v: int = SCHEMA_VERSION
    event_id: str = Field(default_factory=new_id)
    call_id: str = Field(min_length=1, max_length=256)
    turn_id: int | None = None
    trace_id: str = Field(default_factory=new_id)
    ts: float = Field(default_factory=time.time)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def to_wire(self) -> tuple[bytes, dict[str, str]]:
        """Payload and headers for the bus. Events that carry audio travel as the raw audio bytes with the
        rest of the event as JSON in the ``Victoria-Event`` header: no base64 (a third fewer bytes, no
        encoding either side) and 30 s of 16 kHz speech fits NATS' 1 MiB payload."""
        audio = getattr(self, "audio", None)
        if isinstance(audio, bytes) and audio:
            return audio, {EVENT_HEADER: self.model_dump_json(exclude={"audio"})}
        return self.to_bytes(), {}


class ErrorInfo(BaseModel):
    """Why a piece of work failed; ``retryable`` tells the gateway whether another worker may succeed."""

    code: str
    message: str
    retryable: bool = False


NOT_CHAINED = "not_chained"  # ErrorInfo code: a worker could not hand a chained request on; nobody has it
