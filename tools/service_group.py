"""The dev stack's service processes: which there are, and how they are started, echoed, watched and stopped.

Each service runs in its own process group (the terminal's Ctrl-C reaches only the dev stack, which stops them
in order) and dies with the dev stack even on a kill -9; its output goes to the console line by line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.console import Console
from tools.embedded import die_with_parent, signal_group

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    metrics_port: int  # preferred port of a separate /metrics server; 0 = none (the gateway serves its own)


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("gateway", "services.gateway", 0),
    ServiceSpec("stt_worker", "services.stt_worker", 9102),
    ServiceSpec("llm_worker", "services.llm_worker", 9103),
    ServiceSpec("tts_worker", "services.tts_worker", 9104),
    ServiceSpec("call_recorder", "services.call_recorder", 9105),
)


def service_command(spec: ServiceSpec) -> list[str]:
    return [sys.executable, "-m", spec.module]


class ServiceGroup:
    """The running services. ``on_exit(name, code)`` is told of every exit, asked for or not, once the
    service's last output lines (a traceback) are printed."""

    def __init__(self, console: Console, on_exit: Callable[[str, int], None]) -> None:
        self.console = console
        self.on_exit = on_exit
        self.children: dict[str, asyncio.subprocess.Process] = {}
        self.pumps: list[asyncio.Task[None]] = []
        self.watchers: list[asyncio.Task[None]] = []

    async def start(self, spec: ServiceSpec, env: dict[str, str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            *service_command(spec),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            limit=1 << 20,
            process_group=0,  # the terminal's Ctrl-C reaches only us; we stop services in order
            preexec_fn=die_with_parent(),  # and a kill -9 of devstack still takes them down
        )
        self.children[spec.name] = proc
        assert proc.stdout is not None
        pump = asyncio.create_task(self._pump(spec.name, proc.stdout))
        self.pumps.append(pump)
        self.watchers.append(asyncio.create_task(self._watch(spec.name, proc, pump)))

    def running(self) -> dict[str, asyncio.subprocess.Process]:
        return {name: p for name, p in self.children.items() if p.returncode is None}

    def kill_all(self) -> None:
        for proc in self.children.values():
            if proc.returncode is None:
                signal_group(proc.pid, signal.SIGKILL)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the 1 MiB limit: asyncio has discarded it
                self.console.line(name, "[devstack: over-long output line dropped]")
                continue
            if not raw:
                return
            self.console.line(name, raw.decode(errors="replace").rstrip("\r\n"))

    async def _watch(self, name: str, proc: asyncio.subprocess.Process, pump: asyncio.Task[None]) -> None:
        code = await proc.wait()
        with contextlib.suppress(TimeoutError):  # let its last lines (a traceback) print first
            await asyncio.wait_for(asyncio.shield(pump), timeout=2)
        self.on_exit(name, code)

    async def stop(self, running: dict[str, asyncio.subprocess.Process], timeout_s: float) -> None:
        """SIGTERM these services and wait for them; what outlasts ``timeout_s`` is killed."""
        if not running:
            return
        self.console.say(f"stopping {', '.join(running)} ...")
        for proc in running.values():
            signal_group(proc.pid, signal.SIGTERM)
        waits = {name: asyncio.create_task(p.wait()) for name, p in running.items()}
        _, pending = await asyncio.wait(waits.values(), timeout=timeout_s)
        if pending:
            slow = [name for name, task in waits.items() if task in pending]
            self.console.error(f"{', '.join(slow)} did not stop within {timeout_s:.0f}s: killing")
            for name in slow:
                signal_group(running[name].pid, signal.SIGKILL)
            await asyncio.wait(pending, timeout=5)

    async def close(self) -> None:
        """After ``stop``: kill what a service left behind in its group, let the output finish, end the tasks."""
        for proc in self.children.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self.pumps:
            await asyncio.wait(self.pumps, timeout=2)
        for task in [*self.pumps, *self.watchers]:
            task.cancel()
