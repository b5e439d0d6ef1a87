"""The whole system in one terminal, like ``docker compose up`` but without Docker: ``python -m tools.devstack``.

Starts an embedded NATS (JetStream) and PostgreSQL unless ``NATS_URL`` / ``DATABASE_URL`` point elsewhere,
applies migrations, runs the five services with prefixed output, waits for the gateway's readiness and prints
where to go. Ctrl-C (or SIGTERM) stops everything: the gateway first, which drains (live calls finish for up to
``DRAIN_TIMEOUT_S`` while the workers still serve them; Ctrl-C again ends them at once, a third time kills), then
the workers and the recorder; a service that dies takes the stack down with a non-zero exit,
so a broken service is noticed instead of silently missing. State lives in ``.run/`` (``VICTORIA_RUN_DIR``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from tools.console import Console
from tools.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    ProcessExitedError,
    mask_dsn,
    migrate,
    pick_port,
    port_is_free,
    signal_group,
    start_nats,
    start_postgres,
    tail,
    tcp_accepts,
)
from tools.readiness import wait_ready
from tools.service_group import SERVICES, ServiceGroup, ServiceSpec

REPO = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 10.0
DRAIN_MARGIN_S = 20.0  # a draining gateway's goodbyes and shutdown after DRAIN_TIMEOUT_S (as compose's grace)
ANY_HOST = "0.0.0.0"


DEFAULT_GATEWAY_NICE = -10  # as root: phone audio leaves within 5 ms of its slot at 50 calls on one shared core
# batch and long-running work below the services on a reply's critical path: the recorder's history, and the
# LLM, whose reply goes on being written while TTS reads its first words (on two shared cores piper took
# 110 ms for five words beside a generating SmolLM2 at the same priority, 38 ms with the LLM at nice 10)
DEFAULT_NICE = {"call_recorder": 10, "llm_worker": 10}


def run_dir() -> Path:
    return Path(os.environ.get("VICTORIA_RUN_DIR") or REPO / ".run").resolve()


class StartupError(RuntimeError):
    """Something the developer can fix (port taken, server unreachable): printed without a traceback."""


class Interrupted(Exception):
    """Ctrl-C arrived while starting up."""


class DevStack:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.run_dir = run_dir()
        self.nats: EmbeddedNats | None = None
        self.pg: EmbeddedPostgres | None = None
        self.services = ServiceGroup(console, self._on_exit)
        self.stop_event = asyncio.Event()
        self.signals = 0
        self.shutting_down = False
        self.draining = False  # the gateway is draining (stopped first, alone)
        self.failure: str | None = None
        self.metrics: dict[str, int] = {}
        self._lock: IO[str] | None = None

    # --- signals ---------------------------------------------------------------------------------------------

    def on_signal(self, sig: signal.Signals) -> None:
        self.signals += 1
        if self.signals == 1:
            self.console.say(f"{sig.name}: shutting down (again to force)")
            self.stop_event.set()
            return
        gateway = self.services.children.get("gateway")
        if self.signals == 2 and self.draining and gateway is not None and gateway.returncode is None:
            self.console.say(f"{sig.name} again: the gateway ends its calls now (again to kill everything)")
            signal_group(gateway.pid, signal.SIGTERM)  # a second SIGTERM: uvicorn stops without waiting
            return
        self.console.say(f"{sig.name} again: killing services")
        self.services.kill_all()

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Interrupted

    # --- start -----------------------------------------------------------------------------------------------

    async def run(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock_run_dir()
        port = self.args.port or int(os.environ.get("GATEWAY_PORT") or 8000)
        if not self.args.no_services and not port_is_free(port, self._host()):
            raise StartupError(f"port {port} is already in use: pick another with --port")
        nats_url = await self._nats()
        self._check_stop()
        dsn = await self._postgres()
        self._check_stop()
        await self._migrate(dsn)
        self._check_stop()
        if self.args.no_services:
            self._print_env(nats_url, dsn)
            await self.stop_event.wait()
            return 0
        await self._start_services(nats_url, dsn, port)
        readiness = await wait_ready(port, self.args.ready_timeout, self.stop_event, self.console)
        if readiness == "timeout":
            self.failure = "gateway not ready"
        if readiness != "ready":
            return 1 if self.failure else 0
        self._print_banner(port, nats_url, dsn)
        await self.stop_event.wait()
        return 1 if self.failure else 0

    def _lock_run_dir(self) -> None:
        """Two stacks on one run dir would share a JetStream store and pgdata: refuse the second one."""
        lock = open(self.run_dir / "devstack.lock", "a+")  # held (and locked) for the whole run
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "?"
            lock.close()
            raise StartupError(f"another devstack (pid {owner}) is using {self.run_dir}; stop it first") from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    async def _nats(self) -> str:
        url = os.environ.get("NATS_URL", "").strip()
        if url:
            first = url.split(",")[0].strip()
            parts = urlsplit(first if "://" in first else f"nats://{first}")
            host, port = parts.hostname or "127.0.0.1", parts.port or 4222
            if not await asyncio.to_thread(tcp_accepts, host, port, 3.0):
                raise StartupError(
                    f"NATS_URL={mask_dsn(url)} is not reachable (unset it to use an embedded nats-server)"
                )
            self.console.say(f"using NATS from NATS_URL: {mask_dsn(url)}")
            return url
        started = time.monotonic()
        store = self.run_dir / "nats"
        log_path = self.run_dir / "nats-server.log"
        try:
            self.nats = start_nats(
                store, preferred_port=4222, monitor_port=pick_port(8222), log_path=log_path, timeout=15
            )
        except (ProcessExitedError, TimeoutError) as exc:
            raise StartupError(f"{exc}\n(log: {log_path})") from None
        monitor = f", monitor http://127.0.0.1:{self.nats.monitor_port}" if self.nats.monitor_port else ""
        self.console.say(
            f"nats-server (JetStream) on {self.nats.url}{monitor} in {time.monotonic() - started:.2f}s "
            f"(store {_rel(store)}, log {_rel(log_path)})"
        )
        return self.nats.url

    async def _postgres(self) -> str:
        dsn = os.environ.get("DATABASE_URL", "").strip()
        if dsn:
            self.console.say(f"using PostgreSQL from DATABASE_URL: {mask_dsn(dsn)}")
            return dsn
        started = time.monotonic()
        pgdata = self.run_dir / "pgdata"
        self.console.say(f"starting embedded PostgreSQL (pgdata {_rel(pgdata)}) ...")
        try:
            self.pg = start_postgres(pgdata, cleanup_mode="stop")  # main thread: its kill -9 guard is tied to it
        except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
            raise StartupError(f"embedded PostgreSQL failed: {exc}\n{tail(pgdata / 'log', 30)}") from None
        self.console.say(f"PostgreSQL ready in {time.monotonic() - started:.2f}s (socket {self.pg.socket_dir})")
        return self.pg.dsn("victoria")

    async def _migrate(self, dsn: str) -> None:
        started = time.monotonic()
        try:
            applied = await asyncio.wait_for(migrate(dsn), timeout=60)
        except Exception as exc:
            raise StartupError(f"migrations failed on {mask_dsn(dsn)}: {type(exc).__name__}: {exc}") from None
        what = f"applied {', '.join(applied)}" if applied else "up to date"
        self.console.say(f"migrations {what} ({time.monotonic() - started:.2f}s)")

    def _print_env(self, nats_url: str, dsn: str) -> None:
        self.console.say("NATS and PostgreSQL are up; services not started (--no-services). In another shell:")
        for name, value in (("NATS_URL", nats_url), ("DATABASE_URL", dsn)):
            if mask_dsn(value) != value:  # came from the environment with a secret in it: do not echo it
                self.console.write(f"# {name} is already set in your environment ({mask_dsn(value)})")
            else:
                self.console.write(f"export {name}={shlex.quote(value)}")
        self.console.say("Ctrl-C stops them.")

    def _host(self) -> str:
        """Loopback unless --listen-all: the dev stack's API is open (no keys), so the network can't reach it."""
        return ANY_HOST if self.args.listen_all else "127.0.0.1"

    async def _start_services(self, nats_url: str, dsn: str, port: int) -> None:
        base = dict(os.environ)
        base.update(NATS_URL=nats_url, DATABASE_URL=dsn, GATEWAY_PORT=str(port), PYTHONUNBUFFERED="1")
        base.setdefault("GATEWAY_HOST", self._host())
        base.setdefault("METRICS_HOST", self._host())
        base.setdefault("STREAM_TOKEN_SECRET", secrets.token_hex(32))  # one per run, shared by its gateways
        base.setdefault("WEBHOOK_SIGNING_SECRET", secrets.token_hex(32))  # tools and post-call webhooks sign with it
        base.setdefault("LOG_FORMAT", "console")
        if self.args.fake_providers:
            base.update(STT_PROVIDER="fake", LLM_PROVIDER="fake", TTS_PROVIDER="fake")
        for spec in SERVICES:
            metrics_port = pick_port(spec.metrics_port, self._host()) if spec.metrics_port else 0
            self.metrics[spec.name] = metrics_port
            await self.services.start(spec, self._service_env(spec, base, metrics_port))
        providers = "fake" if self.args.fake_providers else "default"
        self.console.say(f"started {', '.join(self.services.children)} ({providers} providers)")

    def _service_env(self, spec: ServiceSpec, base: dict[str, str], metrics_port: int) -> dict[str, str]:
        env = {**base, "METRICS_PORT": str(metrics_port)}
        if spec.name in DEFAULT_NICE:
            env.setdefault("PROCESS_NICE", str(DEFAULT_NICE[spec.name]))
        if spec.name == "gateway":
            nice = self.args.gateway_nice
            if nice is None and os.geteuid() == 0:  # allowed to: the real-time audio pacer comes first
                nice = DEFAULT_GATEWAY_NICE
            if nice is not None:
                env.setdefault("PROCESS_NICE", str(nice))
        return env

    def _on_exit(self, name: str, code: int) -> None:
        """A service exited: unless we are stopping, that is a failure that takes the whole stack down."""
        if self.shutting_down or self.stop_event.is_set():
            return
        self.failure = f"{name} exited with code {code}"
        self.console.error(f"{name} exited unexpectedly with code {code}: stopping everything")
        self.stop_event.set()

    def _print_banner(self, port: int, nats_url: str, dsn: str) -> None:
        workers = ", ".join(f"{name} :{p}" for name, p in self.metrics.items() if p)
        lines = [
            "Victoria is ready",
            f"  Dashboard:   http://127.0.0.1:{port}/  (simulator, agents, history, status)",
            f"  NATS:        {mask_dsn(nats_url)}",
            f"  PostgreSQL:  {mask_dsn(dsn)}",
            f"  Metrics:     http://127.0.0.1:{port}/metrics",
            *([f"               {workers}"] if workers else []),
            "  Ctrl-C stops everything.",
        ]
        self.console.banner(lines)

    # --- stop ------------------------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        self.shutting_down = True
        gateway = self.services.children.get("gateway")
        if gateway is not None and gateway.returncode is None:
            drain_s = _env_seconds("DRAIN_TIMEOUT_S", 30.0)
            self.console.say(f"the gateway drains first: live calls may go on for {drain_s:.0f}s, Ctrl-C ends them")
            self.draining = True
            await self.services.stop({"gateway": gateway}, drain_s + DRAIN_MARGIN_S)
            self.draining = False
        # then the rest: the workers finish what they hold (WORKER_DRAIN_TIMEOUT_S), the recorder its message
        await self.services.stop(
            self.services.running(), max(STOP_TIMEOUT_S, _env_seconds("WORKER_DRAIN_TIMEOUT_S", 20.0) + 5)
        )
        await self.services.close()  # anything a service left behind in its group, and the output's tasks
        if self.nats is not None:
            self.nats.stop(STOP_TIMEOUT_S)
            self.console.say("nats-server stopped")
        if self.pg is not None:
            try:
                await asyncio.to_thread(self.pg.stop)
                self.console.say("PostgreSQL stopped")
            except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
                self.console.error(f"stopping PostgreSQL failed: {exc}")
        if self._lock is not None:
            self._lock.close()


def _env_seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name) or default))
    except ValueError:
        return default


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


async def _main(args: argparse.Namespace, console: Console) -> int:
    from shared.logging import configure_logging

    configure_logging("devstack", "WARNING", "console")  # our own lines say what migrations did
    stack = DevStack(args, console)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stack.on_signal, sig)
    try:
        return await stack.run()
    except Interrupted:
        return 0
    except StartupError as exc:
        console.error(f"error: {exc}")
        return 1
    finally:
        await stack.shutdown()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-services", action="store_true", help="only NATS and PostgreSQL; print the env to export")
    parser.add_argument("--fake-providers", action="store_true", help="STT/LLM/TTS_PROVIDER=fake (no models)")
    parser.add_argument("--port", type=int, default=0, help="gateway port (default: GATEWAY_PORT or 8000)")
    parser.add_argument(
        "--listen-all",
        action="store_true",
        help="listen on every interface (0.0.0.0), not only 127.0.0.1: set API_KEYS first, the API is open without",
    )
    parser.add_argument(
        "--gateway-nice",
        type=int,
        default=None,
        help="PROCESS_NICE for the gateway only (default: -10 when run as root, else unchanged): its real-time "
        "audio pacing wins a shared core (negative values need root or CAP_SYS_NICE)",
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=180.0, help="seconds to wait for readiness (default: 180)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    console = Console([s.name for s in SERVICES], color)
    return asyncio.run(_main(args, console))


if __name__ == "__main__":
    sys.exit(main())
