"""Database operations, by hand or on a schedule (the seeds' ``database/backup.py`` and
``maintenance/cleanup.py``):

    python -m tools.db backup [--out DIR] [--keep N]    # pg_dump (custom format) to DIR/victoria-<time>.dump
    python -m tools.db restore FILE [--database-url URL] # pg_restore into DATABASE_URL (created if missing)
    python -m tools.db retention [--days N]              # delete calls + transcripts older than N days
    python -m tools.db schedule                          # backup + retention every MAINTENANCE_INTERVAL_H

Settings come from the environment (``MaintenanceSettings``: DATABASE_URL, BACKUP_DIR, BACKUP_KEEP,
RETENTION_DAYS, RETENTION_BATCH, PG_BIN_DIR, MAINTENANCE_INTERVAL_H). Exit code 1 with the reason on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from urllib.parse import quote

import asyncpg
from prometheus_client import Counter, Gauge
from pydantic import SecretStr

from shared.db.backup import BackupError, backup, prune_backups, restore
from shared.db.retention import RetentionReport, delete_old_calls
from shared.logging import configure_logging, get_logger
from shared.metrics import serve_metrics
from shared.settings import MaintenanceSettings

log = get_logger(__name__)
REPO = Path(__file__).resolve().parents[1]

# `schedule` serves these on METRICS_PORT (compose's maintenance service): an alert fires when backups stop
LAST_SUCCESS = Gauge(
    "victoria_maintenance_last_success_timestamp_seconds", "When a maintenance task last succeeded", ["task"]
)
FAILURES = Counter("victoria_maintenance_failures_total", "Maintenance task runs that failed", ["task"])
RETENTION_DELETED = Counter("victoria_retention_deleted_calls_total", "Calls deleted by the retention clean-up")


def devstack_dsn() -> str | None:
    """The running dev stack's embedded PostgreSQL (``make run``), from its ``postmaster.pid`` (line 4: port,
    line 5: socket directory), so that ``make backup`` works there without exporting DATABASE_URL."""
    run_dir = Path(os.environ.get("VICTORIA_RUN_DIR") or REPO / ".run")
    try:
        lines = (run_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
        port, socket_dir = int(lines[3]), lines[4].strip()
    except (OSError, IndexError, ValueError):
        return None
    return f"postgresql://postgres@/victoria?host={quote(socket_dir, safe='/')}&port={port}" if socket_dir else None


def load_settings() -> MaintenanceSettings:
    settings = MaintenanceSettings()
    if "database_url" not in settings.model_fields_set:  # neither the environment nor .env names one
        found = devstack_dsn()
        if found:
            settings = settings.model_copy(update={"database_url": SecretStr(found)})
    return settings


async def run_backup(settings: MaintenanceSettings, out: Path, keep: int) -> Path:
    path = await backup(settings.database_url.get_secret_value(), out, bin_dir=settings.pg_bin_dir)
    print(f"backup written: {path} ({path.stat().st_size} bytes)")
    for old in prune_backups(out, keep):
        print(f"old backup removed: {old}")
    return path


async def run_retention(settings: MaintenanceSettings, days: int, batch: int) -> RetentionReport:
    conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=10)
    try:
        report = await delete_old_calls(conn, days=days, batch=batch)
    finally:
        await conn.close()
    print(report.summary())
    return report


async def run_schedule(settings: MaintenanceSettings, out: Path, *, once: bool = False) -> None:
    """Backup, then retention, then wait ``MAINTENANCE_INTERVAL_H``; a failed step is logged and retried at
    the next run (it never ends the loop). SIGTERM/SIGINT stop it between (or during the wait of) runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    interval_s = settings.maintenance_interval_h * 3600
    while not stop.is_set():
        try:
            await run_backup(settings, out, settings.backup_keep)
            LAST_SUCCESS.labels("backup").set_to_current_time()
        except (BackupError, OSError, asyncpg.PostgresError) as exc:
            FAILURES.labels("backup").inc()
            log.error("scheduled_backup_failed", error=str(exc))
        try:
            report = await run_retention(settings, settings.retention_days, settings.retention_batch)
            RETENTION_DELETED.inc(report.calls)
            LAST_SUCCESS.labels("retention").set_to_current_time()
        except (OSError, asyncpg.PostgresError) as exc:
            FAILURES.labels("retention").inc()
            log.error("scheduled_retention_failed", error=str(exc))
        if once:
            return
        log.info("maintenance_sleeping", hours=settings.maintenance_interval_h)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass


def parse_args(argv: list[str] | None, settings: MaintenanceSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.db", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backup", help="pg_dump the database (custom format)")
    b.add_argument("--out", type=Path, default=Path(settings.backup_dir), help="directory (BACKUP_DIR)")
    b.add_argument("--keep", type=int, default=settings.backup_keep, help="newest backups kept (BACKUP_KEEP)")
    r = sub.add_parser("restore", help="pg_restore a backup")
    r.add_argument("file", type=Path)
    r.add_argument("--database-url", default="", help="target database (default DATABASE_URL)")
    t = sub.add_parser("retention", help="delete calls and transcripts older than N days")
    t.add_argument("--days", type=int, default=settings.retention_days, help="RETENTION_DAYS; 0 = keep all")
    t.add_argument("--batch", type=int, default=settings.retention_batch, help="calls per transaction")
    s = sub.add_parser("schedule", help="backup + retention every MAINTENANCE_INTERVAL_H hours")
    s.add_argument("--out", type=Path, default=Path(settings.backup_dir))
    s.add_argument("--once", action="store_true", help="one run, then exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    args = parse_args(argv, settings)
    configure_logging("maintenance", settings.log_level, settings.log_format)
    try:
        if args.command == "backup":
            asyncio.run(run_backup(settings, args.out, args.keep))
        elif args.command == "restore":
            dsn = args.database_url or settings.database_url.get_secret_value()
            asyncio.run(restore(dsn, args.file, bin_dir=settings.pg_bin_dir))
            print(f"restored {args.file}")
        elif args.command == "retention":
            if args.days < 0:
                print("error: --days must be >= 0 (0 keeps everything)", file=sys.stderr)
                return 2
            asyncio.run(run_retention(settings, args.days, args.batch))
        else:
            serve_metrics(settings.metrics_port, settings.metrics_host)
            asyncio.run(run_schedule(settings, args.out, once=args.once))
    except (BackupError, OSError, asyncpg.PostgresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
