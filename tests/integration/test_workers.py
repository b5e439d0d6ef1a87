"""Workers on a real NATS: queue-group load splitting, acknowledgement, cancellation, and bad events."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import numpy as np
import pytest

from services.gateway.call.channel import CallChannel, TurnFailed
from shared import subjects
from shared.bus import Bus
from shared.events import ChatMessage, LlmRequest, SttRequest, TtsRequest, new_id

FAST = {"STT_PROVIDER": "fake", "LLM_PROVIDER": "fake", "TTS_PROVIDER": "fake", "FAKE_STT_LATENCY_MS": "30"}
SPEECH = (np.sin(np.arange(16000) / 3) * 3000).astype(np.int16).tobytes()  # 1 s


async def _wait_workers(bus: Bus, service: str, count: int) -> None:
    from shared.health import ping_services

    for _ in range(200):
        if len(await ping_services(bus, service, window_s=0.1)) >= count:
            return
    raise AssertionError(f"{count} {service} workers did not come up")


async def test_two_stt_workers_split_the_turns(run_service, bus: Bus) -> None:
    run_service("stt_worker", {**FAST, "INSTANCE_ID": "stt-a"})
    run_service("stt_worker", {**FAST, "INSTANCE_ID": "stt-b"})
    await _wait_workers(bus, "stt", 2)
    channel = CallChannel(bus, f"split-{new_id()}", ack_timeout_s=2)
    await channel.open()
    try:
        results = await asyncio.gather(
            *(
                channel.transcribe(
                    SttRequest(call_id=channel.call_id, turn_id=i, audio=SPEECH, reply_to=channel.subject_stt),
                    timeout_s=10,
                )
                for i in range(1, 31)
            )
        )
    finally:
        await channel.close()
    by_worker = Counter(r.worker for r in results)
    assert set(by_worker) == {"stt-a", "stt-b"}, by_worker
    assert min(by_worker.values()) >= 5, by_worker  # random split over 30 turns: both get a real share
    assert all(r.text and r.turn_id == i for i, r in enumerate(results, 1))


async def test_no_worker_fails_the_turn_fast_with_a_clear_code(bus: Bus) -> None:
    channel = CallChannel(bus, f"nobody-{new_id()}", ack_timeout_s=0.5)
    await channel.open()
    try:
        with pytest.raises(TurnFailed) as info:
            await channel.transcribe(
                SttRequest(call_id=channel.call_id, turn_id=1, audio=SPEECH, reply_to="stt.request.nowhere"),
                timeout_s=5,
            )
    finally:
        await channel.close()
    # the request subject has no subscriber only if no stt worker runs; both outcomes are "not accepted"
    assert info.value.stage == "stt" and info.value.error.code in {"no_worker", "timeout"}


async def test_worker_drops_malformed_requests_and_keeps_serving(run_service, bus: Bus) -> None:
    worker = run_service("stt_worker", {**FAST, "INSTANCE_ID": "stt-bad"})
    await _wait_workers(bus, "stt", 1)
    for junk in (b"not json", b"{}", json.dumps({"type": "stt.request", "call_id": "x"}).encode(), b"\xff\xfe"):
        reply = await bus.nc.request(subjects.STT_REQUEST, junk, timeout=2)
        assert json.loads(reply.data)["accepted"] is False
    await worker.wait_for_output("bus_message_dropped")
    channel = CallChannel(bus, f"after-junk-{new_id()}", ack_timeout_s=2)
    await channel.open()
    try:
        result = await channel.transcribe(
            SttRequest(call_id=channel.call_id, turn_id=1, audio=SPEECH, reply_to=channel.subject_stt), timeout_s=10
        )
    finally:
        await channel.close()
    assert result.text
    worker.assert_running()


async def test_oversized_turn_is_refused_by_the_worker_with_bad_request(run_service, bus: Bus) -> None:
    run_service("stt_worker", {**FAST, "INSTANCE_ID": "stt-big"})
    await _wait_workers(bus, "stt", 1)
    channel = CallChannel(bus, f"big-{new_id()}", ack_timeout_s=2)
    await channel.open()
    try:
        with pytest.raises(TurnFailed) as info:
            # 31 s at 8 kHz stays under NATS' 1 MB payload but over the worker's 30 s bound
            await channel.transcribe(
                SttRequest(
                    call_id=channel.call_id,
                    turn_id=1,
                    audio=bytes(8000 * 2 * 31),
                    sample_rate=8000,
                    reply_to=channel.subject_stt,
                ),
                timeout_s=10,
            )
    finally:
        await channel.close()
    assert info.value.error.code == "bad_request" and "bound" in info.value.error.message


async def test_cancel_stops_the_llm_stream_on_the_worker(run_service, bus: Bus) -> None:
    run_service("llm_worker", {**FAST, "FAKE_LLM_FIRST_TOKEN_MS": "10", "FAKE_LLM_TOKENS_PER_S": "20"})
    await _wait_workers(bus, "llm", 1)
    channel = CallChannel(bus, f"cancel-{new_id()}", ack_timeout_s=2)
    await channel.open()
    got: list[str] = []
    try:
        req = LlmRequest(
            call_id=channel.call_id,
            turn_id=7,
            messages=[ChatMessage(role="user", content="hi")],
            reply_to=channel.subject_llm,
        )
        stream = channel.generate(req, timeout_s=0.6)
        async for chunk in stream:
            got.append(chunk.delta)
            if len(got) == 2:
                await channel.cancel(7, reason="barge_in")
                break
        await stream.aclose()
        late: list[str] = []
        channel._llm[7] = asyncio.Queue()  # listen for anything the worker still sends for turn 7
        await asyncio.sleep(0.5)
        while not channel._llm[7].empty():
            late.append(channel._llm[7].get_nowait().delta)
    finally:
        await channel.close()
    assert len(got) == 2
    assert len(late) <= 1  # at most a token already in flight when the cancel landed (20 tok/s = 10 in 0.5 s)


async def test_tts_streams_requested_rate_and_mulaw(run_service, bus: Bus) -> None:
    run_service("tts_worker", {**FAST, "FAKE_TTS_FIRST_BYTE_MS": "10"})
    await _wait_workers(bus, "tts", 1)
    channel = CallChannel(bus, f"tts-{new_id()}", ack_timeout_s=2)
    await channel.open()
    try:
        req = TtsRequest(
            call_id=channel.call_id,
            turn_id=1,
            segment=0,
            text="Hello there.",
            sample_rate=8000,
            encoding="mulaw",
            reply_to=channel.subject_tts,
        )
        chunks = [c async for c in channel.synthesize(req, timeout_s=5)]
    finally:
        await channel.close()
    assert [c.seq for c in chunks] == list(range(len(chunks))) and chunks[-1].done
    audio = b"".join(c.audio for c in chunks)
    # the fake speaks 60 ms per character: 12 characters -> 0.72 s -> 5760 μ-law bytes at 8 kHz
    assert abs(len(audio) - 5760) <= 80
    assert all(c.encoding == "mulaw" and c.sample_rate == 8000 for c in chunks)


async def test_usage_metrics_count_tokens_characters_and_audio(run_service, bus: Bus, free_port) -> None:
    import httpx

    ports = {kind: free_port() for kind in ("stt", "llm", "tts")}
    for kind in ports:
        run_service(f"{kind}_worker", {**FAST, "METRICS_PORT": str(ports[kind]), "FAKE_LLM_TOKENS_PER_S": "500"})
    for kind in ports:
        await _wait_workers(bus, kind, 1)
    channel = CallChannel(bus, f"usage-{new_id()}", ack_timeout_s=2)
    await channel.open()
    try:
        await channel.transcribe(
            SttRequest(call_id=channel.call_id, turn_id=1, audio=SPEECH, reply_to=channel.subject_stt), timeout_s=10
        )
        llm = LlmRequest(
            call_id=channel.call_id,
            turn_id=1,
            messages=[ChatMessage(role="user", content="hi")],
            reply_to=channel.subject_llm,
        )
        [c async for c in channel.generate(llm, timeout_s=5)]
        tts = TtsRequest(
            call_id=channel.call_id, turn_id=1, segment=0, text="Hello there.", reply_to=channel.subject_tts
        )
        [c async for c in channel.synthesize(tts, timeout_s=5)]
    finally:
        await channel.close()

    def metric(kind: str, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{ports[kind]}/metrics", trust_env=False).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))

    assert metric("stt", "victoria_stt_audio_seconds_total") == pytest.approx(1.0)
    assert metric("tts", "victoria_tts_characters_total") == len("Hello there.")
    assert metric("llm", "victoria_provider_tokens_total") > 0
