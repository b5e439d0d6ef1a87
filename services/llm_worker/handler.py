"""Streams an ``LlmRequest``'s reply as ``LlmChunk`` events on the call's ``llm`` subject, token by token."""

from __future__ import annotations

import time

from services.llm_worker.providers import build_provider
from services.llm_worker.providers.base import LlmProvider
from shared.events import ErrorInfo, Event, LlmChunk, LlmRequest
from shared.metrics import PROVIDER_DURATION, PROVIDER_FIRST_BYTE, PROVIDER_TOKENS
from shared.settings import LlmSettings
from shared.worker import Emit, ProviderCache

SERVICE = "llm"


class LlmHandler:
    def __init__(self, settings: LlmSettings, instance: str) -> None:
        self.settings = settings
        self.instance = instance
        self.providers = ProviderCache(
            lambda name: build_provider(name, settings),
            settings.llm_provider,
            service=SERVICE,
            fallbacks=settings.provider_fallbacks,
            failure_threshold=settings.circuit_failure_threshold,
            reset_after_s=settings.circuit_reset_s,
        )

    def provider(self, name: str | None) -> LlmProvider:
        return self.providers.get(name)

    async def warmup(self) -> None:
        await self.provider(None).warmup()

    async def handle(self, req: LlmRequest, emit: Emit) -> None:
        await self.providers.run(req.provider, emit, lambda provider, out: self._attempt(provider, req, out))

    async def _attempt(self, provider: LlmProvider, req: LlmRequest, emit: Emit) -> None:
        started = time.perf_counter()
        seq = 0
        first = True
        stream = provider.stream(req.messages, model=req.model, temperature=req.temperature, max_tokens=req.max_tokens)
        try:
            async for delta in stream:
                if first and delta.text:
                    PROVIDER_FIRST_BYTE.labels(SERVICE, provider.name).observe(time.perf_counter() - started)
                    first = False
                done = delta.finish_reason is not None
                if done:
                    model = req.model or "default"
                    for kind, count in (("prompt", delta.prompt_tokens), ("completion", delta.completion_tokens)):
                        if count:
                            PROVIDER_TOKENS.labels(provider.name, model, kind).inc(count)
                if delta.text or done:
                    await emit(
                        LlmChunk(
                            call_id=req.call_id,
                            turn_id=req.turn_id,
                            trace_id=req.trace_id,
                            seq=seq,
                            delta=delta.text,
                            done=done,
                            finish_reason=delta.finish_reason,
                            prompt_tokens=delta.prompt_tokens,
                            completion_tokens=delta.completion_tokens,
                            provider=provider.name,
                            worker=self.instance,
                        )
                    )
                    seq += 1
                if done:
                    break
            else:
                # a provider that ends without a finish_reason still closes the stream for the gateway
                await emit(
                    LlmChunk(
                        call_id=req.call_id,
                        turn_id=req.turn_id,
                        trace_id=req.trace_id,
                        seq=seq,
                        done=True,
                        finish_reason="stop",
                        provider=provider.name,
                        worker=self.instance,
                    )
                )
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        PROVIDER_DURATION.labels(SERVICE, provider.name).observe(time.perf_counter() - started)

    def error_event(self, req: LlmRequest, error: ErrorInfo) -> Event:
        return LlmChunk(
            call_id=req.call_id,
            turn_id=req.turn_id,
            trace_id=req.trace_id,
            done=True,
            worker=self.instance,
            error=error,
        )
