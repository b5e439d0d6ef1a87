"""What a call records of its turns: the history, ``TurnRecorded`` events and the live transcript, where an
assistant's turn is what the caller heard of it."""

from __future__ import annotations

import itertools
import json
from typing import Any

from services.gateway.call.record import HISTORY_STEP, HISTORY_TURNS, CallRecord, Segment, heard_text, latency_ms
from services.gateway.call.tools import ToolOutcome
from services.gateway.transports.protocol import ToolActivity, Transcript, TurnMetrics
from shared.events import ToolCall, TurnRecorded


class FakeOutbox:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def put(self, event: Any) -> None:
        self.events.append(event)


def _segments() -> list[Segment]:
    # three segments of 1000 bytes of audio each
    texts = ["Hello there.", "I can help with that booking today.", "Anything else?"]
    return [Segment(i, text, start=i * 1000, end=(i + 1) * 1000) for i, text in enumerate(texts)]


def test_heard_text_keeps_whole_segments_and_the_played_share_of_the_one_cut_off() -> None:
    segments = _segments()
    assert heard_text(segments, 0) == ""
    assert heard_text(segments, 1000) == "Hello there."
    assert heard_text(segments, 1500) == "Hello there. I can help…"  # 7 words, half played: 3
    assert heard_text(segments, 3000) == "Hello there. I can help with that booking today. Anything else?"


def test_heard_text_of_a_segment_still_arriving_counts_what_was_queued() -> None:
    segment = Segment(0, "one two three four", start=0, end=-1)  # its audio still streaming in
    assert heard_text([segment], 500) == "one two three…"  # span: heard + 1 → 3 of 4 words
    assert heard_text([Segment(0, "never played")], 500) == ""


def _record() -> tuple[CallRecord, FakeOutbox, list[Any]]:
    outbox, sent = FakeOutbox(), []
    return CallRecord("c1", outbox, sent.append), outbox, sent  # type: ignore[arg-type]


def test_an_interrupted_reply_records_only_what_was_heard() -> None:
    record, outbox, sent = _record()
    turn = record.next_turn()
    reply = record.begin_reply(turn)
    reply.segments = _segments()
    record.assistant(reply, interrupted=True, heard_bytes=1500)
    assert record.reply is None
    assert [(h.role, h.content) for h in record.history] == [("assistant", "Hello there. I can help…")]
    assert sent == [Transcript(role="assistant", text="Hello there. I can help…", turn_id=1, interrupted=True)]
    [event] = outbox.events
    assert isinstance(event, TurnRecorded) and event.interrupted and event.seq == 0 and event.turn_id == 1


def test_a_reply_heard_in_full_with_its_latency() -> None:
    record, outbox, sent = _record()
    reply = record.begin_reply(record.next_turn())
    reply.segments = _segments()[:1]
    latency = latency_ms({"stt_done": 10.1, "llm_first_token": 10.3}, 10.0, first_send_at=10.5)
    assert latency == {"stt_done_ms": 100.0, "llm_first_token_ms": 300.0, "first_audio_sent_ms": 500.0}
    record.assistant(reply, interrupted=False, latency=latency)
    assert sent[0] == TurnMetrics(turn_id=1, **latency)
    assert sent[1] == Transcript(role="assistant", text="Hello there.", turn_id=1)
    assert outbox.events[0].latency_ms == latency


def test_nothing_heard_is_not_a_turn() -> None:
    record, outbox, sent = _record()
    reply = record.begin_reply(record.next_turn())
    reply.segments = _segments()
    record.assistant(reply, interrupted=True, heard_bytes=0)
    assert record.history == [] and sent == [] and outbox.events == []


def test_user_turns_are_numbered_and_kept_for_the_llm() -> None:
    record, outbox, sent = _record()
    for i in range(25):
        record.user(record.next_turn(), f"turn {i}", started_at=0.0, ended_at=1.0, stt_ms=12.0)
    assert [e.seq for e in outbox.events] == list(range(25))
    assert len(record.recent()) == 17 and record.recent()[-1].content == "turn 24"  # from turn 8: see below
    assert sent[0] == Transcript(role="user", text="turn 0", turn_id=1)
    assert outbox.events[0].latency_ms == {"stt_ms": 12.0}


