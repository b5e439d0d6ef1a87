"""Outbound pacing: steady frames a bounded lead ahead of playback, marks after playback, clear on barge-in.
Tolerances are loose on purpose: this checks behaviour, the benchmark measures precision."""

from __future__ import annotations

import asyncio
import time

from services.gateway.call.pacer import AudioPacer

RATE = 8000  # bytes per second (μ-law 8 kHz)


async def test_frames_are_paced_at_real_time_with_bounded_lead() -> None:
    sent: list[tuple[float, int]] = []

    async def sink(frame: bytes) -> None:
        sent.append((time.monotonic(), len(frame)))

    pacer = AudioPacer(sink, bytes_per_s=RATE, frame_ms=20, lead_ms=60)
    pacer.start()
    start = time.monotonic()
    pacer.push(bytes(RATE // 2))  # 500 ms
    played = asyncio.Event()
    pacer.mark(played.set)
    await asyncio.wait_for(played.wait(), 2)
    took = time.monotonic() - start
    await pacer.stop()
    assert all(size == 160 for _, size in sent) and len(sent) == 25
    assert 0.45 <= took <= 0.7  # the mark fires when the audio has played, not when it was sent
    total = 0
    for at, size in sent:
        total += size
        ahead = total / RATE - (at - start)
        assert ahead <= 0.06 + 0.02 + 0.01  # never more than the lead (plus one frame) ahead
    assert sent[-1][0] - start >= 0.38  # the last frame was not sent in a burst at the start


async def test_clear_drops_queued_audio_and_reports_what_was_heard() -> None:
    frames: list[bytes] = []

    async def sink(frame: bytes) -> None:
        frames.append(frame)

    pacer = AudioPacer(sink, bytes_per_s=RATE, frame_ms=20, lead_ms=40)
    pacer.start()
    pacer.push(bytes(RATE * 2))  # 2 s
    await asyncio.sleep(0.3)
    heard = pacer.clear()
    sent_before = len(frames)
    await asyncio.sleep(0.1)
    await pacer.stop()
    assert 0.2 * RATE <= heard <= 0.4 * RATE
    assert len(frames) == sent_before  # nothing more is sent after clear
    assert pacer.pending_bytes == 0


async def test_marks_fire_in_order_and_gap_is_tracked() -> None:
    async def sink(frame: bytes) -> None:
        return None

    pacer = AudioPacer(sink, bytes_per_s=RATE, frame_ms=20, lead_ms=40)
    pacer.start()
    order: list[str] = []
    pacer.push(bytes(800))
    pacer.mark(lambda: order.append("a"))
    pacer.push(bytes(800))
    pacer.mark(lambda: order.append("b"))
    await asyncio.sleep(0.35)
    await pacer.stop()
    assert order == ["a", "b"]
    assert pacer.max_gap_s == 0.0
