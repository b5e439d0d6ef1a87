"""HTTP hardening for the gateway, as plain ASGI middleware (WebSockets pass through untouched):

- ``SecurityHeaders``: a Content-Security-Policy (own origin only, plus ``ws:``/``wss:`` for the simulator socket),
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` and, only when the request
  came over HTTPS (directly or per ``X-Forwarded-Proto`` from a proxy), ``Strict-Transport-Security``.
  FastAPI's ``/docs`` (Swagger UI from a CDN, inline script) gets a policy that lets it work.
- ``RateLimiter``: token buckets on ``/api/v1`` and ``/admin``: ``API_RATE_LIMIT_PER_MINUTE`` requests a minute on
  average with bursts of ``API_RATE_LIMIT_BURST``; over it, 429 with ``Retry-After``. A valid key has a bucket per
  (key, client IP); a missing, unknown or invalid key shares one bucket per client IP, so a fresh random key per
  request buys no fresh bucket. In memory, per replica; keys are kept only as a hash.
- ``BodyLimit``: the largest request body per path prefix (``/twilio/`` 64 kB, ``/telnyx/`` 256 kB, else
  ``API_MAX_BODY_BYTES``), enforced while reading: a larger ``Content-Length`` is a 413 before anything is read, a
  streamed (chunked) body is counted as it arrives and answered 413 as soon as it passes the limit.
- ``JsonHygiene``: a JSON body on ``/api/v1`` or ``/admin`` with ``NaN``/``Infinity``, a number that overflows to
  infinity (``1e999``) or a string (key or value) with a lone surrogate (``"\\ud800"``) is a 422 in FastAPI's
  format naming the field: such values cannot be stored in PostgreSQL nor written back as JSON (they were 500s).
- ``request_validation_handler``: FastAPI's 422 handler, but one whose answer cannot fail to encode (an ``input``
  that was undecodable bytes, NaN or a lone surrogate is made safe instead of becoming a 500).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.gateway.edge.security import key_matches
from shared.text_guard import safe_text, unstorable

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

    def peek(self, identity: str, now: float | None = None) -> float:
        """Like ``take`` but takes nothing: 0 when a token is there, else the seconds until one is."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            return 0.0
        return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0

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


def under(path: str, prefixes: Iterable[str]) -> bool:
    """``path`` is one of ``prefixes`` or below one (``/admin`` covers ``/admin/x``, not ``/administrator``)."""
    return any(path == p or path.startswith(p if p.endswith("/") else p + "/") for p in prefixes)


async def send_json(send: Send, status: int, content: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(content, separators=(",", ":")).encode()  # ASCII only: safe for any string in content
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


GUARDED_PREFIXES = ("/api/v1", "/admin")


class RateLimiter:
    """``keys``: the keys that count as valid (``API_KEYS`` plus ``ADMIN_API_KEY``); any other key, or none, shares
    the client address's bucket for unknown keys."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        burst: int,
        keys: Sequence[bytes] = (),
        prefixes: Sequence[str] = GUARDED_PREFIXES,
    ) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)
        self.keys = [k for k in keys if k]
        self.buckets = TokenBuckets(per_minute, burst) if per_minute > 0 else None

    def identity(self, scope: Scope) -> str:
        client = scope.get("client") or ("?", 0)
        key = _header(scope, b"x-api-key") or ""
        if key and self.keys and key_matches(key, self.keys):
            return f"{hashlib.sha256(key.encode()).hexdigest()[:16]}|{client[0]}"
        return f"unknown-key|{client[0]}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http" or not under(scope.get("path", ""), self.prefixes):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(self.identity(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        await send_json(
            send,
            429,
            {"detail": f"rate limit exceeded: retry in {retry_after}s"},
            [(b"retry-after", str(retry_after).encode())],
        )


WEBHOOK_BODY_LIMITS = (("/twilio/", 64_000), ("/telnyx/", 256_000))


class BodyLimit:
    """At most ``max_bytes`` of request body, or the limit of the first matching prefix in ``per_prefix``."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_prefix: Sequence[tuple[str, int]] = WEBHOOK_BODY_LIMITS
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_prefix = tuple(per_prefix)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.per_prefix:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        too_large = {"detail": f"request body over {limit} bytes"}
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await send_json(send, 413, too_large)
            return
        received = 0
        started = False  # a response went out already (the app's, or our 413)
        answered = False  # we sent the 413: whatever the app still sends is dropped
        cut = False  # the body passed the limit: the app reads no more of it

        async def counted_receive() -> Message:
            nonlocal received, answered, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    if not started:
                        answered = True
                        await send_json(send, 413, too_large)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not cut:  # the app failing on the disconnect we made up (e.g. ClientDisconnect): ours, not a bug
                raise


MAX_REPORTED_ERRORS = 20


def json_body_problems(body: bytes) -> list[dict[str, Any]] | None:
    """FastAPI-style errors for the values of a JSON ``body`` that cannot be stored or sent back as JSON; None when
    ``body`` is not JSON at all (FastAPI then answers it as usual)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON (or too deep): FastAPI's own answer
        return None
    found = itertools.islice(unstorable(data), MAX_REPORTED_ERRORS)
    return [
        {
            "type": kind,
            "loc": ["body", *(safe_text(p) if isinstance(p, str) else p for p in loc)],
            "msg": msg,
            "input": None,
        }
        for loc, kind, msg in found
    ]


def _is_json(content_type: str | None) -> bool:
    """The bodies FastAPI parses as JSON: no content type, ``application/json`` or ``application/*+json``."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JsonHygiene:
    """Reads a JSON body on ``prefixes`` first, answers 422 if it holds a value no layer below can handle, else
    hands the app the same body. Put it inside ``BodyLimit``: the body it buffers is bounded there."""

    def __init__(self, app: ASGIApp, *, prefixes: Sequence[str] = GUARDED_PREFIXES) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not under(scope.get("path", ""), self.prefixes)
            or not _is_json(_header(scope, b"content-type"))
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left (or BodyLimit answered): nobody to answer
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problems = json_body_problems(body) if body else None
        if problems:
            await send_json(send, 422, {"detail": problems})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _safe(value: Any) -> Any:
    """``value`` (already made JSON-like by ``jsonable_encoder``) with lone surrogates escaped and non-finite
    numbers as None."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {safe_text(str(k)): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


async def request_validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 answer, made safe to encode: undecodable bytes (e.g. a ``text/plain`` body of invalid UTF-8)
    are decoded with replacement characters, lone surrogates escaped, NaN and infinities given as null."""
    errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
    try:
        return JSONResponse({"detail": errors}, status_code=422)
    except (ValueError, UnicodeError):  # NaN/Infinity (allow_nan=False) or a lone surrogate (UTF-8)
        return JSONResponse({"detail": _safe(errors)}, status_code=422)
