"""Twilio's HTTP webhooks: the incoming call (answered with TwiML that connects a media stream to us) and
the call status callback (recorded as lifecycle events).

Both verify ``X-Twilio-Signature`` when ``TWILIO_AUTH_TOKEN`` is set: a missing or wrong signature is a 403
and nothing starts. The form body is parsed by hand: the signature is computed over exactly these pairs.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response

from services.gateway.metrics import CALLS_REJECTED, WEBHOOKS
from services.gateway.runtime import GatewayRuntime
from services.gateway.telephony_stream import public_host
from services.gateway.twilio_api import connect_stream_twiml, refusal_twiml, valid_signature
from shared.events import CallStatusChanged
from shared.logging import get_logger

log = get_logger(__name__)
router = APIRouter(tags=["telephony"])

MAX_FORM_BYTES = 64_000
STATUS_DETAIL_FIELDS = ("CallDuration", "SipResponseCode", "Direction", "From", "To", "Timestamp", "ErrorCode")


async def _verified_form(request: Request) -> dict[str, str]:
    """The webhook's form fields, after checking Twilio's signature (403 when it doesn't match)."""
    runtime: GatewayRuntime = request.app.state.runtime
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"webhook body over {MAX_FORM_BYTES} bytes")
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


@router.post("/twilio/voice", response_class=Response, summary="Twilio incoming-call webhook (answers TwiML)")
async def twilio_voice(request: Request) -> Response:
    runtime: GatewayRuntime = request.app.state.runtime
    form = await _verified_form(request)
    call_sid = form.get("CallSid", "")
    if not call_sid:
        WEBHOOKS.labels("twilio", "bad_request").inc()
        raise HTTPException(400, "CallSid is missing")
    refusal = runtime.refusal()
    if refusal is not None:
        CALLS_REJECTED.labels("twilio", refusal).inc()
        WEBHOOKS.labels("twilio", "refused").inc()
        log.warning("twilio_call_refused", call_id=call_sid, reason=refusal)
        return Response(refusal_twiml(runtime.settings.telephony_refusal_message), media_type="application/xml")
    to_number = form.get("To") or None
    agent_id = await runtime.agents.agent_for_number(to_number)
    stream_url = f"wss://{public_host(runtime, request.headers)}/twilio/media"
    params = {
        "call_sid": call_sid,
        "agent_id": agent_id or "",
        "from": form.get("From", ""),
        "to": to_number or "",
    }
    WEBHOOKS.labels("twilio", "answered").inc()
    log.info("twilio_call_answered", call_id=call_sid, agent_id=agent_id or "default", stream_url=stream_url)
    return Response(connect_stream_twiml(stream_url, params), media_type="application/xml")


@router.post("/twilio/status", status_code=204, summary="Twilio call status callback")
async def twilio_status(request: Request) -> Response:
    """Each status change (ringing, in-progress, completed, busy, failed, ...) becomes a ``call.status``
    lifecycle event for the call's history (the call id of a Twilio call is its CallSid)."""
    runtime: GatewayRuntime = request.app.state.runtime
    form = await _verified_form(request)
    call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
    if not call_sid or not status:
        WEBHOOKS.labels("twilio", "bad_request").inc()
        raise HTTPException(400, "CallSid and CallStatus are required")
    detail = {k: form[k][:200] for k in STATUS_DETAIL_FIELDS if form.get(k)}
    runtime.outbox.put(CallStatusChanged(call_id=call_sid, provider="twilio", status=status[:64], detail=detail))
    WEBHOOKS.labels("twilio", "status").inc()
    log.info("twilio_call_status", call_id=call_sid, status=status)
    return Response(status_code=204)
