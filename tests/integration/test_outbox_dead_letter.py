"""The gateway's lifecycle outbox on a real NATS: an event that can never be published is dead-lettered and
the events behind it flow on (before, one lone surrogate held every later event of the replica for good)."""

from __future__ import annotations

import asyncio
import json
import uuid

from services.gateway.lifecycle.outbox import LifecycleOutbox
from services.gateway.metrics import LIFECYCLE_DEAD_LETTERED
from shared import subjects
from shared.events import CallStatusChanged


async def test_an_unserialisable_event_is_dead_lettered_and_the_next_one_lands(bus) -> None:
    await bus.ensure_lifecycle_stream()
    outbox = LifecycleOutbox(bus)
    outbox.start()
    before = LIFECYCLE_DEAD_LETTERED.labels("status")._value.get()
    bad = CallStatusChanged(
        call_id="v3:" + uuid.uuid4().hex, provider="telnyx", status="hangup", detail={"from": "\ud800"}
    )
    good_id = "v3:" + uuid.uuid4().hex
    outbox.put(bad)
    outbox.put(CallStatusChanged(call_id=good_id, provider="telnyx", status="hangup"))
    try:
        await asyncio.wait_for(outbox.flush(), 10)
        assert outbox.backlog == 0 and outbox.published == 1
        assert LIFECYCLE_DEAD_LETTERED.labels("status")._value.get() == before + 1
        last = await bus.js.get_last_msg(subjects.LIFECYCLE_STREAM, subjects.CALL_STATUS)
        assert json.loads(last.data)["call_id"] == good_id
    finally:
        await outbox.stop()