# --- tools and the keypad ----------------------------------------------------------------------------------


def _outcome(name: str, arguments: str, result: str, status: str = "ok") -> ToolOutcome:
    kind = "http" if name not in ("end_call", "send_dtmf") else name
    return ToolOutcome(ToolCall(id=f"id_{name}", name=name, arguments=arguments), kind, result, status)  # type: ignore[arg-type]


def test_a_tool_call_is_a_turn_of_its_own_and_a_live_line() -> None:
    record, outbox, sent = _record()
    turn = record.next_turn()
    outcome = _outcome("weather", '{"city": "Málaga"}', '{"temp_c": 21}')
    record.tool(turn, outcome)
    [event] = outbox.events
    assert event.role == "tool" and event.text == 'weather({"city": "Málaga"}) → {"temp_c": 21}'
    assert event.tool is not None and (event.tool.name, event.tool.kind, event.tool.status) == ("weather", "http", "ok")
    assert event.tool.call_id == "id_weather" and event.tool.result == '{"temp_c": 21}'
    assert sent == [ToolActivity(turn_id=turn, name="weather", status="ok", text=event.text, duration_ms=0.0)]
    long = _outcome("search", json.dumps({"q": "x" * 200}), "y" * 500, "error")
    record.tool(turn, long)
    assert len(outbox.events[1].text) < 140 and outbox.events[1].text.count("…") == 2
    assert outbox.events[1].tool.result == "y" * 500  # the summary is short, the turn keeps it all


def test_a_tool_exchange_keeps_calls_and_results_together_and_what_was_said_before() -> None:
    record, _, _ = _record()
    record.user(record.next_turn(), "what's the weather?", started_at=0, ended_at=1, stt_ms=1)
    reply = record.begin_reply(record.turn_id)
    reply.segments = _segments()[:1]
    outcome = _outcome("weather", "{}", "sunny")
    record.tool_exchange("Hello there.", [outcome.call], [outcome])
    reply.in_history = 1
    reply.segments.append(Segment(1, "It is sunny.", start=1000, end=2000))
    record.assistant(reply, interrupted=False)
    assert [(m.role, m.content, bool(m.tool_calls), m.tool_call_id) for m in record.history] == [
        ("user", "what's the weather?", False, None),
        ("assistant", "Hello there.", True, None),
        ("tool", "sunny", False, "id_weather"),
        ("assistant", "It is sunny.", False, None),  # only what followed the call: the rest is above
    ]
    assert record.outbox.events[-1].text == "Hello there. It is sunny."  # type: ignore[attr-defined]


def test_the_window_moves_in_steps_so_consecutive_requests_share_their_start() -> None:
    """The LLM's prompt cache holds what the last request began with: the window keeps its start for
    HISTORY_STEP messages, and never carries more than HISTORY_TURNS."""
    record, _, _ = _record()
    starts = []
    for i in range(60):
        record.user(record.next_turn(), f"turn {i}", started_at=0.0, ended_at=1.0, stt_ms=1.0)
        recent = record.recent()
        assert HISTORY_TURNS - HISTORY_STEP < len(recent) <= HISTORY_TURNS or len(recent) == i + 1
        assert recent[-1].content == f"turn {i}"
        starts.append(recent[0].content)
    assert starts[:19] == ["turn 0"] * 19  # whole while it fits
    assert starts[19:27] == ["turn 8"] * 8 and starts[27:35] == ["turn 16"] * 8  # then it moves by a step
    changes = sum(a != b for a, b in itertools.pairwise(starts))
    assert changes == 6  # 60 requests, 6 new starts (one per message: 41)


def _history(record: CallRecord, before: int, after: int) -> None:
    """``before`` caller turns, a tool call with its 3 results, ``after`` caller turns."""
    for i in range(before):
        record.user(record.next_turn(), f"turn {i}", started_at=0, ended_at=1, stt_ms=1)
    calls = [_outcome(f"t{i}", "{}", f"r{i}") for i in range(3)]
    record.tool_exchange("", [o.call for o in calls], calls)
    for i in range(after):
        record.user(record.next_turn(), f"later {i}", started_at=0, ended_at=1, stt_ms=1)


