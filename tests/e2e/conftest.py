"""The end-to-end tests' stack: every service as its own process with its default (offline) providers."""

from __future__ import annotations

import pytest


@pytest.fixture
async def system(run_service):
    """The four workers and the gateway, started and ready (the models loaded); the gateway's process."""
    for name in ("stt_worker", "llm_worker", "tts_worker", "call_recorder"):
        run_service(name)
    gateway = run_service("gateway")
    await gateway.wait_ready(timeout=180)
    return gateway
