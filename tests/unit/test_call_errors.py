"""The error policy and each closing event's last words."""

from __future__ import annotations

from typing import Any

from services.gateway.call.errors import last_words, report_failure
from services.gateway.call.machine import MaxDuration, ReplyFailed, Shutdown, SilenceAfterReprompt
from services.gateway.transports.protocol import ErrorMessage
from shared.call_config import CallConfig
from shared.events import CallError, ErrorInfo


class FakeOutbox:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def put(self, event: Any) -> None:
        self.events.append(event)


def test_each_closing_event_has_its_words_reason_and_close_code() -> None:
    c = CallConfig(agent_id="a")
    failed = ReplyFailed("tts", ErrorInfo(code="timeout", message="x"))
    assert last_words(failed, c) == (c.apology_message, "error", 1011)
    assert last_words(Shutdown(), c) == (c.shutdown_text, "gateway_shutdown", 1012)
    assert last_words(MaxDuration(), c) == (c.max_duration_message, "max_duration", 1000)
    assert last_words(SilenceAfterReprompt(), c) == (c.silence_goodbye_message, "silence_timeout", 1000)


def test_a_failed_turn_is_recorded_and_told_and_capacity_is_not_critical() -> None:
    outbox = FakeOutbox()
    failed = ReplyFailed("llm", ErrorInfo(code="provider_error", message="boom" * 200))
    message = report_failure(failed, call_id="c1", turn_id=3, outbox=outbox)  # type: ignore[arg-type]
    assert message == ErrorMessage(code="llm_provider_error", message="boom" * 200)
    [event] = outbox.events
    assert isinstance(event, CallError) and event.critical and event.turn_id == 3 and len(event.message) == 500
    report_failure(ReplyFailed("stt", ErrorInfo(code="busy", message="full")), call_id="c1", turn_id=4, outbox=outbox)  # type: ignore[arg-type]
    assert not outbox.events[1].critical


def test_an_agent_language_no_voice_speaks_is_recorded_but_never_stops_every_call() -> None:
    outbox = FakeOutbox()
    unspoken = ErrorInfo(code="unsupported_language", message="no voice speaks fr-FR")
    message = report_failure(ReplyFailed("tts", unspoken), call_id="c1", turn_id=1, outbox=outbox)  # type: ignore[arg-type]
    assert message.code == "tts_unsupported_language"
    [event] = outbox.events
    assert isinstance(event, CallError) and event.code == "unsupported_language" and not event.critical
