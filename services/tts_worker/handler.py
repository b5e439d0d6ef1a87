"""Streams a ``TtsRequest``'s audio as ``TtsChunk`` events, converted once to what the caller plays:
the requested sample rate (a stateful soxr stream per request) and encoding (PCM16 or μ-law).

The first chunk leaves as soon as it exists (it is the latency the caller hears). Engines then produce the
rest much faster than real time; sending it in ``TTS_CHUNK_MS`` pieces only multiplies bus messages (each
costs both processes CPU, and at 50 calls the burst delays other calls' first audio), so later audio is
merged into events of up to ``COALESCE_S`` while the caller is comfortably ahead (``MIN_LEAD_S``).
"""

from __future__ import annotations

import time

from services.tts_worker.providers import build_provider
from services.tts_worker.providers.base import TtsProvider
from shared.audio import StreamResampler, pcm16_to_ulaw
from shared.events import ErrorInfo, Event, TtsChunk, TtsRequest
from shared.metrics import PROVIDER_DURATION, PROVIDER_FIRST_BYTE, TTS_CHARACTERS
from shared.settings import TtsSettings
from shared.worker import Emit, ProviderCache

SERVICE = "tts"
COALESCE_S = 1.0  # most audio in one event after the first
MIN_LEAD_S = 0.5  # send at once when the audio already sent covers less than this beyond the time elapsed


class TtsHandler:
    def __init__(self, settings: TtsSettings, instance: str) -> None:
        self.settings = settings
        self.instance = instance
        self.providers = ProviderCache(
            lambda name: build_provider(name, settings),
            settings.tts_provider,
            service=SERVICE,
            fallbacks=settings.provider_fallbacks,
            failure_threshold=settings.circuit_failure_threshold,
            reset_after_s=settings.circuit_reset_s,
        )

    def provider(self, name: str | None) -> TtsProvider:
        return self.providers.get(name)

    async def warmup(self) -> None:
        await self.provider(None).warmup()

    async def handle(self, req: TtsRequest, emit: Emit) -> None:
        await self.providers.run(req.voice.provider, emit, lambda provider, out: self._attempt(provider, req, out))

    async def _attempt(self, provider: TtsProvider, req: TtsRequest, emit: Emit) -> None:
        started = time.perf_counter()
        resampler: StreamResampler | None = None
        seq = 0
        bytes_per_s = 2 * req.sample_rate  # PCM16 until the chunk is built
        first_sent = 0.0
        sent_s = 0.0
        pending: list[bytes] = []
        pending_bytes = 0
        stream = provider.synthesize(req.text, req.voice, language=req.language, sample_rate=req.sample_rate)
        try:
            async for pcm, rate in stream:
                if resampler is None:
                    resampler = StreamResampler(rate, req.sample_rate)
                    PROVIDER_FIRST_BYTE.labels(SERVICE, provider.name).observe(time.perf_counter() - started)
                out = resampler.process(pcm)
                if not out:
                    continue
                pending.append(out)
                pending_bytes += len(out)
                lead = sent_s - (time.perf_counter() - first_sent)
                if seq == 0 or pending_bytes >= COALESCE_S * bytes_per_s or lead < MIN_LEAD_S:
                    if seq == 0:
                        first_sent = time.perf_counter()
                    await emit(self._chunk(req, seq, b"".join(pending), provider.name))
                    sent_s += pending_bytes / bytes_per_s
                    seq += 1
                    pending, pending_bytes = [], 0
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        tail = resampler.process(b"", last=True) if resampler else b""
        await emit(self._chunk(req, seq, b"".join(pending) + tail, provider.name, done=True))
        PROVIDER_DURATION.labels(SERVICE, provider.name).observe(time.perf_counter() - started)
        TTS_CHARACTERS.labels(provider.name).inc(len(req.text))

    def _chunk(self, req: TtsRequest, seq: int, pcm: bytes, provider: str, done: bool = False) -> TtsChunk:
        audio = pcm16_to_ulaw(pcm) if req.encoding == "mulaw" else pcm
        return TtsChunk(
            call_id=req.call_id,
            turn_id=req.turn_id,
            trace_id=req.trace_id,
            segment=req.segment,
            seq=seq,
            audio=audio,
            sample_rate=req.sample_rate,
            encoding=req.encoding,
            done=done,
            provider=provider,
            worker=self.instance,
        )

    def error_event(self, req: TtsRequest, error: ErrorInfo) -> Event:
        return TtsChunk(
            call_id=req.call_id,
            turn_id=req.turn_id,
            trace_id=req.trace_id,
            segment=req.segment,
            done=True,
            worker=self.instance,
            error=error,
        )
