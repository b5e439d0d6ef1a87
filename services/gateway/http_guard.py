"""HTTP hardening for the gateway, as plain ASGI middleware (WebSockets pass through untouched):

- ``SecurityHeaders``: a Content-Security-Policy (own origin only, plus ``ws:``/``wss:`` for the simulator socket),
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` and, only when the request
  came over HTTPS (directly or per ``X-Forwarded-Proto`` from a proxy), ``Strict-Transport-Security``.
  FastAPI's ``/docs`` (Swagger UI from a CDN, inline script) and the legacy ``/simulator.html`` (inline script)
  get a policy that lets them work.
- ``RateLimiter``: a token bucket per (API key, client IP) on ``/api/v1``: ``API_RATE_LIMIT_PER_MINUTE`` requests a
  minute on average with bursts of ``API_RATE_LIMIT_BURST``; over it, 429 with ``Retry-After``. In memory, per
  replica; keys are kept only as a hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; worker-src 'self' blob:; font-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
CSP_INLINE = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
CSP_DOCS = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
HSTS = b"max-age=31536000; includeSubDomains"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def came_over_https(scope: Scope) -> bool:
    if scope.get("scheme") == "https":
        return True
    forwarded = _header(scope, b"x-forwarded-proto")
    return bool(forwarded) and forwarded.split(",")[0].strip().lower() == "https"


def csp_for(path: str) -> str:
    if path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        return CSP_DOCS
    if path == "/simulator.html":
        return CSP_INLINE
    return CSP


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [
            (b"content-security-policy", csp_for(scope.get("path", "")).encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
        ]
        if came_over_https(scope):
            extra.append((b"strict-transport-security", HSTS))
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TokenBuckets:
    """Token buckets by identity: ``take`` returns 0 when allowed, else the seconds until a token is back."""

    def __init__(self, per_minute: int, burst: int, *, max_entries: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.max_entries = max_entries
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, last refill, monotonic)

    def take(self, identity: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[identity] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_entries:
                self._sweep(now)
            return 0.0
        self._buckets[identity] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0

    def _sweep(self, now: float) -> None:
        """Drop buckets that are full again (they behave exactly like a new one), then the oldest if still too many."""
        full_after = self.burst / self.rate if self.rate > 0 else math.inf
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        if len(self._buckets) > self.max_entries:
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1][1])[-self.max_entries // 2 :]
            self._buckets = dict(keep)


class RateLimiter:
    def __init__(self, app: ASGIApp, *, per_minute: int, burst: int, prefix: str = "/api/v1") -> None:
        self.app = app
        self.prefix = prefix
        self.buckets = TokenBuckets(per_minute, burst) if per_minute > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if self.buckets is None or scope["type"] != "http" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        key = _header(scope, b"x-api-key") or ""
        client = scope.get("client") or ("?", 0)
        identity = f"{hashlib.sha256(key.encode()).hexdigest()[:16]}|{client[0]}"
        wait = self.buckets.take(identity)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        body = json.dumps({"detail": f"rate limit exceeded: retry in {retry_after}s"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
