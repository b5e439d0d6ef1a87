"""``python -m tools.healthcheck <service>``, the probe of every compose service, against real servers: a
running worker (healthy), the same worker stopped or absent (unhealthy, saying why), another host's replica
(not this container's), and NATS' monitoring port, PostgreSQL and the gateway's HTTP port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tools.embedded import free_port, start_nats

REPO = Path(__file__).resolve().parents[2]
FAKE_LLM = {"LLM_PROVIDER": "fake", "FAKE_LLM_FIRST_TOKEN_MS": "5", "FAKE_LLM_TOKENS_PER_S": "2000"}


def probe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.healthcheck", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def probe_until(expect: int, *args: str, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Probe until it exits ``expect`` (a worker answers pings only once its model is loaded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(probe, *args, **env)
        if result.returncode == expect or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.3)


async def test_a_running_worker_is_healthy_and_a_stopped_one_is_not(run_service, nats_url: str) -> None:
    worker = run_service("llm_worker", FAKE_LLM)
    healthy = await probe_until(0, "llm_worker", NATS_URL=nats_url)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.startswith("healthy: llm_worker ") and "in_flight=0" in healthy.stdout

    worker.stop()
    gone = probe("llm_worker", "--timeout", "1", NATS_URL=nats_url)
    assert gone.returncode == 1
    assert "unhealthy: no answer from llm_worker" in gone.stdout and "$SRV.STATS.llm_worker" in gone.stdout, gone.stdout


async def test_the_recorder_is_healthy_once_it_consumes(run_service, nats_url: str) -> None:
    run_service("call_recorder", {"EXTRACTION_ENABLED": "false", "RECORDER_DURABLE": f"health-{uuid.uuid4().hex[:8]}"})
    healthy = await probe_until(0, "call_recorder", NATS_URL=nats_url)
    assert healthy.returncode == 0 and "database=True" in healthy.stdout, healthy.stdout


async def test_only_this_containers_replica_counts(run_service, nats_url: str) -> None:
    run_service("llm_worker", {**FAKE_LLM, "INSTANCE_ID": "other-host-7"})
    mine = await probe_until(0, "llm_worker", NATS_URL=nats_url, INSTANCE_ID="other-host-7")
    assert mine.returncode == 0 and "other-host-7" in mine.stdout, mine.stdout
    # a container with no INSTANCE_ID is named after its host: another host's replica is not its own health
    theirs = probe("llm_worker", "--timeout", "1.5", NATS_URL=nats_url, INSTANCE_ID="")
    assert theirs.returncode == 1 and "other replicas answered: other-host-7" in theirs.stdout, theirs.stdout
    anyone = probe("llm_worker", "--any", NATS_URL=nats_url, INSTANCE_ID="")
    assert anyone.returncode == 0, anyone.stdout


def test_nothing_to_ask_is_unhealthy() -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    result = probe("stt_worker", "--timeout", "1", NATS_URL=dead)
    assert result.returncode == 1 and "unreachable" in result.stdout, result.stdout
    port = free_port()
    result = probe("gateway", GATEWAY_PORT=str(port))
    assert result.returncode == 1 and f"127.0.0.1:{port}/health" in result.stdout, result.stdout
    result = probe("postgres", "--timeout", "2", DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    assert result.returncode == 1 and result.stdout.startswith("unhealthy: PostgreSQL"), result.stdout


def test_nats_monitoring_and_postgres(tmp_path: Path, database_url: str) -> None:
    monitor = free_port()
    server = start_nats(tmp_path / "js", monitor_port=monitor, log_path=tmp_path / "nats.log")
    try:
        up = probe("nats", "--url", f"http://127.0.0.1:{monitor}/healthz")
        assert up.returncode == 0 and "HTTP 200" in up.stdout, up.stdout
    finally:
        server.stop()
    down = probe("nats", "--url", f"http://127.0.0.1:{monitor}/healthz", "--timeout", "1")
    assert down.returncode == 1
    db = probe("postgres", DATABASE_URL=database_url)
    assert db.returncode == 0 and "answers" in db.stdout, db.stdout
