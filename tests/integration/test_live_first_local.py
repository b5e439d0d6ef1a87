"""The LLM worker on the real local model (llama.cpp, one generation at a time): a call's turn is answered at
once while the previous call's extraction is generating, and the extraction still comes back whole, over NATS
the way the recorder asks for it (``post_call``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import pytest

from shared import subjects
from shared.bus import Bus
from shared.events import ChatMessage, LlmChunk, LlmRequest

pytest.importorskip("llama_cpp")


@dataclass
class Reply:
    sent_at: float
    chunks: list[tuple[float, LlmChunk]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Task[None] | None = None  # until the last chunk, then unsubscribed

    @property
    def first_s(self) -> float:
        return self.chunks[0][0] - self.sent_at

    @property
    def done_at(self) -> float:
        return next(t for t, c in self.chunks if c.done)

    @property
    def text(self) -> str:
        return "".join(c.delta for _, c in sorted(self.chunks, key=lambda tc: tc[1].seq))


async def ask(bus: Bus, content: str, *, post_call: bool, max_tokens: int) -> Reply:
    call_id = f"live-first-{uuid.uuid4().hex[:8]}"
    reply = Reply(time.monotonic())

    async def on_chunk(chunk: LlmChunk, _msg: object) -> None:
        reply.chunks.append((time.monotonic(), chunk))
        if chunk.done or chunk.error:
            reply.done.set()

    reply_to = subjects.call_subject(call_id, "llm") if not post_call else f"extract.{call_id}"
    sub = await bus.subscribe(reply_to, LlmChunk, on_chunk)
    request = LlmRequest(
        call_id=call_id,
        turn_id=None if post_call else 1,
        messages=[ChatMessage(role="user", content=content)],
        temperature=0.0,
        max_tokens=max_tokens,
        reply_to=reply_to,
        post_call=post_call,
    )
    ack = await bus.request_work(subjects.LLM_REQUEST, request, timeout=5)
    assert ack.accepted

    async def finish() -> None:
        await asyncio.wait_for(reply.done.wait(), 60)
        await sub.unsubscribe()

    reply.finished = asyncio.create_task(finish())
    return reply


async def test_a_call_turn_overtakes_a_running_extraction_on_the_local_model(run_service, bus: Bus) -> None:
    worker = run_service("llm_worker", {"LLM_PROVIDER": "local_llama"})
    await worker.wait_for_output("worker_listening", timeout=120)
    alone = await ask(bus, "Say hello.", post_call=False, max_tokens=20)
    await alone.finished

    extraction = await ask(bus, "Write the numbers from 1 to 400, separated by commas.", post_call=True, max_tokens=400)
    await asyncio.sleep(0.5)  # the extraction is generating
    assert not extraction.done.is_set()
    turn = await ask(bus, "Say hello.", post_call=False, max_tokens=20)
    await turn.finished
    await extraction.finished

    # the turn waited for one of the extraction's tokens at most, not for the rest of it
    assert turn.first_s < alone.first_s + 1.0, (turn.first_s, alone.first_s)
    assert turn.done_at < extraction.chunks[0][0]  # the extraction is held until it is whole, after the turn
    assert not any(c.error for _, c in extraction.chunks)
    assert extraction.text.strip().startswith("1")
    assert [c.seq for _, c in sorted(extraction.chunks, key=lambda tc: tc[1].seq)] == list(
        range(len(extraction.chunks))
    )
    assert "post_call_interrupted" in worker.output()
