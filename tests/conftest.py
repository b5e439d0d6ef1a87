"""Fixtures shared by the integration and e2e tests: one embedded NATS and PostgreSQL for the whole session.

``NATS_URL`` / ``DATABASE_URL`` point the tests at existing servers instead (e.g. CI service containers); the
tests then get a fresh, uniquely named database that is dropped at the end, so runs never see each other's rows.
``VICTORIA_TEST_CONTAINERS=1`` starts both in Docker through ``testcontainers`` instead (``nats:2.10-alpine``,
``postgres:16-alpine``, the images compose runs; ``VICTORIA_TEST_NATS_IMAGE`` / ``VICTORIA_TEST_POSTGRES_IMAGE``
to change them); without a reachable Docker engine the tests that need a server are skipped, saying so.

Fixtures: ``nats_url`` and ``database_url`` (session, migrated), ``bus`` (a connected ``shared.bus.Bus``),
``db_pool`` (asyncpg pool), ``run_service`` (start ``python -m services.<name>`` as a subprocess; stopped after the
test), ``module_services`` (the same, stopped after the module) and ``free_port``.
Markers: ``slow`` runs only with ``RUN_SLOW=1``; ``live(env="KEY")`` runs only when ``KEY`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` without an installed project
    sys.path.insert(0, str(REPO))

from tools.embedded import (  # noqa: E402
    free_port,
    migrate,
    signal_group,
    spawn_tied,
    start_nats,
    start_postgres,
    tail,
    terminate_process,
    with_database,
)

if TYPE_CHECKING:
    import asyncpg

    from shared.bus import Bus

_TRUE = {"1", "true", "yes", "on"}


# --- markers -----------------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = os.environ.get("RUN_SLOW", "").lower() in _TRUE
    for item in items:
        if item.get_closest_marker("slow") and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: set RUN_SLOW=1 to run"))
        live = item.get_closest_marker("live")
        if live is not None:
            wanted = live.kwargs.get("env", live.args)
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            missing = [name for name in names if not os.environ.get(name)]
            if not names:
                item.add_marker(pytest.mark.skip(reason='live: the marker needs env="SOME_API_KEY"'))
            elif missing:
                item.add_marker(pytest.mark.skip(reason=f"live: set {', '.join(missing)} to run"))


# --- containers (VICTORIA_TEST_CONTAINERS=1) ------------------------------------------------------------------


def use_containers() -> bool:
    return os.environ.get("VICTORIA_TEST_CONTAINERS", "").lower() in _TRUE


def container_engine_or_skip() -> None:
    """testcontainers is imported only here, so the default run needs neither it nor Docker."""
    try:
        import docker
    except ImportError as exc:
        pytest.skip(f"VICTORIA_TEST_CONTAINERS=1 needs testcontainers (pip install testcontainers): {exc}")
    try:
        importlib.import_module("testcontainers.core.container")
        client = docker.from_env()
        try:
            client.ping()
        finally:
            client.close()
    except ImportError as exc:
        pytest.skip(f"VICTORIA_TEST_CONTAINERS=1 needs testcontainers (pip install testcontainers): {exc}")
    except Exception as exc:  # docker raises its own DockerException, or an OSError underneath
        pytest.skip(
            f"VICTORIA_TEST_CONTAINERS=1 but no Docker engine is reachable ({type(exc).__name__}: {exc}); "
            "start one (or set DOCKER_HOST), or unset VICTORIA_TEST_CONTAINERS to use the embedded servers"
        )


def container_class(module: str, name: str) -> Any:
    """``testcontainers.community.<module>`` (testcontainers >= 4.9), else the older top-level module."""
    try:
        return getattr(importlib.import_module(f"testcontainers.community.{module}"), name)
    except ImportError:
        return getattr(importlib.import_module(f"testcontainers.{module}"), name)


# --- servers -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """NATS with JetStream: ``NATS_URL`` if set, a container with VICTORIA_TEST_CONTAINERS=1, else an embedded
    nats-server on a free loopback port."""
    url = os.environ.get("NATS_URL", "").strip()
    if url:
        yield url
        return
    if use_containers():
        container_engine_or_skip()
        image = os.environ.get("VICTORIA_TEST_NATS_IMAGE", "nats:2.10-alpine")
        container = container_class("nats", "NatsContainer")(image, jetstream=True)
        container.start()
        try:
            yield container.nats_uri()
        finally:
            container.stop()
        return
    store = Path(tempfile.mkdtemp(prefix="victoria-nats-"))
    server = start_nats(store / "jetstream", log_path=store / "nats-server.log")
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A migrated database: a fresh one on ``DATABASE_URL``'s server if set (or a container's with
    VICTORIA_TEST_CONTAINERS=1), else on an embedded PostgreSQL."""
    given = os.environ.get("DATABASE_URL", "").strip()
    container = None
    if not given and use_containers():
        container_engine_or_skip()
        image = os.environ.get("VICTORIA_TEST_POSTGRES_IMAGE", "postgres:16-alpine")
        container = container_class("postgres", "PostgresContainer")(
            image, username="postgres", password="postgres", dbname="postgres", driver=None
        )
        await asyncio.to_thread(container.start)
        given = container.get_connection_url()
    if given:
        name = f"victoria_test_{uuid.uuid4().hex[:12]}"
        dsn = with_database(given, name)
        try:
            await migrate(dsn)  # creates the database
            yield dsn
        finally:
            await _drop_database(given, name)
            if container is not None:
                await asyncio.to_thread(container.stop)
        return
    root = Path(tempfile.mkdtemp(prefix="victoria-pg-"))
    server = start_postgres(root / "pgdata", cleanup_mode="delete")
    try:
        dsn = server.dsn("victoria_test")
        await migrate(dsn)
        yield dsn
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _drop_database(server_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_dsn, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    from shared.bus import Bus

    connected = await Bus.connect(nats_url, "pytest")
    try:
        yield connected
    finally:
        await connected.close()


@pytest_asyncio.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except TimeoutError:  # a test kept a connection: do not hang the session on it
            pool.terminate()


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    """``free_port()`` as a fixture; modules can also ``from tools.embedded import free_port``."""
    return free_port


# --- service processes -------------------------------------------------------------------------------------


class ServiceProcess:
    """One ``python -m services.<name>`` child; its output goes to ``log_path`` (shown when the test fails)."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.env = env
        self.log_path = log_path

    @property
    def port(self) -> int:
        """The gateway's HTTP port (assigned a free one unless the env overlay set GATEWAY_PORT)."""
        return int(self.env["GATEWAY_PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def assert_running(self) -> None:
        code = self.proc.poll()
        assert code is None, f"{self.name} exited with code {code}:\n{self.tail()}"

    async def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Wait until ``text`` appears in the output (e.g. a log event name); fails early if the process exits."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            self.assert_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {text!r} not in output after {timeout:.0f}s:\n{self.tail()}")
            await asyncio.sleep(0.1)

    async def wait_ready(self, path: str = "/api/system/health", timeout: float = 60.0) -> dict[str, Any]:
        """Gateway: wait for ``path`` to answer 200 with ``"ready": true``; returns that body."""
        import httpx

        deadline = time.monotonic() + timeout
        last = "no answer"
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0, trust_env=False) as client:
            while True:
                self.assert_running()
                try:
                    resp = await client.get(path)
                    body = _json_object(resp)
                    if resp.status_code == 200 and body.get("ready") is True:
                        return body
                    last = f"HTTP {resp.status_code} {resp.text[:500]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__} {exc}"
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.tail()}")
                await asyncio.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        return terminate_process(self.proc, timeout)


