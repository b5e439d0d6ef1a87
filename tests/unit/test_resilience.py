"""Circuit breakers and the provider fallback chain of the workers."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.events import Event, LlmChunk
from shared.resilience import CircuitBreaker
from shared.worker import ProviderCache, ProviderError


def test_breaker_opens_after_consecutive_failures_and_half_opens_once() -> None:
    b = CircuitBreaker("llm", "groq", failure_threshold=3, reset_after_s=0.05)
    for _ in range(2):
        b.record_failure()
        assert b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    time.sleep(0.06)
    assert b.state == "half_open"
    assert b.allow() and not b.allow()  # exactly one trial request
    b.record_failure()  # the trial failed: open again for another period
    assert b.state == "open"
    time.sleep(0.06)
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow() and b.failures == 0


class Flaky:
    def __init__(self, name: str, error: ProviderError | None = None, emit_first: bool = False) -> None:
        self.name = name
        self.error = error
        self.emit_first = emit_first
        self.calls = 0


async def attempt(provider: Flaky, emit) -> None:  # type: ignore[no-untyped-def]
    provider.calls += 1
    if provider.emit_first:
        await emit(LlmChunk(call_id="c", delta=provider.name))
    if provider.error:
        raise provider.error
    await emit(LlmChunk(call_id="c", delta=f"from {provider.name}", done=True))


def chain(providers: dict[str, Flaky], fallbacks: str, threshold: int = 5) -> ProviderCache[Flaky]:
    return ProviderCache(
        lambda n: providers[n],
        "groq",
        service="llm",
        fallbacks=fallbacks,
        failure_threshold=threshold,
        reset_after_s=60,
    )


async def test_a_failing_provider_hands_the_request_to_the_fallback() -> None:
    providers = {"groq": Flaky("groq", ProviderError("auth", "check GROQ_API_KEY")), "local": Flaky("local")}
    out: list[Event] = []

    async def emit(e: Event) -> None:
        out.append(e)

    await chain(providers, "local").run(None, emit, attempt)
    assert [e.delta for e in out] == ["from local"]  # type: ignore[attr-defined]


async def test_no_fallback_once_output_has_left_or_for_bad_requests() -> None:
    providers = {
        "groq": Flaky("groq", ProviderError("unavailable", "503", retryable=True), emit_first=True),
        "local": Flaky("local"),
    }
    out: list[Event] = []

    async def emit(e: Event) -> None:
        out.append(e)

    with pytest.raises(ProviderError, match="503"):
        await chain(providers, "local").run(None, emit, attempt)
    assert providers["local"].calls == 0 and len(out) == 1
    providers = {"groq": Flaky("groq", ProviderError("bad_request", "prompt too long")), "local": Flaky("local")}
    with pytest.raises(ProviderError, match="too long"):
        await chain(providers, "local").run(None, emit, attempt)
    assert providers["local"].calls == 0


async def test_open_circuit_skips_the_provider_without_calling_it() -> None:
    providers = {"groq": Flaky("groq", ProviderError("timeout", "slow", retryable=True)), "local": Flaky("local")}
    cache = chain(providers, "local", threshold=2)

    async def emit(e: Event) -> None:
        return None

    for _ in range(4):
        await cache.run(None, emit, attempt)
    assert providers["groq"].calls == 2  # opened after two failures, then skipped
    assert providers["local"].calls == 4
    assert cache.breaker("groq").state == "open"


async def test_all_failing_raises_the_last_error_and_unknown_names_are_bad_requests() -> None:
    providers = {
        "groq": Flaky("groq", ProviderError("quota", "429", retryable=True)),
        "local": Flaky("local", ProviderError("internal", "crashed", retryable=True)),
    }

    async def emit(e: Event) -> None:
        return None

    with pytest.raises(ProviderError, match="crashed"):
        await chain(providers, "local").run(None, emit, attempt)
    with pytest.raises(ProviderError) as info:
        await ProviderCache(lambda n: (_ for _ in ()).throw(ValueError(f"unknown {n}")), "x").run("nope", emit, attempt)
    assert info.value.code == "bad_request"


class Model:
    """A provider that records how many of its calls overlap."""

    def __init__(self, name: str, max_parallel: int | None) -> None:
        self.name = name
        if max_parallel is not None:
            self.max_parallel = max_parallel
        self.running = 0
        self.peak = 0

    async def work(self, _provider: object, _emit: object) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1


@pytest.mark.parametrize(("max_parallel", "peak"), [(1, 1), (2, 2), (None, 6)])
async def test_a_cpu_bound_provider_runs_its_max_parallel_and_queues_the_rest(max_parallel, peak) -> None:
    model = Model("local", max_parallel)
    cache = ProviderCache(lambda _name: model, "local")

    async def emit(_event: object) -> None:
        pass

    await asyncio.gather(*(cache.run(None, emit, model.work) for _ in range(6)))  # all six served, none refused
    assert model.peak == peak
