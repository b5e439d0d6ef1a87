"""A whole Victoria on fixed-latency test providers, for integration tests of the gateway.

``start_stack`` starts one for a test; ``stacks`` keeps one for a module's tests (a stack takes seconds to start)
and, when a test asks for other settings, restarts only the services that read the settings that changed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
import pytest
from nats.js.errors import NotFoundError

from shared import subjects
from shared.global_stop import GlobalStopState, write_state
from tests.conftest import ServiceProcess, ServiceRunner

FAST = {
    "STT_PROVIDER": "fake",
    "LLM_PROVIDER": "fake",
    "TTS_PROVIDER": "fake",
    "FAKE_STT_LATENCY_MS": "50",
    "FAKE_LLM_FIRST_TOKEN_MS": "30",
    "FAKE_LLM_TOKENS_PER_S": "200",
    "FAKE_TTS_FIRST_BYTE_MS": "20",
    "FAKE_LLM_REPLY": "Sure. A table for two at eight.",
    # the test STT says the same words of any audio, so a pause's words cannot tell "press one," from a whole
    # turn: the end-of-turn model alone would end turns at piper's comma pauses. Calls here end turns on the
    # fixed window (replies still start at pauses); test_turn_taking.py and the offline e2e run the model.
    "END_OF_TURN_MODEL": "false",
}
WORKERS = ("stt_worker", "llm_worker", "tts_worker", "call_recorder")
# the settings only one worker reads: a change of them restarts that worker alone (any other restarts them all)
READY_LINE = {"call_recorder": "recorder_consuming"}
OWN_PREFIX = {"stt_worker": "FAKE_STT_", "llm_worker": "FAKE_LLM_", "tts_worker": "FAKE_TTS_"}


async def recorder_caught_up(bus: Any, durable: str, attempts: int = 300) -> None:
    """Wait until the recorder's durable consumer ``durable`` has applied the lifecycle stream (a new one starts
    from the stream's beginning), then lift any global stop that earlier tests' errors left behind."""
    for _ in range(attempts):
        try:
            info = await bus.js.consumer_info(subjects.LIFECYCLE_STREAM, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
        except NotFoundError:
            pass
        await asyncio.sleep(0.1)
    await write_state(bus.js, GlobalStopState())


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


class Stacks:
    """One running stack for a module: ``await stacks.get(env, services)`` returns its gateway, restarting only
    the services whose settings differ from the running ones' (a test's own STT text or LLM script restarts the
    STT or the LLM worker; the gateway, the TTS and the recorder stay). Order a module's tests so that those with
    the same settings follow each other."""

    def __init__(self, runner: ServiceRunner) -> None:
        self.runner = runner
        self.running: dict[str, tuple[ServiceProcess, dict[str, str]]] = {}
        self.durable = f"recorder-{uuid.uuid4().hex[:8]}"

    async def get(
        self, env: Mapping[str, str] | None = None, services: Sequence[str] = WORKERS, *, wait_ready: bool = True
    ) -> ServiceProcess:
        """``services`` and a gateway with ``env`` over FAST; the gateway once ready (or, without
        ``wait_ready``, once its database is connected)."""
        wanted = await self.workers(env, services)
        gateway = self.running.get("gateway", (None, {}))[0] or self._start("gateway", wanted)
        if wait_ready:
            await gateway.wait_ready(timeout=60)
        else:
            await gateway.wait_for_output("database_connected", timeout=30)
        return gateway

    async def workers(self, env: Mapping[str, str] | None = None, services: Sequence[str] = WORKERS) -> dict[str, str]:
        """``services`` (no gateway: a test may serve its own) with ``env`` over FAST, each listening; returns
        their env."""
        wanted = {**FAST, "RECORDER_DURABLE": self.durable, **(env or {})}
        self._stop([n for n, (service, _) in self.running.items() if service.returncode is not None])
        shared_now = _shared(wanted)
        if any(_shared(env_) != shared_now for _, env_ in self.running.values()):
            self._stop(list(self.running))  # a setting every service may read changed
        self._stop([n for n in self.running if n != "gateway" and n not in services])
        restarted = [n for n in services if n not in self.running or _own(n, self.running[n][1]) != _own(n, wanted)]
        self._stop(restarted)
        started = [self._start(name, wanted) for name in restarted]
        for service in started:  # a restarted worker is in the queue group before the test's first call
            await service.wait_for_output(READY_LINE.get(service.name, "worker_listening"))
        return wanted

    def _start(self, name: str, env: dict[str, str]) -> ServiceProcess:
        service = self.runner(name, env)
        self.running[name] = (service, env)
        return service

    def _stop(self, names: Sequence[str]) -> None:
        for name in names:
            if name in self.running:
                self.running.pop(name)[0].stop()


def _own(name: str, env: Mapping[str, str]) -> dict[str, str]:
    prefix = OWN_PREFIX.get(name)
    return {k: v for k, v in env.items() if prefix is not None and k.startswith(prefix)}


def _shared(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not any(k.startswith(p) for p in OWN_PREFIX.values())}


@pytest.fixture(scope="module")
def stacks(module_services: ServiceRunner) -> Stacks:
    """The module's shared stack (see ``Stacks``); stopped after the module's last test."""
    return Stacks(module_services)


async def recorded_turns(pool: asyncpg.Pool, call_id: str, rows: int, timeout: float = 15.0) -> list[asyncpg.Record]:
    """The call's transcript rows, once the recorder has written at least ``rows`` of them."""
    for _ in range(int(timeout * 10)):
        found = await pool.fetch("SELECT * FROM transcripts WHERE call_id = $1 ORDER BY seq", call_id)
        if len(found) >= rows:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id}: fewer than {rows} turns recorded")
