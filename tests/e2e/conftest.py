"""The end-to-end tests' stack: every service as its own process with its default (offline) providers."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
async def system(module_services):
    """The four workers and the gateway, started and ready (the models loaded), for a module's tests (loading
    the models takes tens of seconds); the gateway's process."""
    for name in ("stt_worker", "llm_worker", "tts_worker", "call_recorder"):
        module_services(name)
    gateway = module_services("gateway")
    await gateway.wait_ready(timeout=180)
    return gateway
