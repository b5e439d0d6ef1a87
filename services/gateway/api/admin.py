"""``/admin``: the operator's controls. ``GET /admin/global-stop`` shows the error policy's global stop,
``POST /admin/global-stop/trip`` sets it by hand (with a reason; every replica refuses new calls within a
second, the operator's webhook is told), ``POST /admin/global-stop/reset`` lifts it (new calls are accepted
again on every replica within a second).
``POST /admin/calls/{call_id}/hangup`` ends a live call on whichever replica owns it (404 when none does).
``GET /admin/signing-key?url=...`` gives the signing key of one HTTP tool or webhook receiver (``key_for``).

Admin actions are never open: they need ``X-API-Key`` equal to ``ADMIN_API_KEY`` (compared in constant time),
and answer 503 while no admin key is configured. Failed attempts (missing or wrong key) are counted per client
address: after ``ADMIN_FAILURES_PER_MINUTE`` of them the address gets 429 with ``Retry-After``, even with the right
key, until its bucket refills (so the key cannot be guessed at speed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from services.gateway.edge.http_guard import TokenBuckets
from services.gateway.edge.security import key_matches
from services.gateway.runtime import GatewayRuntime
from shared.admin_notify import Notifier, record_admin_event
from shared.events import CallControl
from shared.global_stop import GlobalStopState, read_state, trip, write_state
from shared.logging import get_logger
from shared.settings import GatewaySettings
from shared.signing import key_for, normalized_url, signing_secret

log = get_logger(__name__)


T = TypeVar("T")


def _kept(request: Request, name: str, make: Callable[[GatewaySettings], T]) -> T:
    """``name`` on the app's state, made from the settings on first use: one per app (so per replica)."""
    value: T | None = getattr(request.app.state, name, None)
    if value is None:
        runtime: GatewayRuntime = request.app.state.runtime
        value = make(runtime.settings)
        setattr(request.app.state, name, value)
    return value


def admin_failures(request: Request) -> TokenBuckets:
    """The failed-attempt buckets per client address."""
    return _kept(
        request, "admin_failures", lambda s: TokenBuckets(s.admin_failures_per_minute, s.admin_failures_per_minute)
    )


async def require_admin_key(request: Request, x_api_key: str | None = Header(default=None)) -> None:
    runtime: GatewayRuntime = request.app.state.runtime
    admin_key = runtime.settings.admin_api_key.get_secret_value().strip()
    if not admin_key:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "admin API disabled: set ADMIN_API_KEY on the gateway to enable it"
        )
    client = request.client.host if request.client else "?"
    failures = admin_failures(request)
    wait = failures.peek(client)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        log.warning("admin_key_throttled", client=client, path=request.url.path, retry_after=retry_after)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed admin key attempts: retry in {retry_after}s",
            headers={"Retry-After": str(retry_after)},
        )
    if not x_api_key:
        failures.take(client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header", headers={"WWW-Authenticate": "ApiKey"}
        )
    if not key_matches(x_api_key, [admin_key.encode()]):
        failures.take(client)
        log.warning("admin_key_rejected", client=client, path=request.url.path)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "ApiKey"})


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin_key)])


class ResetRequest(BaseModel):
    reset_by: str = Field(default="admin_api", min_length=1, max_length=200, description="who lifts the stop")


class TripRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why new calls are stopped (shown to operators)")
    tripped_by: str = Field(default="admin_api", min_length=1, max_length=200, description="who stops them")


def admin_notifier(request: Request) -> Notifier:
    """The webhook notifier of admin actions."""
    return _kept(request, "admin_notifier", lambda s: Notifier(s.admin_notification_webhook_url))


@router.get("/global-stop", response_model=GlobalStopState)
async def get_global_stop(request: Request) -> GlobalStopState:
    """The stored state (read from NATS KV, not this replica's cached copy)."""
    runtime: GatewayRuntime = request.app.state.runtime
    try:
        return await read_state(runtime.bus.js)
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"global stop state unavailable: {exc}") from exc


