"""Start a whole Victoria (embedded NATS + PostgreSQL + the five services) for a benchmark run, in its own
run directory and on a free port, and stop it afterwards; or use one that is already running (``--url``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tools.embedded import free_port

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stack:
    url: str  # the gateway's base URL
    pid: int  # devstack's pid: every server process is its descendant


def add_placement_args(parser: argparse.ArgumentParser) -> None:
    """Where a load bench runs its server and its callers: ``--server-cpus``, ``--caller-cpus``,
    ``--gateway-nice`` (see ``place``)."""
    parser.add_argument("--server-cpus", default="0", help="cores for the server (taskset); '' = no pinning")
    parser.add_argument("--caller-cpus", default="1", help="cores for the callers; '' = no pinning")
    parser.add_argument("--gateway-nice", type=int, default=None, help="PROCESS_NICE for the gateway, e.g. -10")


def place(args: argparse.Namespace) -> dict[str, Any]:
    """Pin this process (the callers) to ``--caller-cpus``; return the server's placement as ``running_stack``
    arguments."""
    if args.caller_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.caller_cpus.split(",")})
    return {"cpus": args.server_cpus or None, "gateway_nice": args.gateway_nice}


@contextlib.contextmanager
def running_stack(
    *,
    fake: bool,
    env: dict[str, str] | None = None,
    cpus: str | None = None,
    realtime: bool = False,
    gateway_nice: int | None = None,
) -> Iterator[Stack]:
    """Start a stack; ``cpus`` pins every server process (e.g. ``"0"``) with taskset; ``realtime`` runs them
    round-robin real-time (``chrt -r 1``, needs root) so that other tenants of a shared machine can't delay them."""
    port = free_port()
    run_dir = tempfile.mkdtemp(prefix="victoria-bench-")
    level = os.environ.get("BENCH_LOG_LEVEL", "WARNING")  # DEBUG: every stage's log lines in devstack.out
    full_env = {**os.environ, "VICTORIA_RUN_DIR": run_dir, "LOG_LEVEL": level, **(env or {})}
    cmd = [sys.executable, "-m", "tools.devstack", "--port", str(port)] + (["--fake-providers"] if fake else [])
    if gateway_nice is not None:
        cmd += ["--gateway-nice", str(gateway_nice)]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    if realtime:
        cmd = ["chrt", "-r", "1", *cmd]
    log = open(Path(run_dir) / "devstack.out", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"devstack exited ({proc.returncode}); see {run_dir}/devstack.out")
            try:
                if httpx.get(f"{url}/api/system/health", timeout=2, trust_env=False).json().get("ready"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"stack not ready in 180 s; see {run_dir}/devstack.out")
            time.sleep(0.3)
        yield Stack(url=url, pid=proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
