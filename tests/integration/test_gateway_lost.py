"""``gateway_lost``: the calls of a gateway killed with -9 are ended in history by the recorder, from the
gateway's stopped heartbeats, keeping every turn already recorded; several recorders doing it at once end
each call once."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.call_recorder.reconcile import Reconciler
from shared.events import GatewayBeat
from tools.simcaller import SimCaller
from tools.talk import synthesize

FAST_LOSS = {"GATEWAY_LOST_AFTER_S": "2", "RECONCILE_INTERVAL_S": "0.5", "GATEWAY_BEAT_INTERVAL_S": "0.5"}


async def talk(gateway, speech: bytes) -> SimCaller:
    """One call with the greeting and one exchange heard; left open."""
    caller = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
    assert (await caller.connect())["type"] == "started"
    await caller.next(lambda m: m["type"] == "transcript" and m.get("role") == "assistant", timeout=10)
    await caller.send_frames(speech)
    await caller.next(lambda m: m["type"] == "transcript" and m.get("role") == "user", timeout=10)
    await caller.next(lambda m: m["type"] == "transcript" and m.get("role") == "assistant", timeout=15)
    return caller


async def test_calls_of_a_killed_gateway_end_as_gateway_lost_with_their_turns(
    start_stack, db_pool, tmp_path: Path
) -> None:
    instance = f"gw-lost-{uuid.uuid4().hex[:6]}"
    gateway = await start_stack({**FAST_LOSS, "INSTANCE_ID": instance, "LIFECYCLE_SPOOL_DIR": str(tmp_path / "s")})
    speech = await synthesize("I would like a table for two.")
    callers = await asyncio.gather(talk(gateway, speech), talk(gateway, speech))
    ids = [c.call_id for c in callers]

    deadline = time.monotonic() + 10
    while True:  # both calls and their three turns are in history
        rows = await db_pool.fetch("SELECT call_id, turns, gateway_instance FROM calls WHERE call_id = ANY($1)", ids)
        if len(rows) == 2 and all(r["turns"] == 3 for r in rows):
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.1)
    assert {r["gateway_instance"] for r in rows} == {instance}

    gateway.proc.kill()
    killed_at = time.time()
    gateway.proc.wait(10)
    for caller in callers:
        await caller.close()

    bound = 2 + 0.5 + 3.0  # GATEWAY_LOST_AFTER_S + a reconcile round + slack
    deadline = time.monotonic() + bound
    while True:
        rows = await db_pool.fetch(
            "SELECT call_id, end_reason, status, ended_at, turns, duration_s FROM calls WHERE call_id = ANY($1)", ids
        )
        if all(r["end_reason"] == "gateway_lost" for r in rows):
            break
        assert time.monotonic() < deadline, f"not gateway_lost within {bound}s: {[dict(r) for r in rows]}"
        await asyncio.sleep(0.1)
    for row in rows:
        assert row["status"] == "failed" and row["turns"] == 3 and row["duration_s"] > 0
        # ended at the last beat: before the kill, at most a beat interval (plus scheduling) earlier
        ended = row["ended_at"].timestamp()
        assert killed_at - 1.5 <= ended <= killed_at, (ended, killed_at)
    lines = await db_pool.fetch("SELECT call_id, role FROM transcripts WHERE call_id = ANY($1)", ids)
    assert len(lines) == 6


async def test_several_recorders_reconciling_at_once_end_each_call_once(bus, db_pool) -> None:
    """Recorder replicas racing on the same calls (and calls of a gateway no recorder ever heard, after a
    restart's grace): each call is ended once, the ones a live gateway lists are left alone."""
    tag = uuid.uuid4().hex[:6]
    ghost, alive = f"gw-ghost-{tag}", f"gw-alive-{tag}"
    started = datetime.now(UTC) - timedelta(minutes=5)
    ghost_calls = [f"race-{tag}-{i}" for i in range(20)]
    live_call = f"race-{tag}-live"
    for call_id in ghost_calls:
        await db_pool.execute(
            "INSERT INTO calls (call_id, started_at, gateway_instance, updated_at) VALUES ($1, $2, $3, $2)",
            call_id,
            started,
            ghost,
        )
    await db_pool.execute(
        "INSERT INTO calls (call_id, started_at, gateway_instance, updated_at) VALUES ($1, $2, $3, $2)",
        live_call,
        started,
        alive,
    )
    await db_pool.execute(
        "INSERT INTO transcripts (call_id, seq, role, text, started_at, ended_at, event_id) "
        "VALUES ($1, 0, 'assistant', 'Hello.', $2, $3, $4)",
        ghost_calls[0],
        started,
        started + timedelta(seconds=7),
        uuid.uuid4().hex,
    )
    replicas = [Reconciler(bus, db_pool, lost_after_s=2, interval_s=60) for _ in range(3)]
    for replica in replicas:
        replica.listening_since = time.time() - 10  # listened past the grace: the ghost never beat
        replica.book.on_beat(GatewayBeat(instance=alive, calls=[live_call]))
    ended = await asyncio.gather(*(r.sweep() for r in replicas))
    mine = [c for batch in ended for c in batch if c.startswith(f"race-{tag}-")]
    assert sorted(mine) == sorted(ghost_calls)  # each once, across the replicas
    rows = await db_pool.fetch(
        "SELECT call_id, end_reason, ended_at FROM calls WHERE call_id LIKE $1 ORDER BY call_id", f"race-{tag}-%"
    )
    by_id = {r["call_id"]: r for r in rows}
    assert by_id[live_call]["end_reason"] is None
    assert all(by_id[c]["end_reason"] == "gateway_lost" for c in ghost_calls)
    # ended at its last recorded turn, or at its start when it has none
    assert by_id[ghost_calls[0]]["ended_at"] == started + timedelta(seconds=7)
    assert by_id[ghost_calls[1]]["ended_at"] == started
