"""The error policy, and what a call says before it hangs up.

A turn that failed after its retries (:class:`ReplyFailed`) is logged, recorded as a ``call error`` lifecycle
event, told to the client (``error``), and the call ends after the apology (close 1011). Every event that
ends a call politely maps here to its last message, its end reason and its close code.
"""

from __future__ import annotations

from typing import NamedTuple

from services.gateway.call.machine import AgentHangUp, MaxDuration, ReplyFailed, Shutdown, SilenceAfterReprompt
from services.gateway.lifecycle.outbox import LifecycleOutbox
from services.gateway.transports.protocol import ErrorMessage
from services.gateway.transports.ws_close import CLOSE_INTERNAL, CLOSE_RESTART
from shared.call_config import CallConfig
from shared.events import CallError
from shared.logging import get_logger

log = get_logger(__name__)

# recorded, never counted by the global stop: workers refusing for capacity (overload, not an outage), and an
# agent whose language no configured voice speaks (one agent's configuration, not a reason to stop every call)
NOT_CRITICAL_CODES = frozenset({"busy", "unsupported_language"})

Closer = MaxDuration | ReplyFailed | SilenceAfterReprompt | Shutdown | AgentHangUp


class LastWords(NamedTuple):
    text: str
    reason: str
    close_code: int = 1000


def last_words(event: Closer, config: CallConfig) -> LastWords:
    """What the agent says before hanging up on ``event`` (empty: nothing more), and how the call ends."""
    if isinstance(event, AgentHangUp):  # the agent's own goodbye, or the closing line if it said nothing
        return LastWords("" if event.spoke else config.text("end_call_message"), "agent_hangup")
    if isinstance(event, ReplyFailed):
        return LastWords(config.apology_message, "error", CLOSE_INTERNAL)
    if isinstance(event, Shutdown):  # 1012: call again (another replica answers)
        return LastWords(config.shutdown_text, "gateway_shutdown", CLOSE_RESTART)
    if isinstance(event, MaxDuration):
        log.info("max_call_duration_reached", max_call_s=config.turn.max_call_s)
        return LastWords(config.max_duration_message, "max_duration")
    log.info("silence_timeout_hangup")
    return LastWords(config.silence_goodbye_message, "silence_timeout")


def report_failure(event: ReplyFailed, *, call_id: str, turn_id: int, outbox: LifecycleOutbox) -> ErrorMessage:
    """Log and record a failed turn; returns the ``error`` message for the client."""
    error = event.error
    log.error("turn_failed", stage=event.stage, code=error.code, error=error.message)
    outbox.put(
        CallError(
            call_id=call_id,
            turn_id=turn_id,
            code=error.code,
            message=error.message[:500],
            stage=event.stage,
            critical=error.code not in NOT_CRITICAL_CODES,
        )
    )
    return ErrorMessage(code=f"{event.stage}_{error.code}", message=error.message)
