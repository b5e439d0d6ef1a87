"""Fixed-latency TTS for benchmarks and fast tests: a quiet 440 Hz tone, 60 ms per character of text."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

import numpy as np
from pydantic import Field

from shared.events import VoiceSpec
from shared.provider_catalog import Offer, Voice, built_in
from shared.settings import TtsSettings

SECONDS_PER_CHAR = 0.06
TONE_HZ = 440.0
AMPLITUDE = 0.1  # of full scale: audible in a demo, not painful


@functools.cache
def _tone_second(sample_rate: int) -> bytes:
    """One second of the tone, computed once per rate: a benchmark's server CPU should be Victoria's, not
    the fake's sine arithmetic."""
    t = np.arange(sample_rate, dtype=np.float64) / sample_rate
    return (np.sin(2 * np.pi * TONE_HZ * t) * AMPLITUDE * 32767).astype("<i2").tobytes()


class Settings(TtsSettings):
    """The tone's latency and pace (bench and fast tests)."""

    fake_tts_first_byte_ms: float = Field(default=100.0, ge=0)
    fake_tts_pace: float = Field(
        default=0.0, ge=0, description="0: the rest of the audio at once; N: streamed at N x real time"
    )


NAME = "fake"
OFFER = Offer(voices=(Voice("tone", "en-US"),), note="test provider: a 440 Hz tone, 60 ms per character")


usable = built_in


class FakeTts:
    """First chunk after ``fake_tts_first_byte_ms``; the rest immediately (faster than real time, like a
    real engine), so that the measured latency is exactly the configured one."""

    name = "fake"

    def __init__(self, settings: Settings) -> None:
        self.first_byte_s = settings.fake_tts_first_byte_ms / 1000
        self.chunk_ms = settings.tts_chunk_ms
        self.pace = settings.fake_tts_pace  # N x real time (0: at once), to test a stream cut mid-segment

    async def warmup(self) -> None:
        """Nothing to load."""

    async def synthesize(
        self, text: str, voice: VoiceSpec, *, language: str, sample_rate: int
    ) -> AsyncIterator[tuple[bytes, int]]:
        await asyncio.sleep(self.first_byte_s)
        n = round(len(text) * SECONDS_PER_CHAR / voice.rate * sample_rate)
        second = _tone_second(sample_rate)  # a whole number of cycles: seconds join without a click
        pcm = (second * (n // sample_rate + 1))[: n * 2]
        step = max(1, sample_rate * self.chunk_ms // 1000) * 2
        for i in range(0, len(pcm), step):
            if self.pace and i:
                await asyncio.sleep(self.chunk_ms / 1000 / self.pace)
            yield pcm[i : i + step], sample_rate


Provider = FakeTts
