"""The browser-simulator WebSocket (``/ws/simulator``): the protocol is in docs/ARCHITECTURE.md.

Client → server: a JSON ``start`` first, then binary frames of PCM16 mono audio at the declared rate (or
``{"type":"audio","data":<base64>}``), ``dtmf`` for a keypad key, and ``stop`` to hang up. Server → client:
``started``, binary reply audio (same rate and format), ``transcript``, ``clear``, ``turn_metrics``, ``state``,
``tool``, ``transferred``, ``error`` and ``ended``. The agent's ``send_dtmf`` plays the tones in the reply
audio; a ``transfer_call`` tells the page (``transferred``) and the call ends ``transferred``.
Every JSON message, both ways, is a model of ``transports/protocol.py``.
Bad messages get an ``error`` and are ignored; a connection that keeps sending them, or a frame over the
size bound, is closed with a code that says why. Nothing a client sends can take the gateway down.

Trust: a handshake whose ``Origin`` is not allowed (``ALLOWED_ORIGINS``, by default the gateway's own origin)
is refused (HTTP 403) so that no other site can start calls from its visitors' browsers; each client address
holds at most ``MAX_BROWSER_CALLS_PER_CLIENT`` sockets; with ``API_KEYS`` set the ``start`` must carry a call
token from ``POST /api/v1/simulator/tokens`` (error ``unauthorized``, close 1008); a full gateway answers
``busy`` (close 1013).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from typing import Literal
from urllib.parse import urlsplit

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from services.gateway.call.output import AudioOutput, paced_output
from services.gateway.call.session import CallSession
from services.gateway.call.transport import SessionMessage
from services.gateway.edge.call_tokens import CallClaims, TokenError
from services.gateway.metrics import CALL_TOKENS_REJECTED, CALLS_REJECTED, WS_PROTOCOL_ERRORS
from services.gateway.runtime import GatewayRuntime
from services.gateway.transports.idle_timeout import IdleTimeout
from services.gateway.transports.protocol import (
    CLIENT_MESSAGE,
    AudioMessage,
    Clear,
    DtmfMessage,
    ErrorMessage,
    Started,
    StartMessage,
    Transferred,
)
from services.gateway.transports.ws_close import (
    CLOSE_INTERNAL,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    close_quietly,
)
from shared.audio import dtmf_tones
from shared.events import new_id
from shared.logging import bound_call, get_logger

log = get_logger(__name__)

START_TIMEOUT_S = 10.0
MAX_BAD_MESSAGES = 20
IDLE_TIMEOUT_S = 60.0  # no frame at all from the client for this long ends the call
BAD_BASE64 = ("bad_audio", "audio.data must be base64 PCM16")


class BrowserTransport:
    client_type: Literal["browser"] = "browser"
    encoding: Literal["pcm16"] = "pcm16"

    def __init__(self, ws: WebSocket, sample_rate: int) -> None:
        self.ws = ws
        self.sample_rate = sample_rate
        self._lock = asyncio.Lock()
        self.closed = False
        self.output: AudioOutput | None = None

    async def send_audio(self, data: bytes) -> None:
        async with self._lock:
            if not self.closed:
                await self.ws.send_bytes(data)

    async def send_event(self, message: SessionMessage) -> None:
        async with self._lock:
            if not self.closed:
                await self.ws.send_text(message.model_dump_json(exclude_none=True))

    async def send_clear(self) -> None:
        await self.send_event(Clear())

    def open_output(self, *, frame_ms: int, lead_ms: int) -> AudioOutput:
        """Reply audio as binary PCM16 frames, paced; barge-in sends ``clear``."""
        self.output = paced_output(
            client_type=self.client_type,
            send_audio=self.send_audio,
            send_clear=self.send_clear,
            bytes_per_s=self.sample_rate * 2,
            frame_ms=frame_ms,
            lead_ms=lead_ms,
        )
        return self.output

    async def transfer(self, target: str) -> None:
        """A browser call goes nowhere: the page is told; the session then ends the call (``transferred``)."""
        await self.send_event(Transferred(target=target))

    async def send_dtmf(self, digits: str) -> None:
        """The keys' tones in band, after the audio already queued (``w``: half a second of silence)."""
        if self.output is None:
            raise RuntimeError("the call has no audio output yet")
        for key in digits.upper():
            self.output.push(bytes(self.sample_rate) if key == "W" else dtmf_tones(key, self.sample_rate))

    async def close(self, code: int, reason: str) -> None:
        """Close once (the session's end closes again: a no-op); a client already gone is no error."""
        async with self._lock:
            if not self.closed:
                self.closed = True
                await close_quietly(self.ws, code, reason)


async def _send(ws: WebSocket, message: BaseModel) -> None:
    """One server message of ``protocol.py`` as a JSON text frame (unset optional fields left out)."""
    await ws.send_text(message.model_dump_json(exclude_none=True))


