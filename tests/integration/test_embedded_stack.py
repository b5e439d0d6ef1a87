"""The servers every other integration test stands on: JetStream works, the schema is migrated (idempotently),
and the dev stack starts and stops without leaving servers behind."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from nats.js.api import StorageType, StreamConfig

from shared.bus import Bus
from shared.db.migrate import apply_migrations, migration_files

REPO = Path(__file__).resolve().parents[2]


async def test_nats_supports_jetstream(bus: Bus) -> None:
    token = uuid.uuid4().hex[:8]
    stream = f"TEST_{token}"
    await bus.js.add_stream(StreamConfig(name=stream, subjects=[f"test.{token}.>"], storage=StorageType.FILE))
    try:
        ack = await bus.js.publish(f"test.{token}.hello", b"world")
        assert ack.stream == stream
        sub = await bus.js.pull_subscribe(f"test.{token}.>", durable="reader", stream=stream)
        msgs = await sub.fetch(1, timeout=5)
        assert [m.data for m in msgs] == [b"world"]
        await msgs[0].ack()
    finally:
        await bus.js.delete_stream(stream)


async def test_database_has_migrated_tables(db_pool: asyncpg.Pool) -> None:
    tables = {
        r["table_name"]
        for r in await db_pool.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    }
    assert {"calls", "transcripts", "schema_migrations"} <= tables
    versions = [r["version"] for r in await db_pool.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [p.stem for p in migration_files()]


async def test_reapplying_migrations_is_a_noop(database_url: str, db_pool: asyncpg.Pool) -> None:
    before = await db_pool.fetchval("SELECT count(*) FROM schema_migrations")
    assert await apply_migrations(database_url) == []
    assert await db_pool.fetchval("SELECT count(*) FROM schema_migrations") == before


# --- tools.devstack --------------------------------------------------------------------------------------


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A private VICTORIA_RUN_DIR (short, under /tmp: the PostgreSQL socket path has a length limit)."""
    path = Path(tempfile.mkdtemp(prefix="victoria-devstack-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _start_devstack(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.devstack",
        "--no-services",
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _read_exports(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> tuple[dict[str, str], str]:
    """Read output until both exports are printed; returns them and the output so far."""
    assert proc.stdout is not None
    exports: dict[str, str] = {}
    output = ""
    deadline = time.monotonic() + timeout
    while not {"NATS_URL", "DATABASE_URL"} <= exports.keys():
        line = (await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))).decode()
        if not line:
            raise AssertionError(f"devstack exited ({await proc.wait()}) before printing its env:\n{output}")
        output += line
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").strip().partition("=")
            exports[key] = shlex.split(value)[0]
    return exports, output


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(f"{cmdline.parent.name}: {args.strip()}")
    return found


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """Ctrl-C (if still running); returns the exit code and the rest of the output."""
    assert proc.stdout is not None
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    rest = await asyncio.wait_for(proc.stdout.read(), timeout=30)
    return await asyncio.wait_for(proc.wait(), timeout=10), rest.decode()


async def test_devstack_no_services_starts_prints_env_and_stops_cleanly(run_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env.update(VICTORIA_RUN_DIR=str(run_dir), NO_COLOR="1", PYTHONUNBUFFERED="1")
    proc = await _start_devstack(env)
    try:
        exports, output = await _read_exports(proc)
        assert exports["DATABASE_URL"].startswith("postgresql://postgres@/victoria?host=")
        conn = await asyncpg.connect(exports["DATABASE_URL"])
        try:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(migration_files())
        finally:
            await conn.close()
        bus = await Bus.connect(exports["NATS_URL"], "pytest-devstack")
        try:
            assert (await bus.js.account_info()).limits is not None  # JetStream is enabled
        finally:
            await bus.close()

        second = await _start_devstack(env)  # the run dir is locked while the first one runs
        second_out, _ = await asyncio.wait_for(second.communicate(), timeout=30)
        assert second.returncode == 1
        assert b"another devstack" in second_out
    finally:
        code, rest = await _stop(proc)
    output += rest
    assert code == 0, output
    assert "PostgreSQL stopped" in output and "nats-server stopped" in output, output
    assert _processes_mentioning(str(run_dir)) == [], output


async def test_devstack_uses_servers_from_env(run_dir: Path, nats_url: str, database_url: str) -> None:
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url, "VICTORIA_RUN_DIR": str(run_dir)}
    proc = await _start_devstack(env)
    try:
        exports, output = await _read_exports(proc)
    finally:
        code, _ = await _stop(proc)
    assert exports == {"NATS_URL": nats_url, "DATABASE_URL": database_url}
    assert "using NATS from NATS_URL" in output and "migrations up to date" in output
    assert code == 0
    assert not (run_dir / "pgdata").exists() and not (run_dir / "nats").exists()
