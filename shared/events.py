"""Typed, versioned events for everything that travels on the bus.

Every event carries ``call_id``, ``turn_id`` and ``trace_id`` so that a log line or a trace can follow one
turn across the gateway and the workers. Audio travels as base64 inside JSON: it costs a third more bytes
but keeps one self-describing format on every subject (bounded by ``MAX_TURN_SECONDS``; see ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

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


# --- work requests (queue groups) and their streamed results (call-scoped subjects) ---------------------


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class VoiceSpec(BaseModel):
    provider: str | None = None
    name: str | None = None
    style: str | None = None
    rate: float = Field(default=1.0, ge=0.5, le=2.0)
    pitch: float = Field(default=0.0, ge=-50.0, le=50.0)  # percent


class TtsContinuation(BaseModel):
    """What a TTS request needs besides the text: an LLM worker given this cuts the reply into segments and
    sends each to TTS itself, so the audio doesn't wait for a round trip through the gateway."""

    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    language: str = "en-US"
    sample_rate: int = Field(default=16000, ge=8000, le=48000)
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    reply_to: str

    def request(
        self, call_id: str, turn_id: int | None, segment: int, text: str, trace_id: str | None = None
    ) -> TtsRequest:
        """One segment's TTS request (whoever sends it: the LLM worker, or the gateway)."""
        return TtsRequest(
            call_id=call_id,
            turn_id=turn_id,
            **({"trace_id": trace_id} if trace_id else {}),
            segment=segment,
            text=text,
            voice=self.voice,
            language=self.language,
            sample_rate=self.sample_rate,
            encoding=self.encoding,
            reply_to=self.reply_to,
        )


class LlmContinuation(BaseModel):
    """The LLM request to send after the transcript (the conversation so far, without the caller's new
    message): an STT worker given this sends it itself on a final transcript with words."""

    messages: list[ChatMessage] = Field(min_length=1)
    provider: str | None = None
    model: str | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=160, ge=1, le=4096)
    reply_to: str
    tts: TtsContinuation | None = None

    def request(self, call_id: str, turn_id: int | None, text: str, trace_id: str | None = None) -> LlmRequest:
        """The LLM request for the caller's ``text`` (whoever sends it: the STT worker, or the gateway)."""
        return LlmRequest(
            call_id=call_id,
            turn_id=turn_id,
            **({"trace_id": trace_id} if trace_id else {}),
            messages=[*self.messages, ChatMessage(role="user", content=text)],
            provider=self.provider,
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            reply_to=self.reply_to,
            tts=self.tts,
        )


def work_key(call_id: str, turn_id: int | None, stage: str, segment: int = 0, attempt: int = 0) -> str:
    """The name of one piece of work in worker heartbeats: what a gateway looks for to know it is held."""
    return f"{call_id}|{turn_id}|{stage}|{segment}|{attempt}"


class SttRequest(Event):
    type: Literal["stt.request"] = "stt.request"
    audio: bytes = Field(min_length=2)  # PCM16 little-endian mono; base64 in JSON
    sample_rate: int = Field(default=16000, ge=8000, le=48000)
    language: str | None = None
    provider: str | None = None
    model: str | None = None
    reply_to: str
    llm: LlmContinuation | None = None  # chain: the worker sends the LLM request itself


class SttResult(Event):
    type: Literal["stt.result"] = "stt.result"
    text: str = ""
    language: str | None = None
    provider: str = ""
    audio_seconds: float = 0.0
    provider_ms: float = 0.0
    worker: str = ""
    error: ErrorInfo | None = None
    chained: bool = False  # the worker sent the LLM request itself (and a worker accepted it)


class LlmRequest(Event):
    type: Literal["llm.request"] = "llm.request"
    messages: list[ChatMessage] = Field(min_length=1)
    provider: str | None = None
    model: str | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=160, ge=1, le=4096)
    reply_to: str
    tts: TtsContinuation | None = None  # chain: the worker sends each segment's TTS request itself
    # post-call work (extraction) runs after the call's final cancel: a worker never drops or cancels it as
    # the call's cancelled work (an older worker ignores the field, as before)
    post_call: bool = False
    # a retry of a reply that stopped mid-stream: the text the gateway already has; the worker streams only
    # what follows it (and numbers chained segments from ``resume_segments``)
    resume: str = Field(default="", max_length=20_000)
    resume_segments: int = Field(default=0, ge=0)
    attempt: int = Field(default=0, ge=0, le=16)  # echoed on the chunks: a retry never mixes with the first


class LlmChunk(Event):
    type: Literal["llm.chunk"] = "llm.chunk"
    seq: int = 0
    delta: str = ""
    done: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    provider: str = ""
    worker: str = ""
    error: ErrorInfo | None = None
    tts_chained: bool = False  # the worker sends the TTS requests of the segments this chunk completes
    # chained: the segments this chunk completes, exactly as the worker cut and sent them to TTS (the gateway
    # numbers its segments from these, so both always agree). None: cut them from the deltas (a worker from
    # before this field sends a chunk per token; the gateway's splitter then makes the same cuts)
    segments: list[str] | None = None
    attempt: int = 0


class TtsRequest(Event):
    type: Literal["tts.request"] = "tts.request"
    segment: int = Field(ge=0)
    text: str = Field(min_length=1, max_length=2000)
    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    language: str = "en-US"
    sample_rate: int = Field(default=16000, ge=8000, le=48000)
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    reply_to: str
    skip_bytes: int = Field(default=0, ge=0)  # a retry mid-segment: the audio the gateway already has
    attempt: int = Field(default=0, ge=0, le=16)