def test_recent_never_starts_with_a_result_cut_from_its_call() -> None:
    record, _, _ = _record()
    _history(record, 8, 9)  # the call at [8], its results [9..11]; 21 messages: the window starts at [8]
    recent = record.recent()
    assert recent[0].tool_calls and [m.role for m in recent[1:4]] == ["tool"] * 3 and len(recent) == 13
    record, _, _ = _record()
    _history(record, 7, 10)  # the call at [7], its results [8..10]: a window from [8] would start with a result
    recent = record.recent()
    assert recent[0].content == "later 0" and all(m.role != "tool" for m in recent)


def test_a_late_result_replaces_still_running_in_the_history() -> None:
    record, outbox, _ = _record()
    running = _outcome("book", "{}", "still running")
    record.tool_exchange("", [running.call], [running])
    record.late_tool(1, _outcome("book", "{}", '{"booked": true}'))
    assert record.history[-1].content == '{"booked": true}' and record.history[-1].tool_call_id == "id_book"
    assert outbox.events[-1].tool.result == '{"booked": true}'


def test_a_keypad_entry_is_masked_everywhere_but_for_the_llm() -> None:
    record, outbox, sent = _record()
    turn = record.next_turn()
    record.keypad(turn, "4321", sensitive=True)
    assert record.history[-1].content == "DTMF: 4321"
    [event] = outbox.events
    assert (event.role, event.text, event.dtmf) == ("user", "••••", True)
    assert sent == [Transcript(role="user", text="••••", turn_id=turn, dtmf=True)]
    record.tool(turn, _outcome("verify_pin", '{"pin": "4321"}', '{"pin": "4321", "ok": true}'))
    tool = outbox.events[-1]
    assert "4321" not in tool.text and tool.tool.arguments == '{"pin": "••••"}'
    assert tool.tool.result == '{"pin": "••••", "ok": true}'
    assert "4321" not in sent[-1].text


def test_a_keypad_entry_not_sensitive_is_shown_as_typed() -> None:
    record, outbox, sent = _record()
    record.keypad(record.next_turn(), "12#", sensitive=False)
    assert outbox.events[0].text == "12#" and outbox.events[0].dtmf
    assert sent[0].text == "12#" and record.history[0].content == "DTMF: 12#"


def test_what_the_assistant_repeats_of_a_sensitive_entry_is_masked_in_the_record_not_for_the_llm() -> None:
    record, outbox, sent = _record()
    record.keypad(record.next_turn(), "4321", sensitive=True)
    reply = record.begin_reply(record.next_turn())
    reply.segments = [Segment(0, "Your PIN 4321 is verified.", start=0, end=1000)]
    record.assistant(reply, interrupted=False)
    assert record.history[-1].content == "Your PIN 4321 is verified."  # the LLM's own words, as it said them
    assert outbox.events[-1].text == "Your PIN •••• is verified."
    assert sent[-1] == Transcript(role="assistant", text="Your PIN •••• is verified.", turn_id=2)


def test_single_keys_are_masked_as_the_run_they_make_not_one_by_one() -> None:
    """``each`` mode, sensitive: a PIN typed key by key is four one-key entries; later text keeps its other
    fives and sevens, and the PIN as typed is masked."""
    record, outbox, _ = _record()
    turn = record.next_turn()
    for key in "5712":
        record.keypad(turn, key, sensitive=True)
    assert [e.text for e in outbox.events] == ["•"] * 4  # each entry itself is masked in its own turn
    record.tool(turn, _outcome("verify_pin", '{"pin": "5712"}', '{"ok": true, "at": "7:15", "left": 5}'))
    tool = outbox.events[-1].tool
    assert tool.arguments == '{"pin": "••••"}' and tool.result == '{"ok": true, "at": "7:15", "left": 5}'
    record.user(record.next_turn(), "and the menu", started_at=0, ended_at=1, stt_ms=1)
    record.keypad(record.turn_id, "3", sensitive=True)  # a new run, of one key: nothing to mask elsewhere
    record.tool(turn, _outcome("menu", '{"choice": "3", "again": "5712"}', '{"room": 13}'))
    tool = outbox.events[-1].tool
    assert tool.arguments == '{"choice": "3", "again": "••••"}' and tool.result == '{"room": 13}'
