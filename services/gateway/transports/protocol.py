"""The browser simulator's WebSocket protocol (``/ws/simulator``), both directions, as pydantic models.

The session speaks to every transport with the server messages below; the browser transport sends them as JSON
text frames, the telephony transports ignore what their wire has no place for. The dashboard's TypeScript types
(``web/src/lib/protocol.ts``) are generated from these models and a test keeps them in step.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SAMPLE_RATES = (8000, 16000, 24000, 48000)


class _Message(BaseModel):
    """What the gateway sends: exactly these fields, nothing else."""

    model_config = ConfigDict(extra="forbid")


class _ClientMessage(BaseModel):
    """What a client sends: fields this gateway does not know (a newer client's) are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")


# --- client → server -------------------------------------------------------------------------------------


class StartMessage(_ClientMessage):
    """Must be the first message, within the start timeout."""

    type: Literal["start"] = "start"
    sample_rate: Literal[8000, 16000, 24000, 48000] = 16000
    agent_id: str | None = Field(default=None, max_length=128)
    token: str | None = Field(default=None, max_length=2048, description="from POST /api/v1/simulator/tokens")


class AudioMessage(_ClientMessage):
    """Caller audio for clients that cannot send binary frames: base64 PCM16 at the start's ``sample_rate``
    (an absent ``data`` is no audio, not an error)."""

    type: Literal["audio"] = "audio"
    data: str = ""


class StopMessage(_ClientMessage):
    """The caller hangs up."""

    type: Literal["stop"] = "stop"


class DtmfMessage(_ClientMessage):
    """A keypad key pressed by the caller (what a phone line's DTMF event is); the agent's ``dtmf`` setting
    says how keys become the caller's turns."""

    type: Literal["dtmf"] = "dtmf"
    digit: str = Field(pattern=r"^[0-9*#A-Da-d]$")


ClientMessage = Annotated[StartMessage | AudioMessage | StopMessage | DtmfMessage, Field(discriminator="type")]
CLIENT_MESSAGE = TypeAdapter(ClientMessage)


# --- server → client -------------------------------------------------------------------------------------


class Started(_Message):
    """The call is up."""

    type: Literal["started"] = "started"
    call_id: str
    sample_rate: int
    encoding: Literal["pcm16"] = "pcm16"
    agent_id: str


class Transcript(_Message):
    """A line of the live transcript; an assistant's text is what the caller heard of it."""

    type: Literal["transcript"] = "transcript"
    role: Literal["user", "assistant"]
    text: str
    turn_id: int
    interrupted: bool = False
    dtmf: bool = False  # a caller's keypad entry, not speech (masked "•" when the agent marks digits sensitive)


class Clear(_Message):
    """Barge-in: drop any audio not yet played."""

    type: Literal["clear"] = "clear"


class TurnMetrics(_Message):
    """A reply's latency, each stage in ms from the end of the caller's turn (VAD)."""

    type: Literal["turn_metrics"] = "turn_metrics"
    turn_id: int
    stt_done_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_audio_ms: float | None = None
    first_audio_sent_ms: float | None = None
    tools_ms: float | None = None  # time the reply spent running tools (its tool rounds)


class StateChanged(_Message):
    """The call's state machine moved: who is speaking, whether the agent is thinking (the event that moved it)."""

    type: Literal["state"] = "state"
    caller: Literal["listening", "speaking"]
    agent: Literal["idle", "thinking", "speaking", "ending", "closing", "ended"]
    event: str


class ErrorMessage(_Message):
    """Something was wrong (codes in docs/ARCHITECTURE.md); a call error is followed by the apology and ``ended``."""

    type: Literal["error"] = "error"
    code: str
    message: str


class ToolActivity(_Message):
    """The agent called a tool: one line for the live transcript (``text``: name, arguments and result,
    shortened; a sensitive keypad entry masked), ``status`` ok, error or cancelled (a barge-in)."""

    type: Literal["tool"] = "tool"
    turn_id: int
    name: str
    status: Literal["ok", "error", "cancelled"]
    text: str
    duration_ms: float = 0.0


class Transferred(_Message):
    """The agent transferred the call to ``target`` (a browser call cannot be: it is told, then closed)."""

    type: Literal["transferred"] = "transferred"
    target: str


class Ended(_Message):
    """The call is over; the socket closes next."""

    type: Literal["ended"] = "ended"
    reason: str


ServerMessage = Annotated[
    Started | Transcript | Clear | TurnMetrics | StateChanged | ErrorMessage | ToolActivity | Transferred | Ended,
    Field(discriminator="type"),
]
SERVER_MESSAGE = TypeAdapter(ServerMessage)
SERVER_MESSAGES: tuple[type[_Message], ...] = (
    Started,
    Transcript,
    Clear,
    TurnMetrics,
    StateChanged,
    ErrorMessage,
    ToolActivity,
    Transferred,
    Ended,
)
CLIENT_MESSAGES: tuple[type[_ClientMessage], ...] = (StartMessage, AudioMessage, StopMessage, DtmfMessage)
