"""A call's clocks, on a fake clock: re-prompt after a silence, goodbye after a second, the maximum duration."""

from __future__ import annotations

from services.gateway.call.machine import MaxDuration, SilenceAfterReprompt, SilenceTimeout
from services.gateway.call.timers import CallTimers


def _timers() -> CallTimers:
    return CallTimers(silence_timeout_s=10.0, max_call_s=100.0, now=1000.0)


def test_a_silence_while_listening_reprompts_then_says_goodbye() -> None:
    t = _timers()
    assert t.due(1009.9, listening=True) is None
    assert t.due(1010.0, listening=True) == SilenceTimeout()
    t.state_changed(1010.0)  # the re-prompt plays ...
    t.state_changed(1013.0)  # ... and the call listens again
    assert t.due(1022.9, listening=True) is None
    assert t.due(1023.0, listening=True) == SilenceAfterReprompt()


def test_silence_counts_only_while_listening_and_from_the_last_change() -> None:
    t = _timers()
    assert t.due(1050.0, listening=False) is None  # the agent is speaking, or the caller is
    t.state_changed(1050.0)
    assert t.due(1059.0, listening=True) is None
    assert t.due(1060.0, listening=True) == SilenceTimeout()


def test_the_caller_speaking_earns_a_new_reprompt() -> None:
    t = _timers()
    assert t.due(1010.0, listening=True) == SilenceTimeout()
    t.caller_spoke()
    t.state_changed(1020.0)
    assert t.due(1030.0, listening=True) == SilenceTimeout()


def test_the_maximum_duration_comes_first_whatever_the_state() -> None:
    t = _timers()
    assert t.due(1099.0, listening=False) is None
    assert t.due(1100.0, listening=False) == MaxDuration()
    assert t.due(1100.0, listening=True) == MaxDuration()
