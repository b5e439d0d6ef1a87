"""A worker's providers: the error they raise, and the cache that builds them on first use and tries them
in order behind circuit breakers (the requested one, then the fallbacks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from shared.events import ErrorInfo, Event
from shared.logging import get_logger
from shared.resilience import CircuitBreaker

log = get_logger(__name__)

Emit = Callable[[Event], Awaitable[None]]
# failures that say nothing about the provider's health, so its circuit breaker does not count them: a malformed
# request, or one in a language none of its voices speaks (the next provider in the chain may speak it)
NOT_THE_PROVIDERS_FAULT = frozenset({"bad_request", "unsupported_language"})


class ProviderError(Exception):
    """A provider failed; ``code`` classifies it (auth, quota, timeout, bad_request, unavailable, internal)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable

    def info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=str(self), retryable=self.retryable)


P = TypeVar("P")


class ProviderCache(Generic[P]):
    """A worker's providers by name, built on first use (the default one at start-up, by ``warmup``), each
    behind a circuit breaker, tried in order: the requested (or default) provider, then the fallbacks.

    An unknown name in a request is the request's fault: ``bad_request``, never a crash. A provider that
    fails before producing anything hands the request to the next one (a bad key on a cloud provider must
    not take calls down when a local model can answer); once output has left, a failure is final.
    """

    def __init__(
        self,
        build: Callable[[str], P],
        default: str,
        *,
        service: str = "",
        fallbacks: str = "",
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
    ) -> None:
        self._build = build
        self.default = default
        self.service = service
        self.fallbacks = [f.strip() for f in fallbacks.split(",") if f.strip()]
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._providers: dict[str, P] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self._gates: dict[str, asyncio.Semaphore] = {}

    def get(self, name: str | None) -> P:
        key = name or self.default
        if key not in self._providers:
            try:
                self._providers[key] = self._build(key)
            except ValueError as exc:
                raise ProviderError("bad_request", str(exc)) from exc
        return self._providers[key]

    def candidates(self, name: str | None) -> list[str]:
        first = name or self.default
        return [first, *(f for f in self.fallbacks if f != first)]

    def gate(self, name: str, provider: P) -> asyncio.Semaphore | contextlib.nullcontext[None]:
        """How many requests may run on ``provider`` at once: a CPU-bound local model says so in its
        ``max_parallel`` (the rest wait their turn here, queued in arrival order, instead of being refused or
        oversubscribing the cores); a network-bound provider has no gate (the worker's slots bound it)."""
        limit = getattr(provider, "max_parallel", None)
        if not limit:
            return contextlib.nullcontext()
        if name not in self._gates:
            self._gates[name] = asyncio.Semaphore(limit)
        return self._gates[name]

    def breaker(self, name: str) -> CircuitBreaker:
        if name not in self.breakers:
            self.breakers[name] = CircuitBreaker(
                self.service, name, failure_threshold=self.failure_threshold, reset_after_s=self.reset_after_s
            )
        return self.breakers[name]

    async def run(self, name: str | None, emit: Emit, attempt: Callable[[P, Emit], Awaitable[None]]) -> None:
        """Run ``attempt(provider, emit)`` on the first provider that works."""
        last: ProviderError | None = None
        skipped: list[str] = []
        for candidate in self.candidates(name):
            breaker = self.breaker(candidate)
            if not breaker.allow():
                skipped.append(candidate)
                continue
            provider = self.get(candidate)  # an unknown name raises bad_request: no fallback for that
            emitted = False

            async def tracked(event: Event) -> None:
                nonlocal emitted
                emitted = True
                await emit(event)

            try:
                async with self.gate(candidate, provider):
                    await attempt(provider, tracked)
            except ProviderError as exc:
                if exc.code not in NOT_THE_PROVIDERS_FAULT:
                    breaker.record_failure()
                if emitted or exc.code == "bad_request":
                    raise
                if last is None or exc.code != "unsupported_language":  # report why a provider that could speak failed
                    last = exc
                log.warning("provider_fallback", provider=candidate, code=exc.code, error=str(exc)[:200])
                continue
            breaker.record_success()
            return
        if last is not None:
            raise last
        raise ProviderError("unavailable", f"every provider's circuit is open ({', '.join(skipped)})", retryable=True)
