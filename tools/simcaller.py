"""A scripted browser caller for tests and benchmarks: everything the simulator WebSocket sends, with
arrival times, and helpers to speak in real time and wait for what the agent does."""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

from services.gateway.transports.protocol import StartMessage, StopMessage

RATE = 16000
FRAME = RATE // 50 * 2  # 20 ms of PCM16


async def call_token(http_base: str, api_key: str | None, agent_id: str | None = None) -> str:
    """A browser-call token from ``POST /api/v1/simulator/tokens`` (what the dashboard does before a call)."""
    import httpx

    headers = {"X-API-Key": api_key} if api_key else {}
    async with httpx.AsyncClient(base_url=http_base, trust_env=False, timeout=10) as client:
        resp = await client.post("/api/v1/simulator/tokens", json={"agent_id": agent_id}, headers=headers)
    resp.raise_for_status()
    return str(resp.json()["token"])


@dataclass
class Received:
    at: float
    kind: str
    data: Any


@dataclass
class SimCaller:
    url: str
    ws: websockets.ClientConnection | None = None
    log: list[Received] = field(default_factory=list)  # everything, in arrival order
    messages: list[Received] = field(default_factory=list)  # JSON messages only
    audio: list[Received] = field(default_factory=list)  # audio frames only
    closed: bool = False
    last_at: float = 0.0  # arrival time of the message the last ``next`` returned
    call_id: str = ""
    close_code: int | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    _clock: float = 0.0
    _frames: int = 0
    _cursor: int = 0
    fell_behind: int = 0  # times this caller could not keep real time (its CPU is saturated)
    send_failed: bool = False  # a send found the connection closed (the reader may not have noticed yet)
    _tx: asyncio.Lock = field(default_factory=asyncio.Lock)  # one sender at a time: speech is never chopped

    async def connect(
        self, agent_id: str | None = None, sample_rate: int = RATE, *, token: str | None = None
    ) -> dict[str, Any]:
        """Open the call; ``token`` (from :func:`call_token`) is needed where the gateway has API keys."""
        self.ws = await websockets.connect(self.url, max_size=2**22)
        start = StartMessage(sample_rate=sample_rate, agent_id=agent_id, token=token)  # type: ignore[arg-type]
        await self.ws.send(start.model_dump_json(exclude_none=True))
        self._reader = asyncio.create_task(self._read())
        self._clock = time.perf_counter()  # the line is open: silence flows from now on while we wait
        started = await self.next(lambda m: m["type"] in ("started", "error"), timeout=10)
        self.call_id = started.get("call_id", "")
        return started

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    rec = Received(now, "audio", message)
                    self.audio.append(rec)
                else:
                    m = json.loads(message)
                    rec = Received(now, m.get("type", "?"), m)
                    self.messages.append(rec)
                self.log.append(rec)
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed = True
            self.log.append(Received(time.perf_counter(), "closed", self.close_code))
            self._new.set()

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r.data for r in self.log if r.kind != "audio" and (kind is None or r.kind == kind)]

    def audio_after(self, t: float) -> list[Received]:
        return self.audio[bisect.bisect_left(self.audio, t, key=lambda r: r.at) :]

    def has_audio_after(self, t: float) -> bool:
        return bool(self.audio) and self.audio[-1].at >= t

    async def next(self, pred: Any, timeout: float = 10) -> dict[str, Any]:
        """The next JSON message matching ``pred`` after the previous ``next`` match (none is skipped)."""
        deadline = time.perf_counter() + timeout
        while True:
            while self._cursor < len(self.messages):
                r = self.messages[self._cursor]
                self._cursor += 1
                if pred(r.data):
                    self.last_at = r.at
                    return r.data
            if self.closed or self.send_failed:
                raise ConnectionError(f"closed ({self.close_code}) before the expected message")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no matching message in {timeout}s; got {[r.kind for r in self.log[-15:]]}")
            if self._tx.locked():  # someone is speaking on this line: just wait, don't mix in silence
                await asyncio.sleep(0.005)
            else:
                await self.send_silence(0.02)

    async def send_frames(self, pcm: bytes) -> float:
        """Send ``pcm`` in 20 ms frames on the call's absolute clock; returns when the last frame left."""
        assert self.ws is not None
        async with self._tx:
            return await self._send_locked(pcm)

    async def _send_locked(self, pcm: bytes) -> float:
        assert self.ws is not None
        for offset in range(0, len(pcm), FRAME):
            delay = self._clock + self._frames * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.02:
                self._clock = time.perf_counter() - self._frames * 0.02  # fell behind: don't burst to catch up
                self.fell_behind += 1
            try:
                await self.ws.send(pcm[offset : offset + FRAME])
            except websockets.ConnectionClosed:
                self.send_failed = True
                await asyncio.sleep(0)  # (the send may fail without yielding: let the reader see the close)
                break
            self._frames += 1
        return time.perf_counter()

    async def send_silence(self, seconds: float) -> float:
        return await self.send_frames(bytes(int(seconds * 50) * FRAME))

    async def hang_up(self) -> None:
        if self.ws is not None:
            try:
                await self.ws.send(StopMessage().model_dump_json())
            except websockets.ConnectionClosed:
                pass
            await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
