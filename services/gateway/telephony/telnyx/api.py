"""Telnyx's side of the wire: webhook signatures (Ed25519) and the Call Control v2 commands we send.

Webhooks are signed over ``f"{telnyx-timestamp}|{raw body}"`` with Telnyx's Ed25519 key; a timestamp more
than 300 s away is refused (replay). Commands carry a ``command_id`` derived from the call and the action,
so a webhook that arrives twice (or at two gateway replicas) cannot answer, hang up or transfer a call twice;
``send_dtmf`` is the exception (the agent may press keys many times): each press has an id of its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.gateway.metrics import PROVIDER_API_CALLS
from shared.agent_tools import DTMF_DIGITS, TRANSFER_TARGET
from shared.logging import get_logger

log = get_logger(__name__)

TOLERANCE_S = 300
# Telnyx ids are "v3:" + base64url; nothing with "/", "?", "%" or "." may reach a Call Control URL
CALL_CONTROL_ID = r"^[A-Za-z0-9_:\-]{1,256}$"
ALREADY_ENDED = "90018"


class SignatureError(Exception):
    pass


def verify_signature(
    public_key_b64: str, body: bytes, signature_b64: str, timestamp: str, now: float | None = None
) -> None:
    """Raises :class:`SignatureError` saying what is wrong; returns when the webhook is Telnyx's."""
    if not signature_b64 or not timestamp:
        raise SignatureError("missing telnyx-signature-ed25519 or telnyx-timestamp")
    try:
        sent = int(timestamp)
    except ValueError:
        raise SignatureError("telnyx-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_S:
        raise SignatureError(f"timestamp outside the {TOLERANCE_S} s tolerance (replayed or clock skew)")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SignatureError(f"undecodable key or signature: {exc}") from None
    try:
        key.verify(signature, timestamp.encode() + b"|" + body)
    except InvalidSignature:
        raise SignatureError("signature does not match") from None


def encode_state(state: dict[str, Any]) -> str:
    """``client_state``: base64 JSON that Telnyx hands back in later webhooks and the stream's start."""
    return base64.b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode_state(value: object) -> dict[str, Any]:
    if not isinstance(value, str) or not value:
        return {}
    try:
        state = json.loads(base64.b64decode(value))
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return state if isinstance(state, dict) else {}


class TelnyxRest:
    """Call Control commands: answer (with the bidirectional media stream), speak, hang up, transfer, send DTMF."""

    def __init__(self, api_key: str, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s)

    async def command(
        self, call_control_id: str, action: str, body: dict[str, Any], *, command_id: str | None = None
    ) -> str:
        """``ok``, or ``already_ended`` for Telnyx's 422/90018; raises for any other failure."""
        if not re.fullmatch(CALL_CONTROL_ID, call_control_id):
            raise ValueError(f"not a Telnyx call_control_id: {call_control_id[:40]!r}")
        url = f"{self.base_url}/v2/calls/{call_control_id}/actions/{action}"
        payload = {"command_id": command_id or f"victoria-{action}-{call_control_id}", **body}
        try:
            response = await self._client.post(url, json=payload)
        except httpx.HTTPError as exc:
            PROVIDER_API_CALLS.labels("telnyx", action, "error").inc()
            raise RuntimeError(f"Telnyx {action} failed: {type(exc).__name__} {exc}") from exc
        if response.status_code == 422 and ALREADY_ENDED in _error_codes(response):
            PROVIDER_API_CALLS.labels("telnyx", action, "already_ended").inc()
            log.info("telnyx_call_already_ended", action=action, call_control_id=call_control_id)
            return "already_ended"
        if response.status_code >= 400:
            PROVIDER_API_CALLS.labels("telnyx", action, "error").inc()
            raise RuntimeError(f"Telnyx {action} failed: HTTP {response.status_code} {response.text[:200]}")
        PROVIDER_API_CALLS.labels("telnyx", action, "ok").inc()
        return "ok"

    async def hangup(self, call_control_id: str) -> str:
        return await self.command(call_control_id, "hangup", {})

    async def transfer(self, call_control_id: str, target: str) -> None:
        """Hand the call to ``target`` (E.164 or SIP URI); raises when refused or the call is already over."""
        if not TRANSFER_TARGET.fullmatch(target):
            raise ValueError(f"transfer target is neither an E.164 number nor a SIP URI: {target[:40]!r}")
        if await self.command(call_control_id, "transfer", {"to": target}) == "already_ended":
            raise RuntimeError("Telnyx transfer failed: the call has already ended")
        log.info("telnyx_call_transferred", call_control_id=call_control_id)

    async def send_dtmf(self, call_control_id: str, digits: str) -> None:
        """Press ``digits`` on the line (250 ms each, Telnyx's default); raises when refused or the call is over."""
        if not DTMF_DIGITS.fullmatch(digits):
            raise ValueError("digits must be 0-9, *, #, A-D or w (a pause), at most 32")
        command_id = f"victoria-send_dtmf-{uuid.uuid4().hex}"  # every press is new, not a repeat
        body = {"digits": digits, "duration_millis": 250}
        if await self.command(call_control_id, "send_dtmf", body, command_id=command_id) == "already_ended":
            raise RuntimeError("Telnyx send_dtmf failed: the call has already ended")

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_codes(response: httpx.Response) -> set[str]:
    try:
        errors = response.json().get("errors", [])
    except ValueError:
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict)}
