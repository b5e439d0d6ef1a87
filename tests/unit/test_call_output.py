"""The audio-output contract: ``clear`` silences the client and says how much the caller heard."""

from __future__ import annotations

import asyncio

from services.gateway.call.output import paced_output

RATE = 16000


async def test_clear_tells_the_client_and_returns_the_bytes_heard() -> None:
    frames: list[bytes] = []
    cleared: list[bool] = []

    async def send_audio(data: bytes) -> None:
        frames.append(data)

    async def send_clear() -> None:
        cleared.append(True)

    out = paced_output(
        client_type="browser",
        send_audio=send_audio,
        send_clear=send_clear,
        bytes_per_s=RATE * 2,
        frame_ms=20,
        lead_ms=40,
    )
    out.start()
    out.push(bytes(RATE * 2))  # 1 s
    assert out.queued_total == RATE * 2
    await asyncio.sleep(0.2)
    heard = await out.clear()
    await out.stop()
    assert cleared == [True]
    assert 0.1 * RATE * 2 < heard < 0.35 * RATE * 2  # about what played by then, not what was queued
    assert out.queued_total == heard and out.first_send_at is None
    assert sum(map(len, frames)) < RATE * 2
