"""``python -m tools.db`` without DATABASE_URL finds the running dev stack's PostgreSQL; backups are named
so that they sort by time, and pruning keeps the newest; the DSN's password never reaches the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.db.backup import backup_name, libpq_target, list_backups, prune_backups
from tools.db import devstack_dsn, load_settings


def test_the_dev_stacks_postgres_is_found_from_its_postmaster_pid(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VICTORIA_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env naming one either
    assert devstack_dsn() is None
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "postmaster.pid").write_text("4242\n/x/pgdata\n1700000000\n5433\n/tmp/pg sock\n*\n")
    assert devstack_dsn() == "postgresql://postgres@/victoria?host=/tmp/pg%20sock&port=5433"
    assert load_settings().database_url.get_secret_value() == devstack_dsn()
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/v")
    assert load_settings().database_url.get_secret_value() == "postgresql://u@db/v"  # the environment wins


def test_backups_sort_by_time_and_pruning_keeps_the_newest(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    names = [backup_name(start + timedelta(hours=h)) for h in (0, 30, 5, 2)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "victoria-unfinished.dump.partial").write_bytes(b"x")
    assert [p.name for p in list_backups(tmp_path)] == sorted(names)
    removed = prune_backups(tmp_path, keep=2)
    assert [p.name for p in removed] == [names[0], names[3]]
    assert [p.name for p in list_backups(tmp_path)] == [names[2], names[1]]
    assert prune_backups(tmp_path, keep=0) == []  # 0 keeps all


@pytest.mark.parametrize(
    ("dsn", "target", "password"),
    [
        (
            "postgresql://victoria:s%40cret@postgres:5432/victoria",
            "postgresql://victoria@postgres:5432/victoria",
            "s@cret",
        ),
        ("postgresql://postgres@/db?host=/tmp/s", "postgresql://postgres@/db?host=/tmp/s", None),
    ],
)
def test_the_password_goes_to_the_environment(dsn: str, target: str, password: str | None, monkeypatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    got, env = libpq_target(dsn)
    assert got == target and env.get("PGPASSWORD") == password
