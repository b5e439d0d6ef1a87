"""``WS /twilio/media``: a Twilio Media Stream (``<Connect><Stream>``) driving one call session.

In: ``connected``, ``start`` (streamSid, callSid, customParameters, mediaFormat), ``media`` (base64 μ-law
8 kHz, 20 ms), ``dtmf``, ``mark`` (echo of ours once played), ``stop``. Out: ``media``, ``mark`` after each
utterance, ``clear`` on barge-in. Bad frames (binary, unknown event, bad base64, wrong streamSid) are
logged and ignored until too many; media before ``start`` closes the stream (1008). The call id of a Twilio
call is its CallSid, so status callbacks and the REST hang-up line up with the history.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from services.gateway.runtime import GatewayRuntime
from services.gateway.session import CallSession
from services.gateway.telephony_stream import (
    CLOSE_INTERNAL,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    IDLE_TIMEOUT_S,
    FrameGuard,
    MediaStreamTransport,
    StreamClosed,
    decode_payload,
    open_phone_session,
    read_start,
    receive_json,
)
from services.gateway.twilio_api import TwilioRest
from shared.logging import bound_call, get_logger

log = get_logger(__name__)

CLOSE_UNSUPPORTED = 1003


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
        try:
            await session.start()
            reason = await _receive_loop(
                ws, session, transport, guard, stream_sid, runtime.settings.max_ws_message_bytes
            )
            await session.end(reason)
        except WebSocketDisconnect:
            transport.remote_ended = True
            await session.end("caller_hangup")
        except Exception:
            log.exception("twilio_session_crashed")
            await session.end("internal_error", close_code=CLOSE_INTERNAL)
        finally:
            runtime.sessions.pop(call_sid, None)


async def _receive_loop(
    ws: WebSocket,
    session: CallSession,
    transport: MediaStreamTransport,
    guard: FrameGuard,
    stream_sid: str,
    limit: int,
) -> str:
    """Feed the call until Twilio stops the stream or it misbehaves; returns the end reason."""
    while not session.ended:
        try:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                msg = await receive_json(ws, guard, limit)
        except TimeoutError:
            return "caller_idle"
        close: str | None = None
        if isinstance(msg, str):
            close = msg
        elif msg is None:
            continue
        elif msg.get("streamSid") != stream_sid:
            close = guard.bad_frame("wrong_stream_sid", str(msg.get("streamSid"))[:40])
        elif msg["event"] == "media":
            take, close = guard.admit()
            media = msg.get("media") if isinstance(msg.get("media"), dict) else {}
            if take and media.get("track", "inbound") == "inbound":
                pcm = decode_payload(media.get("payload"), "PCMU")
                if pcm is None:
                    close = guard.bad_frame("bad_payload", "media.payload is not base64")
                else:
                    await session.on_audio(pcm)
        elif msg["event"] == "mark":
            mark = msg.get("mark") if isinstance(msg.get("mark"), dict) else {}
            session.pacer.mark_echoed(str(mark.get("name", "")))
        elif msg["event"] == "dtmf":
            dtmf = msg.get("dtmf") if isinstance(msg.get("dtmf"), dict) else {}
            log.info("dtmf_received", digit=str(dtmf.get("digit", ""))[:1])
        elif msg["event"] == "stop":
            transport.remote_ended = True
            return "caller_hangup"
        else:
            close = guard.bad_frame("unknown_event", str(msg["event"])[:40])
        if close is not None:
            await transport.close(CLOSE_TOO_BIG if close == "message too big" else CLOSE_PROTOCOL, close)
            return "protocol_error"
    return session.end_reason or "ended"
