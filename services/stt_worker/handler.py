"""Turns one ``SttRequest`` (a whole caller turn) into one ``SttResult`` on the call's ``stt`` subject."""

from __future__ import annotations

import time

from services.stt_worker.providers import build_provider
from services.stt_worker.providers.base import SttProvider
from shared.audio import pcm16_duration
from shared.events import ErrorInfo, Event, SttRequest, SttResult
from shared.metrics import PROVIDER_DURATION, PROVIDER_FIRST_BYTE, STT_AUDIO_SECONDS
from shared.settings import SttSettings
from shared.worker import Emit, ProviderCache, ProviderError

SERVICE = "stt"
MAX_AUDIO_SECONDS = 30.0


class SttHandler:
    def __init__(self, settings: SttSettings, instance: str) -> None:
        self.settings = settings
        self.instance = instance
        self.providers = ProviderCache(
            lambda name: build_provider(name, settings),
            settings.stt_provider,
            service=SERVICE,
            fallbacks=settings.provider_fallbacks,
            failure_threshold=settings.circuit_failure_threshold,
            reset_after_s=settings.circuit_reset_s,
        )

    def provider(self, name: str | None) -> SttProvider:
        return self.providers.get(name)

    async def warmup(self) -> None:
        await self.provider(None).warmup()

    async def handle(self, req: SttRequest, emit: Emit) -> None:
        seconds = pcm16_duration(req.audio, req.sample_rate)
        if seconds > MAX_AUDIO_SECONDS:
            raise ProviderError("bad_request", f"turn audio is {seconds:.1f}s, over the {MAX_AUDIO_SECONDS:.0f}s bound")
        await self.providers.run(req.provider, emit, lambda provider, out: self._attempt(provider, req, out))

    async def _attempt(self, provider: SttProvider, req: SttRequest, emit: Emit) -> None:
        started = time.perf_counter()
        result = await provider.transcribe(req.audio, req.sample_rate, language=req.language, model=req.model)
        took = time.perf_counter() - started
        PROVIDER_FIRST_BYTE.labels(SERVICE, provider.name).observe(took)
        PROVIDER_DURATION.labels(SERVICE, provider.name).observe(took)
        STT_AUDIO_SECONDS.labels(provider.name).inc(pcm16_duration(req.audio, req.sample_rate))
        await emit(
            SttResult(
                call_id=req.call_id,
                turn_id=req.turn_id,
                trace_id=req.trace_id,
                text=result.text.strip(),
                language=result.language,
                provider=provider.name,
                audio_seconds=round(pcm16_duration(req.audio, req.sample_rate), 3),
                provider_ms=round(took * 1000, 1),
                worker=self.instance,
            )
        )

    def error_event(self, req: SttRequest, error: ErrorInfo) -> Event:
        return SttResult(
            call_id=req.call_id, turn_id=req.turn_id, trace_id=req.trace_id, worker=self.instance, error=error
        )
