"""A scripted Twilio- or Telnyx-protocol caller for tests and benchmarks: it speaks the providers' documented
media-stream messages and plays what it receives like their media servers do.

Outbound audio from the gateway goes into a virtual player (20 ms per frame, real time); a ``mark`` is
echoed when the player reaches it, and ``clear`` empties the player and echoes the pending marks at once
(Twilio's behaviour). Every frame's arrival time is kept, so tests can check pacing, marks and clears.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import websockets

from shared.audio import pcm16_to_alaw, pcm16_to_ulaw, resample_pcm16, ulaw_to_pcm16

FRAME_S = 0.02
FRAME_BYTES = 160  # 20 ms of G.711 at 8 kHz


async def twilio_dial(
    http_base: str,
    call_sid: str,
    *,
    from_number: str = "+15550001111",
    to_number: str = "+15550002222",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Ring the gateway as Twilio does (``POST /twilio/voice``) and return the ``<Parameter>``s of the TwiML's
    ``<Stream>``: the single-use stream token a ``PhoneCaller`` must hand back in its ``start``. Unsigned, so
    only for a gateway without ``TWILIO_AUTH_TOKEN`` unless ``headers`` carry the signature."""
    import xml.etree.ElementTree as ET

    form = {"CallSid": call_sid, "From": from_number, "To": to_number}
    async with httpx.AsyncClient(base_url=http_base, trust_env=False, timeout=10) as client:
        resp = await client.post("/twilio/voice", data=form, headers=headers)
    resp.raise_for_status()
    stream = ET.fromstring(resp.text).find("./Connect/Stream")
    if stream is None:
        raise RuntimeError(f"the gateway did not answer with a stream: {resp.text[:200]}")
    return {str(p.get("name")): str(p.get("value")) for p in stream.findall("Parameter")}


@dataclass
class Frame:
    at: float  # arrival (perf_counter)
    payload: bytes  # G.711 bytes as sent


