"""``VICTORIA_TEST_CONTAINERS=1`` runs the suite's servers in Docker through testcontainers; where no Docker
engine is reachable (as on this machine) the tests that need a server skip, saying why, instead of failing.
The default run (embedded servers) imports neither testcontainers nor docker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _docker_reachable() -> bool:
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.close()
    except Exception:
        return False
    return True


def test_without_a_docker_engine_server_tests_skip_with_the_reason(tmp_path: Path) -> None:
    if _docker_reachable():
        pytest.skip("a Docker engine is reachable here: the containers would really start")
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env.update(VICTORIA_TEST_CONTAINERS="1", DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_healthcheck.py::test_nats_monitoring_and_postgres",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 skipped" in out, out
    assert "VICTORIA_TEST_CONTAINERS=1" in out and (
        "no Docker engine is reachable" in out or "needs testcontainers" in out
    ), out


def test_the_default_run_does_not_import_testcontainers() -> None:
    assert "testcontainers" not in sys.modules or os.environ.get("VICTORIA_TEST_CONTAINERS")
