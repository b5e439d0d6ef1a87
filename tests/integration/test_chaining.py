"""Chained stages: the STT worker sends the LLM request and the LLM worker the TTS requests themselves, with
the gateway's fallbacks when a chained hop finds no worker, and cancellation of chained work."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest

from services.gateway.call.channel import CallChannel, TurnFailed
from shared import subjects
from shared.bus import Bus
from shared.events import (
    NOT_CHAINED,
    CancelTurn,
    ChatMessage,
    LlmChunk,
    LlmContinuation,
    LlmRequest,
    SttRequest,
    SttResult,
    TtsChunk,
    TtsContinuation,
    TtsRequest,
    new_id,
)
from shared.health import ping_services
from tools.simcaller import SimCaller
from tools.talk import synthesize

FAST = {
    "STT_PROVIDER": "fake",
    "LLM_PROVIDER": "fake",
    "TTS_PROVIDER": "fake",
    "FAKE_STT_LATENCY_MS": "30",
    "FAKE_LLM_FIRST_TOKEN_MS": "20",
    "FAKE_LLM_TOKENS_PER_S": "200",
    "FAKE_TTS_FIRST_BYTE_MS": "20",
    "FAKE_LLM_REPLY": "Sure. A table for two at eight.",
    "WORKER_ACK_TIMEOUT_S": "0.3",
}
SPEECH = (np.sin(np.arange(16000) / 3) * 3000).astype(np.int16).tobytes()  # 1 s


_SPEECH: dict[str, bytes] = {}


async def say(text: str) -> bytes:
    if text not in _SPEECH:
        _SPEECH[text] = await synthesize(text)
    return _SPEECH[text]


def ws(gateway) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ws/simulator"


async def _wait_workers(bus: Bus, service: str, count: int = 1) -> None:
    for _ in range(200):
        if len(await ping_services(bus, service, window_s=0.1)) >= count:
            return
    raise AssertionError(f"{count} {service} workers did not come up")


def _chained_stt(channel: CallChannel, turn_id: int) -> SttRequest:
    return SttRequest(
        call_id=channel.call_id,
        turn_id=turn_id,
        audio=SPEECH,
        reply_to=channel.subject_stt,
        llm=LlmContinuation(
            messages=[ChatMessage(role="system", content="Be brief.")],
            reply_to=channel.subject_llm,
            tts=TtsContinuation(reply_to=channel.subject_tts),
        ),
    )


def _llm_request(channel: CallChannel, turn_id: int, text: str) -> LlmRequest:
    return LlmRequest(
        call_id=channel.call_id,
        turn_id=turn_id,
        messages=[ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content=text)],
        reply_to=channel.subject_llm,
        tts=TtsContinuation(reply_to=channel.subject_tts),
    )


@contextlib.asynccontextmanager
async def _counting(bus: Bus, subject: str):
    """Every request sent on a work subject (a plain subscription sees all of them, beside the queue group)."""
    seen: list[str] = []

    async def on_msg(msg) -> None:
        seen.append(msg.subject)

    sub = await bus.nc.subscribe(subject, cb=on_msg)
    try:
        yield seen
    finally:
        await sub.unsubscribe()


async def test_chained_turn_reaches_audio_with_one_request_per_stage(run_service, bus: Bus) -> None:
    for name in ("stt_worker", "llm_worker", "tts_worker"):
        run_service(name, FAST)
    for service in ("stt", "llm", "tts"):
        await _wait_workers(bus, service)
    channel = CallChannel(bus, f"chain-{new_id()}", ack_timeout_s=1)
    await channel.open()
    try:
        async with _counting(bus, subjects.LLM_REQUEST) as llm_sent, _counting(bus, subjects.TTS_REQUEST) as tts_sent:
            channel.expect_chained(1)
            stt = await channel.transcribe(_chained_stt(channel, 1), timeout_s=10)
            assert stt.chained and stt.text
            request = _llm_request(channel, 1, stt.text)
            chunks = [c async for c in channel.generate(request, timeout_s=5, chained=True)]
            assert chunks[-1].done and all(c.tts_chained for c in chunks)
            # one chunk per cut, not per token: each names the segments it completes, and together they
            # carry the whole reply ("Sure. A table for two at eight." is 7 tokens, 2 segments)
            assert [seg for c in chunks for seg in c.segments] == ["Sure.", "A table for two at eight."]
            assert "".join(c.delta for c in chunks) == "Sure. A table for two at eight."
            assert len(chunks) == 2 and chunks[0].delta == "Sure. " and chunks[0].segments == ["Sure."]
            reply = "".join(c.delta for c in chunks)
            assert reply.startswith("Sure.")
            audio = [
                c
                for segment in (0, 1)
                async for c in channel.synthesize(
                    TtsRequest(
                        call_id=channel.call_id,
                        turn_id=1,
                        segment=segment,
                        text="(the worker's cut)",
                        reply_to=channel.subject_tts,
                    ),
                    timeout_s=5,
                    chained=True,
                )
            ]
            channel.forget_turn(1)
        assert any(c.audio for c in audio) and {c.segment for c in audio} == {0, 1}
        # the STT worker sent the LLM request and the LLM worker one TTS request per segment; the gateway none
        assert len(llm_sent) == 1 and len(tts_sent) == 2
    finally:
        await channel.close()


async def test_unchained_the_llm_worker_still_names_the_segments_it_cut(run_service, bus: Bus) -> None:
    """The LLM worker is the only place a reply is cut: without a TTS continuation its chunks come per token
    and still name the segments they complete, for the gateway to send to TTS; the worker sends none."""
    run_service("llm_worker", FAST)
    await _wait_workers(bus, "llm")
    channel = CallChannel(bus, f"unchained-{new_id()}", ack_timeout_s=1)
    await channel.open()
    try:
        async with _counting(bus, subjects.TTS_REQUEST) as tts_sent:
            request = _llm_request(channel, 1, "A table for two, please.").model_copy(update={"tts": None})
            chunks = [c async for c in channel.generate(request, timeout_s=5)]
            await asyncio.sleep(0.2)
        assert chunks[-1].done and not any(c.tts_chained for c in chunks)
        assert len(chunks) > 2  # per token, not per cut
        assert "".join(c.delta for c in chunks) == "Sure. A table for two at eight."
        assert [seg for c in chunks for seg in c.segments or ()] == ["Sure.", "A table for two at eight."]
        assert tts_sent == []
    finally:
        await channel.close()


async def test_a_chunk_names_its_segments_only_once_a_tts_worker_has_them(run_service, bus: Bus) -> None:
    """The LLM worker holds each chunk until the TTS requests of the segments it names are accepted: on a
    shared core the gateway's handling of the chunk must not come before the TTS worker's start on the audio."""
    for name in ("llm_worker", "tts_worker"):
        run_service(name, FAST)
    for service in ("llm", "tts"):
        await _wait_workers(bus, service)
    channel = CallChannel(bus, f"order-{new_id()}", ack_timeout_s=1)
    await channel.open()
    seen: list[tuple[str, int]] = []  # in the server's order: one subscription sees every message
    inboxes: set[str] = set()  # where the TTS requests want their acks

    async def on_msg(msg) -> None:
        if msg.subject == subjects.TTS_REQUEST:
            seen.append(("tts_request", 0))
            inboxes.add(msg.reply)
        elif msg.subject in inboxes:
            seen.append(("ack", 0))
        elif msg.subject == channel.subject_llm:
            seen.append(("chunk", len(LlmChunk.model_validate_json(msg.data).segments or [])))

    sub = await bus.nc.subscribe(">", cb=on_msg)
    try:
        channel.expect_chained(4)
        chunks = [c async for c in channel.generate(_llm_request(channel, 4, "hello"), timeout_s=5)]
        assert chunks[-1].done
        await asyncio.sleep(0.1)
    finally:
        await sub.unsubscribe()
        channel.forget_turn(4)
        await channel.close()
    named = acked = 0
    for kind, segments in seen:
        acked += kind == "ack"
        if kind == "chunk":
            named += segments
            assert acked >= named, f"a chunk named segment {named} before its TTS request was accepted: {seen}"
    assert named == 2 and acked == 2


async def test_chained_tts_with_no_tts_worker_falls_back_to_the_gateway_then_fails(run_service, bus: Bus) -> None:
    llm = run_service("llm_worker", FAST)
    await _wait_workers(bus, "llm")
    channel = CallChannel(bus, f"no-tts-{new_id()}", ack_timeout_s=0.3)
    await channel.open()
    reported: list[TtsChunk] = []

    async def on_tts(ev: TtsChunk, _msg) -> None:
        reported.append(ev)

    sub = await bus.subscribe(channel.subject_tts, TtsChunk, on_tts)
    try:
        channel.expect_chained(2)
        chunks = [c async for c in channel.generate(_llm_request(channel, 2, "hello"), timeout_s=5)]
        assert chunks[-1].done
        with pytest.raises(TurnFailed) as info:
            tts = TtsRequest(call_id=channel.call_id, turn_id=2, segment=0, text="Sure.", reply_to=channel.subject_tts)
            async for _ in channel.synthesize(tts, timeout_s=5, chained=True):
                pass
    finally:
        await sub.unsubscribe()
        await channel.close()
    # the LLM worker reported that nobody took segment 0; the gateway then sent it itself, also in vain
    assert any(r.segment == 0 and r.error and r.error.code == NOT_CHAINED for r in reported)
    assert info.value.stage == "tts" and info.value.error.code == "no_worker"
    await llm.wait_for_output("chain_failed")


async def test_a_chained_request_arriving_after_the_cancel_is_dropped(run_service, bus: Bus) -> None:
    tts = run_service("tts_worker", FAST)
    await _wait_workers(bus, "tts")
    call_id = f"late-{new_id()}"
    subject = subjects.call_subject(call_id, "tts")
    got: list[TtsChunk] = []

    async def on_tts(ev: TtsChunk, _msg) -> None:
        got.append(ev)

    sub = await bus.subscribe(subject, TtsChunk, on_tts)
    try:
        await bus.publish(
            subjects.call_subject(call_id, "cancel"), CancelTurn(call_id=call_id, turn_id=3, reason="barge_in")
        )
        await bus.nc.flush()
        await asyncio.sleep(0.2)  # the cancel lands first, as a barge-in overtaking a chained request
        late = TtsRequest(call_id=call_id, turn_id=3, segment=4, text="Too late.", reply_to=subject)
        assert await bus.submit_work(subjects.TTS_REQUEST, late, ack_timeout_s=2) is None
        await tts.wait_for_output("work_dropped_cancelled_turn")
        other = TtsRequest(call_id=call_id, turn_id=4, segment=0, text="Next turn.", reply_to=subject)
        assert await bus.submit_work(subjects.TTS_REQUEST, other, ack_timeout_s=2) is None
        for _ in range(100):
            if any(c.done for c in got):
                break
            await asyncio.sleep(0.05)
    finally:
        await sub.unsubscribe()
    assert got and {c.turn_id for c in got} == {4}  # the next turn is served; the cancelled one never was


async def test_barge_in_stops_chained_work_and_the_next_turn_is_answered(stacks, bus: Bus) -> None:
    long_reply = "Sure. " + " ".join(f"Option number {i} is available for you." for i in range(1, 12))
    gateway = await stacks.get({"FAKE_LLM_REPLY": long_reply, "FAKE_LLM_TOKENS_PER_S": "20"})
    caller = SimCaller(ws(gateway))
    results: list[SttResult] = []
    tts_chunks: list[TtsChunk] = []

    async def on_stt(ev: SttResult, _msg) -> None:
        results.append(ev)

    async def on_tts(ev: TtsChunk, _msg) -> None:
        tts_chunks.append(ev)

    await caller.connect()
    subs = [
        await bus.subscribe(subjects.call_subject(caller.call_id, "stt"), SttResult, on_stt),
        await bus.subscribe(subjects.call_subject(caller.call_id, "tts"), TtsChunk, on_tts),
    ]
    try:
        await caller.next(lambda m: m["type"] == "transcript")  # greeting played
        await caller.send_frames(await say("What options do I have?"))
        user = await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "user")
        asked_at = caller.last_at
        while not caller.has_audio_after(asked_at):
            await caller.send_silence(0.02)
        await caller.send_silence(0.5)
        await caller.send_frames(await say("Stop, the second one please."))
        await caller.next(lambda m: m["type"] == "clear")
        heard = await caller.next(lambda m: m["type"] == "transcript" and m.get("interrupted"))
        assert heard["text"].startswith("Sure.") and len(heard["text"]) < len(long_reply)
        await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "user", timeout=10)
        second_at = caller.last_at
        while not caller.has_audio_after(second_at):  # the next turn is answered as usual, chained again
            await caller.send_silence(0.02)
        await caller.send_silence(0.3)
    finally:
        for sub in subs:
            await sub.unsubscribe()
        await caller.hang_up()
    assert results and all(r.chained for r in results if r.text)
    cut = user["turn_id"]
    segments = {c.segment for c in tts_chunks if c.turn_id == cut}
    # the reply has 12 sentences written at 20 tokens/s: the cancel stopped the LLM worker long before the
    # end, so most segments were never sent to TTS, and the ones in flight stopped (no `done` for all)
    assert 0 < len(segments) < 12
    assert any(c.turn_id == cut + 1 and c.audio for c in tts_chunks)


# no LLM worker for a chained turn (the STT worker cannot chain, the gateway's own try fails too): see
# test_conversation.test_failed_stage_speaks_the_apology_and_records_the_error, which runs with chaining on


async def test_chaining_can_be_turned_off(stacks, bus: Bus) -> None:
    gateway = await stacks.get({"CHAIN_STAGES": "false"})
    caller = SimCaller(ws(gateway))
    results: list[SttResult] = []

    async def on_stt(ev: SttResult, _msg) -> None:
        results.append(ev)

    await caller.connect()
    sub = await bus.subscribe(subjects.call_subject(caller.call_id, "stt"), SttResult, on_stt)
    try:
        await caller.next(lambda m: m["type"] == "transcript")
        await caller.send_frames(await say("Hello there."))
        reply = await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=15)
        assert reply["text"].startswith("Sure.")
    finally:
        await sub.unsubscribe()
        await caller.hang_up()
    assert results and not any(r.chained for r in results)
