"""HMAC signatures on what Victoria sends to other systems (HTTP tool calls, post-call webhooks), so that a
receiver can check a request came from Victoria and was not replayed.

Header ``X-Victoria-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (the scheme Stripe and
Svix use): the timestamp is signed with the body, so a receiver refuses old requests (``max_age_s``) as well
as altered ones. :func:`verify` is what a receiver in Python runs; the README shows the three lines in other
languages.

Every destination has a key of its own, derived from the deployment's ``WEBHOOK_SIGNING_SECRET`` (the master,
which never leaves Victoria) and the destination's URL: :func:`key_for`. A receiver holds only its own key
(``python -m tools.signing_key <url>`` or ``GET /admin/signing-key?url=...``), so it cannot forge requests to
any other receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlsplit

SIGNATURE_HEADER = "X-Victoria-Signature"
DELIVERY_HEADER = "X-Victoria-Delivery"  # a unique id per delivery: a receiver drops one it has already seen
DEVELOPMENT_SECRET = "victoria-development-signing-secret"
KEY_CONTEXT = "victoria-signing-v1|"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # RFC 3986 path characters (and escapes already made) stay as they are


def sign(secret: str, body: bytes, *, now: float | None = None) -> str:
    """The signature header's value for ``body``, signed now."""
    stamp = int(time.time() if now is None else now)
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def verify(secret: str, body: bytes, header: str, *, max_age_s: float = 300.0, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``max_age_s`` of ``now``. Never raises: a
    malformed header (missing fields, a bad timestamp, non-ASCII) is simply not a valid signature."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        stamp = int(fields["t"])
        given = fields["v1"].encode()
        if abs((time.time() if now is None else now) - stamp) > max_age_s:
            return False
        return hmac.compare_digest(given, _mac(secret, stamp, body).encode())
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError, UnicodeError):
        return False


def _mac(secret: str, stamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def normalized_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: scheme and host lowercased, no user, query or fragment, no
    default port, an empty path as ``/``. Raises ``ValueError`` for anything but an http(s) URL with a host."""
    parts = urlsplit(str(url).strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port  # raises ValueError for a port out of range
    if ":" in host:
        host = f"[{host}]"  # IPv6
    elif not host.isascii():
        host = host.encode("idna").decode("ascii")
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{quote(parts.path, safe=_PATH_SAFE) or '/'}"


def key_for(master: str, url: str) -> str:
    """The signing key of one destination: ``hex(HMAC-SHA256(master, "victoria-signing-v1|" + normalized URL))``.
    The receiver at ``url`` verifies with this hex string as its secret; it tells nothing about the master or
    any other destination's key."""
    message = (KEY_CONTEXT + normalized_url(url)).encode()
    return hmac.new(master.encode(), message, hashlib.sha256).hexdigest()


def signing_secret(configured: str) -> str:
    """The configured secret, else the development key (production refuses to start without one)."""
    return configured.strip() or DEVELOPMENT_SECRET
