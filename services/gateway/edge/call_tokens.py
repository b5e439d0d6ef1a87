"""Short-lived, single-use call tokens: what lets a media stream or a browser socket start a call.

The TwiML and the Telnyx ``answer`` are ours, so each phone call's stream carries a token we minted in the
signed webhook; a browser gets one from the keyed API. A token is ``v1.<claims>.<mac>``: base64url JSON claims
(who the call is for: kind, call id, agent, numbers, expiry, nonce) and an HMAC-SHA256 over them with
``STREAM_TOKEN_SECRET``. What the stream's ``start`` says about agent and numbers is not believed; the claims
are. A nonce is spent once per replica (remembered until its token expires).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.logging import get_logger

log = get_logger(__name__)

TokenKind = Literal["twilio", "telnyx", "browser"]
VERSION = "v1"
MAX_TOKEN_CHARS = 2048


class TokenError(Exception):
    """Why a token was refused (logged and counted; the caller sees a generic close reason)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class CallClaims(BaseModel):
    """What a token vouches for. Short field names keep the TwiML parameter small."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    kind: TokenKind = Field(alias="k")
    call_id: str = Field(default="", alias="c", max_length=256, description="empty for a browser call")
    agent_id: str | None = Field(default=None, alias="a", max_length=128)
    from_number: str | None = Field(default=None, alias="f", max_length=64)
    to_number: str | None = Field(default=None, alias="t", max_length=64)
    expires_at: float = Field(alias="e")
    nonce: str = Field(alias="n", min_length=8, max_length=64)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CallTokens:
    """Mints and checks call tokens with one secret (shared by every gateway replica)."""

    def __init__(self, secret: bytes, ttl_s: float) -> None:
        if not secret:
            raise ValueError("a call-token secret is required")
        self._secret = secret
        self.ttl_s = ttl_s
        self._spent: set[str] = set()
        self._spent_order: deque[tuple[float, str]] = deque()  # (expiry, nonce), oldest first: forgotten in O(1)

    def mint(
        self,
        kind: TokenKind,
        *,
        call_id: str = "",
        agent_id: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        now: float | None = None,
    ) -> str:
        claims = CallClaims(
            kind=kind,
            call_id=call_id,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
            expires_at=round((time.time() if now is None else now) + self.ttl_s, 3),
            nonce=secrets.token_urlsafe(12),
        )
        body = _b64(claims.model_dump_json(by_alias=True, exclude_none=True).encode())
        return f"{VERSION}.{body}.{self._mac(body)}"

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._secret, f"{VERSION}.{body}".encode(), hashlib.sha256).digest())

    def peek(self, token: str) -> CallClaims:
        """The claims of a token this service just minted (nothing is checked or spent)."""
        return CallClaims.model_validate(json.loads(_unb64(token.split(".")[1])))

    def check(
        self, token: object, kind: TokenKind, *, call_id: str | None = None, now: float | None = None
    ) -> CallClaims:
        """The token's claims when it is ours, unexpired, unspent, for ``kind`` (and ``call_id``); spends it.
        Raises :class:`TokenError` otherwise."""
        if not isinstance(token, str) or not token:
            raise TokenError("missing", "no call token")
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError("malformed", "call token too long")
        version, _, rest = token.partition(".")
        body, _, mac = rest.partition(".")
        if version != VERSION or not body or not mac:
            raise TokenError("malformed", "not a call token")
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode("ascii", "replace")):
            raise TokenError("bad_signature", "call token signature does not match")
        try:
            claims = CallClaims.model_validate(json.loads(_unb64(body)))
        except (ValueError, binascii.Error, ValidationError):
            raise TokenError("malformed", "call token claims unreadable") from None
        now = time.time() if now is None else now
        if claims.expires_at < now:
            raise TokenError("expired", "call token expired")
        if claims.kind != kind:
            raise TokenError("wrong_kind", f"a {claims.kind} token cannot start a {kind} call")
        if call_id is not None and not hmac.compare_digest(claims.call_id.encode(), call_id.encode()):
            raise TokenError("wrong_call", "call token is for another call")
        self._forget_expired(now)
        if claims.nonce in self._spent:
            raise TokenError("replayed", "call token already used")
        self._spent.add(claims.nonce)
        self._spent_order.append((claims.expires_at, claims.nonce))
        return claims

    def _forget_expired(self, now: float) -> None:
        """An expired token is refused as expired, so its nonce need not be remembered any longer."""
        while self._spent_order and self._spent_order[0][0] < now:
            self._spent.discard(self._spent_order.popleft()[1])


def tokens_from_secret(secret: str, ttl_s: float) -> CallTokens:
    """The gateway's token service; with no secret (development only) a random one for this process."""
    if not secret:
        log.warning(
            "stream_token_secret_random",
            hint="set STREAM_TOKEN_SECRET (the same on every gateway replica); tokens die with this process",
        )
        return CallTokens(secrets.token_bytes(32), ttl_s)
    return CallTokens(secret.encode(), ttl_s)
