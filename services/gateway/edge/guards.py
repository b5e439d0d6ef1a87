"""The gateway's HTTP edge put on an app: error answers that cannot be 500s, then the middleware in the order
that each one must wrap the next (see ``http_guard``)."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.gateway.edge.http_guard import (
    BodyLimit,
    JsonHygiene,
    RateLimiter,
    SecurityHeaders,
    request_validation_handler,
)
from shared.settings import GatewaySettings


async def unstorable_text(request: Request, exc: Exception) -> JSONResponse:
    """A NUL character (``\\x00``, ``\\u0000``) in a query or body: PostgreSQL stores no such text, so it is the
    request that is bad (found by schemathesis: these were 500s)."""
    return JSONResponse({"detail": "the request contains a NUL character, which cannot be stored"}, 400)


def install_edge(app: FastAPI, settings: GatewaySettings, api_keys: list[bytes]) -> None:
    """Error handlers and middleware; ``api_keys`` (and the admin key) get their own rate-limit buckets."""
    app.add_exception_handler(asyncpg.CharacterNotInRepertoireError, unstorable_text)
    app.add_exception_handler(asyncpg.UntranslatableCharacterError, unstorable_text)
    app.add_exception_handler(RequestValidationError, request_validation_handler)  # a 422 that cannot be a 500
    admin_key = settings.admin_api_key.get_secret_value().strip().encode()
    app.add_middleware(JsonHygiene)  # innermost: reads a body BodyLimit has bounded
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(
        RateLimiter,
        per_minute=settings.api_rate_limit_per_minute,
        burst=settings.api_rate_limit_burst,
        keys=[*api_keys, admin_key],
    )
    app.add_middleware(SecurityHeaders)  # outermost: 429s and 413s get the headers too
