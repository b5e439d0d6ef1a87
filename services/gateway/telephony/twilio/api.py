"""Twilio's side of the wire: request signatures (``X-Twilio-Signature``), TwiML answers and the REST hang-up.

Signature: base64(HMAC-SHA1(auth token, full URL + every POST parameter as name+value sorted by name)).
Twilio signs the URL it was configured with; behind a proxy or on a default port that may differ from what
we see by the port alone, so the URL is checked with and without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

import httpx

from services.gateway.metrics import PROVIDER_API_CALLS
from shared.logging import get_logger

log = get_logger(__name__)

DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}
CALL_SID = r"^CA[0-9a-fA-F]{32}$"  # Twilio's documented shape; nothing else may reach a REST URL


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    data = url + "".join(k + v for k, v in sorted(params, key=lambda kv: kv[0]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the scheme's default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    variants = [url]
    if parts.port is not None:
        variants.append(urlunsplit(parts._replace(netloc=host)))
    elif parts.scheme in DEFAULT_PORTS:
        variants.append(urlunsplit(parts._replace(netloc=f"{host}:{DEFAULT_PORTS[parts.scheme]}")))
    return variants


def valid_signature(auth_token: str, urls: Iterable[str], params: Iterable[tuple[str, str]], given: str) -> bool:
    """Constant-time check of ``given`` against every candidate URL (and its port variants)."""
    pairs = list(params)
    ok = False
    for url in urls:
        for variant in url_variants(url):
            ok |= hmac.compare_digest(signature(auth_token, variant, pairs), given)
    return ok


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Connect><Stream>``: the call's audio goes both ways over our WebSocket; parameters come back in
    the stream's ``start`` message (the stream URL itself may carry no query string)."""
    params = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items() if v is not None
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream></Connect></Response>"
    )


def refusal_twiml(message: str, language: str = "en-US") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Say language={quoteattr(language)}>{escape(message)}'
        "</Say><Hangup/></Response>"
    )


def busy_twiml() -> str:
    """Over capacity: Twilio plays the caller a busy signal and bills nothing (``<Reject reason="busy">``)."""
    return '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'


class TwilioRest:
    """Hangs up calls through the REST API (the agent ended the call after its goodbye played)."""

    def __init__(self, account_sid: str, auth_token: str, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(auth=(account_sid, auth_token), timeout=timeout_s)

    async def hangup(self, call_sid: str) -> str:
        """``completed`` when Twilio ended it now, ``already_ended`` for its 404/20404; raises otherwise."""
        if not re.fullmatch(CALL_SID, call_sid):
            raise ValueError(f"not a Twilio CallSid: {call_sid[:40]!r}")
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}.json"
        response = await self._client.post(url, data={"Status": "completed"})
        if response.status_code == 404 and _error_code(response) == 20404:
            PROVIDER_API_CALLS.labels("twilio", "hangup", "already_ended").inc()
            log.info("twilio_call_already_ended", call_sid=call_sid)
            return "already_ended"
        if response.status_code >= 400:
            PROVIDER_API_CALLS.labels("twilio", "hangup", "error").inc()
            raise RuntimeError(f"Twilio hang-up failed: HTTP {response.status_code} {response.text[:200]}")
        PROVIDER_API_CALLS.labels("twilio", "hangup", "ok").inc()
        log.info("twilio_call_hung_up", call_sid=call_sid)
        return "completed"

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_code(response: httpx.Response) -> int | None:
    try:
        code = response.json().get("code")
    except ValueError:
        return None
    return code if isinstance(code, int) else None
