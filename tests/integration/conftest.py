"""A whole Victoria on fixed-latency test providers, for integration tests of the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest

FAST = {
    "STT_PROVIDER": "fake",
    "LLM_PROVIDER": "fake",
    "TTS_PROVIDER": "fake",
    "FAKE_STT_LATENCY_MS": "50",
    "FAKE_LLM_FIRST_TOKEN_MS": "30",
    "FAKE_LLM_TOKENS_PER_S": "200",
    "FAKE_TTS_FIRST_BYTE_MS": "20",
    "FAKE_LLM_REPLY": "Sure. A table for two at eight.",
}
WORKERS = ("stt_worker", "llm_worker", "tts_worker", "call_recorder")


@pytest.fixture
def start_stack(run_service) -> Callable[..., Awaitable[object]]:
    """``await start_stack(env, services=...)``: workers + recorder + gateway; returns the gateway process."""

    async def start(
        env: dict[str, str] | None = None, services: Sequence[str] = WORKERS, *, wait_ready: bool = True
    ) -> object:
        # a durable consumer of its own: a recorder stopped by the previous test may still hold messages it
        # fetched (JetStream redelivers them only after ack_wait), which would delay this test's history
        merged = {**FAST, "RECORDER_DURABLE": f"recorder-{uuid.uuid4().hex[:8]}", **(env or {})}
        for name in services:
            run_service(name, merged)
        gateway = run_service("gateway", merged)
        if wait_ready:
            await gateway.wait_ready(timeout=60)
        else:
            await gateway.wait_for_output("database_connected", timeout=30)
        return gateway

    return start
