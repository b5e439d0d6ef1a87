"""Twilio's side of the wire: request signatures (``X-Twilio-Signature``), TwiML answers and the REST commands
on a live call (hang-up, transfer).

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
from shared.agent_tools import TRANSFER_TARGET
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


def transfer_twiml(target: str, say: str | None = None, language: str = "en-US") -> str:
    """``<Dial>`` the target (a SIP URI inside ``<Sip>``), optionally after a ``<Say>``. Given to a live call,
    it replaces the ``<Connect><Stream>``: Twilio ends our media stream and dials."""
    if not TRANSFER_TARGET.fullmatch(target):
        raise ValueError(f"transfer target is neither an E.164 number nor a SIP URI: {target[:40]!r}")
    dial = f"<Sip>{escape(target)}</Sip>" if target.startswith("sip") else escape(target)
    intro = f"<Say language={quoteattr(language)}>{escape(say)}</Say>" if say else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{intro}<Dial>{dial}</Dial></Response>'


class TwilioRest:
    """Commands on a live call through the REST API: hang up (the agent ended the call after its goodbye
    played), transfer (the call's TwiML replaced with a ``<Dial>``)."""

    def __init__(self, account_sid: str, auth_token: str, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(auth=(account_sid, auth_token), timeout=timeout_s)

    async def hangup(self, call_sid: str) -> str:
        """``completed`` when Twilio ended it now, ``already_ended`` for its 404/20404; raises otherwise."""
        outcome = await self._update(call_sid, "hangup", {"Status": "completed"})
        if outcome == "already_ended":
            log.info("twilio_call_already_ended", call_sid=call_sid)
            return outcome
        log.info("twilio_call_hung_up", call_sid=call_sid)
        return "completed"

    async def transfer(self, call_sid: str, target: str, *, say: str | None = None, language: str = "en-US") -> None:
        """Update the live call with ``<Dial>target</Dial>``; raises when Twilio refuses it or the call is over
        (there is nobody left to transfer)."""
        twiml = transfer_twiml(target, say, language)
        if await self._update(call_sid, "transfer", {"Twiml": twiml}) == "already_ended":
            raise RuntimeError("Twilio transfer failed: the call has already ended")
        log.info("twilio_call_transferred", call_sid=call_sid)

    async def _update(self, call_sid: str, action: str, data: dict[str, str]) -> str:
        """POST ``data`` to the call (Twilio's "update a call"): ``ok``, ``already_ended`` (404/20404), or raises."""
        if not re.fullmatch(CALL_SID, call_sid):
            raise ValueError(f"not a Twilio CallSid: {call_sid[:40]!r}")
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}.json"
        try:
            response = await self._client.post(url, data=data)
        except httpx.HTTPError as exc:
            PROVIDER_API_CALLS.labels("twilio", action, "error").inc()
            raise RuntimeError(f"Twilio {action} failed: {type(exc).__name__} {exc}") from exc
        if response.status_code == 404 and _error_code(response) == 20404:
            PROVIDER_API_CALLS.labels("twilio", action, "already_ended").inc()
            return "already_ended"
        if response.status_code >= 400:
            PROVIDER_API_CALLS.labels("twilio", action, "error").inc()
            raise RuntimeError(f"Twilio {action} failed: HTTP {response.status_code} {response.text[:200]}")
        PROVIDER_API_CALLS.labels("twilio", action, "ok").inc()
        return "ok"

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_code(response: httpx.Response) -> int | None:
    try:
        code = response.json().get("code")
    except ValueError:
        return None
    return code if isinstance(code, int) else None
