"""A turn's segments on a local voice are synthesised one after another (the first has the cores to itself);
other calls' segments, and a network voice's, still overlap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from services.tts_worker.handler import TtsHandler
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.turn_order import TurnOrder
from shared.events import Event, TtsChunk, TtsRequest

SENTENCES = ["Hello, this is Victoria speaking.", "How can I help you with your booking today?"]


def request(call_id: str, segment: int) -> TtsRequest:
    text = SENTENCES[segment] + ("" if call_id == "a" else " Thanks.")
    return TtsRequest(call_id=call_id, turn_id=3, segment=segment, text=text, reply_to="r")


async def spans(handler: TtsHandler, requests: list[TtsRequest]) -> list[tuple[float, float]]:
    """When each request's synthesis ran in the provider (entered, finished), the requests sent together."""
    provider = handler.provider(requests[0].voice.provider)
    synthesize = provider.synthesize
    ran: dict[str, tuple[float, float]] = {}

    async def timed(text: str, *args: object, **kwargs: object) -> AsyncIterator[tuple[bytes, int]]:
        entered = time.perf_counter()
        async for item in synthesize(text, *args, **kwargs):  # type: ignore[arg-type]
            yield item
        ran[text] = (entered, time.perf_counter())

    async def emit(event: Event) -> None:
        assert isinstance(event, TtsChunk) and not event.error

    provider.synthesize = timed  # type: ignore[method-assign]
    try:
        await asyncio.gather(*(handler.handle(r, emit) for r in requests))
    finally:
        provider.synthesize = synthesize  # type: ignore[method-assign]
    return [ran[r.text] for r in requests]


@pytest.fixture(scope="module")
async def piper() -> TtsHandler:
    pytest.importorskip("piper")
    handler = TtsHandler(TtsWorkerSettings(tts_provider="local_piper"), "test")
    await handler.warmup()
    return handler


async def test_a_turns_second_segment_waits_for_its_first_on_a_local_voice(piper: TtsHandler) -> None:
    (_, first_done), (second_start, _) = await spans(piper, [request("a", 0), request("a", 1)])
    assert second_start >= first_done
    assert len(piper.order) == 0  # nothing kept once the turn's segments are done


async def test_two_calls_segments_still_overlap_on_a_local_voice(piper: TtsHandler) -> None:
    (a_start, a_done), (b_start, b_done) = await spans(piper, [request("a", 1), request("b", 1)])
    assert b_start < a_done and a_start < b_done


async def test_a_network_voice_is_not_held() -> None:
    fake = TtsHandler(TtsWorkerSettings(tts_provider="fake", fake_tts_first_byte_ms=50), "test")
    (_, first_done), (second_start, _) = await spans(fake, [request("a", 0), request("a", 1)])
    assert second_start < first_done


async def test_turn_order_keeps_arrival_order_and_forgets_finished_turns() -> None:
    order, log = TurnOrder(), []

    async def segment(turn: int, n: int) -> None:
        async with order.turn("c", turn):
            log.append(("start", turn, n))
            await asyncio.sleep(0.01)
            log.append(("end", turn, n))

    await asyncio.gather(segment(1, 0), segment(1, 1), segment(1, 2), segment(2, 0))
    mine = [e for e in log if e[1] == 1]
    assert mine == [(k, 1, n) for n in range(3) for k in ("start", "end")]
    assert log.index(("start", 2, 0)) < log.index(("end", 1, 0))  # another turn does not wait
    assert len(order) == 0