@dataclass
class PhoneCaller:
    url: str
    protocol: Literal["twilio", "telnyx"] = "twilio"
    codec: Literal["PCMU", "PCMA"] = "PCMU"
    call_id: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    stream_id: str = field(default_factory=lambda: "MZ" + uuid.uuid4().hex)
    parameters: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    echo_marks: bool = True
    shuffle_inbound: bool = False  # Telnyx: send frames pairwise swapped (the gateway must reorder)
    ws: websockets.ClientConnection | None = None
    frames: list[Frame] = field(default_factory=list)
    media_shapes: set[str] = field(default_factory=set)  # every distinct structure of the media messages
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # non-media messages
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    _seq: int = 0
    _chunk: int = 0
    _play_end: float = 0.0  # when the virtual player will have played everything received
    _pending_marks: list[tuple[float, str]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _echoer: asyncio.Task[None] | None = None
    _clock: float = 0.0
    _sent_frames: int = 0
    _held: str | None = None
    _tx: asyncio.Lock = field(default_factory=asyncio.Lock)

    # --- connection --------------------------------------------------------------------------------------

    async def dial_and_connect(self, http_base: str, **kw: str) -> None:
        """Twilio: get a stream token from the gateway's webhook, as a real call does, then connect."""
        self.parameters = {**self.parameters, **await twilio_dial(http_base, self.call_id, **kw)}
        await self.connect()

    async def connect(self, *, send_start: bool = True) -> None:
        self.ws = await websockets.connect(self.url, max_size=2**22, additional_headers=self.headers or None)
        self._reader = asyncio.create_task(self._read())
        self._echoer = asyncio.create_task(self._echo_marks())
        await self.send_json(self._connected())
        if send_start:
            await self.send_json(self._start())
        self._clock = time.perf_counter()

    def _envelope(self) -> dict[str, Any]:
        self._seq += 1
        if self.protocol == "twilio":
            return {"sequenceNumber": str(self._seq), "streamSid": self.stream_id}
        return {"sequence_number": str(self._seq), "stream_id": self.stream_id}

    def _connected(self) -> dict[str, Any]:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def _start(self) -> dict[str, Any]:
        if self.protocol == "twilio":
            start = {
                "streamSid": self.stream_id,
                "accountSid": "AC" + "0" * 32,
                "callSid": self.call_id,
                "tracks": ["inbound"],
                "customParameters": self.parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }
        else:
            start = {
                "call_control_id": self.call_id,
                "call_session_id": "s-" + self.call_id[-8:],
                "from": self.parameters.get("from", "+15550001111"),
                "to": self.parameters.get("to", "+15550002222"),
                "client_state": self.parameters.get("client_state"),
                "media_format": {"encoding": self.codec, "sample_rate": 8000, "channels": 1},
            }
        return {"event": "start", **self._envelope(), "start": start}

    async def send_json(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        try:
            await self.ws.send(json.dumps(message))
        except websockets.ConnectionClosed:
            pass

    async def send_raw(self, data: str | bytes) -> None:
        assert self.ws is not None
        try:
            await self.ws.send(data)
        except websockets.ConnectionClosed:
            pass

    # --- speaking ---------------------------------------------------------------------------------------

    def media_message(self, g711: bytes) -> dict[str, Any]:
        self._chunk += 1
        payload = base64.b64encode(g711).decode()
        ts = str((self._chunk - 1) * 20)
        return {
            "event": "media",
            **self._envelope(),
            "media": {"track": "inbound", "chunk": str(self._chunk), "timestamp": ts, "payload": payload},
        }

    async def speak(self, pcm16_16k: bytes) -> float:
        """Send PCM16 16 kHz speech as 20 ms G.711 frames in real time; returns when the last one left."""
        pcm8 = resample_pcm16(pcm16_16k, 16000, 8000)
        g711 = pcm16_to_alaw(pcm8) if self.codec == "PCMA" else pcm16_to_ulaw(pcm8)
        async with self._tx:
            for offset in range(0, len(g711), FRAME_BYTES):
                await self._pace()
                text = json.dumps(self.media_message(g711[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff")))
                if self.shuffle_inbound:
                    if self._held is None:
                        self._held = text
                        continue
                    await self.send_raw(text)
                    text, self._held = self._held, None
                await self.send_raw(text)
            if self._held is not None:
                await self.send_raw(self._held)
                self._held = None
        return time.perf_counter()

    async def silence(self, seconds: float) -> float:
        return await self.speak(bytes(int(seconds * 16000) * 2))

    async def _pace(self) -> None:
        delay = self._clock + self._sent_frames * FRAME_S - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -FRAME_S:
            self._clock = time.perf_counter() - self._sent_frames * FRAME_S
        self._sent_frames += 1

    async def wait_for(self, pred: Any, timeout: float = 10.0, *, keep_talking: bool = True) -> dict[str, Any]:
        """The first non-media message (from the start) matching ``pred``; sends silence while waiting."""
        deadline = time.perf_counter() + timeout
        while True:
            for _, message in self.events:
                if pred(message):
                    return message
            if self.closed.is_set():
                raise ConnectionError(f"closed ({self.close_code} {self.close_reason}) before the expected message")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no matching message in {timeout}s; got {[m['event'] for _, m in self.events]}")
            if keep_talking and not self._tx.locked():
                await self.silence(0.02)
            else:
                await asyncio.sleep(0.01)

    async def wait_reply(self, since: int, timeout: float = 15.0) -> None:
        """Until audio beyond frame ``since`` arrived and then stopped (keeps sending silence)."""
        deadline = time.perf_counter() + timeout
        while len(self.frames) <= since:
            if self.closed.is_set() or time.perf_counter() > deadline:
                raise TimeoutError(f"no reply audio within {timeout}s")
            await self.silence(0.02)
        await self.wait_quiet(max(1.0, deadline - time.perf_counter()))

    async def wait_quiet(self, timeout: float = 20.0) -> None:
        """Until the player has played everything and nothing new arrived for 0.3 s (keeps sending silence)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and not self.closed.is_set():
            now = time.perf_counter()
            last = self.frames[-1].at if self.frames else 0.0
            if now > self._play_end + 0.3 and now > last + 0.3:
                return
            await self.silence(0.04)
        if not self.closed.is_set():
            raise TimeoutError("the agent kept talking")

    async def stop(self) -> None:
        """The caller hangs up: Twilio/Telnyx send ``stop`` and close the stream."""
        stop = {"accountSid": "AC" + "0" * 32, "callSid": self.call_id}
        if self.protocol == "telnyx":
            stop = {"call_control_id": self.call_id}
        await self.send_json({"event": "stop", **self._envelope(), "stop": stop})
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        for task in (self._reader, self._echoer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    # --- listening --------------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                now = time.perf_counter()
                message = json.loads(raw)
                if message.get("event") == "media":
                    self.media_shapes.add(_shape(message))
                    self.frames.append(Frame(now, base64.b64decode(message["media"]["payload"])))
                    self._play_end = max(self._play_end, now) + FRAME_S
                    continue
                self.events.append((now, message))
                if message.get("event") == "mark" and self.echo_marks:
                    self._pending_marks.append((self._play_end, message["mark"]["name"]))
                elif message.get("event") == "clear":
                    self._play_end = now
                    pending, self._pending_marks = self._pending_marks, []
                    for _, name in pending:
                        await self._echo(name)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed.set()

    async def _echo_marks(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            while self._pending_marks and self._pending_marks[0][0] <= now:
                _, name = self._pending_marks.pop(0)
                await self._echo(name)

    async def _echo(self, name: str) -> None:
        await self.send_json({"event": "mark", **self._envelope(), "mark": {"name": name}})

    def sent_events(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, m) for at, m in self.events if m.get("event") == event]

    def audio_pcm(self) -> bytes:
        """Everything received, as PCM16 8 kHz (μ-law decoded)."""
        return ulaw_to_pcm16(b"".join(f.payload for f in self.frames))

    def utterances(self, gap_s: float = 0.1) -> list[list[Frame]]:
        """Received frames split where nothing arrived for ``gap_s`` (one list per utterance)."""
        out: list[list[Frame]] = []
        for frame in self.frames:
            if not out or frame.at - out[-1][-1].at > gap_s:
                out.append([])
            out[-1].append(frame)
        return out


def _shape(message: dict[str, Any]) -> str:
    """A message's structure with its values' types instead of values (``{"event":"media",...}`` → keys)."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in sorted(value.items())}
        return "event" if value == "media" else type(value).__name__

    return json.dumps(walk(message), sort_keys=True)
