"""On a local model that generates one reply at a time, a call's turn goes before post-call work (the
recorder's extraction): a running extraction is interrupted between tokens and done again after the turn, and
the recorder still gets its whole reply, once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from services.llm_worker.handler import LlmHandler
from services.llm_worker.live_first import LiveFirst
from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers.base import Delta
from services.llm_worker.providers.fake import FakeLlm
from services.llm_worker.providers.local_llama import LocalLlamaLlm
from shared.events import ChatMessage, Event, LlmChunk, LlmRequest
from shared.provider_cache import Emit

EXTRACTION = [f"w{i} " for i in range(40)]  # 40 tokens: 0.8 s at TOKEN_S
REPLY = ["Hello ", "there. ", "How ", "can ", "I ", "help?"]
TOKEN_S = 0.02


class Log:
    """Every chunk each request got, with when it got it."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.chunks: dict[str, list[tuple[float, LlmChunk]]] = {}

    def emit(self, name: str) -> Emit:
        async def emit(event: Event) -> None:
            assert isinstance(event, LlmChunk)
            self.chunks.setdefault(name, []).append((time.monotonic() - self.t0, event))

        return emit

    def text(self, name: str) -> str:
        return "".join(c.delta for _, c in self.chunks[name])

    def first(self, name: str) -> float:
        return self.chunks[name][0][0]

    def done(self, name: str) -> float:
        return next(t for t, c in self.chunks[name] if c.done)


def _request(name: str, *, post_call: bool, provider: str | None = None) -> LlmRequest:
    return LlmRequest(
        call_id=name,
        turn_id=None if post_call else 1,
        messages=[ChatMessage(role="user", content=name)],
        provider=provider,
        reply_to=f"reply.{name}",
        post_call=post_call,
    )


@pytest.fixture
def slow_llama(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """local_llama with its llama.cpp generation replaced by a slow one that keeps the real contract: one
    generation at a time (``_busy``), stopped between tokens when ``cancel`` is set. Counts tokens made."""
    made = {"extraction": 0, "reply": 0}

    def generate(
        self: LocalLlamaLlm,
        family: str,
        chat: list[dict[str, str]],
        temp: float,
        max_tokens: int,
        cancel: threading.Event,
    ) -> Iterator[Delta]:
        kind = "extraction" if "extract" in chat[-1]["content"] else "reply"
        with self._busy:
            for token in EXTRACTION if kind == "extraction" else REPLY:
                if cancel.is_set():
                    return
                time.sleep(TOKEN_S)
                made[kind] += 1
                yield Delta(text=token)
        yield Delta(finish_reason="stop", completion_tokens=3)

    monkeypatch.setattr(LocalLlamaLlm, "_generate", generate)
    return made


async def test_a_live_turn_interrupts_a_running_extraction_which_then_completes(slow_llama: dict[str, int]) -> None:
    handler = LlmHandler(LlmWorkerSettings(llm_provider="local_llama"), "test")
    log = Log()
    extraction = asyncio.create_task(handler.handle(_request("extract", post_call=True), log.emit("extract")))
    await asyncio.sleep(0.3)  # the extraction is generating (~15 of its 40 tokens)
    assert 0 < slow_llama["extraction"] < len(EXTRACTION)
    live_at = time.monotonic() - log.t0
    await handler.handle(_request("call", post_call=False), log.emit("call"))
    await extraction

    # the turn's first token came after at most one of the extraction's tokens, not after the whole extraction
    assert log.first("call") - live_at < 0.25
    assert log.done("call") < log.first("extract")  # nothing of the extraction before the turn was over
    # the recorder gets the whole extraction, once, numbered from 0 and done at the end
    assert log.text("extract") == "".join(EXTRACTION)
    seqs = [c.seq for _, c in log.chunks["extract"]]
    assert seqs == list(range(len(seqs)))
    assert [c.done for _, c in log.chunks["extract"]].count(True) == 1 and log.chunks["extract"][-1][1].done
    # interrupted (stopped between tokens), then generated again from the start
    assert len(EXTRACTION) < slow_llama["extraction"] < 2 * len(EXTRACTION)


async def test_live_turns_overtake_queued_extractions_on_the_fake_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeLlm, "max_parallel", 1, raising=False)  # the fake made a one-slot local model
    settings = LlmWorkerSettings(
        llm_provider="fake",
        fake_llm_first_token_ms=50,
        fake_llm_tokens_per_s=40,
        fake_llm_reply="Sure. I can help.",
        fake_llm_model_replies={"extractor": " ".join(f"x{i}" for i in range(30))},  # 0.8 s
    )
    handler = LlmHandler(settings, "test")
    log = Log()

    def extraction(name: str) -> LlmRequest:
        return _request(name, post_call=True).model_copy(update={"model": "extractor"})

    post = [asyncio.create_task(handler.handle(extraction(f"x{i}"), log.emit(f"x{i}"))) for i in range(2)]
    await asyncio.sleep(0.2)  # x0 is running, x1 waits for the slot
    await asyncio.gather(*(handler.handle(_request(f"c{i}", post_call=False), log.emit(f"c{i}")) for i in range(2)))
    await asyncio.gather(*post)

    last_turn = max(log.done("c0"), log.done("c1"))
    assert last_turn < 0.2 + 2 * 0.5  # two short replies one after the other, not after 1.6 s of extractions
    for name in ("x0", "x1"):
        assert log.first(name) > last_turn
        assert log.text(name) == " ".join(f"x{i}" for i in range(30))


async def test_a_provider_with_parallel_slots_streams_post_call_work_as_before() -> None:
    settings = LlmWorkerSettings(llm_provider="fake", fake_llm_first_token_ms=0, fake_llm_tokens_per_s=100)
    handler = LlmHandler(settings, "test")
    log = Log()
    await handler.handle(_request("x", post_call=True), log.emit("x"))
    assert handler.gates == {"fake": None}
    assert len(log.chunks["x"]) > 2  # a chunk per token, as they come


async def test_after_its_patience_post_call_work_is_no_longer_interrupted() -> None:
    gate = LiveFirst(patience_s=0.1)
    runs: list[str] = []

    async def run() -> None:
        runs.append("start")
        await asyncio.sleep(0.3)
        runs.append("end")

    post = asyncio.create_task(gate.post_call(run))
    await asyncio.sleep(0.05)
    async with gate.live():  # within its patience: interrupted, waits for the turn
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.05)  # restarted, patience over
    async with gate.live():
        await asyncio.sleep(0.01)
    assert await post == 1
    assert runs == ["start", "start", "end"]


async def test_post_call_work_cancelled_from_outside_is_not_done_again() -> None:
    gate = LiveFirst(patience_s=10)
    runs: list[str] = []

    async def run() -> None:
        runs.append("start")
        await asyncio.sleep(10)

    post = asyncio.create_task(gate.post_call(run))
    await asyncio.sleep(0.02)
    post.cancel()
    with pytest.raises(asyncio.CancelledError):
        await post
    await asyncio.sleep(0.02)
    assert runs == ["start"]
    async with gate.live():
        pass  # nothing left to interrupt


async def test_an_error_in_post_call_work_is_raised_not_retried() -> None:
    gate = LiveFirst(patience_s=10)

    async def run() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await gate.post_call(run)
