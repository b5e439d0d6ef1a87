"""Closing a WebSocket whose client may already have gone: one helper for every endpoint."""

from __future__ import annotations

from fastapi import WebSocket, WebSocketDisconnect

# close codes every WebSocket endpoint uses (RFC 6455)
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003  # a media format we cannot play
CLOSE_INVALID_DATA = 1007  # text that is not valid Unicode (a lone surrogate escape)
CLOSE_PROTOCOL = 1008  # policy violation: bad or missing start or token, too many bad messages
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012  # the gateway is shutting down: call again
CLOSE_TRY_LATER = 1013  # not ready (NATS down), global stop, draining, full


async def close_quietly(ws: WebSocket, code: int = 1000, reason: str = "") -> None:
    """Close with ``code``; a client that has already left is nothing to report (Starlette raises
    ``WebSocketDisconnect``, or ``RuntimeError`` once a close was sent)."""
    try:
        await ws.close(code=code, reason=reason[:120])
    except (WebSocketDisconnect, RuntimeError):
        pass
