"""What a call records of its turns: the history, ``TurnRecorded`` events and the live transcript, where an
assistant's turn is what the caller heard of it."""

from __future__ import annotations

from typing import Any

from services.gateway.call.record import CallRecord, Segment, heard_text, latency_ms
from services.gateway.transports.protocol import Transcript, TurnMetrics
from shared.events import TurnRecorded


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
    assert len(record.recent()) == 19 and record.recent()[-1].content == "turn 24"
    assert sent[0] == Transcript(role="user", text="turn 0", turn_id=1)
    assert outbox.events[0].latency_ms == {"stt_ms": 12.0}
