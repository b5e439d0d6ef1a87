"""The TTS worker sends a segment's first audio at once and batches the rest while the caller has plenty
queued, without changing a byte of the audio or holding back a provider that streams at real time."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from services.tts_worker.handler import TtsHandler
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers.fake import FakeTts
from shared.events import Event, TtsChunk, TtsRequest, VoiceSpec


class RealTimeTts:
    """A provider that produces audio no faster than it plays (100 ms pieces, 100 ms apart)."""

    name = "realtime"

    async def warmup(self) -> None:
        """Nothing to load."""

    async def synthesize(
        self, text: str, voice: VoiceSpec, *, language: str, sample_rate: int
    ) -> AsyncIterator[tuple[bytes, int]]:
        for i in range(8):
            await asyncio.sleep(0.1)
            yield bytes([i]) * (sample_rate // 10 * 2), sample_rate


async def _run(provider: object, text: str, *, encoding: str = "pcm16") -> tuple[list[TtsChunk], list[float]]:
    handler = TtsHandler(TtsWorkerSettings(tts_provider="fake", fake_tts_first_byte_ms=10), "test")
    req = TtsRequest(
        call_id="c", turn_id=1, segment=0, text=text, sample_rate=16000, encoding=encoding, reply_to="call.c.tts"
    )
    loop = asyncio.get_running_loop()
    chunks: list[TtsChunk] = []
    stamps: list[float] = []

    async def emit(event: Event) -> None:
        assert isinstance(event, TtsChunk)
        chunks.append(event)
        stamps.append(loop.time())

    await handler._attempt(provider, req, emit)  # type: ignore[arg-type]
    return chunks, stamps


async def _provider_audio(provider: object, text: str) -> bytes:
    stream = provider.synthesize(text, VoiceSpec(), language="en-US", sample_rate=16000)  # type: ignore[attr-defined]
    return b"".join([pcm async for pcm, _ in stream])


async def test_fast_provider_first_audio_alone_then_fewer_larger_events_same_bytes() -> None:
    fake = FakeTts(TtsWorkerSettings(fake_tts_first_byte_ms=10, tts_chunk_ms=200))
    text = "I can help you with that booking, what time would you like to come in?"  # ~4.3 s of audio
    chunks, _ = await _run(fake, text)
    pieces = len(await _provider_audio(fake, text)) // 6400 + 1
    assert [c.seq for c in chunks] == list(range(len(chunks))) and chunks[-1].done
    assert len(chunks[0].audio) == 6400  # the first 200 ms leave alone, as soon as they exist
    assert len(chunks) < pieces * 0.7  # the rest is batched: fewer events than the provider's pieces
    assert max(len(c.audio) for c in chunks) <= 32000  # never more than 1 s in one event
    assert b"".join(c.audio for c in chunks) == await _provider_audio(fake, text)


async def test_real_time_provider_is_never_held_back() -> None:
    chunks, stamps = await _run(RealTimeTts(), "hello")
    audio = [c for c in chunks if c.audio]
    # each 100 ms piece leaves on its own when it arrives: holding it would starve the caller
    assert len(audio) >= 7
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(stamps[:-1]))  # the last is the `done` right after
    assert b"".join(c.audio for c in chunks) == b"".join(bytes([i]) * 3200 for i in range(8))


async def test_mulaw_batches_convert_to_one_byte_per_sample() -> None:
    fake = FakeTts(TtsWorkerSettings(fake_tts_first_byte_ms=10, tts_chunk_ms=200))
    text = "What time would you like to come in?"
    chunks, _ = await _run(fake, text, encoding="mulaw")
    assert len(chunks[0].audio) == 3200 and all(c.encoding == "mulaw" for c in chunks)
    assert sum(len(c.audio) for c in chunks) * 2 == len(await _provider_audio(fake, text))
