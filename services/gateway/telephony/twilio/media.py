"""``WS /twilio/media``: a Twilio Media Stream (``<Connect><Stream>``) driving one call session.

In: ``connected``, ``start`` (streamSid, callSid, customParameters, mediaFormat), ``media`` (base64 μ-law
8 kHz, 20 ms), ``dtmf``, ``mark`` (echo of ours once played), ``stop``. Out: ``media``, ``mark`` after each
utterance, ``clear`` on barge-in. Bad frames (binary, unknown event, bad base64, wrong streamSid) are
logged and ignored until too many; media before ``start`` closes the stream (1008). The call id of a Twilio
call is its CallSid, so status callbacks and the REST hang-up line up with the history. A ``dtmf`` key goes
to the session (``on_dtmf``); the agent's transfer updates the live call with ``<Dial>`` over REST (Twilio
then ends this stream), and its keys are played in band (Twilio has no outbound DTMF message).

Trust: the upgrade must carry a valid ``X-Twilio-Signature`` when ``TWILIO_AUTH_TOKEN`` is set, and the
``start`` must carry the single-use token our TwiML put in its ``<Parameter name="token">``; without both,
the stream is closed (1008) before any audio, STT, LLM or TTS work. Agent and numbers come from the token.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import WebSocket
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from services.gateway.runtime import GatewayRuntime
from services.gateway.telephony.twilio.api import CALL_SID, TwilioRest, valid_signature
from services.gateway.transports.media_stream import MediaStreamTransport
from services.gateway.transports.telephony import (
    FrameGuard,
    accept_start,
    check_token,
    open_phone_session,
    public_host,
    refuse_stream,
    serve_phone_call,
)
from services.gateway.transports.ws_close import CLOSE_PROTOCOL, CLOSE_UNSUPPORTED
from shared.logging import bound_call, get_logger

log = get_logger(__name__)

STREAM_SID = r"^MZ[0-9a-fA-F]{32}$"


class TwilioMediaFormat(BaseModel):
    encoding: str = Field(default="audio/x-mulaw", max_length=64)
    sample_rate: StrictInt = Field(default=8000, alias="sampleRate")
    channels: StrictInt = 1


class TwilioStartInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    stream_sid: str = Field(default="", alias="streamSid", max_length=64)
    call_sid: str = Field(alias="callSid", pattern=CALL_SID)
    custom_parameters: dict[str, str] = Field(default_factory=dict, alias="customParameters", max_length=32)
    media_format: TwilioMediaFormat = Field(default_factory=TwilioMediaFormat, alias="mediaFormat")


class TwilioStart(BaseModel):
    """Twilio's ``start`` message, as documented; anything else is refused before the call starts."""

    event: Literal["start"]
    stream_sid: str = Field(alias="streamSid", pattern=STREAM_SID)
    start: TwilioStartInfo


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


def signed_handshake(runtime: GatewayRuntime, ws: WebSocket) -> bool:
    """Twilio signs the stream's WebSocket upgrade like a webhook (the ``wss://`` URL, no parameters). True
    when no auth token is configured (development) or the signature matches."""
    token = runtime.settings.twilio_auth_token.get_secret_value()
    if not token:
        return True
    given = ws.headers.get("x-twilio-signature", "")
    path = ws.url.path + (f"?{ws.url.query}" if ws.url.query else "")
    return bool(given) and valid_signature(token, [f"wss://{public_host(runtime, ws.headers)}{path}"], [], given)


async def twilio_media_endpoint(ws: WebSocket, runtime: GatewayRuntime) -> None:
    guard = FrameGuard("twilio")
    if not signed_handshake(runtime, ws):
        guard.bad_frame("bad_signature", "X-Twilio-Signature missing or wrong on the stream's handshake")
        await ws.close(code=CLOSE_PROTOCOL, reason="invalid X-Twilio-Signature")  # before accept: HTTP 403
        return
    start = await accept_start(ws, guard, TwilioStart)
    if start is None:
        return
    fmt = start.start.media_format
    if fmt.encoding != "audio/x-mulaw" or fmt.sample_rate != 8000:
        await refuse_stream(ws, guard, "bad_media_format", "only audio/x-mulaw at 8000 Hz", CLOSE_UNSUPPORTED)
        return
    call_sid, stream_sid = start.start.call_sid, start.stream_sid
    claims = await check_token(runtime, ws, guard, "twilio", start.start.custom_parameters.get("token"), call_sid)
    if claims is None:
        return
    rest = twilio_rest(runtime)
    transport = MediaStreamTransport(
        ws,
        "twilio",
        envelope={"streamSid": stream_sid},
        frame_ms=runtime.settings.telephony_frame_ms,
        lead_ms=runtime.settings.telephony_lead_ms,
        hangup=(lambda: rest.hangup(call_sid)) if rest is not None else None,
        transfer_to=(lambda target: rest.transfer(call_sid, target)) if rest is not None else None,
    )  # no DTMF command: Twilio media streams carry no outbound keys, the transport plays them as tones
    with bound_call(call_sid):
        session = await open_phone_session(
            runtime, transport, claims=claims, transport_ids={"call_sid": call_sid, "stream_sid": stream_sid}
        )
        if session is None:
            return
        log.info("twilio_stream_started", stream_sid=stream_sid)

        def same_stream(msg: dict[str, Any]) -> tuple[str, str] | None:
            sid = msg.get("streamSid")
            return None if sid == stream_sid else ("wrong_stream_sid", str(sid)[:40])

        await serve_phone_call(runtime, ws, session, transport, guard, check=same_stream)
