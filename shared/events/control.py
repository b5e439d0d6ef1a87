"""Many gateway replicas: call control and live state (gateway ↔ gateway)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.events.envelope import Event


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
