"""Work requests (queue groups), their streamed results (call-scoped subjects) and the workers' own messages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.events.envelope import ErrorInfo, Event

TOOL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$"


class ToolSpec(BaseModel):
    """A function the LLM may call (the OpenAI ``tools`` shape): its name, what it does, its JSON-schema
    parameters. Only the agent's configured tools are ever offered, and only those are ever executed."""

    name: str = Field(pattern=TOOL_NAME)
    description: str = Field(default="", max_length=1000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolCall(BaseModel):
    """One call the LLM asked for: ``arguments`` is the JSON text it generated (validated by the gateway
    against the tool's schema before anything runs)."""

    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    arguments: str = Field(default="{}", max_length=20_000)


class ChatMessage(BaseModel):
    """A conversation message. ``assistant`` messages may carry the tool calls the LLM made; a ``tool``
    message is one call's result, tied to it by ``tool_call_id``."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def openai(self) -> dict[str, Any]:
        """The message as the OpenAI-compatible APIs (OpenAI, Groq, llama.cpp) take it."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class VoiceSpec(BaseModel):
    provider: str | None = None
    name: str | None = None
    style: str | None = None
    rate: float = Field(default=1.0, ge=0.5, le=2.0)
    pitch: float = Field(default=0.0, ge=-50.0, le=50.0)  # percent


class TtsRequestFields(BaseModel):
    """What a TTS request asks for besides the segment and its text: one definition for the request and for
    the continuation that carries it to the LLM worker."""

    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    language: str = "en-US"
    sample_rate: int = Field(default=16000, ge=8000, le=48000)
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    reply_to: str


class TtsContinuation(TtsRequestFields):
    """What a TTS request needs besides the text: an LLM worker given this cuts the reply into segments and
    sends each to TTS itself, so the audio doesn't wait for a round trip through the gateway."""

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
            **_values(self, TtsRequestFields),
        )


class LlmRequestFields(BaseModel):
    """What an LLM request asks for: one definition for the request and for the continuation that carries it
    to the STT worker."""

    messages: list[ChatMessage] = Field(min_length=1)
    provider: str | None = None
    model: str | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=160, ge=1, le=4096)
    # the language the reply is in (the agent's, e.g. "es-ES"): a provider with a model per language picks by
    # it (local_llama); None: not said (older senders), the provider's default
    language: str | None = None
    reply_to: str
    tts: TtsContinuation | None = None  # chain: the worker sends each segment's TTS request itself
    # the functions the LLM may call this turn (the agent's tools); a reply that calls them ends with
    # ``finish_reason="tool_calls"`` and the calls on its last chunk (``LlmChunk.tool_calls``)
    tools: list[ToolSpec] = Field(default_factory=list, max_length=32)


class LlmContinuation(LlmRequestFields):
    """The LLM request to send after the transcript (the conversation so far, without the caller's new
    message): an STT worker given this sends it itself on a final transcript with words."""

    def request(self, call_id: str, turn_id: int | None, text: str, trace_id: str | None = None) -> LlmRequest:
        """The LLM request for the caller's ``text`` (whoever sends it: the STT worker, or the gateway)."""
        return LlmRequest(
            call_id=call_id,
            turn_id=turn_id,
            **({"trace_id": trace_id} if trace_id else {}),
            **{**_values(self, LlmRequestFields), "messages": [*self.messages, ChatMessage(role="user", content=text)]},
        )


def _values(model: BaseModel, fields: type[BaseModel]) -> dict[str, Any]:
    """``model``'s values of the fields ``fields`` declares (as they are: nested models are not copied)."""
    return {name: getattr(model, name) for name in fields.model_fields}


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


class LlmRequest(LlmRequestFields, Event):
    type: Literal["llm.request"] = "llm.request"
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
    # the last chunk of a reply that calls tools: the calls, assembled (the gateway runs them and asks again)
    tool_calls: list[ToolCall] | None = None


class TtsRequest(TtsRequestFields, Event):
    type: Literal["tts.request"] = "tts.request"
    segment: int = Field(ge=0)
    text: str = Field(min_length=1, max_length=2000)
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
