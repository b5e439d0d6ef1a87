"""``POST /api/v1/calls/{call_id}/webhook/resend``: post a finished call to its agent's webhook once more (a
receiver that lost it, or a URL fixed after the deliveries failed). The gateway only queues the delivery; the
call recorder's delivery loop sends it, signed, with the same retries as the first one.

Included by ``calls.py``'s router, so it shares its prefix and API-key check.
"""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, HTTPException, Request, status

from services.gateway.runtime import GatewayRuntime
from shared.db import webhook_deliveries
from shared.db.webhook_deliveries import WebhookDelivery

router = APIRouter()


def _pool(request: Request) -> asyncpg.Pool:
    runtime: GatewayRuntime = request.app.state.runtime
    if runtime.pool is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the database is not available yet", headers={"Retry-After": "2"}
        )
    return runtime.pool


@router.post(
    "/{call_id}/webhook/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookDelivery,
    responses={
        404: {"description": "no such call"},
        409: {"description": "the call has not ended, or its agent has no webhook URL"},
    },
)
async def resend_webhook(call_id: str, request: Request) -> WebhookDelivery:
    """Queue a new delivery of the call's post-call webhook (``requested_by: resend``, a new delivery id)."""
    async with _pool(request).acquire() as conn:
        call = await conn.fetchrow("SELECT agent_id, ended_at FROM calls WHERE call_id = $1", call_id)
        if call is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no call {call_id!r}")
        if call["ended_at"] is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"call {call_id!r} has not ended: its webhook is sent once it has"
            )
        delivery = await webhook_deliveries.enqueue(conn, call_id, "resend")
    if delivery is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the call's agent ({call['agent_id'] or 'unknown'}) has no webhook URL: set webhook.url on the agent",
        )
    return delivery
