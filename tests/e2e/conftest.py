"""The end-to-end tests' stack: every service as its own process with its default (offline) providers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ServiceProcess, ServiceRunner

SERVICES = ("stt_worker", "llm_worker", "tts_worker", "call_recorder", "gateway")
_RUNNERS: list[ServiceRunner] = []


@pytest.fixture(scope="session")
def offline_services(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceRunner]:
    """Where ``system`` runs its services: stopped as soon as the next test does not ask for ``system``."""
    runner = ServiceRunner(nats_url, database_url, tmp_path_factory.mktemp("e2e-system"))
    _RUNNERS.append(runner)
    yield runner
    runner.stop_all()


@pytest.fixture
async def system(offline_services: ServiceRunner) -> ServiceProcess:
    """The four workers and the gateway, started and ready (the models loaded); the gateway's process.

    Loading the models takes tens of seconds: the same system serves the tests that ask for it one after the
    other, across modules (their calls are their own: each asserts on its own call's history). It is stopped
    as soon as the next test does not ask for it (see ``pytest_runtest_teardown``), so no test ever finds the
    offline workers in its queue groups unasked, and restarted if any of its services has exited."""
    running = offline_services.started[-len(SERVICES) :]
    if not running or any(service.returncode is not None for service in running):
        offline_services.stop_all()
        running = [offline_services(name) for name in SERVICES]
    gateway = running[-1]
    await gateway.wait_ready(timeout=180)
    return gateway


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or "system" not in getattr(nextitem, "fixturenames", ()):
        for runner in _RUNNERS:
            runner.stop_all()