def _json_object(resp: Any) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class ServiceRunner:
    """Starts ``python -m services.<name>`` children against the session's servers; ``stop_all`` ends them.

    One per test (``run_service``) or one per module (``module_services``, for a stack the module's tests share).
    """

    def __init__(self, nats_url: str, database_url: str, log_dir: Path) -> None:
        self.nats_url = nats_url
        self.database_url = database_url
        self.log_dir = log_dir
        self.started: list[ServiceProcess] = []

    def __call__(self, name: str, env: Mapping[str, str] | None = None, *, args: Sequence[str] = ()) -> ServiceProcess:
        full_env = {
            **os.environ,
            "NATS_URL": self.nats_url,
            "DATABASE_URL": self.database_url,
            "METRICS_PORT": "0",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            # SIGTERM drains (no new calls or requests, the live ones finish): briefly in tests, so that a
            # teardown with a call still open stays fast; test_drain.py sets its own
            "DRAIN_TIMEOUT_S": "1",
            "WORKER_DRAIN_TIMEOUT_S": "2",
        }
        if name == "gateway":
            full_env["GATEWAY_PORT"] = str(free_port())
            # a spool of its own, under the test's tmp dir (a test that restarts a gateway passes its own)
            full_env["LIFECYCLE_SPOOL_DIR"] = str(self.log_dir / f"spool-{full_env['GATEWAY_PORT']}")
        full_env.update(env or {})
        module = name if "." in name else f"services.{name}"
        log_path = self.log_dir / f"{name}-{sum(s.name == name for s in self.started)}.log"
        with open(log_path, "wb") as log:
            proc = spawn_tied([sys.executable, "-m", module, *args], log, cwd=REPO, env=full_env)
        service = ServiceProcess(name, proc, full_env, log_path)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        stop_services(list(reversed(self.started)))


