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
from tests.conftest import ServiceProcess, ServiceRunner, stop_services

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
READY_LINE = {"call_recorder": "recorder_consuming"}


def _settings_read() -> dict[str, frozenset[str]]:
    """The env vars each service reads: the fields of the settings class its ``main`` builds (pydantic-settings
    matches field names case-insensitively, without a prefix). The few read from os.environ directly (the
    spool's VICTORIA_RUN_DIR, the model cache's) are no class's field: a change of them restarts everything."""
    from services.llm_worker.providers import LlmWorkerSettings
    from services.stt_worker.providers import SttWorkerSettings
    from services.tts_worker.providers import TtsWorkerSettings
    from shared.settings import GatewaySettings, RecorderSettings

    classes = {
        "gateway": GatewaySettings,
        "stt_worker": SttWorkerSettings,
        "llm_worker": LlmWorkerSettings,
        "tts_worker": TtsWorkerSettings,
        "call_recorder": RecorderSettings,
    }
    return {name: frozenset(field.upper() for field in cls.model_fields) for name, cls in classes.items()}


# a change of a setting restarts only the services that read it (a test's own STT text or LLM script restarts
# that worker alone, a gateway-only setting the gateway alone); a setting no settings class knows, all of them
READS = _settings_read()
KNOWN = frozenset().union(*READS.values())


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
    the services that read a setting that differs from the running ones' (see ``READS``: a test's own STT text or
    LLM script restarts the STT or the LLM worker, a gateway-only setting such as ``API_KEYS`` or ``MAX_CALLS``
    the gateway; the others stay). Order a module's tests so that those with the same settings follow each
    other."""

    def __init__(self, runner: ServiceRunner) -> None:
        self.runner = runner
        self.running: dict[str, tuple[ServiceProcess, dict[str, str]]] = {}
        self.durable = f"recorder-{uuid.uuid4().hex[:8]}"

    async def get(
        self,
        env: Mapping[str, str] | None = None,
        services: Sequence[str] = WORKERS,
        *,
        wait_ready: bool = True,
        new_gateway: bool = False,
    ) -> ServiceProcess:
        """``services`` and a gateway with ``env`` over FAST; the gateway once ready (or, without
        ``wait_ready``, once its database is connected). ``new_gateway``: never the running one (a test that
        stops its gateway, whatever state a failed one left it in)."""
        if new_gateway:
            self._stop(["gateway"])
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
        self._stop([n for n, (_, env_) in self.running.items() if _read(n, env_) != _read(n, wanted)])
        self._stop([n for n in self.running if n != "gateway" and n not in services])
        restarted = [n for n in services if n not in self.running]
        started = [self._start(name, wanted) for name in restarted]
        for service in started:  # a restarted worker is in the queue group before the test's first call
            await service.wait_for_output(READY_LINE.get(service.name, "worker_listening"))
        return wanted

    def stop(self) -> None:
        """Stop every service of the stack (the next ``get`` starts them again)."""
        self._stop(list(self.running))

    def _start(self, name: str, env: dict[str, str]) -> ServiceProcess:
        service = self.runner(name, env)
        self.running[name] = (service, env)
        return service

    def _stop(self, names: Sequence[str]) -> None:
        stop_services([self.running.pop(name)[0] for name in names if name in self.running])


def _read(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """What of ``env`` the service ``name`` reads (every setting no settings class knows, to be safe)."""
    reads = READS[name]
    return {k: v for k, v in env.items() if k.upper() in reads or k.upper() not in KNOWN}


@pytest.fixture(scope="module")
def stacks(module_services: ServiceRunner) -> Stacks:
    """The module's shared stack (see ``Stacks``); stopped after the module's last test."""
    return Stacks(module_services)


@pytest.fixture
def no_stack(stacks: Stacks) -> None:
    """The module's shared stack stopped, for a test that starts workers or a recorder of its own and counts on
    being the only one on the bus (a draining worker's queue group, a recorder's share of the stream)."""
    stacks.stop()


async def recorded_turns(pool: asyncpg.Pool, call_id: str, rows: int, timeout: float = 15.0) -> list[asyncpg.Record]:
    """The call's transcript rows, once the recorder has written at least ``rows`` of them."""
    for _ in range(int(timeout * 10)):
        found = await pool.fetch("SELECT * FROM transcripts WHERE call_id = $1 ORDER BY seq", call_id)
        if len(found) >= rows:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id}: fewer than {rows} turns recorded")
