"""The STT provider interface: one whole turn of audio in, its text out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None = None


class SttProvider(Protocol):
    name: str

    async def warmup(self) -> None:
        """Load models or open connections before the first request (a no-op where nothing to load)."""
        ...

    async def transcribe(
        self, audio: bytes, sample_rate: int, *, language: str | None = None, model: str | None = None
    ) -> Transcript:
        """Transcribe PCM16 mono ``audio``. Raise ``shared.worker.ProviderError`` on failure."""
        ...
