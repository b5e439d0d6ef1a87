"""A call's clocks: the caller's silence (re-prompt, then goodbye) and the call's maximum duration.

Pure: the session's watchdog asks :meth:`CallTimers.due` every ``WATCHDOG_S`` with the time and whether the
call is listening, and dispatches the event it returns. The count of silences (whether the caller was already
re-prompted) lives here, cleared when the caller speaks.
"""

from __future__ import annotations

from services.gateway.call.machine import MaxDuration, SilenceAfterReprompt, SilenceTimeout

WATCHDOG_S = 0.25

TimerEvent = SilenceTimeout | SilenceAfterReprompt | MaxDuration


class CallTimers:
    def __init__(self, *, silence_timeout_s: float, max_call_s: float, now: float) -> None:
        self.silence_timeout_s = silence_timeout_s
        self.max_call_s = max_call_s
        self.started = now
        self.quiet_since = now  # when the call's state last changed: silence counts from there
        self.reprompted = False

    def state_changed(self, now: float) -> None:
        """Any change of state restarts the silence clock (only a silence while listening counts)."""
        self.quiet_since = now

    def caller_spoke(self) -> None:
        """The caller spoke: the next silence is re-prompted again."""
        self.reprompted = False

    def due(self, now: float, *, listening: bool) -> TimerEvent | None:
        """The event the clocks call for now, if any (maximum duration first)."""
        if now - self.started >= self.max_call_s:
            return MaxDuration()
        if not listening or now - self.quiet_since < self.silence_timeout_s:
            return None
        if self.reprompted:
            return SilenceAfterReprompt()
        self.reprompted = True
        return SilenceTimeout()
