"""The global stop's sliding window of critical call errors: counting by event time, expiry, duplicates."""

from __future__ import annotations

from services.call_recorder.global_stop import ErrorRecord, ErrorWindow, describe


def rec(event_id: str, ts: float, call_id: str = "c", stage: str = "llm", code: str = "no_worker") -> ErrorRecord:
    return ErrorRecord(event_id=event_id, call_id=call_id, stage=stage, code=code, ts=ts)


def test_counts_errors_inside_the_window() -> None:
    window = ErrorWindow(60)
    assert window.count() == 0
    for i, ts in enumerate((1000.0, 1010.0, 1059.0)):
        assert window.add(rec(f"e{i}", ts))
    assert window.count() == 3
    assert [r.event_id for r in window.records()] == ["e0", "e1", "e2"]


def test_old_errors_expire_by_event_time() -> None:
    window = ErrorWindow(60)
    window.add(rec("a", 1000.0))
    window.add(rec("b", 1030.0))
    window.add(rec("c", 1060.0))  # exactly one window after "a": "a" is out
    assert [r.event_id for r in window.records()] == ["b", "c"]
    assert window.count(now=1200.0) == 0  # asking about a later time does not forget anything
    assert window.count(now=1091.0) == 1  # only "c"
    assert window.count() == 2


def test_out_of_order_events_count_by_their_own_time() -> None:
    window = ErrorWindow(60)
    window.add(rec("late", 1100.0))
    window.add(rec("early", 1050.0))  # redelivered late, still inside the window ending at 1100
    window.add(rec("ancient", 900.0))  # long before: never counts
    assert {r.event_id for r in window.records()} == {"late", "early"}
    assert window.records()[0].event_id == "early"  # oldest first


def test_duplicates_count_once() -> None:
    window = ErrorWindow(60)
    assert window.add(rec("same", 1000.0))
    assert not window.add(rec("same", 1000.0))
    assert not window.add(rec("same", 1001.0))
    assert window.count() == 1


def test_duplicates_are_remembered_after_expiry() -> None:
    window = ErrorWindow(10)
    window.add(rec("x", 1000.0))
    window.add(rec("y", 2000.0))
    assert window.count() == 1
    assert not window.add(rec("x", 1995.0))  # a redelivery of an already counted error
    assert window.count() == 1


def test_discard_until_and_clear() -> None:
    window = ErrorWindow(60)
    for i in range(4):
        window.add(rec(f"e{i}", 1000.0 + i))
    window.discard_until(1001.0)  # an operator reset at 1001: e0 and e1 no longer count
    assert [r.event_id for r in window.records()] == ["e2", "e3"]
    window.clear()
    assert window.count() == 0
    assert not window.add(rec("e3", 1003.0))  # cleared records are still known ids


def test_reason_names_stages_and_codes() -> None:
    records = [rec("a", 1.0), rec("b", 2.0), rec("c", 3.0, stage="tts", code="timeout")]
    assert describe(records, 60) == "3 critical call errors within 60s: llm_no_worker x2, tts_timeout x1"


def test_the_window_round_trips_through_its_kv_form() -> None:
    window = ErrorWindow(60)
    window.add(rec("a", 1000.0))
    window.add(rec("b", 1030.0, stage="tts", code="provider_error"))
    copy = ErrorWindow.from_json(60, window.to_json())
    assert [r.event_id for r in copy.records()] == ["a", "b"]
    assert copy.records()[1].label == "tts_provider_error"
    assert not copy.add(rec("a", 1040.0))  # counted ids are remembered across replicas
    assert ErrorWindow.from_json(60, b"not json").count() == 0
