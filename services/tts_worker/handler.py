"""Streams a ``TtsRequest``'s audio as ``TtsChunk`` events, converted once to what the caller plays:
the requested sample rate (a stateful soxr stream per request) and encoding (PCM16 or μ-law); the first
audio at once, the rest batched while the caller has enough queued (``_Batcher``)."""

from __future__ import annotations

import contextlib
import time

from services.tts_worker.providers import build_provider
from services.tts_worker.providers.base import TtsProvider
from services.tts_worker.turn_order import TurnOrder
from shared.audio import StreamResampler, pcm16_to_ulaw
from shared.events import ErrorInfo, Event, TtsChunk, TtsRequest
from shared.metrics import PROVIDER_DURATION, PROVIDER_FIRST_BYTE, TTS_CHARACTERS
from shared.settings import TtsSettings
from shared.worker import Emit, ProviderCache, ProviderError

SERVICE = "tts"


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
        self.order = TurnOrder()

    def provider(self, name: str | None) -> TtsProvider:
        return self.providers.get(name)

    async def warmup(self) -> None:
        await self.provider(None).warmup()

    async def handle(self, req: TtsRequest, emit: Emit) -> None:
        # a local voice: a turn's segments one after another, so its first has the cores; a network one: overlap
        local = self._cpu_bound(req.voice.provider)
        async with self.order.turn(req.call_id, req.turn_id) if local else contextlib.nullcontext():
            await self.providers.run(req.voice.provider, emit, lambda provider, out: self._attempt(provider, req, out))

    def _cpu_bound(self, name: str | None) -> bool:
        try:
            return getattr(self.provider(name), "max_parallel", None) is not None
        except ProviderError:  # (an unknown name: ``run`` reports it)
            return False

    async def _attempt(self, provider: TtsProvider, req: TtsRequest, emit: Emit) -> None:
        started = time.perf_counter()
        resampler: StreamResampler | None = None
        batch = _Batcher(req.sample_rate)
        seq = 0
        skip = req.skip_bytes  # a retry mid-segment: the caller's format bytes the gateway already has
        stream = provider.synthesize(req.text, req.voice, language=req.language, sample_rate=req.sample_rate)
        try:
            async for pcm, rate in stream:
                if resampler is None:
                    resampler = StreamResampler(rate, req.sample_rate)
                    PROVIDER_FIRST_BYTE.labels(SERVICE, provider.name).observe(time.perf_counter() - started)
                out = resampler.process(pcm)
                if skip:  # (same text, voice and format: the same audio; skip what was already played)
                    drop = min(skip * (2 if req.encoding == "mulaw" else 1), len(out))
                    out = out[drop:]
                    skip -= drop // (2 if req.encoding == "mulaw" else 1)
                batch.add(out)
                if batch.due():
                    await emit(self._chunk(req, seq, batch.take(), provider.name))
                    seq += 1
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        batch.add(resampler.process(b"", last=True) if resampler else b"")
        await emit(self._chunk(req, seq, batch.take(), provider.name, done=True))
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
            attempt=req.attempt,
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
            attempt=req.attempt,
        )


class _Batcher:
    """Decides when a segment's audio leaves: the first audio at once, later audio in fewer, larger events
    while the caller has plenty queued.

    Providers hand audio over in small pieces, usually much faster than real time; an event per piece costs
    CPU in this worker, NATS and the gateway for nothing, since the gateway paces the audio out itself. So
    audio is held back while what was already sent keeps the caller busy for ``SAFETY_S`` longer than it
    would take to send the held audio (a provider that stalls then still leaves no gap), up to ``MAX_EVENT_S``
    per event. A provider streaming at real time keeps the lead small, so each piece still leaves at once.

    This is batching for the bus, not a second playback clock: the bytes, their order and their format are
    exactly what the provider produced, and when the caller hears them is decided only by the gateway's
    transport output (``services/gateway/call/output.py``, the pacer). The lead estimated here (real-time
    playback from the first event) only bounds how much audio waits in this worker; it can only err early
    (the caller's player started later than our first event), which sends audio sooner, never later.
    """

    SAFETY_S = 0.5
    MAX_EVENT_S = 1.0

    def __init__(self, sample_rate: int) -> None:
        self.bytes_per_s = sample_rate * 2  # PCM16 before any μ-law conversion
        self.buf = bytearray()
        self.sent_s = 0.0
        self.first_sent_at: float | None = None

    def add(self, pcm: bytes) -> None:
        self.buf += pcm

    def due(self) -> bool:
        if not self.buf:
            return False
        if self.first_sent_at is None:
            return True
        held_s = len(self.buf) / self.bytes_per_s
        lead_s = self.sent_s - (time.monotonic() - self.first_sent_at)  # audio the caller has yet to play
        return held_s >= min(self.MAX_EVENT_S, lead_s - self.SAFETY_S)

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        if out and self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        self.sent_s += len(out) / self.bytes_per_s
        return out
