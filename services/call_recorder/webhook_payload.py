"""What the post-call webhook posts: the finished call as the history holds it when the delivery is made
(ids, numbers, agent, timings, end reason, where a transfer went, every turn including tool calls and keypad
input, and the extraction). Built again for each attempt, so a retry after a late write carries it too; the
receiver dedupes on the delivery id, not on the body.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from shared.events import ToolTurn

EVENT = "call.completed"


class WebhookAgent(BaseModel):
    id: str | None
    version: int | None  # the agent's version when the delivery was made (None: the agent was deleted)


class WebhookTurn(BaseModel):
    seq: int
    role: str
    text: str
    started_at: datetime
    ended_at: datetime
    interrupted: bool
    dtmf: bool
    tool: ToolTurn | None


class WebhookPayload(BaseModel):
    event: Literal["call.completed"] = EVENT
    delivery_id: str
    call_id: str
    client_type: str
    transport_ids: dict[str, Any]
    from_number: str | None
    to_number: str | None
    agent: WebhookAgent
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    end_reason: str | None
    status: str
    transferred_to: str | None
    transcript: list[WebhookTurn]
    extraction_status: str | None  # ok, failed, skipped; None: extraction is off
    extraction: dict[str, Any] | None  # the extracted data when it succeeded, else None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def build_payload(conn: asyncpg.Connection | asyncpg.Pool, call_id: str, delivery_id: str) -> WebhookPayload:
    """The call's payload; raises LookupError when the call is gone (deleted by retention meanwhile)."""
    call = await conn.fetchrow(
        """
        SELECT c.call_id, c.client_type, c.transport_ids, c.from_number, c.to_number, c.agent_id,
               coalesce(c.agent_version, a.version) AS version,
               c.started_at, c.ended_at, c.duration_s, c.end_reason, c.status, c.transferred_to, c.extracted_data
        FROM calls c LEFT JOIN agents a ON a.agent_id = c.agent_id WHERE c.call_id = $1
        """,
        call_id,
    )
    if call is None:
        raise LookupError(f"no call {call_id!r}")
    turns = await conn.fetch(
        "SELECT seq, role, text, started_at, ended_at, interrupted, dtmf, tool FROM transcripts "
        "WHERE call_id = $1 ORDER BY seq",
        call_id,
    )
    extracted = _json(call["extracted_data"])
    status = extracted.get("status") if isinstance(extracted, dict) else None
    return WebhookPayload(
        delivery_id=delivery_id,
        call_id=call["call_id"],
        client_type=call["client_type"],
        transport_ids=_json(call["transport_ids"]) or {},
        from_number=call["from_number"],
        to_number=call["to_number"],
        agent=WebhookAgent(id=call["agent_id"], version=call["version"]),
        started_at=call["started_at"],
        ended_at=call["ended_at"],
        duration_s=call["duration_s"],
        end_reason=call["end_reason"],
        status=call["status"],
        transferred_to=call["transferred_to"],
        transcript=[WebhookTurn.model_validate({**dict(t), "tool": _json(t["tool"])}) for t in turns],
        extraction_status=status,
        extraction=extracted if status == "ok" else None,
    )
