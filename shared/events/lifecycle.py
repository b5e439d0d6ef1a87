"""Lifecycle events (JetStream stream CALL_LIFECYCLE, consumed by the recorder) and the gateways' heartbeat."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from shared.events.envelope import Event


class CallStarted(Event):
    type: Literal["call.started"] = "call.started"
    agent_id: str | None = None
    agent_version: int | None = None  # the agent's version the call runs with
    client_type: Literal["browser", "twilio", "telnyx"] = "browser"
    transport_ids: dict[str, str] = Field(default_factory=dict)
    from_number: str | None = None
    to_number: str | None = None
    started_at: float = Field(default_factory=time.time)
    gateway: str | None = None  # the gateway instance that owns the call (its beats say whether it still lives)


class ToolTurn(BaseModel):
    """A tool call as a turn of its own in the history: what was called, with what, what came back, how long
    it took. ``status``: ok, error (the tool failed or timed out: the LLM was told), cancelled (a barge-in)."""

    call_id: str = Field(max_length=128)  # the LLM's id for the call
    name: str = Field(max_length=64)
    kind: Literal["end_call", "transfer_call", "send_dtmf", "http"]
    arguments: str = Field(default="{}", max_length=20_000)  # JSON text (sensitive digits masked)
    result: str = Field(default="", max_length=20_000)  # what the LLM was given back
    status: Literal["ok", "error", "cancelled"] = "ok"
    duration_ms: float = Field(default=0.0, ge=0.0)


class TurnRecorded(Event):
    type: Literal["call.turn"] = "call.turn"
    seq: int = Field(ge=0)
    # ``tool``: a tool call (``tool`` holds it; ``text`` is a one-line summary)
    role: Literal["user", "assistant", "tool"]
    text: str
    started_at: float
    ended_at: float
    interrupted: bool = False
    latency_ms: dict[str, float] = Field(default_factory=dict)
    dtmf: bool = False  # a caller turn typed on the keypad, not spoken (``text``: the digits, masked if sensitive)
    tool: ToolTurn | None = None


class CallEnded(Event):
    type: Literal["call.ended"] = "call.ended"
    reason: str
    ended_at: float = Field(default_factory=time.time)
    duration_s: float = Field(ge=0.0)
    turns: int = 0
    transferred_to: str | None = Field(default=None, max_length=256)  # reason "transferred": where the call went


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


LifecycleEvent = CallStarted | TurnRecorded | CallEnded | CallError | CallStatusChanged