class TtsChunk(Event):
    type: Literal["tts.chunk"] = "tts.chunk"
    segment: int = 0
    seq: int = 0
    audio: bytes = b""
    sample_rate: int = 16000
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    done: bool = False
    provider: str = ""
    worker: str = ""
    error: ErrorInfo | None = None
    attempt: int = 0


class WorkAck(BaseModel):
    """Immediate answer to a work request: a worker took it (so the gateway can time out or retry)."""

    worker: str
    accepted: bool = True
    error: ErrorInfo | None = None


class WorkerBeat(Event):
    """A worker replica is alive and holds this work (``work_key``s): published every ``WORKER_BEAT_S``, so a
    gateway knows within a second that a replica died (its beats stop) or lost a request (no longer listed)."""

    type: Literal["worker.beat"] = "worker.beat"
    call_id: str = "-"
    service: str
    instance: str
    holding: list[str] = Field(default_factory=list)


class CancelTurn(Event):
    """Barge-in or hang-up: workers stop calling the provider for this call's turn (or all turns if None)."""

    type: Literal["turn.cancel"] = "turn.cancel"
    reason: str = "barge_in"
    # the turn is over: workers also drop its requests that arrive later (chained ones may still be on the
    # way); False for a retry's cancel, after which the same turn's work is sent again
    final: bool = True
    stage: str | None = None  # only this stage's work ("stt", "llm", "tts"); None = all of the turn's
    segment: int | None = None  # only this TTS segment


# --- lifecycle events (JetStream stream CALL_LIFECYCLE, consumed by the recorder) ------------------------


class CallStarted(Event):
    type: Literal["call.started"] = "call.started"
    agent_id: str | None = None
    client_type: Literal["browser", "twilio", "telnyx"] = "browser"
    transport_ids: dict[str, str] = Field(default_factory=dict)
    from_number: str | None = None
    to_number: str | None = None
    started_at: float = Field(default_factory=time.time)
    gateway: str | None = None  # the gateway instance that owns the call (its beats say whether it still lives)


class TurnRecorded(Event):
    type: Literal["call.turn"] = "call.turn"
    seq: int = Field(ge=0)
    role: Literal["user", "assistant"]
    text: str
    started_at: float
    ended_at: float
    interrupted: bool = False
    latency_ms: dict[str, float] = Field(default_factory=dict)


class CallEnded(Event):
    type: Literal["call.ended"] = "call.ended"
    reason: str
    ended_at: float = Field(default_factory=time.time)
    duration_s: float = Field(ge=0.0)
    turns: int = 0


class CallError(Event):
    type: Literal["call.error"] = "call.error"
    code: str
    message: str
    stage: str
    critical: bool = True


class CallStatusChanged(Event):
    """A telephony provider's own view of the call (Twilio status callback, Telnyx call webhooks)."""

    type: Literal["call.status"] = "call.status"
    provider: Literal["twilio", "telnyx"]
    status: str = Field(min_length=1, max_length=64)
    at: float = Field(default_factory=time.time)
    detail: dict[str, str] = Field(default_factory=dict)


class GatewayBeat(Event):
    """A gateway's heartbeat (core NATS, ``gateway.beat.<instance>``): it lives, and these are its live calls.
    The recorder ends in history the calls of a gateway whose beats stopped, or that its beats no longer list."""

    type: Literal["gateway.beat"] = "gateway.beat"
    call_id: str = "-"  # a beat is about a gateway, not one call
    instance: str = Field(min_length=1, max_length=256)
    calls: list[str] = Field(default_factory=list)
    interval_s: float = Field(default=2.0, gt=0)


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

LifecycleEvent = CallStarted | TurnRecorded | CallEnded | CallError | CallStatusChanged


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


# --- many gateway replicas: call control and live state (gateway ↔ gateway) ------------------------------


class CallControl(Event):
    """A command for a live call, sent as a request to ``gateway.control.<token>``: only the replica that owns
    the call listens there, so a webhook or an admin request that reached another replica still acts on it.
    ``probe`` only asks whether the call is live; ``hangup`` ends it with ``reason``."""

    type: Literal["call.control"] = "call.control"
    action: Literal["hangup", "probe"]
    reason: str = Field(default="caller_hangup", min_length=1, max_length=64)
    client_type: Literal["browser", "twilio", "telnyx"] | None = None  # act only on a call of this kind
    remote_ended: bool = False  # the provider said the call is over: no hang-up request back to it
    requested_by: str = Field(default="", max_length=200)  # the replica (and route) that sent it, for logs


class CallControlReply(Event):
    """The owner's answer: ``found`` the call live (of the kind asked), ``done`` the action was taken."""

    type: Literal["call.control.reply"] = "call.control.reply"
    found: bool
    done: bool = False
    instance: str = ""
    client_type: str | None = None
    state: str | None = None


class LiveCallInfo(BaseModel):
    """One live call as its gateway replica sees it (an answer on ``gateway.live``)."""

    call_id: str
    agent_id: str
    agent_version: int
    client_type: str
    state: str
    started_at: float
    instance: str


class GatewayLiveReply(BaseModel):
    """One gateway replica's answer on ``gateway.live``: its live calls and whether it takes new ones."""

    instance: str
    accepting_calls: bool
    refusal: str | None = None
    calls: list[LiveCallInfo] = Field(default_factory=list)
