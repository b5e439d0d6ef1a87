"""Streams an ``LlmRequest``'s reply as ``LlmChunk`` events on the call's ``llm`` subject.

This worker is the only place a reply is cut into segments (sentences, long clauses): every chunk names the
segments it completes (``LlmChunk.segments``), and the gateway plays exactly those. Unchained, a chunk per
token, and the gateway sends the segments' TTS requests. A request that carries a TTS continuation is
chained: the worker sends each segment's ``TtsRequest`` to the TTS queue group itself, results addressed to
the gateway, and the gateway gets one chunk per cut, not one per token. A segment no TTS worker accepts is
reported to the gateway as a ``not_chained`` error chunk on its TTS subject, and the gateway sends it itself.

On a local model that generates one reply at a time, a call's turn goes before post-call work (the recorder's
extraction), interrupting it if need be (``live_first``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from services.llm_worker.live_first import LiveFirst
from services.llm_worker.providers import build_provider
from services.llm_worker.providers.base import Delta, LlmProvider
from shared import subjects
from shared.events import NOT_CHAINED, ErrorInfo, Event, LlmChunk, LlmRequest, TtsChunk
from shared.logging import get_logger
from shared.metrics import PROVIDER_DURATION, PROVIDER_FIRST_BYTE, PROVIDER_TOKENS
from shared.sentence_splitter import SentenceSplitter
from shared.settings import LlmSettings
from shared.worker import Chain, Emit, ProviderCache, ProviderError

log = get_logger(__name__)
SERVICE = "llm"
# a first sentence with no punctuation early is cut after this many words (at a word that may end a phrase), so
# TTS starts on it sooner. bench/first_segment.py (piper, Kokoro; 10 first sentences each): piece 1 is synthesised
# in ~50-55 % of the whole sentence's time (4 words: ~40-50 %, with more awkward cuts; 6: less gain), and the join
# adds ~0.1 s (piper) to ~0.15-0.2 s (Kokoro's sentence gap) of silence to the voice's own pause there
FIRST_WORDS = 5


class LlmHandler:
    def __init__(self, settings: LlmSettings, instance: str) -> None:
        self.settings = settings
        self.instance = instance
        self.chain: Chain | None = None  # set by the runtime: sends TTS requests on a chained turn
        self.providers = ProviderCache(
            lambda name: build_provider(name, settings),
            settings.llm_provider,
            service=SERVICE,
            fallbacks=settings.provider_fallbacks,
            failure_threshold=settings.circuit_failure_threshold,
            reset_after_s=settings.circuit_reset_s,
        )
        self.gates: dict[str, LiveFirst | None] = {}  # by provider: live turns before post-call work

    def provider(self, name: str | None) -> LlmProvider:
        return self.providers.get(name)

    async def warmup(self) -> None:
        await self.provider(None).warmup()

    async def handle(self, req: LlmRequest, emit: Emit) -> None:
        gate = self._live_first(req.provider)
        if gate is None:
            await self._run(req, emit)
        elif not req.post_call:
            async with gate.live():
                await self._run(req, emit)
        else:  # held and sent whole: an interrupted run leaves nothing behind with the recorder
            held: list[Event] = []

            async def run() -> None:
                held.clear()
                await self._run(req, _hold(held))

            await gate.post_call(run)
            for event in held:
                await emit(event)

    async def _run(self, req: LlmRequest, emit: Emit) -> None:
        await self.providers.run(req.provider, emit, lambda provider, out: self._attempt(provider, req, out))

    def _live_first(self, name: str | None) -> LiveFirst | None:
        """The priority gate of a provider that generates one reply at a time (None: no need, or unknown)."""
        key = name or self.providers.default
        if key not in self.gates:
            try:
                provider = self.provider(key)
            except ProviderError:
                return None  # an unknown provider: ``providers.run`` says so
            self.gates[key] = LiveFirst(self.settings.request_timeout_s / 2) if _one_at_a_time(provider) else None
        return self.gates[key]

    async def _attempt(self, provider: LlmProvider, req: LlmRequest, emit: Emit) -> None:
        started = time.perf_counter()
        cuts = _ReplyCuts(req, self.chain)
        out = _Chunks(lambda **fields: self._chunk(req, provider=provider.name, **fields), emit, cuts)
        skip = _Resume(req.resume)
        first = True
        stream = provider.stream(
            req.messages,
            model=req.model,
            temperature=req.temperature,
            max_tokens=req.max_tokens,
            language=_language(req),
            tools=req.tools or None,
        )
        try:
            async for raw in stream:
                delta = skip.after(raw)
                if first and delta.text:
                    PROVIDER_FIRST_BYTE.labels(SERVICE, provider.name).observe(time.perf_counter() - started)
                    first = False
                done = delta.finish_reason is not None
                if done:
                    _count_tokens(provider.name, req.model, delta)
                await out.send(
                    delta.text,
                    done=done,
                    finish_reason=delta.finish_reason,
                    prompt_tokens=delta.prompt_tokens,
                    completion_tokens=delta.completion_tokens,
                    tool_calls=list(delta.tool_calls) or None,
                )
                if done:
                    break
            else:  # a provider that ends without a finish_reason still closes the stream for the gateway
                await out.send("", done=True, finish_reason="stop")
            await cuts.wait()
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await cuts.cancel()
        PROVIDER_DURATION.labels(SERVICE, provider.name).observe(time.perf_counter() - started)

    def error_event(self, req: LlmRequest, error: ErrorInfo) -> Event:
        return self._chunk(req, done=True, error=error)

    def _chunk(self, req: LlmRequest, **fields: Any) -> LlmChunk:
        """A chunk of ``req``'s reply, addressed and signed by this worker."""
        return LlmChunk(
            call_id=req.call_id,
            turn_id=req.turn_id,
            trace_id=req.trace_id,
            worker=self.instance,
            attempt=req.attempt,
            **fields,
        )


