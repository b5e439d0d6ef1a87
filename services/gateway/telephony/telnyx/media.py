"""``WS /telnyx/media``: a Telnyx bidirectional media stream driving one call session.

In: ``connected``, ``start`` (stream_id, call_control_id, client_state, media_format), ``media``, ``dtmf``,
``mark``, ``stop``. Out: ``media`` (PCMU or PCMA, as negotiated), ``mark``, ``clear``. Telnyx does not
guarantee order: media frames are put back in order by their ``chunk`` number within a small window (a frame
that arrives after the window moved on is dropped, since playing it late would only garble the turn).
A ``dtmf`` key goes to the session (``on_dtmf``); the agent's transfer and keys are the Call Control
``transfer`` and ``send_dtmf`` commands.

Trust: the ``start``'s ``client_state`` must carry the single-use token our ``answer`` command put there
(and the ``x-telnyx-streaming-auth-token`` header must match when ``TELNYX_STREAM_AUTH_TOKEN`` is set);
otherwise the stream is closed (1008) before any call work. Agent and numbers come from the token.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

from fastapi import WebSocket
from pydantic import BaseModel, Field, StrictInt

from services.gateway.runtime import GatewayRuntime
from services.gateway.telephony.telnyx.api import CALL_CONTROL_ID, decode_state
from services.gateway.telephony.telnyx.webhooks import telnyx_rest
from services.gateway.transports.media_stream import MediaStreamTransport
from services.gateway.transports.telephony import (
    FrameGuard,
    accept_start,
    check_token,
    open_phone_session,
    refuse_stream,
    serve_phone_call,
)
from services.gateway.transports.ws_close import CLOSE_PROTOCOL, CLOSE_UNSUPPORTED
from shared.logging import bound_call, get_logger

log = get_logger(__name__)
REORDER_WINDOW = 5  # frames (100 ms): how long a gap is waited for before it is skipped


class Reorderer:
    """Releases items in ``chunk`` order; holds at most ``window`` early items while waiting for a gap."""

    def __init__(self, window: int = REORDER_WINDOW) -> None:
        self.window = window
        self.next: int | None = None
        self._held: dict[int, bytes] = {}
        self.dropped_late = 0
        self.skipped = 0

    def push(self, chunk: int, item: bytes) -> list[bytes]:
        if self.next is None:
            self.next = chunk
        if chunk < self.next or chunk in self._held:
            self.dropped_late += 1  # late (its slot was skipped) or a repeat
            return []
        self._held[chunk] = item
        out: list[bytes] = []
        while True:
            if self.next in self._held:
                out.append(self._held.pop(self.next))
                self.next += 1
            elif len(self._held) > self.window:
                self.skipped += 1  # give up on the gap: play on from the earliest frame we have
                self.next = min(self._held)
            else:
                return out


class TelnyxMediaFormat(BaseModel):
    encoding: str = Field(default="PCMU", max_length=16)
    sample_rate: StrictInt = 8000
    channels: StrictInt = 1


class TelnyxStartInfo(BaseModel):
    call_control_id: str = Field(pattern=CALL_CONTROL_ID)
    call_session_id: str = Field(default="", max_length=256)
    client_state: str | None = Field(default=None, max_length=4096)
    media_format: TelnyxMediaFormat = Field(default_factory=TelnyxMediaFormat)


class TelnyxStart(BaseModel):
    """Telnyx's ``start`` message, as documented; anything else is refused before the call starts."""

    event: Literal["start"]
    stream_id: str = Field(default="", max_length=256)
    start: TelnyxStartInfo


def _auth_header_ok(runtime: GatewayRuntime, ws: WebSocket) -> bool:
    expected = runtime.settings.telnyx_stream_auth_token.get_secret_value()
    given = ws.headers.get("x-telnyx-streaming-auth-token", "")
    return not expected or hmac.compare_digest(given.encode(), expected.encode())


async def telnyx_media_endpoint(ws: WebSocket, runtime: GatewayRuntime) -> None:
    guard = FrameGuard("telnyx")
    if not _auth_header_ok(runtime, ws):
        guard.bad_frame("bad_auth_token", "x-telnyx-streaming-auth-token missing or wrong")
        await ws.close(code=CLOSE_PROTOCOL, reason="invalid stream auth token")
        return
    start = await accept_start(ws, guard, TelnyxStart)
    if start is None:
        return
    info, codec = start.start, start.start.media_format.encoding.upper()
    if codec not in ("PCMU", "PCMA") or info.media_format.sample_rate != 8000:
        await refuse_stream(ws, guard, "bad_media_format", "only PCMU or PCMA at 8000 Hz", CLOSE_UNSUPPORTED)
        return
    call_control_id = info.call_control_id
    state = decode_state(info.client_state)
    claims = await check_token(runtime, ws, guard, "telnyx", state.get("token"), call_control_id)
    if claims is None:
        return
    rest = telnyx_rest(runtime)
    transport = MediaStreamTransport(
        ws,
        "telnyx",
        envelope={},
        codec=codec,  # type: ignore[arg-type]
        frame_ms=runtime.settings.telephony_frame_ms,
        lead_ms=runtime.settings.telephony_lead_ms,
        hangup=(lambda: rest.hangup(call_control_id)) if rest is not None else None,
        transfer_to=(lambda target: rest.transfer(call_control_id, target)) if rest is not None else None,
        dtmf_command=(lambda digits: rest.send_dtmf(call_control_id, digits)) if rest is not None else None,
    )
    ids = {"call_control_id": call_control_id, "stream_id": start.stream_id, "call_session_id": info.call_session_id}
    with bound_call(call_control_id):
        session = await open_phone_session(runtime, transport, claims=claims, transport_ids=ids)
        if session is None:
            return
        log.info("telnyx_stream_started", stream_id=start.stream_id, codec=codec)
        order = Reorderer()

        def reorder(msg: dict[str, Any], pcm: bytes) -> list[bytes]:
            media = msg.get("media") if isinstance(msg.get("media"), dict) else {}
            chunk = _chunk(msg, media)  # type: ignore[arg-type]
            return [pcm] if chunk is None else order.push(chunk, pcm)

        await serve_phone_call(runtime, ws, session, transport, guard, reorder=reorder)
        if order.skipped or order.dropped_late:
            log.info("telnyx_reorder_stats", skipped_gaps=order.skipped, dropped_late=order.dropped_late)


def _chunk(msg: dict[str, Any], media: dict[str, Any]) -> int | None:
    for value in (media.get("chunk"), msg.get("sequence_number")):
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
            continue
    return None
