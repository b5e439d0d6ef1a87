"""Waiting for a gateway to say it is ready (``/api/system/health``), with progress and the last answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Literal

import httpx

from tools.console import Console

Readiness = Literal["ready", "timeout", "stopped"]


async def wait_ready(port: int, timeout: float, stop: asyncio.Event, console: Console) -> Readiness:
    """Poll the gateway's health until it is ready, ``timeout`` seconds pass, or ``stop`` is set."""
    url = f"http://127.0.0.1:{port}/api/system/health"
    started = time.monotonic()
    next_progress = started + 5
    last = "no answer yet"
    console.say(f"waiting for the gateway to be ready ({url}, up to {timeout:.0f}s) ...")
    async with httpx.AsyncClient(timeout=3.0, trust_env=False) as client:
        while not stop.is_set():
            ready, last = await _probe(client, url, last)
            if ready:
                console.say(f"gateway ready after {time.monotonic() - started:.1f}s")
                return "ready"
            now = time.monotonic()
            if now - started >= timeout:
                console.error(f"the gateway was not ready after {timeout:.0f}s; last readiness answer:")
                console.error(f"  {last}")
                console.error("check the service output above; --ready-timeout waits longer")
                return "timeout"
            if now >= next_progress:
                console.say(f"still waiting ({now - started:.0f}s): {last[:300]}")
                next_progress = now + 5
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    return "stopped"


async def _probe(client: httpx.AsyncClient, url: str, last: str) -> tuple[bool, str]:
    """One health request: ready or not, and what it answered (``last`` again when it answered nothing new)."""
    try:
        resp = await client.get(url)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__} {exc}".strip()
    body = _json(resp.text)
    if resp.status_code == 200 and isinstance(body, dict) and body.get("ready") is True:
        return True, last
    return False, f"HTTP {resp.status_code} {_compact(body if body is not None else resp.text)}"


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _compact(body: object) -> str:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return " ".join(text.split())
