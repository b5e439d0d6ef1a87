"""HMAC signatures on what Victoria sends to other systems (HTTP tool calls, post-call webhooks), so that a
receiver can check a request came from Victoria and was not replayed.

Header ``X-Victoria-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (the scheme Stripe and
Svix use): the timestamp is signed with the body, so a receiver refuses old requests (``max_age_s``) as well
as altered ones. :func:`verify` is what a receiver in Python runs; the README shows the three lines in other
languages.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Victoria-Signature"
DELIVERY_HEADER = "X-Victoria-Delivery"  # a unique id per delivery: a receiver drops one it has already seen
DEVELOPMENT_SECRET = "victoria-development-signing-secret"


def sign(secret: str, body: bytes, *, now: float | None = None) -> str:
    """The signature header's value for ``body``, signed now."""
    stamp = int(time.time() if now is None else now)
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def verify(secret: str, body: bytes, header: str, *, max_age_s: float = 300.0, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``max_age_s`` of ``now``."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        stamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - stamp) > max_age_s:
        return False
    return hmac.compare_digest(given, _mac(secret, stamp, body))


def _mac(secret: str, stamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def signing_secret(configured: str) -> str:
    """The configured secret, else the development key (production refuses to start without one)."""
    return configured.strip() or DEVELOPMENT_SECRET
