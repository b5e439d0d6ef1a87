"""Typed, versioned events for everything that travels on the bus.

One module a job: ``envelope`` (the common fields and the wire format), ``work`` (work requests, their
streamed results, acks, worker beats and cancels), ``lifecycle`` (what the recorder stores, and the gateways'
beats), ``control`` (gateway ↔ gateway call control and live state), ``codec`` (decoding bytes into events).
Every name is re-exported here, so importers only ever say ``from shared.events import …``.
"""

from shared.events.codec import AnyEvent, E, EventDecodeError, decode_as, decode_event
from shared.events.control import CallControl, CallControlReply, GatewayLiveReply, LiveCallInfo
from shared.events.envelope import EVENT_HEADER, NOT_CHAINED, SCHEMA_VERSION, ErrorInfo, Event, new_id
from shared.events.lifecycle import (
    CallEnded,
    CallError,
    CallStarted,
    CallStatusChanged,
    GatewayBeat,
    LifecycleEvent,
    ToolTurn,
    TurnRecorded,
)
from shared.events.work import (
    TOOL_NAME,
    CancelTurn,
    ChatMessage,
    LlmChunk,
    LlmContinuation,
    LlmRequest,
    SttRequest,
    SttResult,
    ToolCall,
    ToolSpec,
    TtsChunk,
    TtsContinuation,
    TtsRequest,
    VoiceSpec,
    WorkAck,
    WorkerBeat,
    work_key,
)

__all__ = [
    "EVENT_HEADER",
    "NOT_CHAINED",
    "SCHEMA_VERSION",
    "TOOL_NAME",
    "AnyEvent",
    "CallControl",
    "CallControlReply",
    "CallEnded",
    "CallError",
    "CallStarted",
    "CallStatusChanged",
    "CancelTurn",
    "ChatMessage",
    "E",
    "ErrorInfo",
    "Event",
    "EventDecodeError",
    "GatewayBeat",
    "GatewayLiveReply",
    "LifecycleEvent",
    "LiveCallInfo",
    "LlmChunk",
    "LlmContinuation",
    "LlmRequest",
    "SttRequest",
    "SttResult",
    "ToolCall",
    "ToolSpec",
    "ToolTurn",
    "TtsChunk",
    "TtsContinuation",
    "TtsRequest",
    "TurnRecorded",
    "VoiceSpec",
    "WorkAck",
    "WorkerBeat",
    "decode_as",
    "decode_event",
    "new_id",
    "work_key",
]
