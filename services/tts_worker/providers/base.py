"""The TTS provider interface: one text segment in, a stream of PCM16 audio chunks out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from shared.events import VoiceSpec


class TtsProvider(Protocol):
    name: str

    async def warmup(self) -> None:
        """Load models or open connections before the first request (a no-op where nothing to load)."""
        ...

    def synthesize(
        self, text: str, voice: VoiceSpec, *, language: str, sample_rate: int
    ) -> AsyncIterator[tuple[bytes, int]]:
        """Yield ``(pcm16_mono_chunk, chunk_sample_rate)`` as audio is produced. ``sample_rate`` is what the
        caller needs: a provider that can produce it natively should; otherwise the worker resamples.
        Closing the iterator early must stop synthesis. Raise ``ProviderError`` on failure."""
        ...
