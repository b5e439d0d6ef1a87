"""``WS /twilio/media``: a Twilio Media Stream (``<Connect><Stream>``) driving one call session.

In: ``connected``, ``start`` (streamSid, callSid, customParameters, mediaFormat), ``media`` (base64 μ-law
8 kHz, 20 ms), ``dtmf``, ``mark`` (echo of ours once played), ``stop``. Out: ``media``, ``mark`` after each
utterance, ``clear`` on barge-in. Bad frames (binary, unknown event, bad base64, wrong streamSid) are
logged and ignored until too many; media before ``start`` closes the stream (1008). The call id of a Twilio
call is its CallSid, so status callbacks and the REST hang-up line up with the history.
"""

from __future__ import annotations

from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from services.gateway.runtime import GatewayRuntime
from services.gateway.telephony_stream import (
    CLOSE_PROTOCOL,
    CLOSE_UNSUPPORTED,
    FrameGuard,
    MediaStreamTransport,
    StreamClosed,
    open_phone_session,
    read_start,
    serve_phone_call,
)
from services.gateway.twilio_api import TwilioRest
from shared.logging import bound_call, get_logger

log = get_logger(__name__)


def twilio_rest(runtime: GatewayRuntime) -> TwilioRest | None:
    """One REST client per gateway, when credentials are configured (otherwise calls end by closing the stream)."""
    s = runtime.settings
    token = s.twilio_auth_token.get_secret_value()
    if not (s.twilio_account_sid and token):
        return None
    client = runtime.clients.get("twilio")
    if client is None:
        client = runtime.clients["twilio"] = TwilioRest(s.twilio_account_sid, token, s.twilio_api_base)
    return client  # type: ignore[no-any-return]


async def twilio_media_endpoint(ws: WebSocket, runtime: GatewayRuntime) -> None:
    await ws.accept()
    guard = FrameGuard("twilio")
    try:
        start = await read_start(ws, guard)
    except (WebSocketDisconnect, StreamClosed):
        return
    stream_sid = str(start.get("streamSid") or "")
    info: dict[str, Any] = start.get("start") if isinstance(start.get("start"), dict) else {}  # type: ignore[assignment]
    params = info.get("customParameters") if isinstance(info.get("customParameters"), dict) else {}
    call_sid = str(info.get("callSid") or params.get("call_sid") or "")
    fmt = info.get("mediaFormat") if isinstance(info.get("mediaFormat"), dict) else {}
    if not stream_sid or not call_sid:
        guard.bad_frame("bad_start", "start without streamSid or callSid")
        await ws.close(code=CLOSE_PROTOCOL, reason="start needs streamSid and callSid")
        return
    if fmt.get("encoding", "audio/x-mulaw") != "audio/x-mulaw" or int(fmt.get("sampleRate", 8000)) != 8000:
        guard.bad_frame("bad_media_format", str(fmt))
        await ws.close(code=CLOSE_UNSUPPORTED, reason="only audio/x-mulaw at 8000 Hz")
        return
    rest = twilio_rest(runtime)
    transport = MediaStreamTransport(
        ws,
        "twilio",
        envelope={"streamSid": stream_sid},
        frame_ms=runtime.settings.telephony_frame_ms,
        lead_ms=runtime.settings.telephony_lead_ms,
        hangup=(lambda: rest.hangup(call_sid)) if rest is not None else None,
    )
    with bound_call(call_sid):
        session = await open_phone_session(
            runtime,
            transport,
            call_id=call_sid,
            agent_id=str(params.get("agent_id") or "") or None,
            to_number=str(params.get("to") or "") or None,
            from_number=str(params.get("from") or "") or None,
            transport_ids={"call_sid": call_sid, "stream_sid": stream_sid},
        )
        if session is None:
            return
        log.info("twilio_stream_started", stream_sid=stream_sid)

        def same_stream(msg: dict[str, Any]) -> tuple[str, str] | None:
            sid = msg.get("streamSid")
            return None if sid == stream_sid else ("wrong_stream_sid", str(sid)[:40])

        await serve_phone_call(runtime, ws, session, transport, guard, check=same_stream)
