"""Fixed-latency STT for benchmarks and fast tests: answers ``fake_stt_text`` after ``fake_stt_latency_ms``."""

from __future__ import annotations

import asyncio

from pydantic import Field

from services.stt_worker.providers.base import Transcript
from shared.provider_catalog import Model, Offer, built_in
from shared.settings import SttSettings


class Settings(SttSettings):
    """Fixed latency and text (bench and fast tests)."""

    fake_stt_latency_ms: float = Field(default=200.0, ge=0)
    fake_stt_text: str = "hello, I would like to book a table for two"


NAME = "fake"
OFFER = Offer(
    models=(Model("fake", "fixed text after a fixed latency (FAKE_STT_TEXT, FAKE_STT_LATENCY_MS)"),),
    note="test provider: ignores the audio",
)


usable = built_in


class FakeStt:
    """Deterministic stand-in for a real recogniser, so pipeline timings can be measured without a model."""

    name = "fake"

    def __init__(self, settings: Settings) -> None:
        self.latency_s = settings.fake_stt_latency_ms / 1000
        self.text = settings.fake_stt_text

    async def warmup(self) -> None:
        """Nothing to load."""

    async def transcribe(
        self, audio: bytes, sample_rate: int, *, language: str | None = None, model: str | None = None
    ) -> Transcript:
        await asyncio.sleep(self.latency_s)
        return Transcript(text=self.text if audio else "", language=language)


Provider = FakeStt
