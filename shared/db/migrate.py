"""Versioned SQL migrations: ``shared/db/migrations/NNNN_name.sql`` applied once each, in order, in one
transaction per file, recorded in ``schema_migrations``. Safe to run from several processes at once
(an advisory lock serialises them). Run: ``python -m shared.db.migrate`` (uses ``DATABASE_URL``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import urlparse

import asyncpg

from shared.logging import configure_logging, get_logger
from shared.settings import CommonSettings

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x766963746F726961  # "victoria"


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


async def apply_migrations(dsn: str) -> list[str]:
    """Apply pending migrations; returns the versions applied now."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for path in migration_files():
            version = path.stem
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", version)
            applied_now.append(version)
            log.info("migration_applied", version=version)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        finally:
            await conn.close()
    return applied_now


async def ensure_database(dsn: str) -> None:
    """Create the DSN's database if the server has no such database yet (dev convenience)."""
    try:
        conn = await asyncpg.connect(dsn)
        await conn.close()
        return
    except asyncpg.InvalidCatalogNameError:
        pass
    name = urlparse(dsn).path.lstrip("/") or "postgres"
    admin = await asyncpg.connect(dsn, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        log.info("database_created", database=name)
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await admin.close()


def main() -> int:
    settings = CommonSettings()
    configure_logging("migrate", settings.log_level, settings.log_format)
    dsn = settings.database_url.get_secret_value()

    async def run() -> list[str]:
        await ensure_database(dsn)
        return await apply_migrations(dsn)

    applied = asyncio.run(run())
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
