"""Closing a WebSocket whose client may already have gone: one helper for every endpoint."""

from __future__ import annotations

from fastapi import WebSocket, WebSocketDisconnect


async def close_quietly(ws: WebSocket, code: int = 1000, reason: str = "") -> None:
    """Close with ``code``; a client that has already left is nothing to report (Starlette raises
    ``WebSocketDisconnect``, or ``RuntimeError`` once a close was sent)."""
    try:
        await ws.close(code=code, reason=reason[:120])
    except (WebSocketDisconnect, RuntimeError):
        pass
