"""The post-call webhook's delivery rows (``webhook_deliveries``), shared by the recorder that creates and delivers
them and the gateway's history API that lists them and asks for a resend.

A delivery names the URL it goes to when it is created: the call's agent's ``webhook.url`` as stored now (the
overlay of the call's client type wins when it sets one), so a later edit of the agent does not redirect
deliveries already queued.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

DeliveryStatus = Literal["pending", "delivering", "delivered", "failed"]
RequestedBy = Literal["extraction", "resend"]

COLUMNS = (
    "id, url, status, attempts, last_status_code, last_error, created_at, delivered_at, requested_by, next_attempt_at"
)

# the agent's webhook URL for a call ``c`` joined with its agent ``a``: the client type's overlay if it sets one
AGENT_WEBHOOK_URL = """
    NULLIF(CASE WHEN a.spec->'overlays'->c.client_type->'webhook' ? 'url'
                THEN a.spec->'overlays'->c.client_type->'webhook'->>'url'
                ELSE a.spec->'webhook'->>'url' END, '')
"""


class WebhookDelivery(BaseModel):
    """One delivery of a call's post-call webhook, as the history API shows it."""

    id: str
    url: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    requested_by: RequestedBy
    next_attempt_at: datetime


def delivery(row: asyncpg.Record) -> WebhookDelivery:
    return WebhookDelivery.model_validate(dict(row))


async def webhook_url(conn: asyncpg.Connection | asyncpg.Pool, call_id: str) -> str | None:
    """The URL the call's agent posts finished calls to, or None (no agent, or no webhook)."""
    value = await conn.fetchval(
        f"SELECT {AGENT_WEBHOOK_URL} FROM calls c JOIN agents a ON a.agent_id = c.agent_id WHERE c.call_id = $1",
        call_id,
    )
    return str(value) if value else None


async def enqueue(
    conn: asyncpg.Connection | asyncpg.Pool, call_id: str, requested_by: RequestedBy
) -> WebhookDelivery | None:
    """A pending delivery of the call's webhook, due now; None when its agent has no webhook URL, or (for
    ``extraction``) when the call already has its delivery: a second extraction result adds none."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO webhook_deliveries (id, call_id, url, requested_by)
        SELECT $2, c.call_id, {AGENT_WEBHOOK_URL}, $3
        FROM calls c JOIN agents a ON a.agent_id = c.agent_id
        WHERE c.call_id = $1 AND {AGENT_WEBHOOK_URL} IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING {COLUMNS}
        """,
        call_id,
        f"whd_{uuid.uuid4().hex}",
        requested_by,
    )
    return delivery(row) if row is not None else None


async def for_call(conn: asyncpg.Connection | asyncpg.Pool, call_id: str) -> list[WebhookDelivery]:
    """The call's deliveries, oldest first."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM webhook_deliveries WHERE call_id = $1 ORDER BY created_at, id", call_id
    )
    return [delivery(r) for r in rows]
