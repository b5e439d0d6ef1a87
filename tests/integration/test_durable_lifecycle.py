"""Durable lifecycle from the gateway: events JetStream could not take are spooled on disk, survive a kill -9
of the gateway, and land exactly once in the history when a gateway restarts on the same spool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

from nats.js.api import StreamConfig

from shared import subjects
from shared.bus import Bus
from tools.simcaller import SimCaller
from tools.talk import synthesize


@contextlib.asynccontextmanager
async def lifecycle_unavailable(bus: Bus) -> AsyncIterator[None]:
    """JetStream refuses the lifecycle subjects for a while (the stream stops capturing them): every publish
    of a lifecycle event fails as in an outage, while core NATS (calls, workers) carries on."""
    await bus.ensure_lifecycle_stream()
    info = await bus.js.stream_info(subjects.LIFECYCLE_STREAM)
    config: StreamConfig = info.config
    await bus.js.update_stream(StreamConfig.from_response({**config.as_dict(), "subjects": ["lifecycle-paused.>"]}))
    try:
        yield
    finally:
        await bus.js.update_stream(config)


def spooled(spool: Path) -> tuple[list[dict], set[str]]:
    """(put entries, acked ids) in the spool file."""
    puts, acks = [], set()
    path = spool / "lifecycle.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            (puts.append(entry) if entry["op"] == "put" else acks.add(entry["id"]))
    return puts, acks


async def test_events_spooled_during_an_outage_survive_kill_9_and_land_once(
    start_stack, run_service, bus, db_pool, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    env = {"LIFECYCLE_SPOOL_DIR": str(spool), "INSTANCE_ID": "gw-durable"}
    gateway = await start_stack(env)
    speech = await synthesize("I would like a table for two.")
    async with lifecycle_unavailable(bus):
        caller = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
        assert (await caller.connect())["type"] == "started"
        call_id = caller.call_id
        await caller.next(lambda m: m["type"] == "transcript" and m.get("role") == "assistant", timeout=10)
        await caller.send_frames(speech)
        await caller.next(lambda m: m["type"] == "transcript" and m.get("role") == "user", timeout=10)
        await caller.next(lambda m: m["type"] == "transcript" and m.get("role") == "assistant", timeout=15)
        await caller.hang_up()
        deadline = time.monotonic() + 10
        while not any(p["subject"] == subjects.CALL_ENDED for p in spooled(spool)[0]):
            assert time.monotonic() < deadline, f"the call's end was never spooled: {spooled(spool)}"
            await asyncio.sleep(0.05)
        puts, acks = spooled(spool)
        ours = [p for p in puts if json.loads(p["event"])["call_id"] == call_id]
        assert not acks & {p["id"] for p in ours}, "JetStream was away: nothing of this call can be acknowledged"
        gateway.proc.kill()  # kill -9 while the events are only on disk
        gateway.proc.wait(10)
    assert await db_pool.fetchval("SELECT count(*) FROM processed_events WHERE call_id = $1", call_id) == 0

    kinds = [p["subject"] for p in ours]
    assert (
        kinds[0] == subjects.CALL_STARTED and kinds[-1] == subjects.CALL_ENDED and kinds.count(subjects.CALL_TURN) >= 2
    )
    restarted = run_service("gateway", {**gateway.env, "GATEWAY_PORT": gateway.env["GATEWAY_PORT"]})
    await restarted.wait_for_output("lifecycle_spool_replaying", timeout=30)

    deadline = time.monotonic() + 20
    while True:
        row = await db_pool.fetchrow(
            "SELECT end_reason, turns, gateway_instance FROM calls WHERE call_id = $1", call_id
        )
        if row is not None and row["end_reason"] is not None and row["turns"] == kinds.count(subjects.CALL_TURN):
            break
        assert time.monotonic() < deadline, f"history not complete: {row}\n{restarted.tail(30)}"
        await asyncio.sleep(0.1)
    assert row["end_reason"] == "caller_hangup" and row["gateway_instance"] == "gw-durable"
    events = await db_pool.fetch("SELECT event_id FROM processed_events WHERE call_id = $1", call_id)
    assert sorted(r["event_id"] for r in events) == sorted(p["id"] for p in ours)  # each once, none missing
    lines = await db_pool.fetchval("SELECT count(*) FROM transcripts WHERE call_id = $1", call_id)
    assert lines == kinds.count(subjects.CALL_TURN)
    # every event is in the stream once (Nats-Msg-Id), and the spool is acknowledged and compacted on the next start
    deadline = time.monotonic() + 10
    while {p["id"] for p in ours} - spooled(spool)[1]:
        assert time.monotonic() < deadline, "replayed events were not acknowledged in the spool"
        await asyncio.sleep(0.1)
