"""NATS subject names in one place, and the mapping of call ids to safe subject tokens.

Telnyx call ids look like ``v3:abc.def``; ``.``, ``*``, ``>``, ``:`` and spaces would break or widen a
subject, so call ids are escaped injectively (``_`` is escaped too, so two ids never share a token).
"""

from __future__ import annotations

import re

STT_REQUEST = "stt.request"
LLM_REQUEST = "llm.request"
TTS_REQUEST = "tts.request"

STT_QUEUE = "stt-workers"
LLM_QUEUE = "llm-workers"
TTS_QUEUE = "tts-workers"

LIFECYCLE_STREAM = "CALL_LIFECYCLE"
LIFECYCLE_PREFIX = "lifecycle"
CALL_STARTED = "lifecycle.call.started"
CALL_TURN = "lifecycle.call.turn"
CALL_ENDED = "lifecycle.call.ended"
CALL_ERROR = "lifecycle.call.error"
CALL_STATUS = "lifecycle.call.status"

WORKER_BEAT_PREFIX = "worker.beat"  # worker.beat.<service>: WorkerBeat
WORKER_BEAT_ALL = "worker.beat.*"
GATEWAY_BEAT_PREFIX = "gateway.beat"
GATEWAY_BEAT_ALL = "gateway.beat.*"
CANCEL_ALL = "call.*.cancel"

_SAFE = re.compile(r"[A-Za-z0-9-]")


def safe_token(call_id: str) -> str:
    """Escape every character outside ``[A-Za-z0-9-]`` as ``_XX`` (UTF-8 hex), which is reversible."""
    if not call_id:
        raise ValueError("call id must not be empty")
    out: list[str] = []
    for ch in call_id:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode())
    return "".join(out)


def unsafe_token(token: str) -> str:
    """Inverse of :func:`safe_token`."""
    raw = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "_":
            raw.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(token[i].encode())
            i += 1
    return raw.decode()


def call_subject(call_id: str, kind: str) -> str:
    """Result/control subject of one call: ``call.<token>.<kind>`` with kind stt, llm, tts or cancel."""
    return f"call.{safe_token(call_id)}.{kind}"


# --- many gateway replicas ----------------------------------------------------------------------------------

GATEWAY_CONTROL_PREFIX = "gateway.control"  # gateway.control.<token>: commands for a live call, to its owner
GATEWAY_LIVE = "gateway.live"  # request, one reply per gateway replica: its live calls
AGENTS_BUCKET = "victoria_agents"  # KV: key per agent id, value its version (a deleted agent: a delete marker)
TELNYX_WEBHOOKS_BUCKET = "victoria_telnyx_webhooks"  # KV with a TTL: Telnyx event ids seen, calls hung up
CALL_TOKENS_BUCKET = "victoria_call_tokens"  # KV with the tokens' TTL: nonces of call tokens already spent


def control_subject(call_id: str) -> str:
    """Call-control subject of one call: only the gateway replica that owns the call listens on it."""
    return f"{GATEWAY_CONTROL_PREFIX}.{safe_token(call_id)}"


def gateway_beat_subject(instance: str) -> str:
    """Heartbeat subject of one gateway replica: ``gateway.beat.<instance token>``."""
    return f"{GATEWAY_BEAT_PREFIX}.{safe_token(instance)}"