@router.post("/global-stop/trip", response_model=GlobalStopState)
async def trip_global_stop(request: Request, body: TripRequest) -> GlobalStopState:
    """Stop new calls on every replica by hand. Already active: the state in force is returned unchanged."""
    runtime: GatewayRuntime = request.app.state.runtime
    state = GlobalStopState(
        active=True,
        reason=f"tripped by {body.tripped_by}: {body.reason}",
        tripped_at=time.time(),
        tripped_by=body.tripped_by,
    )
    try:
        revision = await trip(runtime.bus.js, state)
        if revision is None:
            return await read_state(runtime.bus.js)
        runtime.global_stop.observe(state, revision)
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"global stop state unavailable: {exc}") from exc
    detail = {"reason": state.reason, "tripped_at": state.tripped_at, "tripped_by": body.tripped_by, "call_ids": []}
    log.error("global_stop_tripped", **detail)
    admin_notifier(request).notify({"event": "global_stop_tripped", **detail})
    await _audit(runtime, "global_stop_tripped", detail)
    return state


async def _audit(runtime: GatewayRuntime, kind: str, detail: dict[str, object]) -> None:
    """The admin_events row of an action already done: best effort (PostgreSQL may be down)."""
    await record_admin_event(runtime.pool, kind, detail)


@router.post("/global-stop/reset", response_model=GlobalStopState)
async def reset_global_stop(request: Request, body: ResetRequest | None = Body(default=None)) -> GlobalStopState:
    """Lift the global stop: writes an inactive state with ``reset_at`` / ``reset_by`` and records the reset."""
    runtime: GatewayRuntime = request.app.state.runtime
    reset_by = body.reset_by if body is not None else "admin_api"
    try:
        previous = await read_state(runtime.bus.js)
        state = GlobalStopState(active=False, reset_at=time.time(), reset_by=reset_by)
        revision = await write_state(runtime.bus.js, state)
        runtime.global_stop.observe(state, revision)
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"global stop state unavailable: {exc}") from exc
    detail = {
        "reset_by": reset_by,
        "reset_at": state.reset_at,
        "was_active": previous.active,
        "previous_reason": previous.reason,
        "previous_tripped_at": previous.tripped_at,
    }
    log.warning("global_stop_reset", **detail)
    await _audit(runtime, "global_stop_reset", detail)
    return state


class HangupOut(BaseModel):
    call_id: str
    instance: str = Field(description="the gateway replica that owned the call and ended it")
    client_type: str | None
    status: str = "ending"


@router.post("/calls/{call_id}/hangup", response_model=HangupOut)
async def hang_up_call(call_id: str, request: Request) -> HangupOut:
    """End a live call now (history reason ``admin_hangup``; a phone call is hung up at the provider too). The
    command goes to the replica that owns the call over NATS (``gateway.control.<token>``), so any replica
    behind the load balancer can take this request."""
    runtime: GatewayRuntime = request.app.state.runtime
    if not call_id or len(call_id) > 256:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no live call with that id")
    cmd = CallControl(
        call_id=call_id, action="hangup", reason="admin_hangup", requested_by=f"{runtime.call_control.instance}:admin"
    )
    reply = await runtime.call_control.send(cmd)
    if reply is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no live call {call_id!r} on any gateway replica")
    log.warning("admin_call_hangup", call_id=call_id, instance=reply.instance)
    return HangupOut(call_id=call_id, instance=reply.instance, client_type=reply.client_type)


class SigningKeyOut(BaseModel):
    url: str = Field(description="the URL as keys are derived from it: scheme://host[:port]/path")
    key: str = Field(description="the receiver's key: verify X-Victoria-Signature with this hex string")


@router.get("/signing-key", response_model=SigningKeyOut)
async def get_signing_key(
    request: Request, url: str = Query(min_length=1, max_length=2048, description="the receiver's http(s) URL")
) -> SigningKeyOut:
    """The key the HTTP tool or webhook receiver at ``url`` verifies signatures with: derived from
    ``WEBHOOK_SIGNING_SECRET`` and the URL (``shared.signing.key_for``), so it is worth nothing at any other URL.
    Query and fragment do not count. 422 for anything but an http(s) URL."""
    runtime: GatewayRuntime = request.app.state.runtime
    try:
        normalized = normalized_url(url)
    except ValueError as exc:
        raise HTTPException(422, "url must be an http(s) URL with a host") from exc
    secret = signing_secret(runtime.settings.webhook_signing_secret.get_secret_value())
    log.warning("admin_signing_key_read", url=normalized)
    return SigningKeyOut(url=normalized, key=key_for(secret, normalized))
