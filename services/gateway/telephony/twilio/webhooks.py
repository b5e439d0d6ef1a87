"""Twilio's HTTP webhooks: the incoming call (answered with TwiML that connects a media stream to us) and
the call status callback (recorded as lifecycle events).

Both verify ``X-Twilio-Signature`` when ``TWILIO_AUTH_TOKEN`` is set: a missing or wrong signature is a 403
and nothing starts. The form body is parsed by hand: the signature is computed over exactly these pairs.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response

from services.gateway.metrics import CALLS_REJECTED, WEBHOOKS
from services.gateway.runtime import GatewayRuntime
from services.gateway.telephony.twilio.api import (
    CALL_SID,
    busy_twiml,
    connect_stream_twiml,
    refusal_twiml,
    valid_signature,
)
from services.gateway.transports.telephony import public_host
from shared.events import CallControl, CallStatusChanged
from shared.logging import get_logger

log = get_logger(__name__)
router = APIRouter(tags=["telephony"])

STATUS_DETAIL_FIELDS = ("CallDuration", "SipResponseCode", "Direction", "From", "To", "Timestamp", "ErrorCode")
TERMINAL_STATUSES = frozenset({"completed", "failed", "busy", "no-answer", "canceled"})  # the call is over


async def _verified_form(request: Request) -> dict[str, str]:
    """The webhook's form fields, after checking Twilio's signature (403 when it doesn't match)."""
    runtime: GatewayRuntime = request.app.state.runtime
    body = await request.body()
    # its size was bounded while it was read (http_guard.BodyLimit, /twilio/: 64 kB)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        WEBHOOKS.labels("twilio", "bad_request").inc()
        raise HTTPException(400, "the body must be application/x-www-form-urlencoded") from exc
    token = runtime.settings.twilio_auth_token.get_secret_value()
    if token:
        given = request.headers.get("x-twilio-signature", "")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        urls = [str(request.url), f"https://{public_host(runtime, request.headers)}{path}"]
        if not given or not valid_signature(token, urls, pairs, given):
            WEBHOOKS.labels("twilio", "bad_signature").inc()
            log.warning("twilio_signature_rejected", path=request.url.path, signed=bool(given))
            raise HTTPException(403, "invalid or missing X-Twilio-Signature")
    return dict(pairs)


def _call_sid(form: dict[str, str]) -> str:
    """The form's CallSid, in Twilio's documented shape (400 otherwise: it ends up in REST URLs and history)."""
    call_sid = form.get("CallSid", "")
    if not re.fullmatch(CALL_SID, call_sid):
        WEBHOOKS.labels("twilio", "bad_request").inc()
        raise HTTPException(400, "CallSid is missing or not a Twilio CallSid (CA + 32 hex digits)")
    return call_sid


@router.post("/twilio/voice", response_class=Response, summary="Twilio incoming-call webhook (answers TwiML)")
async def twilio_voice(request: Request) -> Response:
    runtime: GatewayRuntime = request.app.state.runtime
    form = await _verified_form(request)
    call_sid = _call_sid(form)
    to_number = form.get("To", "")[:64] or None
    refusal = runtime.refusal()
    if refusal is not None:
        CALLS_REJECTED.labels("twilio", refusal).inc()
        WEBHOOKS.labels("twilio", "refused").inc()
        log.warning("twilio_call_refused", call_id=call_sid, reason=refusal)
        # busy (full, or draining for a deploy: the caller redials and reaches another replica) is a busy tone
        if refusal in ("busy", "draining"):
            return Response(busy_twiml(), media_type="application/xml")
        # in the language of the agent the called number reaches (TELEPHONY_REFUSAL_MESSAGE overrides the text)
        speech = await runtime.agents.refusal_for_number(
            "twilio", to_number, runtime.settings.telephony_refusal_message
        )
        return Response(refusal_twiml(speech.text, speech.locale), media_type="application/xml")
    agent_id = await runtime.agents.agent_for_number(to_number)
    stream_url = f"wss://{public_host(runtime, request.headers)}/twilio/media"
    token = runtime.tokens.mint(
        "twilio",
        call_id=call_sid,
        agent_id=agent_id,
        from_number=form.get("From", "")[:64] or None,
        to_number=to_number,
    )
    runtime.reserve(call_sid)
    params = {"token": token}  # the stream's start hands it back; agent and numbers are inside, signed
    WEBHOOKS.labels("twilio", "answered").inc()
    log.info("twilio_call_answered", call_id=call_sid, agent_id=agent_id or "default", stream_url=stream_url)
    return Response(connect_stream_twiml(stream_url, params), media_type="application/xml")


@router.post("/twilio/status", status_code=204, summary="Twilio call status callback")
async def twilio_status(request: Request) -> Response:
    """Each status change (ringing, in-progress, completed, busy, failed, ...) becomes a ``call.status``
    lifecycle event for the call's history (the call id of a Twilio call is its CallSid). A terminal status
    (completed, failed, busy, no-answer, canceled) also ends the live call on whichever replica owns it."""
    runtime: GatewayRuntime = request.app.state.runtime
    form = await _verified_form(request)
    call_sid, status = _call_sid(form), form.get("CallStatus", "")
    if not status:
        WEBHOOKS.labels("twilio", "bad_request").inc()
        raise HTTPException(400, "CallStatus is required")
    detail = {k: form[k][:200] for k in STATUS_DETAIL_FIELDS if form.get(k)}
    runtime.outbox.put(CallStatusChanged(call_id=call_sid, provider="twilio", status=status[:64], detail=detail))
    WEBHOOKS.labels("twilio", "status").inc()
    owner = None
    if status in TERMINAL_STATUSES:  # Twilio says the call is over: its owner (any replica) ends the session
        owner = await runtime.call_control.send(
            CallControl(
                call_id=call_sid,
                action="hangup",
                reason="caller_hangup" if status == "completed" else f"provider_{status.replace('-', '_')}",
                client_type="twilio",
                remote_ended=True,
                requested_by=f"{runtime.call_control.instance}:twilio_status",
            )
        )
    log.info("twilio_call_status", call_id=call_sid, status=status, owner=owner.instance if owner else None)
    return Response(status_code=204)
