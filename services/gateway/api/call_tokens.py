"""``POST /api/v1/simulator/tokens``: a short-lived, single-use token that lets a browser start one call.

Browsers cannot set headers on a WebSocket, so the dashboard asks the keyed API (``X-API-Key``) for a token
and puts it in the socket's ``start`` message. With ``API_KEYS`` set a browser call needs one; without keys
(development) the token is optional and ``required`` says so.
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from services.gateway.edge.security import require_api_key
from services.gateway.runtime import GatewayRuntime

router = APIRouter(prefix="/api/v1/simulator", tags=["simulator"], dependencies=[Depends(require_api_key)])


class TokenRequest(BaseModel):
    agent_id: str | None = Field(default=None, max_length=128, description="the agent the call may use")


class CallToken(BaseModel):
    token: str
    expires_at: float = Field(description="Unix time after which the token no longer starts a call")
    ttl_s: float
    required: bool = Field(description="whether this gateway refuses browser calls without a token")


DRAINING_RETRY_AFTER_S = 2  # long enough for the load balancer to see this replica's readiness turn 503


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=CallToken,
    responses={503: {"description": "this gateway is draining (shutting down); retry, with `Retry-After`"}},
)
async def create_call_token(request: Request, body: TokenRequest | None = Body(default=None)) -> CallToken:
    """A token for one browser call (to ``/ws/simulator``'s ``start``), valid ``STREAM_TOKEN_TTL_S`` seconds.
    A draining gateway mints none: its socket would refuse the call anyway."""
    runtime: GatewayRuntime = request.app.state.runtime
    if runtime.draining:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            runtime.refusal_message("draining"),
            headers={"Retry-After": str(DRAINING_RETRY_AFTER_S)},
        )
    agent_id = body.agent_id if body is not None else None
    token = runtime.tokens.mint("browser", agent_id=agent_id)
    claims = runtime.tokens.peek(token)
    return CallToken(
        token=token, expires_at=claims.expires_at, ttl_s=runtime.tokens.ttl_s, required=bool(request.app.state.api_keys)
    )
