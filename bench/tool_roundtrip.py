"""What a tool call adds to a turn beyond the tool's own latency.

    python -m bench.tool_roundtrip                      # starts its own stack (fake providers), 25 turns per arm
    python -m bench.tool_roundtrip --turns 40 --tool-ms 300
    python -m bench.tool_roundtrip --url http://127.0.0.1:8000   # a running stack started with the env below

Two agents on one stack with fake providers at fixed latency (``FAKE_LLM_FIRST_TOKEN_MS`` 150, TTS first byte
100 ms): ``bench-tool`` has an HTTP tool served here, on 127.0.0.1, answering after exactly ``--tool-ms``;
``bench-plain`` has none. Each turn is one keypad key (``dtmf`` mode ``each``), the same input path for both
and free of VAD and STT timing: the fake LLM (``FAKE_LLM_TOOL_SCRIPT``) answers the tool agent's key with a
bare call of the tool, then the tool's result with ``Done.``; the plain agent's key with ``Done.`` at once.
A turn's latency is the caller's: key sent → first reply audio received. Printed: median and p99 of each
arm, and of the difference (tool − plain − tool latency) — one more LLM request (its first token included)
plus the gateway's round (validation, signing, the HTTP exchange's own overhead, the history) — and the
gateway's ``tools_ms`` (the time inside the round, the tool's latency included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np

from bench.stack import running_stack
from tools.simcaller import SimCaller

SCRIPT = [{"when": "DTMF: 1", "call": "lookup", "arguments": {"ref": "A1"}}]
ENV = {
    "FAKE_STT_LATENCY_MS": "200",
    "FAKE_LLM_FIRST_TOKEN_MS": "150",
    "FAKE_LLM_TOKENS_PER_S": "50",
    "FAKE_TTS_FIRST_BYTE_MS": "100",
    "FAKE_LLM_REPLY": "Done.",
    "FAKE_LLM_TOOL_REPLY": "Done.",
    "FAKE_LLM_TOOL_SCRIPT": json.dumps(SCRIPT),
}


class DelayedTool:
    """An HTTP tool on 127.0.0.1 that answers every request after exactly ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the kept-alive connections (their handlers end) and the server."""
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0.1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:  # keep-alive: the gateway's pooled client reuses the connection
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                length = next((int(h.split(":")[1]) for h in head.split("\r\n") if h.startswith("content-length")), 0)
                await reader.readexactly(length)
                await asyncio.sleep(self.delay_s)
                body = b'{"status": "confirmed"}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        writer.close()
        self._writers.discard(writer)


async def make_agents(base: str, tool_port: int) -> None:
    tool = {
        "kind": "http",
        "name": "lookup",
        "url": f"http://127.0.0.1:{tool_port}/lookup",
        "parameters": {"type": "object", "properties": {"ref": {"type": "string"}}},
    }
    common = {"first_message": "Hi.", "dtmf": {"mode": "each"}, "tool_filler_after_ms": 10_000}
    common["turn"] = {"silence_timeout_s": 600}
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as client:
        for agent_id, tools in (("bench-tool", [tool]), ("bench-plain", [])):
            await client.delete(f"/api/v1/agents/{agent_id}")
            resp = await client.post("/api/v1/agents", json={"agent_id": agent_id, "tools": tools, **common})
            resp.raise_for_status()


async def turns(ws_url: str, agent_id: str, key: str, count: int) -> tuple[list[float], list[float]]:
    """``count`` keypad turns on one call: the caller's latency (key → first audio) and the gateway's tools_ms."""
    sim = SimCaller(ws_url)
    await sim.connect(agent_id)
    await sim.next(lambda m: m["type"] == "state" and m["agent"] == "idle", timeout=15)  # greeting played
    latencies: list[float] = []
    tools_ms: list[float] = []
    assert sim.ws is not None
    for _ in range(count):
        sent = time.perf_counter()
        await sim.ws.send(json.dumps({"type": "dtmf", "digit": key}))
        metrics = await until_played(sim)
        first = sim.audio_after(sent)
        latencies.append((first[0].at - sent) * 1000 if first else float("nan"))
        tools_ms.append(float(metrics.get("tools_ms", 0.0)))
    await sim.hang_up()
    return latencies, tools_ms


async def until_played(sim: SimCaller) -> dict[str, Any]:
    """The turn's ``turn_metrics`` once the reply has played out (the two messages come in either order)."""
    metrics: dict[str, Any] | None = None
    idle = False
    while metrics is None or not idle:
        m = await sim.next(lambda m: m["type"] == "turn_metrics" or (m["type"] == "state" and m["agent"] == "idle"))
        if m["type"] == "turn_metrics":
            metrics = m
        else:
            idle = True
    return metrics


def figures(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} ms   p99 {float(np.percentile(values, 99)):7.1f} ms"


async def run(base: str, count: int, tool_ms: float) -> None:
    tool = DelayedTool(tool_ms / 1000)
    await tool.start()
    await make_agents(base, tool.port)
    ws_url = base.replace("http", "ws", 1) + "/ws/simulator"
    await turns(ws_url, "bench-tool", "1", 2)  # warm-up: connections, caches
    with_tool, inside = await turns(ws_url, "bench-tool", "1", count)
    plain, _ = await turns(ws_url, "bench-plain", "2", count)
    await tool.stop()
    extra = [w - p - tool_ms for w, p in zip(sorted(with_tool), sorted(plain), strict=True)]
    print(f"turns per arm: {count}; tool latency {tool_ms:g} ms; fake LLM first token 150 ms, TTS first byte 100 ms")
    print(f"  with the tool     key → first audio: {figures(with_tool)}")
    print(f"  without           key → first audio: {figures(plain)}")
    print(f"  added by the round, beyond the tool: {figures(extra)}  (quantile by quantile)")
    first_token = float(ENV["FAKE_LLM_FIRST_TOKEN_MS"])
    print(f"  of which not the 2nd LLM request's first token: {figures([e - first_token for e in extra])}")
    print(f"  gateway tools_ms (tool included)   : {figures(inside)}")


@contextlib.contextmanager
def stack_or(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    with running_stack(fake=True, env=ENV) as stack:
        yield stack.url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="a running gateway (started with this module's ENV)")
    parser.add_argument("--turns", type=int, default=25, help="turns per arm (at least 20)")
    parser.add_argument("--tool-ms", type=float, default=200.0, help="the tool's fixed latency")
    args: Any = parser.parse_args(argv)
    if args.turns < 20:
        parser.error("--turns: at least 20")
    with stack_or(args.url) as base:
        asyncio.run(run(base, args.turns, args.tool_ms))


if __name__ == "__main__":
    main()
