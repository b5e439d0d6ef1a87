"""Backup, restore and retention against the real PostgreSQL of the fixtures, through the CLI an operator (and
compose's ``maintenance`` service) runs: ``python -m tools.db ...``.

Each test works in a database of its own, so that deleting "old" calls or restoring never touches the rows of
other tests sharing the session's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from shared.db.backup import BackupError, find_pg_tool, list_backups, server_major
from tools.embedded import migrate, with_database

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)


def tools_db(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.db", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url, "LOG_FORMAT": "console", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _fresh_database(database_url: str, prefix: str) -> str:
    dsn = with_database(database_url, f"{prefix}_{uuid.uuid4().hex[:10]}")
    await migrate(dsn)
    return dsn


async def _drop(database_url: str, dsn: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = dsn.split("/")[-1].split("?")[0]
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def scratch_db(database_url: str) -> AsyncIterator[str]:
    dsn = await _fresh_database(database_url, "victoria_maint")
    try:
        yield dsn
    finally:
        await _drop(database_url, dsn)


async def _add_call(conn: asyncpg.Connection, call_id: str, ended: datetime, turns: int = 3) -> None:
    await conn.execute(
        "INSERT INTO calls (call_id, started_at, ended_at, status, turns, extracted_data, created_at)"
        " VALUES ($1, $2, $3, 'completed', $4, $5::jsonb, $2)",
        call_id,
        ended - timedelta(minutes=5),
        ended,
        turns,
        json.dumps({"status": "ok", "summary": f"call {call_id}"}),
    )
    for seq in range(turns):
        await conn.execute(
            "INSERT INTO transcripts (call_id, seq, role, text, started_at, ended_at, event_id)"
            " VALUES ($1, $2, $3, $4, $5, $5, $6)",
            call_id,
            seq,
            "user" if seq % 2 else "assistant",
            f"turn {seq} of {call_id}",
            ended,
            f"{call_id}-t{seq}",
        )
        await conn.execute(
            "INSERT INTO processed_events (event_id, call_id, type, processed_at) VALUES ($1, $2, 'call.turn', $3)",
            f"{call_id}-t{seq}",
            call_id,
            ended,
        )
    await conn.execute(
        "INSERT INTO call_errors (event_id, call_id, code, stage, message, critical, at)"
        " VALUES ($1, $2, 'timeout', 'llm', 'slow', false, $3)",
        f"{call_id}-err",
        call_id,
        ended,
    )


async def test_retention_deletes_old_calls_with_their_transcripts_and_keeps_recent_ones(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    try:
        for i in range(5):
            await _add_call(conn, f"old-{i}", NOW - timedelta(days=400 + i))
        await _add_call(conn, "recent", NOW - timedelta(days=2))
        await _add_call(conn, "just-inside", NOW - timedelta(days=29))
        # a call that never ended is aged by its start
        await conn.execute("INSERT INTO calls (call_id, started_at) VALUES ('stuck-old', $1)", NOW - timedelta(days=90))

        result = tools_db("retention", "--days", "30", "--batch", "2", database_url=scratch_db)
        assert result.returncode == 0, result.stderr
        assert "deleted 6 calls" in result.stdout and "15 transcripts" in result.stdout, result.stdout
        assert "in 3 batch(es)" in result.stdout, result.stdout

        left = {r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls")}
        assert left == {"recent", "just-inside"}
        for table in ("transcripts", "call_errors"):
            owners = {r["call_id"] for r in await conn.fetch(f"SELECT DISTINCT call_id FROM {table}")}
            assert owners == {"recent", "just-inside"}, table
        assert await conn.fetchval("SELECT count(*) FROM transcripts WHERE call_id = 'recent'") == 3
        # applied-event ids go once the lifecycle stream can no longer redeliver them (8 days), whatever call
        owners = {r["call_id"] for r in await conn.fetch("SELECT DISTINCT call_id FROM processed_events")}
        assert owners == {"recent"}
        assert "18 processed_events" in result.stdout, result.stdout

        # 0 = keep forever; a second run finds nothing more to delete
        kept = tools_db("retention", "--days", "0", database_url=scratch_db)
        assert kept.returncode == 0 and "retention disabled" in kept.stdout
        again = tools_db("retention", database_url=scratch_db, RETENTION_DAYS="30")
        assert again.returncode == 0 and "deleted 0 calls" in again.stdout, again.stdout

        # a call deleted within the replay window keeps its event ids: a redelivery cannot bring it back
        short = tools_db("retention", "--days", "1", database_url=scratch_db)
        assert short.returncode == 0 and "deleted 2 calls" in short.stdout, short.stdout
        assert not await conn.fetchval("SELECT count(*) FROM calls")
        assert await conn.fetchval("SELECT count(*) FROM processed_events WHERE call_id = 'recent'") == 3
    finally:
        await conn.close()


async def _pg_dump_or_skip(dsn: str) -> None:
    try:
        find_pg_tool("pg_dump", server_major=await server_major(dsn))
    except BackupError as exc:
        pytest.skip(f"no usable pg_dump: {exc}")


async def _rows(dsn: str) -> dict[str, list[tuple]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "calls": [
                tuple(r)
                for r in await conn.fetch("SELECT call_id, ended_at, turns, extracted_data FROM calls ORDER BY 1")
            ],
            "transcripts": [
                tuple(r) for r in await conn.fetch("SELECT call_id, seq, role, text FROM transcripts ORDER BY 1, 2")
            ],
            "migrations": [tuple(r) for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")],
        }
    finally:
        await conn.close()


async def test_backup_restores_into_a_fresh_database_with_the_same_rows(
    scratch_db: str, database_url: str, tmp_path: Path
) -> None:
    await _pg_dump_or_skip(scratch_db)
    conn = await asyncpg.connect(scratch_db)
    try:
        for i in range(3):
            await _add_call(conn, f"kept-{i}", NOW - timedelta(hours=i))
    finally:
        await conn.close()
    before = await _rows(scratch_db)
    assert len(before["calls"]) == 3 and len(before["transcripts"]) == 9

    out = tmp_path / "backups"
    for _ in range(3):  # BACKUP_KEEP=2: the oldest is pruned
        made = tools_db("backup", "--out", str(out), database_url=scratch_db, BACKUP_KEEP="2")
        assert made.returncode == 0, made.stderr
    backups = list_backups(out)
    assert len(backups) == 2 and "old backup removed" in made.stdout, made.stdout
    assert not list(out.glob("*.partial"))

    target = with_database(database_url, f"victoria_restored_{uuid.uuid4().hex[:10]}")
    try:
        restored = tools_db("restore", str(backups[-1]), "--database-url", target, database_url=scratch_db)
        assert restored.returncode == 0, restored.stderr
        assert await _rows(target) == before
    finally:
        await _drop(database_url, target)


def test_restore_of_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    result = tools_db("restore", str(tmp_path / "nope.dump"), database_url="postgresql://nobody@127.0.0.1:1/x")
    assert result.returncode == 1 and "no such backup file" in result.stderr


async def test_a_scheduled_run_backs_up_then_applies_retention(scratch_db: str, tmp_path: Path) -> None:
    """What compose's maintenance service runs (here one run: ``--once``)."""
    await _pg_dump_or_skip(scratch_db)
    conn = await asyncpg.connect(scratch_db)
    try:
        await _add_call(conn, "ancient", NOW - timedelta(days=800))
        await _add_call(conn, "today", NOW)
    finally:
        await conn.close()
    out = tmp_path / "scheduled"
    result = tools_db("schedule", "--once", "--out", str(out), database_url=scratch_db, RETENTION_DAYS="365")
    assert result.returncode == 0, result.stderr
    assert "backup written" in result.stdout and "deleted 1 calls" in result.stdout, result.stdout
    assert len(list_backups(out)) == 1
    conn = await asyncpg.connect(scratch_db)
    try:
        assert [r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls")] == ["today"]
    finally:
        await conn.close()
