"""Which unended calls lost their gateway, from what the heartbeats said (no servers needed)."""

from __future__ import annotations

from services.call_recorder.reconcile import BeatBook, judge
from shared.events import GatewayBeat

NOW = 10_000.0


def book_with(instance: str, calls: list[str], ts: float, heard_at: float | None = None) -> BeatBook:
    book = BeatBook()
    book.on_beat(GatewayBeat(instance=instance, calls=calls, ts=ts), now=ts if heard_at is None else heard_at)
    return book


def test_calls_of_a_gateway_whose_beats_stopped_end_at_its_last_beat() -> None:
    book = book_with("gw-a", ["c1", "c2"], ts=NOW - 20)
    rows = [("c1", "gw-a", NOW - 100, NOW - 30), ("c2", "gw-a", NOW - 50, NOW - 25)]
    assert judge(rows, book, now=NOW, lost_after_s=15, judge_unknown=False) == {"c1": NOW - 20, "c2": NOW - 20}


def test_a_beating_gateway_keeps_its_listed_calls() -> None:
    book = book_with("gw-a", ["c1"], ts=NOW - 1)
    assert judge([("c1", "gw-a", NOW - 500, NOW - 400)], book, now=NOW, lost_after_s=15, judge_unknown=True) == {}


def test_a_call_its_live_gateway_stopped_listing_ends_when_last_listed() -> None:
    book = book_with("gw-a", ["c1", "c2"], ts=NOW - 40)
    book.on_beat(GatewayBeat(instance="gw-a", calls=["c2"], ts=NOW - 1), now=NOW - 1)
    rows = [("c1", "gw-a", NOW - 100, NOW - 90), ("c2", "gw-a", NOW - 100, NOW - 90)]
    assert judge(rows, book, now=NOW, lost_after_s=15, judge_unknown=False) == {"c1": NOW - 40}


def test_a_call_just_started_is_not_judged_before_its_gateway_could_list_it() -> None:
    book = book_with("gw-a", [], ts=NOW - 1)
    rows = [("new", "gw-a", NOW - 3, NOW - 3), ("old", "gw-a", NOW - 30, NOW - 30)]
    assert judge(rows, book, now=NOW, lost_after_s=15, judge_unknown=False) == {"old": None}  # at its last turn


def test_owners_never_heard_are_judged_only_after_the_grace() -> None:
    rows = [("c1", "gw-gone", NOW - 100, NOW - 90), ("c2", None, NOW - 100, NOW - 90), ("c3", None, NOW - 100, NOW - 2)]
    assert judge(rows, BeatBook(), now=NOW, lost_after_s=15, judge_unknown=False) == {}
    # c3 was written to a moment ago (its events are still arriving): not yet
    assert judge(rows, BeatBook(), now=NOW, lost_after_s=15, judge_unknown=True) == {"c1": None, "c2": None}


def test_the_book_forgets_old_gateways() -> None:
    book = book_with("gw-a", ["c1"], ts=NOW - 1000)
    book.forget_before(NOW - 600)
    assert book.gateways == {} and book.listed == {}


def test_a_recorder_cut_off_itself_pardons_the_silence() -> None:
    book = book_with("gw-a", ["c1"], ts=NOW - 60)
    book.pardon(NOW)
    assert judge([("c1", "gw-a", NOW - 100, NOW - 90)], book, now=NOW + 5, lost_after_s=15, judge_unknown=True) == {}
