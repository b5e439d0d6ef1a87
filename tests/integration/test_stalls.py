"""Stalls are noticed in a second: work a worker accepted but no live worker holds any more (the replica was
killed, or its result went missing) is retried on another replica from where it stopped, and a slow worker
that still holds its work is left alone. Real workers (subprocesses) and a real NATS; the gateway side is
the gateway's own CallChannel and WorkerWatch."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.msg import Msg

from services.gateway.call.channel import CallChannel, TurnFailed
from services.gateway.call.worker_watch import WorkerWatch
from shared import subjects
from shared.bus import Bus
from shared.events import ChatMessage, LlmChunk, LlmRequest, TtsRequest, WorkAck, WorkerBeat, work_key
from shared.health import ping_services

REPLY = (
    "Sure. I can help you with that booking today. What time would you like to come in, and how many "
    "people will be joining you for dinner tonight?"
)
SLOW = {
    "STT_PROVIDER": "fake",
    "LLM_PROVIDER": "fake",
    "TTS_PROVIDER": "fake",
    "FAKE_LLM_FIRST_TOKEN_MS": "50",
    "FAKE_LLM_TOKENS_PER_S": "12",  # ~50 tokens: a 4 s stream, long enough to kill its worker mid-way
    "FAKE_LLM_REPLY": REPLY,
    "FAKE_TTS_FIRST_BYTE_MS": "30",
    "FAKE_TTS_PACE": "1",  # real time: a segment's audio streams for seconds
    "WORKER_ACK_TIMEOUT_S": "0.5",
}
LOST_AFTER_S = 1.0


async def _replicas(bus: Bus, service: str, count: int) -> None:
    for _ in range(300):
        if len(await ping_services(bus, service, window_s=0.1)) >= count:
            return
    raise AssertionError(f"{count} {service} replicas did not come up")


def _channel(bus: Bus) -> tuple[CallChannel, WorkerWatch]:
    watch = WorkerWatch(bus, lost_after_s=LOST_AFTER_S)
    return CallChannel(bus, f"stall-{uuid.uuid4().hex[:8]}", ack_timeout_s=0.5, watch=watch), watch


def _llm_request(channel: CallChannel, turn_id: int = 1) -> LlmRequest:
    return LlmRequest(
        call_id=channel.call_id,
        turn_id=turn_id,
        messages=[ChatMessage(role="user", content="a table, please")],
        reply_to=channel.subject_llm,
        max_tokens=400,
    )


async def test_llm_worker_killed_mid_stream_resumes_on_another_replica(bus: Bus, run_service) -> None:
    workers = {name: run_service("llm_worker", {**SLOW, "INSTANCE_ID": name}) for name in ("llm-a", "llm-b")}
    await _replicas(bus, "llm", 2)
    channel, watch = _channel(bus)
    await watch.start()
    await channel.open()
    try:
        parts: list[str] = []
        by: list[str] = []
        gaps: list[float] = []
        killed_at: float | None = None
        last = time.monotonic()
        async for chunk in channel.generate(_llm_request(channel), timeout_s=30):
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            parts.append(chunk.delta)
            by.append(chunk.worker)
            if len(parts) == 8 and killed_at is None:  # mid-sentence, a few words in
                workers[chunk.worker].proc.kill()  # kill -9: no goodbye, no error chunk
                killed_at = now
        assert killed_at is not None
        assert "".join(parts) == REPLY, "the reply must be whole, each word once"
        assert len(set(by)) == 2, f"the rest must come from the other replica: {by}"
        # the first chunk after the kill came within lost-after + a check slice + the first token, not 30 s
        after_kill = gaps[8]
        assert after_kill < LOST_AFTER_S + 1.0, f"resumed after {after_kill:.2f}s"
    finally:
        await channel.close()
        await watch.stop()


async def test_tts_worker_killed_mid_segment_resumes_after_the_audio_received(bus: Bus, run_service) -> None:
    workers = {name: run_service("tts_worker", {**SLOW, "INSTANCE_ID": name}) for name in ("tts-a", "tts-b")}
    await _replicas(bus, "tts", 2)
    channel, watch = _channel(bus)
    await watch.start()
    await channel.open()
    text = "What time would you like to come in tonight?"  # 45 chars: 2.7 s of audio, streamed in real time
    expected = round(len(text) * 0.06 * 8000) * 1  # μ-law: one byte per sample
    req = TtsRequest(
        call_id=channel.call_id,
        turn_id=1,
        segment=0,
        text=text,
        sample_rate=8000,
        encoding="mulaw",
        reply_to=channel.subject_tts,
    )
    try:
        audio = bytearray()
        by: list[str] = []
        started = time.monotonic()
        async for chunk in channel.synthesize(req, timeout_s=30):
            audio += chunk.audio
            by.append(chunk.worker)
            if len(by) == 3:
                workers[chunk.worker].proc.kill()
        elapsed = time.monotonic() - started
        assert len(set(by)) == 2, f"the rest must come from the other replica: {by}"
        assert abs(len(audio) - expected) <= 8, f"{len(audio)} bytes, expected {expected}: nothing twice or missing"
        assert elapsed < 2.7 + LOST_AFTER_S + 1.5, f"took {elapsed:.2f}s"
    finally:
        await channel.close()
        await watch.stop()


class _FakeWorker:
    """A worker in the LLM queue group driven by the test: it accepts each request and then does what the
    test says — forget it (the result lost), or answer slowly while listing it in its beats."""

    def __init__(self, bus: Bus, *, beat: bool, answer_after_s: float, swallow_first: bool) -> None:
        self.bus = bus
        self.beat = beat
        self.answer_after_s = answer_after_s
        self.swallow_first = swallow_first
        self.requests: list[tuple[float, LlmRequest]] = []
        self.holding: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.bus.subscribe(subjects.LLM_REQUEST, LlmRequest, self._on_request, queue=subjects.LLM_QUEUE)
        self._tasks.add(asyncio.create_task(self._beats()))

    async def _beats(self) -> None:
        while True:
            if self.beat:
                beat = WorkerBeat(service="llm", instance="fake", holding=sorted(self.holding))
                await self.bus.publish(f"{subjects.WORKER_BEAT_PREFIX}.llm", beat)
            await asyncio.sleep(0.25)

    async def _on_request(self, req: LlmRequest, msg: Msg) -> None:
        self.requests.append((time.monotonic(), req))
        await msg.respond(WorkAck(worker="fake").model_dump_json().encode())
        if self.swallow_first and len(self.requests) == 1:
            return  # accepted, then gone: never listed, never answered
        self._tasks.add(asyncio.create_task(self._answer(req)))

    async def _answer(self, req: LlmRequest) -> None:
        key = work_key(req.call_id, req.turn_id, "llm", 0, req.attempt)
        self.holding.add(key)
        await asyncio.sleep(self.answer_after_s)
        self.holding.discard(key)
        chunk = LlmChunk(call_id=req.call_id, turn_id=req.turn_id, delta="Done.", done=True, attempt=req.attempt)
        await self.bus.publish(req.reply_to, chunk)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _against_fake(nats_url: str, name: str, **fake: Any) -> AsyncIterator[tuple[CallChannel, _FakeWorker]]:
    """A call channel and its watch on a connection of their own (no other test's workers listen there),
    facing one scripted worker."""
    bus = await Bus.connect(nats_url, name)
    worker = _FakeWorker(bus, **fake)
    try:
        await worker.start()
        channel, watch = _channel(bus)
        await watch.start()
        await channel.open()
        try:
            yield channel, worker
        finally:
            await channel.close()
            await watch.stop()
    finally:
        await worker.stop()
        await bus.close()


async def test_accepted_work_that_nobody_holds_is_retried_within_a_second(nats_url: str) -> None:
    async with _against_fake(nats_url, "stall-test", beat=True, answer_after_s=0.1, swallow_first=True) as (
        channel,
        fake,
    ):
        started = time.monotonic()
        chunks = [c async for c in channel.generate(_llm_request(channel), timeout_s=30)]
        elapsed = time.monotonic() - started
        assert [c.delta for c in chunks] == ["Done."]
        assert [r.attempt for _t, r in fake.requests] == [0, 1]
        retry_after = fake.requests[1][0] - fake.requests[0][0]
        assert LOST_AFTER_S <= retry_after < LOST_AFTER_S + 0.6, f"retried after {retry_after:.2f}s"
        assert elapsed < LOST_AFTER_S + 1.0


async def test_slow_work_still_held_by_a_live_worker_is_not_retried(nats_url: str) -> None:
    async with _against_fake(nats_url, "stall-test-slow", beat=True, answer_after_s=3.0, swallow_first=False) as (
        channel,
        fake,
    ):
        chunks = [c async for c in channel.generate(_llm_request(channel), timeout_s=30)]
        assert [c.delta for c in chunks] == ["Done."]
        assert len(fake.requests) == 1, "a live worker that lists its work is waited for, not doubled"


async def test_work_lost_on_every_attempt_fails_with_a_clear_error(nats_url: str) -> None:
    async with _against_fake(  # accepts, never beats
        nats_url, "stall-test-none", beat=False, answer_after_s=60.0, swallow_first=False
    ) as (channel, fake):
        started = time.monotonic()
        with pytest.raises(TurnFailed) as failed:
            async for _chunk in channel.generate(_llm_request(channel), timeout_s=30):
                pass
        assert failed.value.error.code == "worker_lost"
        assert len(fake.requests) == 3
        assert time.monotonic() - started < 3 * (LOST_AFTER_S + 0.6)