def stop_services(services: Sequence[ServiceProcess], timeout: float = 10.0) -> None:
    """Stop ``services`` as ``ServiceProcess.stop`` does (SIGTERM, SIGKILL after ``timeout``), the gateways first
    (a draining gateway may still need the workers for its calls' goodbyes), then all the others at once rather
    than one after the other: each takes its drain's worth of a second or two to go."""
    gateways = [s for s in services if s.name == "gateway"]
    for group in (gateways, [s for s in services if s.name != "gateway"]):
        live = [s for s in group if s.proc.poll() is None]
        for service in live:
            with contextlib.suppress(OSError):
                signal_group(service.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.proc.wait(max(0.0, deadline - time.monotonic()))
        for service in group:  # SIGKILL what is left, and any straggler of an exited process group
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                terminate_process(service.proc, 0.0)


@pytest.fixture
def run_service(nats_url: str, database_url: str, tmp_path: Path) -> Iterator[ServiceRunner]:
    """Factory: ``run_service("stt_worker", {"STT_PROVIDER": "fake"})`` starts ``python -m services.stt_worker``.

    The env gets NATS_URL/DATABASE_URL of the session servers, METRICS_PORT=0, LOG_FORMAT=json, short drains
    (DRAIN_TIMEOUT_S=1, WORKER_DRAIN_TIMEOUT_S=2) and, for the gateway, a free GATEWAY_PORT; the overlay wins.
    Everything started is stopped at teardown.
    """
    runner = ServiceRunner(nats_url, database_url, tmp_path)
    yield runner
    runner.stop_all()


@pytest.fixture(scope="module")
def module_services(
    request: pytest.FixtureRequest, nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceRunner]:
    """``run_service`` for services that a module's tests share (started once: a stack takes seconds to start);
    stopped when the module's last test is done."""
    runner = ServiceRunner(nats_url, database_url, tmp_path_factory.mktemp(request.module.__name__.split(".")[-1]))
    yield runner
    runner.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Append each started service's output tail to a failing test's report."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        runners = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, ServiceRunner)]
        for service in [s for runner in runners for s in runner.started]:
            state = "running" if service.returncode is None else f"exit code {service.returncode}"
            title = f"service {service.name} ({state}; full log {service.log_path})"
            report.sections.append((title, service.tail() or "(no output)"))
    return report