async def _send_error(ws: WebSocket, code: str, message: str) -> None:
    """Tell the client what was wrong; a client already gone is no error of ours (nothing to tell)."""
    WS_PROTOCOL_ERRORS.labels("browser", code).inc()
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # RuntimeError: Starlette's "already closed"
        await _send(ws, ErrorMessage(code=code, message=message))


async def _refuse(ws: WebSocket, code: str, message: str, close_code: int, reason: str) -> None:
    """An ``error`` message, then the close code that says why; quiet if the client has already left."""
    await _send_error(ws, code, message)
    await close_quietly(ws, close_code, reason)


def origin_allowed(runtime: GatewayRuntime, ws: WebSocket) -> bool:
    """No ``Origin`` (not a browser: tools, tests) is allowed; a browser's must be listed, or by default be
    this gateway's own origin (its Host header or ``PUBLIC_URL``)."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    allowed = [o.strip().rstrip("/") for o in runtime.settings.allowed_origins.split(",") if o.strip()]
    if allowed:
        return origin.rstrip("/") in allowed
    own = {ws.headers.get("host", "")}
    if runtime.settings.public_url:
        own.add(urlsplit(runtime.settings.public_url).netloc)
    return urlsplit(origin).netloc in own - {""}


async def simulator_endpoint(ws: WebSocket, runtime: GatewayRuntime) -> None:
    if not origin_allowed(runtime, ws):
        CALLS_REJECTED.labels("browser", "bad_origin").inc()
        log.warning("simulator_origin_refused", origin=ws.headers.get("origin", "")[:200])
        await ws.close(code=CLOSE_PROTOCOL, reason="origin not allowed")  # before accept: HTTP 403
        return
    client = ws.client.host if ws.client else "?"
    await ws.accept()
    if runtime.browser_clients[client] >= runtime.settings.max_browser_calls_per_client:
        CALLS_REJECTED.labels("browser", "client_limit").inc()
        log.warning("simulator_client_limit", client=client, open=runtime.browser_clients[client])
        await _refuse(
            ws,
            "too_many_calls",
            "this address already has as many calls open as allowed",
            CLOSE_TRY_LATER,
            "too many calls from this address",
        )
        return
    runtime.browser_clients[client] += 1
    try:
        await _serve(ws, runtime)
    finally:
        runtime.browser_clients[client] -= 1
        if runtime.browser_clients[client] <= 0:
            del runtime.browser_clients[client]


async def _authorize(ws: WebSocket, runtime: GatewayRuntime, start: StartMessage) -> CallClaims | bool | None:
    """False after refusing the call (bad or missing token where one is needed); else the token's claims
    (None when no token was sent and none is required)."""
    if start.token is None and not ws.app.state.api_keys:
        return None
    try:
        claims = await runtime.check_call_token(start.token, "browser")
        if claims.agent_id and start.agent_id and claims.agent_id != start.agent_id:
            raise TokenError("wrong_agent", "call token is for another agent")
        return claims
    except TokenError as exc:
        CALL_TOKENS_REJECTED.labels("browser", exc.code).inc()
        CALLS_REJECTED.labels("browser", "unauthorized").inc()
        log.warning("simulator_unauthorized", code=exc.code, detail=str(exc))
        await _refuse(
            ws,
            "unauthorized",
            "a valid call token is required: POST /api/v1/simulator/tokens",
            CLOSE_PROTOCOL,
            "missing or invalid call token",
        )
        return False


async def _serve(ws: WebSocket, runtime: GatewayRuntime) -> None:
    limit = runtime.settings.max_ws_message_bytes
    try:
        start = await _read_start(ws)
    except WebSocketDisconnect:
        return
    if start is None:
        return
    claims = await _authorize(ws, runtime, start)
    if claims is False:
        return
    refusal = runtime.refusal()
    if refusal is not None:
        CALLS_REJECTED.labels("browser", refusal).inc()
        await _refuse(ws, refusal, runtime.refusal_message(refusal), CLOSE_TRY_LATER, refusal)
        return
    agent_id = (claims.agent_id if isinstance(claims, CallClaims) else None) or start.agent_id
    try:
        config = await runtime.config_for_call("browser", agent_id)
    except LookupError as exc:
        CALLS_REJECTED.labels("browser", "unknown_agent").inc()
        await _refuse(ws, "unknown_agent", str(exc), CLOSE_PROTOCOL, "unknown agent")
        return
    call_id = new_id()
    transport = BrowserTransport(ws, start.sample_rate)
    session = runtime.new_session(call_id, transport, config)
    try:
        await _send(ws, Started(call_id=call_id, sample_rate=start.sample_rate, agent_id=config.agent_id))
    except (WebSocketDisconnect, RuntimeError):  # the client left before its call started: nothing to record
        log.info("simulator_client_left_before_start")
        return
    runtime.sessions[call_id] = session
    with bound_call(call_id):
        try:
            await session.start()
            reason = await _receive_loop(ws, transport, session, limit)
            await session.end(reason)
        except WebSocketDisconnect:
            await session.end("caller_hangup")
        except Exception:
            log.exception("simulator_session_crashed")
            await session.end("internal_error", close_code=CLOSE_INTERNAL)
        finally:
            runtime.sessions.pop(call_id, None)


async def _read_start(ws: WebSocket) -> StartMessage | None:
    try:
        raw = await asyncio.wait_for(ws.receive(), START_TIMEOUT_S)
    except TimeoutError:
        await _refuse(
            ws,
            "start_timeout",
            f"send a start message within {START_TIMEOUT_S:.0f}s",
            CLOSE_PROTOCOL,
            "no start message",
        )
        return None
    if raw.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(raw.get("code", 1000))
    start = _parse_start(raw.get("text"))
    if isinstance(start, str):
        await _refuse(ws, "bad_start", f"invalid start message: {start}", CLOSE_PROTOCOL, "invalid start message")
        return None
    return start


def _parse_start(text: str | None) -> StartMessage | str:
    """The client's first message as a ``StartMessage``, or what is wrong with it (its ``type`` is required)."""
    if text is None:
        return "the first message must be a JSON start message, not binary audio"
    try:
        message = CLIENT_MESSAGE.validate_json(text)
    except ValidationError as exc:
        return str(exc.errors(include_url=False)[0]["msg"])
    if not isinstance(message, StartMessage):
        return f"the first message must be a start message, not {message.type!r}"
    return message


