"""What Twilio and Telnyx media streams share: the start of a phone call's session, feeding it the stream,
and the guards against bad frames. The session's transport over the stream is
:class:`~services.gateway.transports.media_stream.MediaStreamTransport`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from services.gateway.call.session import CallSession
from services.gateway.edge.call_tokens import CallClaims, TokenError, TokenKind
from services.gateway.metrics import CALL_TOKENS_REJECTED, CALLS_REJECTED, WS_PROTOCOL_ERRORS
from services.gateway.runtime import GatewayRuntime
from services.gateway.transports.idle_timeout import IdleTimeout
from services.gateway.transports.media_stream import Codec, MediaStreamTransport
from services.gateway.transports.ws_close import (
    CLOSE_INTERNAL,
    CLOSE_INVALID_DATA,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    close_quietly,
)
from shared.audio import alaw_to_pcm16, ulaw_to_pcm16
from shared.logging import get_logger
from shared.text_guard import first_unstorable

log = get_logger(__name__)

START_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0  # a provider sends 50 media frames a second; silence this long means the stream died
MAX_BAD_FRAMES = 50  # bad frames tolerated (logged and ignored) before the stream is closed
MAX_FRAMES_PER_S = 200  # 4x the real rate; beyond it frames are dropped, and a sustained flood closes
FLOOD_SECONDS = 3
DTMF_KEY = re.compile(r"[0-9*#A-D]")  # one key of the pad, as both providers report it

TOO_BIG = "message too big"
INVALID_UNICODE = "invalid Unicode"


class StreamClosed(Exception):
    """The stream was closed (by us, with a reason) before its call could start."""


async def receive_json(ws: WebSocket, guard: FrameGuard, limit: int) -> dict[str, Any] | str | None:
    """One text frame as a dict; None for a bad frame (counted and ignored); a str is a close reason."""
    raw = await ws.receive()
    if raw.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(raw.get("code", 1000))
    text = raw.get("text")
    if text is None:
        return guard.bad_frame("binary_frame", "media streams carry JSON text frames only") or None
    if len(text) > limit:
        return TOO_BIG
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nesting deeper than the parser goes
        return guard.bad_frame("bad_json", text[:80]) or None
    if not isinstance(msg, dict) or not isinstance(msg.get("event"), str):
        return guard.bad_frame("bad_message", "a JSON object with an event is expected") or None
    if "\\u" in text and (found := first_unstorable(msg)) is not None:  # only escapes can smuggle surrogates
        guard.bad_frame("invalid_unicode", f"{'.'.join(map(str, found[0]))}: {found[1]}")
        return INVALID_UNICODE
    return msg


def close_code(reason: str) -> int:
    """The close code that tells a client why its stream was closed."""
    return {TOO_BIG: CLOSE_TOO_BIG, INVALID_UNICODE: CLOSE_INVALID_DATA}.get(reason, CLOSE_PROTOCOL)


async def refuse_stream(ws: WebSocket, guard: FrameGuard, code: str, detail: str, close: int = CLOSE_PROTOCOL) -> None:
    """Close a stream whose start we won't serve (before any call work), saying why in the log and metrics."""
    guard.bad_frame(code, detail)
    await close_quietly(ws, close, detail)


def start_problem(exc: ValidationError) -> str:
    """A validation error of a start message as ``field: message`` (what the close reason and log say)."""
    err = exc.errors(include_url=False)[0]
    return f"invalid start: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"[:120]


async def check_token(
    runtime: GatewayRuntime, ws: WebSocket, guard: FrameGuard, kind: TokenKind, token: object, call_id: str
) -> CallClaims | None:
    """The stream's token claims, or None after closing the stream (1008) when the token is not ours."""
    try:
        return await runtime.check_call_token(token, kind, call_id=call_id)
    except TokenError as exc:
        CALL_TOKENS_REJECTED.labels(kind, exc.code).inc()
        CALLS_REJECTED.labels(kind, "unauthorized").inc()
        log.warning("media_stream_unauthorized", client_type=kind, code=exc.code, detail=str(exc))
        await refuse_stream(ws, guard, "unauthorized", "missing or invalid stream token")
        return None


StartT = TypeVar("StartT", bound=BaseModel)


async def accept_start(ws: WebSocket, guard: FrameGuard, model: type[StartT]) -> StartT | None:
    """Accept the stream and read its ``start`` as the provider's ``model``; None when it was refused or the
    caller left before it (the socket is closed with the code that says why)."""
    await ws.accept()
    try:
        raw = await read_start(ws, guard)
    except (WebSocketDisconnect, StreamClosed):
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        await refuse_stream(ws, guard, "bad_start", start_problem(exc))
        return None


