"""Fixed-latency STT for benchmarks and fast tests: answers ``fake_stt_text`` after ``fake_stt_latency_ms``."""

from __future__ import annotations

import asyncio

from services.stt_worker.providers.base import Transcript
from shared.settings import SttSettings


class FakeStt:
    """Deterministic stand-in for a real recogniser, so pipeline timings can be measured without a model."""

    name = "fake"

    def __init__(self, settings: SttSettings) -> None:
        self.latency_s = settings.fake_stt_latency_ms / 1000
        self.text = settings.fake_stt_text

    async def warmup(self) -> None:
        """Nothing to load."""

    async def transcribe(
        self, audio: bytes, sample_rate: int, *, language: str | None = None, model: str | None = None
    ) -> Transcript:
        await asyncio.sleep(self.latency_s)
        return Transcript(text=self.text if audio else "", language=language)
