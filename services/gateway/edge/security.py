"""API keys for the HTTP API: ``X-API-Key`` against ``API_KEYS`` (several allowed, for rotation), compared in
constant time. With no keys configured the API is open, which is only for local development: the gateway
logs a warning at start-up."""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException, Request, status

from shared.logging import get_logger

log = get_logger(__name__)


def parse_keys(raw: str) -> list[bytes]:
    return [k.strip().encode() for k in raw.split(",") if k.strip()]


def key_matches(given: str, keys: list[bytes]) -> bool:
    candidate = given.encode()
    matched = False
    for key in keys:  # check every key so the time taken does not tell which one (or how many) matched
        matched |= hmac.compare_digest(candidate, key)
    return matched


async def require_api_key(request: Request, x_api_key: str | None = Header(default=None)) -> None:
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return
    if not x_api_key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header", headers={"WWW-Authenticate": "ApiKey"}
        )
    if not key_matches(x_api_key, keys):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "ApiKey"})