async def read_start(ws: WebSocket, guard: FrameGuard) -> dict[str, Any]:
    """Skip ``connected``; return ``start``. Anything else first, or nothing within the timeout, closes."""
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                msg = await receive_json(ws, guard, 64_000)
                if isinstance(msg, str):
                    await close_quietly(ws, close_code(msg), msg)
                    raise StreamClosed(msg)
                if msg is None or msg["event"] == "connected":
                    continue
                if msg["event"] == "start":
                    return msg
                if msg["event"] == "stop":
                    await close_quietly(ws)
                    raise StreamClosed("stopped before start")
                guard.bad_frame("before_start", f"{msg['event']} before start")
                await close_quietly(ws, CLOSE_PROTOCOL, f"{msg['event']} before start")
                raise StreamClosed("before start")
    except TimeoutError:
        guard.bad_frame("start_timeout", f"no start within {START_TIMEOUT_S:.0f}s")
        await close_quietly(ws, CLOSE_PROTOCOL, "no start message")
        raise StreamClosed("no start") from None


def decode_payload(payload: object, codec: Codec) -> bytes | None:
    """A media frame's base64 G.711 payload as PCM16, or None when it isn't valid base64 audio."""
    if not isinstance(payload, str) or not payload:
        return None
    try:
        raw = base64.b64decode(payload, validate=True)
    except ValueError:
        return None
    return alaw_to_pcm16(raw) if codec == "PCMA" else ulaw_to_pcm16(raw)


class FrameGuard:
    """Counts bad frames and floods for one stream: each is logged and ignored; too many close the stream."""

    def __init__(self, client_type: str) -> None:
        self.client_type = client_type
        self.bad = 0
        self._second = int(time.monotonic())
        self._in_second = 0
        self._flood_seconds = 0

    def bad_frame(self, code: str, detail: str) -> str | None:
        """Record one bad frame; returns a close reason when the stream should be closed."""
        self.bad += 1
        WS_PROTOCOL_ERRORS.labels(self.client_type, code).inc()
        if self.bad <= 5 or self.bad % 100 == 0:
            log.warning(
                "media_stream_bad_frame", client_type=self.client_type, code=code, detail=detail, count=self.bad
            )
        return "too many invalid frames" if self.bad >= MAX_BAD_FRAMES else None

    def admit(self) -> tuple[bool, str | None]:
        """Rate-limit frames: (take this frame?, close reason)."""
        now = int(time.monotonic())
        if now != self._second:
            self._flood_seconds = self._flood_seconds + 1 if self._in_second > MAX_FRAMES_PER_S else 0
            self._second, self._in_second = now, 0
        self._in_second += 1
        if self._in_second <= MAX_FRAMES_PER_S:
            return True, None
        if self._in_second == MAX_FRAMES_PER_S + 1:
            WS_PROTOCOL_ERRORS.labels(self.client_type, "flood").inc()
            log.warning("media_stream_flood", client_type=self.client_type, max_per_s=MAX_FRAMES_PER_S)
        return False, "frame flood" if self._flood_seconds >= FLOOD_SECONDS else None


async def open_phone_session(
    runtime: GatewayRuntime,
    transport: MediaStreamTransport,
    *,
    claims: CallClaims,
    transport_ids: dict[str, str],
) -> CallSession | None:
    """A phone call's session, or None after closing the stream with the reason it can't start. Agent and
    numbers come from the token's claims (what our webhook saw), never from the stream's own words."""
    call_id = claims.call_id
    refusal = runtime.refusal(call_id)
    runtime.release(call_id)
    if refusal is not None:
        CALLS_REJECTED.labels(transport.client_type, refusal).inc()
        log.warning("phone_call_refused", reason=refusal, call_id=call_id)
        await transport.close(CLOSE_TRY_LATER, refusal)
        return None
    # a second stream for a call already live, here or on another replica (asked over call control)
    owner = None if call_id in runtime.sessions else await runtime.call_control.live_elsewhere(call_id)
    if call_id in runtime.sessions or owner is not None:
        CALLS_REJECTED.labels(transport.client_type, "duplicate_call").inc()
        log.warning("phone_call_duplicate_stream", call_id=call_id, owner=owner.instance if owner else None)
        transport.hangup = None  # the live stream owns the call
        await transport.close(CLOSE_PROTOCOL, "duplicate stream for a live call")
        return None
    try:
        agent_id = claims.agent_id or await runtime.agents.agent_for_number(claims.to_number)
        config = await runtime.config_for_call(transport.client_type, agent_id)
    except LookupError as exc:
        CALLS_REJECTED.labels(transport.client_type, "unknown_agent").inc()
        log.error("phone_call_bad_agent", error=str(exc), call_id=call_id)
        await transport.close(CLOSE_PROTOCOL, "unknown agent")
        return None
    session = runtime.new_session(
        call_id,
        transport,
        config,
        transport_ids=transport_ids,
        from_number=claims.from_number,
        to_number=claims.to_number,
    )
    runtime.sessions[call_id] = session
    return session