class _Resume:
    """A retry of a reply that stopped mid-stream (``LlmRequest.resume``): the provider generates the reply
    again and what the gateway already has is skipped, so the caller hears the rest once. Exact where the
    reply is reproducible (the local model seeds its sampling from the request; the fixed-text provider);
    a sampling cloud model may word the rest differently, which still beats a reply cut off mid-sentence."""

    def __init__(self, prefix: str) -> None:
        self.left = len(prefix)

    def after(self, delta: Delta) -> Delta:
        if not self.left or not delta.text:
            return delta
        cut = min(self.left, len(delta.text))
        self.left -= cut
        return replace(delta, text=delta.text[cut:])


def _one_at_a_time(provider: LlmProvider) -> bool:
    """A local model that runs one generation at a time: a post-call request on it holds a live turn back."""
    return getattr(provider, "max_parallel", None) == 1


def _hold(held: list[Event]) -> Emit:
    async def emit(event: Event) -> None:
        held.append(event)

    return emit


def _language(req: LlmRequest) -> str | None:
    """The reply's language: the request's, else the language its chained TTS speaks (both set from the agent)."""
    return req.language or (req.tts.language if req.tts is not None else None)


def _count_tokens(provider: str, model: str | None, delta: Delta) -> None:
    for kind, count in (("prompt", delta.prompt_tokens), ("completion", delta.completion_tokens)):
        if count:
            PROVIDER_TOKENS.labels(provider, model or "default", kind).inc(count)


class _Chunks:
    """The reply's chunks to the gateway, each naming the segments it completes. Unchained, a chunk per
    token; chained, a chunk per cut (the gateway only needs the segments' texts, and every event is CPU on
    both ends), sent once a TTS worker has the segments: on a shared core the gateway's handling of it would
    otherwise come before the TTS worker's start on the audio."""

    def __init__(self, chunk: Callable[..., LlmChunk], emit: Emit, cuts: _ReplyCuts) -> None:
        self.chunk = chunk
        self.emit = emit
        self.cuts = cuts
        self.seq = 0
        self.pending = ""  # chained: text not yet sent (it goes with the segment it completes)

    async def send(self, text: str, *, done: bool, **fields: Any) -> None:
        cut = self.cuts.cut(text, done=done)
        if self.cuts.chained:
            self.pending += text
            if cut:
                await self.cuts.handed_on()
            elif not done:
                return
            text, self.pending = self.pending, ""
        if text or done:
            await self.emit(
                self.chunk(seq=self.seq, delta=text, done=done, tts_chained=self.cuts.chained, segments=cut, **fields)
            )
            self.seq += 1


class _ReplyCuts:
    """One reply's segments, cut as tokens arrive (the only place a reply is cut). Chained (the request
    carries a TTS continuation and this worker can chain), each segment is sent to the TTS queue group at
    once (the sends run concurrently; the gateway plays segments in order whatever order they are accepted
    in)."""

    def __init__(self, req: LlmRequest, chain: Chain | None) -> None:
        self.req = req
        self.tts = req.tts
        self.chain = chain if req.tts is not None else None
        self.chained = self.chain is not None
        self.splitter = SentenceSplitter(first_words=FIRST_WORDS)
        # a resumed reply: the splitter starts where the lost worker's stood (same text, same cuts, the same
        # unfinished sentence held), and segments are numbered after those the gateway already has
        self.splitter.feed(req.resume)
        self.count = req.resume_segments
        self.sends: set[asyncio.Task[None]] = set()
        self._unconfirmed: list[asyncio.Task[None]] = []  # sent since the last handed_on()

    def cut(self, text: str, *, done: bool) -> list[str]:
        """The segments ``text`` completes (all that is left when ``done``); chained, they are sent to TTS."""
        cut = self.splitter.feed(text) + (self.splitter.flush() if done else [])
        for segment in cut:
            index, self.count = self.count, self.count + 1
            if self.chained:
                self._send(index, segment)
        return cut

    def _send(self, index: int, text: str) -> None:
        task = asyncio.create_task(self._submit(index, text))
        self.sends.add(task)
        self._unconfirmed.append(task)
        task.add_done_callback(self.sends.discard)

    async def handed_on(self) -> None:
        """Until the segments cut since the last call are accepted by TTS workers (or reported as not)."""
        tasks, self._unconfirmed = self._unconfirmed, []
        if tasks:
            await asyncio.wait(tasks)

    async def _submit(self, index: int, text: str) -> None:
        req, tts, chain = self.req, self.tts, self.chain
        assert tts is not None and chain is not None
        error = await chain.submit(
            subjects.TTS_REQUEST, tts.request(req.call_id, req.turn_id, index, text, trace_id=req.trace_id)
        )
        if error is None:
            return
        log.warning("chain_failed", stage="tts", segment=index, code=error.code, error=error.message[:200])
        # tell the gateway nobody has this segment, on the subject it waits on: it sends the request itself
        await chain.publish(
            tts.reply_to,
            TtsChunk(
                call_id=req.call_id,
                turn_id=req.turn_id,
                trace_id=req.trace_id,
                segment=index,
                done=True,
                error=ErrorInfo(code=NOT_CHAINED, message=f"{error.code}: {error.message}", retryable=True),
            ),
        )

    async def wait(self) -> None:
        if self.sends:
            await asyncio.gather(*self.sends)

    async def cancel(self) -> None:
        for task in self.sends:
            task.cancel()
        if self.sends:
            await asyncio.gather(*self.sends, return_exceptions=True)
