"""The gateway's lifecycle spool on a real filesystem: what was not acknowledged comes back in order after a
"crash" (a new spool on the same directory), acknowledged events don't, the bound holds, one owner at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.lifecycle.spool import LifecycleSpool, SpoolLockedError
from shared import subjects
from shared.events import CallEnded, CallStarted, TurnRecorded


def events(call_id: str) -> list:
    return [
        CallStarted(call_id=call_id),
        TurnRecorded(call_id=call_id, seq=0, role="assistant", text="Hello.", started_at=1.0, ended_at=2.0),
        CallEnded(call_id=call_id, reason="caller_hangup", duration_s=3.0),
    ]


def spool_all(spool: LifecycleSpool, evs: list) -> None:
    for ev in evs:
        assert spool.put(ev.event_id, subjects.CALL_TURN, ev.model_dump_json())


def test_unacknowledged_events_are_replayed_in_order_after_a_crash(tmp_path: Path) -> None:
    first = LifecycleSpool(tmp_path, max_bytes=1_000_000)
    assert first.open() == []
    evs = events("c1")
    spool_all(first, evs)
    first.ack(evs[0].event_id)
    with open(first.path, "a") as f:
        f.write('{"op": "put", "id": "cut-sho')  # the crash cut the last line short
    first.close()  # (a crashed process releases its lock the same way)

    second = LifecycleSpool(tmp_path, max_bytes=1_000_000)
    replay = second.open()
    assert [e.event_id for _, e in replay] == [evs[1].event_id, evs[2].event_id]
    assert isinstance(replay[1][1], CallEnded)
    assert second.path.read_text().count('"op": "put"') == 2  # compacted: the acked event and the cut line gone
    for _, e in replay:
        second.ack(e.event_id)
    second.close()
    third = LifecycleSpool(tmp_path, max_bytes=1_000_000)
    assert third.open() == []
    third.close()


def test_a_spool_has_one_owner(tmp_path: Path) -> None:
    owner = LifecycleSpool(tmp_path, max_bytes=1_000_000)
    owner.open()
    with pytest.raises(SpoolLockedError):
        LifecycleSpool(tmp_path, max_bytes=1_000_000).open()
    owner.close()


def test_the_bound_keeps_new_events_in_memory_and_acks_make_room(tmp_path: Path) -> None:
    spool = LifecycleSpool(tmp_path, max_bytes=2000)
    spool.open()
    evs = [e for i in range(10) for e in events(f"call-{i}")]
    taken = [spool.put(e.event_id, subjects.CALL_TURN, e.model_dump_json()) for e in evs]
    assert taken[0] and not taken[-1]  # full: the rest is kept in memory only
    assert spool.path.stat().st_size <= 2000
    kept = [e for e, ok in zip(evs, taken, strict=True) if ok]
    for e in kept:
        spool.ack(e.event_id)
    assert spool.put(evs[-1].event_id, subjects.CALL_TURN, evs[-1].model_dump_json())  # compacted to make room
    assert spool.pending == 1
    spool.close()