async def _receive_loop(ws: WebSocket, transport: BrowserTransport, session: CallSession, limit: int) -> str:
    """Feed audio to the session until the client stops, hangs up or misbehaves; returns the end reason."""
    try:
        async with IdleTimeout(IDLE_TIMEOUT_S) as idle:
            return await _receive_frames(ws, transport, session, limit, idle)
    except TimeoutError:
        return "caller_idle"


async def _receive_frames(
    ws: WebSocket, transport: BrowserTransport, session: CallSession, limit: int, idle: IdleTimeout
) -> str:
    bad = 0
    while not session.ended:
        raw = await ws.receive()
        idle.touch()
        if raw.get("type") == "websocket.disconnect":
            return "caller_hangup"
        data: bytes | None = raw.get("bytes")
        text: str | None = raw.get("text")
        size = len(data) if data is not None else len(text or "")
        if size > limit:
            await _send_error(ws, "frame_too_big", f"a message may carry at most {limit} bytes, got {size}")
            await transport.close(CLOSE_TOO_BIG, "message too big")
            return "protocol_error"
        problem: tuple[str, str] | None = None
        if data is not None:
            problem = await _audio(session, data)
        elif text is not None:
            problem = await _control(session, text)
            if problem == ("stop", ""):
                return "caller_hangup"
        if problem is not None:
            bad += 1
            await _send_error(ws, *problem)
            if bad >= MAX_BAD_MESSAGES:
                await transport.close(CLOSE_PROTOCOL, "too many invalid messages")
                return "protocol_error"
    return session.end_reason or "ended"


async def _audio(session: CallSession, data: bytes) -> tuple[str, str] | None:
    if len(data) % 2:
        return ("bad_audio", "audio frames must be PCM16: an even number of bytes")
    await session.on_audio(data)
    return None


async def _control(session: CallSession, text: str) -> tuple[str, str] | None:
    """A text frame after the start: ``stop`` (returned as the problem ``("stop", "")``), base64 ``audio``, or the
    error to send for it. JSON is parsed apart from the models so that each kind of bad message keeps its code."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nesting deeper than the parser goes
        return ("bad_json", "message is not valid JSON")
    if not isinstance(msg, dict):
        return ("bad_message", "message must be a JSON object with a type")
    kind = msg.get("type")
    if kind == "start":  # valid or not, it comes too late
        return ("already_started", "the call has already started")
    try:
        message = CLIENT_MESSAGE.validate_python(msg)
    except ValidationError:
        if kind == "audio":
            return BAD_BASE64
        if kind == "dtmf":
            return ("bad_dtmf", "dtmf.digit must be one key: 0-9, *, #, A-D")
        return ("unknown_message", f"unknown message type {kind!r}; expected audio, dtmf or stop")
    if isinstance(message, AudioMessage):
        return await _audio_message(session, message)
    if isinstance(message, DtmfMessage):
        await session.on_dtmf(message.digit)
        return None
    return ("stop", "")  # a StopMessage (a start was answered above)


async def _audio_message(session: CallSession, message: AudioMessage) -> tuple[str, str] | None:
    try:
        data = base64.b64decode(message.data, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return BAD_BASE64
    return await _audio(session, data)
