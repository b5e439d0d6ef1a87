"""``WS /telnyx/media``: a Telnyx bidirectional media stream driving one call session.

In: ``connected``, ``start`` (stream_id, call_control_id, client_state, media_format), ``media``, ``dtmf``,
``mark``, ``stop``. Out: ``media`` (PCMU or PCMA, as negotiated), ``mark``, ``clear``. Telnyx does not
guarantee order: media frames are put back in order by their ``chunk`` number within a small window (a frame
that arrives after the window moved on is dropped, since playing it late would only garble the turn).
"""

from __future__ import annotations

import hmac
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
from services.gateway.telnyx_api import decode_state
from services.gateway.telnyx_webhooks import telnyx_rest
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


async def telnyx_media_endpoint(ws: WebSocket, runtime: GatewayRuntime) -> None:
    expected = runtime.settings.telnyx_stream_auth_token.get_secret_value()
    if expected and not hmac.compare_digest(
        ws.headers.get("x-telnyx-streaming-auth-token", "").encode(), expected.encode()
    ):
        log.warning("telnyx_stream_auth_rejected")
        await ws.close(code=CLOSE_PROTOCOL, reason="invalid stream auth token")
        return
    await ws.accept()
    guard = FrameGuard("telnyx")
    try:
        start = await read_start(ws, guard)
    except (WebSocketDisconnect, StreamClosed):
        return
    info: dict[str, Any] = start.get("start") if isinstance(start.get("start"), dict) else {}  # type: ignore[assignment]
    stream_id = str(start.get("stream_id") or "")
    call_control_id = str(info.get("call_control_id") or "")
    fmt = info.get("media_format") if isinstance(info.get("media_format"), dict) else {}
    codec = str(fmt.get("encoding", "PCMU")).upper()
    if not call_control_id:
        guard.bad_frame("bad_start", "start without call_control_id")
        await ws.close(code=CLOSE_PROTOCOL, reason="start needs call_control_id")
        return
    if codec not in ("PCMU", "PCMA") or int(fmt.get("sample_rate", 8000)) != 8000:
        guard.bad_frame("bad_media_format", str(fmt))
        await ws.close(code=CLOSE_UNSUPPORTED, reason="only PCMU or PCMA at 8000 Hz")
        return
    state = decode_state(info.get("client_state"))
    rest = telnyx_rest(runtime)
    transport = MediaStreamTransport(
        ws,
        "telnyx",
        envelope={},
        codec=codec,  # type: ignore[arg-type]
        frame_ms=runtime.settings.telephony_frame_ms,
        lead_ms=runtime.settings.telephony_lead_ms,
        hangup=(lambda: rest.hangup(call_control_id)) if rest is not None else None,
    )
    with bound_call(call_control_id):
        session = await open_phone_session(
            runtime,
            transport,
            call_id=call_control_id,
            agent_id=str(state.get("agent_id") or "") or None,
            to_number=str(state.get("to") or info.get("to") or "") or None,
            from_number=str(state.get("from") or info.get("from") or "") or None,
            transport_ids={
                "call_control_id": call_control_id,
                "stream_id": stream_id,
                "call_session_id": str(info.get("call_session_id") or state.get("sid") or ""),
            },
        )
        if session is None:
            return
        log.info("telnyx_stream_started", stream_id=stream_id, codec=codec)
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
        except (TypeError, ValueError):
            continue
    return None
