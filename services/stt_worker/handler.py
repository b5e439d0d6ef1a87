"""Turns one ``SttRequest`` (a whole caller turn) into one ``SttResult`` on the call's ``stt`` subject.

A request that carries an LLM continuation is chained: on a transcript with words the worker sends the
``LlmRequest`` (the conversation so far plus the caller's message) to the LLM queue group itself, before the
result, so the reply doesn't wait for a round trip through the gateway. ``SttResult.chained`` tells the
gateway whether a worker took it; if not, the gateway sends the request itself.
"""

from __future__ import annotations

import time

from services.stt_worker.providers import build_provider
from services.stt_worker.providers.base import SttProvider
from shared import subjects
from shared.audio import pcm16_duration
from shared.events import ErrorInfo, Event, SttRequest, SttResult
from shared.logging import get_logger
from shared.metrics import PROVIDER_DURATION, PROVIDER_FIRST_BYTE, STT_AUDIO_SECONDS
from shared.sentence_splitter import has_words
from shared.settings import SttSettings
from shared.worker import Chain, Emit, ProviderCache, ProviderError

log = get_logger(__name__)
SERVICE = "stt"
MAX_AUDIO_SECONDS = 30.0


class SttHandler:
    def __init__(self, settings: SttSettings, instance: str) -> None:
        self.settings = settings
        self.instance = instance
        self.chain: Chain | None = None  # set by the runtime: sends the LLM request on a chained turn
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
        text = result.text.strip()
        chained = await self._chain_llm(req, text)
        await emit(
            SttResult(
                call_id=req.call_id,
                turn_id=req.turn_id,
                trace_id=req.trace_id,
                text=text,
                language=result.language,
                provider=provider.name,
                audio_seconds=round(pcm16_duration(req.audio, req.sample_rate), 3),
                provider_ms=round(took * 1000, 1),
                worker=self.instance,
                chained=chained,
            )
        )

    async def _chain_llm(self, req: SttRequest, text: str) -> bool:
        """Send the turn's LLM request to the LLM workers; True when one accepted it."""
        cont = req.llm
        if cont is None or self.chain is None or not has_words(text):
            return False
        llm = cont.request(req.call_id, req.turn_id, text, trace_id=req.trace_id)
        error = await self.chain.submit(subjects.LLM_REQUEST, llm)
        if error is not None:
            log.warning("chain_failed", stage="llm", code=error.code, error=error.message[:200])
        return error is None

    def error_event(self, req: SttRequest, error: ErrorInfo) -> Event:
        return SttResult(
            call_id=req.call_id, turn_id=req.turn_id, trace_id=req.trace_id, worker=self.instance, error=error
        )