def public_host(runtime: GatewayRuntime, headers: dict[str, str] | object) -> str:
    """Where providers reach us: PUBLIC_HOST (required in production). Without it (development) the request's
    own Host header; never ``X-Forwarded-Host``, which any client can set."""
    if runtime.settings.public_host:
        return runtime.settings.public_host
    get = getattr(headers, "get", None)
    host = get("host") if get else None
    return host or f"127.0.0.1:{runtime.settings.gateway_port}"


Reorder = Callable[[dict[str, Any], bytes], list[bytes]]  # (media message, its PCM) -> frames to play now
Check = Callable[[dict[str, Any]], tuple[str, str] | None]  # a message -> (bad-frame code, detail) or None


def in_order(_msg: dict[str, Any], pcm: bytes) -> list[bytes]:
    return [pcm]


def any_stream(_msg: dict[str, Any]) -> tuple[str, str] | None:
    return None


async def serve_phone_call(
    runtime: GatewayRuntime,
    ws: WebSocket,
    session: CallSession,
    transport: MediaStreamTransport,
    guard: FrameGuard,
    *,
    reorder: Reorder = in_order,
    check: Check = any_stream,
) -> None:
    """Start the session, feed it the stream until either side ends the call, and end it exactly once."""
    try:
        await session.start()
        try:
            async with IdleTimeout(IDLE_TIMEOUT_S) as idle:
                limit = runtime.settings.max_ws_message_bytes
                reason = await _feed(ws, session, transport, guard, reorder, check, limit, idle)
        except TimeoutError:
            reason = "caller_idle"
        await session.end(reason)
    except WebSocketDisconnect:
        await _remote_end(session, transport)
    except Exception:
        log.exception("phone_session_crashed", client_type=transport.client_type)
        await session.end("internal_error", close_code=CLOSE_INTERNAL)
    finally:
        runtime.sessions.pop(session.call_id, None)


async def _feed(
    ws: WebSocket,
    session: CallSession,
    transport: MediaStreamTransport,
    guard: FrameGuard,
    reorder: Reorder,
    check: Check,
    limit: int,
    idle: IdleTimeout,
) -> str:
    """Feed the call until the provider stops the stream or it misbehaves; returns the end reason."""
    while not session.ended:
        msg = await receive_json(ws, guard, limit)
        idle.touch()
        close: str | None = None
        if isinstance(msg, str):
            close = msg
        elif msg is None:
            continue
        elif (problem := check(msg)) is not None:
            close = guard.bad_frame(*problem)
        elif msg["event"] == "media":
            close = await _media(msg, session, transport.codec, guard, reorder)
        elif msg["event"] == "mark":
            mark = msg.get("mark") if isinstance(msg.get("mark"), dict) else {}
            transport.mark_played(str(mark.get("name", "")))
        elif msg["event"] == "dtmf":
            close = await _dtmf(msg, session, guard)
        elif msg["event"] == "stop":
            await _remote_end(session, transport)
            return session.end_reason or "caller_hangup"
        elif msg["event"] in ("error", "connected", "start"):
            log.warning("media_stream_event", stream_event=msg["event"], detail=str(msg.get("payload", ""))[:200])
        else:
            close = guard.bad_frame("unknown_event", str(msg["event"])[:40])
        if close is not None:
            await transport.close(close_code(close), close)
            return "protocol_error"
    return session.end_reason or "ended"


async def _remote_end(session: CallSession, transport: MediaStreamTransport) -> None:
    """The provider ended the stream: the caller hung up, unless the agent transferred the call (the provider
    ends the stream of a call it hands elsewhere, maybe before its answer to our transfer reached us: the
    outcome is awaited). Ends the session either way, at once: nothing more can be played on this stream."""
    transport.remote_ended = True
    target = await transport.transfer_outcome()
    if target is None:
        await session.end("caller_hangup")
    else:
        await session.end("transferred", transferred_to=target)


async def _dtmf(msg: dict[str, Any], session: CallSession, guard: FrameGuard) -> str | None:
    """A key the caller pressed (Twilio ``{"dtmf": {"track", "digit"}}``, Telnyx ``{"dtmf": {"digit"}}``) goes
    to the session; anything but one key is a bad frame. The key itself is never logged here (it may be a
    PIN): the session logs it masked when the agent says its keys are sensitive."""
    dtmf = msg.get("dtmf")
    digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
    if not isinstance(digit, str) or not DTMF_KEY.fullmatch(digit):
        return guard.bad_frame("bad_dtmf", "dtmf.digit must be one key: 0-9, *, #, A-D")
    await session.on_dtmf(digit)
    return None


async def _media(
    msg: dict[str, Any], session: CallSession, codec: Codec, guard: FrameGuard, reorder: Reorder
) -> str | None:
    take, close = guard.admit()
    media = msg.get("media") if isinstance(msg.get("media"), dict) else {}
    if not take or media.get("track", "inbound") != "inbound":
        return close
    pcm = decode_payload(media.get("payload"), codec)
    if pcm is None:
        return guard.bad_frame("bad_payload", "media.payload is not base64")
    for frame in reorder(msg, pcm):
        await session.on_audio(frame)
    return close
