"""``POST /telnyx/webhook``: Telnyx Call Control events for our calls.

- ``call.initiated`` (incoming): answer with a bidirectional media stream to ``wss://PUBLIC_HOST/telnyx/media``
  (``stream_bidirectional_mode: rtp``: without it Telnyx silently drops the audio we send), codec PCMU or
  PCMA, and a ``client_state`` carrying the agent chosen by the called number. A full or draining gateway
  rejects the call (``USER_BUSY``); while calls are refused otherwise (global stop, shutdown) it is answered
  without a stream, told so, and hung up.
- ``call.hangup``: the caller hung up: the live session ends (no hang-up command is sent back), on whichever
  gateway replica owns it (``call_control.py``: a ``CallControl`` request on ``gateway.control.<token>``).
- Every event is recorded as a ``call.status`` lifecycle event (the call id is the ``call_control_id``).

Webhooks may repeat, arrive out of order or reach different replicas: event ids are remembered in NATS KV for
every replica (``webhook_dedupe.py``; a repeat is acknowledged and ignored, whichever replica it reaches),
a hang-up that overtakes its ``call.initiated`` keeps the call from being answered, and commands carry
idempotent ``command_id``s.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request

from services.gateway.edge.webhook_dedupe import SharedSeen
from services.gateway.metrics import CALLS_REJECTED, WEBHOOKS
from services.gateway.runtime import GatewayRuntime
from services.gateway.telephony.telnyx.api import (
    CALL_CONTROL_ID,
    SignatureError,
    TelnyxRest,
    decode_state,
    encode_state,
    verify_signature,
)
from services.gateway.transports.telephony import public_host
from shared.events import CallControl, CallStatusChanged
from shared.logging import bound_call, get_logger
from shared.text_guard import first_unstorable

log = get_logger(__name__)
router = APIRouter(tags=["telephony"])


def telnyx_rest(runtime: GatewayRuntime) -> TelnyxRest | None:
    key = runtime.settings.telnyx_api_key.get_secret_value()
    if not key:
        return None
    client = runtime.clients.get("telnyx")
    if client is None:
        client = runtime.clients["telnyx"] = TelnyxRest(key, runtime.settings.telnyx_api_base)
    return client  # type: ignore[no-any-return]


def _state(runtime: GatewayRuntime) -> tuple[SharedSeen, SharedSeen]:
    """The event ids seen and the calls hung up, shared by every replica (``webhook_dedupe.py``)."""
    seen = runtime.clients.get("telnyx_seen")
    if seen is None:
        seen = runtime.clients["telnyx_seen"] = _SeenPair(runtime)
    return seen.events, seen.ended


class _SeenPair:
    def __init__(self, runtime: GatewayRuntime) -> None:
        self.events = SharedSeen(runtime.bus.js, "event")
        self.ended = SharedSeen(runtime.bus.js, "ended")

    async def aclose(self) -> None:
        pass


@router.post("/telnyx/webhook", summary="Telnyx Call Control webhook")
async def telnyx_webhook(request: Request) -> dict[str, str]:
    runtime: GatewayRuntime = request.app.state.runtime
    body = await request.body()
    # its size was bounded while it was read (http_guard.BodyLimit, /telnyx/: 256 kB)
    key = runtime.settings.telnyx_public_key
    if key:
        try:
            verify_signature(
                key,
                body,
                request.headers.get("telnyx-signature-ed25519", ""),
                request.headers.get("telnyx-timestamp", ""),
            )
        except SignatureError as exc:
            WEBHOOKS.labels("telnyx", "bad_signature").inc()
            log.warning("telnyx_signature_rejected", error=str(exc))
            raise HTTPException(403, f"invalid Telnyx signature: {exc}") from None
    try:
        data = json.loads(body)["data"]
        event_type = str(data["event_type"])
        payload: dict[str, Any] = data.get("payload") or {}
        call_control_id = str(payload["call_control_id"]) if "call_control_id" in payload else ""
        if not isinstance(payload, dict) or (call_control_id and not re.fullmatch(CALL_CONTROL_ID, call_control_id)):
            raise ValueError("payload.call_control_id is not a Telnyx call_control_id")
        if (found := first_unstorable(data)) is not None:
            raise ValueError(f"{'.'.join(map(str, found[0]))}: {found[1]}")
    except (ValueError, KeyError, TypeError) as exc:
        WEBHOOKS.labels("telnyx", "bad_request").inc()
        raise HTTPException(400, f"not a Telnyx event: {exc!s}"[:300]) from None
    events, ended = _state(runtime)
    event_id = str(data.get("id") or "")
    if event_id and not await events.add(event_id):
        WEBHOOKS.labels("telnyx", "duplicate").inc()
        return {"status": "duplicate"}
    if not call_control_id:
        WEBHOOKS.labels("telnyx", "ignored").inc()
        return {"status": "ignored"}
    with bound_call(call_control_id):
        try:
            outcome = await _handle(runtime, request, event_type, payload, call_control_id, ended)
        except (RuntimeError, httpx.HTTPError) as exc:
            await events.discard(event_id)  # Telnyx retries a failed webhook: the retry must not look like a repeat
            WEBHOOKS.labels("telnyx", "command_failed").inc()
            log.error("telnyx_command_failed", event_type=event_type, error=str(exc) or type(exc).__name__)
            raise HTTPException(502, f"Call Control command failed: {exc!s}"[:300]) from None
    WEBHOOKS.labels("telnyx", outcome).inc()
    return {"status": outcome}


async def _handle(
    runtime: GatewayRuntime,
    request: Request,
    event_type: str,
    payload: dict[str, Any],
    call_control_id: str,
    ended: SharedSeen,
) -> str:
    detail = {
        k: str(payload[k])[:200] for k in ("from", "to", "direction", "hangup_cause", "hangup_source") if payload.get(k)
    }
    runtime.outbox.put(
        CallStatusChanged(
            call_id=call_control_id, provider="telnyx", status=event_type.removeprefix("call.")[:64], detail=detail
        )
    )
    rest = telnyx_rest(runtime)
    state = decode_state(payload.get("client_state"))
    if event_type == "call.hangup":
        await ended.add(call_control_id)
        # the call may live on another replica: its owner ends it. Only a Telnyx call's own hang-up ends it
        # (the same id on a browser or Twilio call is left alone), and nothing is sent back to Telnyx
        owner = await runtime.call_control.send(
            CallControl(
                call_id=call_control_id,
                action="hangup",
                reason="caller_hangup",
                client_type="telnyx",
                remote_ended=True,
                requested_by=f"{runtime.call_control.instance}:telnyx_webhook",
            )
        )
        log.info("telnyx_call_hangup", cause=payload.get("hangup_cause"), owner=owner.instance if owner else None)
        return "hangup"
    if rest is None:
        log.warning("telnyx_no_api_key", event_type=event_type, hint="set TELNYX_API_KEY to answer Telnyx calls")
        return "no_api_key"
    if event_type == "call.initiated":
        if payload.get("direction", "incoming") != "incoming":
            return "ignored"
        if await ended.contains(call_control_id):
            log.info("telnyx_initiated_after_hangup")
            return "already_ended"
        return await _answer(runtime, request, rest, payload, call_control_id)
    if event_type == "call.answered" and state.get("refuse"):
        await _speak_refusal(runtime, rest, call_control_id, _called_number(payload))
        return "refusing"
    if event_type == "call.speak.ended" and state.get("refuse"):
        await rest.hangup(call_control_id)
        return "refused"
    return "recorded"


async def _speak_refusal(runtime: GatewayRuntime, rest: TelnyxRest, call_control_id: str, to: str | None) -> None:
    """Say the refusal in the language of the agent the called number reaches (TELEPHONY_REFUSAL_MESSAGE
    overrides the text); its ``call.speak.ended`` hangs up."""
    refusal = await runtime.agents.refusal_for_number("telnyx", to, runtime.settings.telephony_refusal_message)
    speak = {
        "payload": refusal.text,
        "voice": "female",
        "language": refusal.locale,
        "client_state": encode_state({"refuse": True}),
    }
    await rest.command(call_control_id, "speak", speak)


def _called_number(payload: dict[str, Any]) -> str | None:
    return str(payload.get("to") or "")[:64] or None


async def _answer(
    runtime: GatewayRuntime, request: Request, rest: TelnyxRest, payload: dict[str, Any], call_control_id: str
) -> str:
    refusal = runtime.refusal()
    if refusal in ("busy", "draining"):  # capacity, or a deploy: the caller hears busy, as from a full line
        CALLS_REJECTED.labels("telnyx", refusal).inc()
        log.warning("telnyx_call_refused", reason=refusal)
        await rest.command(call_control_id, "reject", {"cause": "USER_BUSY"})
        return "busy"
    if refusal is not None:
        CALLS_REJECTED.labels("telnyx", refusal).inc()
        log.warning("telnyx_call_refused", reason=refusal)
        await rest.command(call_control_id, "answer", {"client_state": encode_state({"refuse": True})})
        return "refusing"
    to_number = _called_number(payload)
    agent_id = await runtime.agents.agent_for_number(to_number)
    settings = runtime.settings
    token = runtime.tokens.mint(
        "telnyx",
        call_id=call_control_id,
        agent_id=agent_id,
        from_number=str(payload.get("from") or "")[:64] or None,
        to_number=to_number,
    )
    runtime.reserve(call_control_id)
    body: dict[str, Any] = {
        "client_state": encode_state({"token": token}),  # handed back in the stream's start
        "stream_url": f"wss://{public_host(runtime, request.headers)}/telnyx/media",
        "stream_track": "inbound_track",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": settings.telnyx_stream_codec,
    }
    token = settings.telnyx_stream_auth_token.get_secret_value()
    if token:
        body["stream_auth_token"] = token
    outcome = await rest.command(call_control_id, "answer", body)
    log.info("telnyx_call_answered", agent_id=agent_id or "default", outcome=outcome)
    return "answered" if outcome == "ok" else outcome
