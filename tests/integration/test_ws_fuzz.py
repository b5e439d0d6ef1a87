"""Property-based fuzzing of the gateway's three WebSocket protocols on the real stack (NATS, PostgreSQL, the
fake-provider workers, the recorder, the gateway as a subprocess): ``/ws/simulator`` (browser), ``/twilio/media``
and ``/telnyx/media``.

Hypothesis generates connections, each a sequence of frames: valid ones (a ``start`` with a freshly minted
single-use token, media with base64 G.711 or PCM16, marks echoing the gateway's own, DTMF, stop) and mutations
of them: fields deleted or given the wrong type (None, numbers, lists, dicts, huge ints, ``NaN``/``Infinity``
and lone surrogate escapes as raw JSON text), unknown events, random text and binary, truncated JSON, deeply
nested JSON, rarely a frame over the size bound. The frames are sent as fast as the socket takes them (what
arrives is drained, marks are remembered to be echoed), with short pauses now and then so that calls get going;
a closed connection ends its sequence. A few fixed connections (``seeds``: inputs that broke the gateway before
and that random generation hits only now and then) run first, like Hypothesis's ``@example``.

Afterwards the gateway must still be running and healthy, its log must hold no traceback and no exception or
critical line, and an ordinary browser call must still start and hang up cleanly.

Placeholders (``@@CALL@@``, ``@@TOKEN@@``, ...) in the generated text are filled in per connection, so every
connection gets fresh ids and a token of its own however often Hypothesis repeats an example.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from services.gateway.edge.call_tokens import CallTokens
from services.gateway.telephony.telnyx.api import encode_state
from tools.simcaller import SimCaller

SECRET = "ws-fuzz-stream-token-secret-0123456789abcdef"
PROTOCOLS = ("browser", "twilio", "telnyx")
PATHS = {"browser": "/ws/simulator", "twilio": "/twilio/media", "telnyx": "/telnyx/media"}
TARGET_FRAMES = 2000  # per protocol, actually sent
BATCH = 8  # connections per Hypothesis run; runs repeat until the target is reached
BUDGET_S = 35.0  # per protocol: give up (and fail on the frame count) rather than hang the suite
LIMIT = 256_000  # the gateway's MAX_WS_MESSAGE_BYTES (default)
PAUSES = [0.01, 0.03, 0.1, 0.3]  # seconds a connection waits (draining) between frames, now and then

# raw JSON text that json.dumps can't write: the generator puts "@@RAWn@@" strings, rendering swaps them in
RAW = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    '"\\ud800"',
    '"\\udfff"',
    '"ok\\ud83d"',
    '"\\u0000"',
    "-0",
    "1" * 400,  # a huge int Python still parses
    "9" * 5000,  # over Python's int-digit limit: json.loads raises ValueError (not JSONDecodeError)
    "1.5e308",
    "[[[[[[[[]]]]]]]]",
    json.dumps(base64.b64encode(b"[" * 3000).decode()),  # base64 (a Telnyx client_state) of deep JSON
]
FRAME_RE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
EVENTS = ["connected", "start", "media", "mark", "dtmf", "stop", "clear", "error", "Media", "START", ""]
TYPES = ["start", "audio", "stop", "Start", "AUDIO", "clear", "", "ping"]


# --- strategies ---------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 1, max_value=2**300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "-1", "inbound", "outbound", "audio/x-mulaw", "PCMA", "8000", "CA" + "0" * 32]),
)
raw_values = st.sampled_from([f"@@RAW{i}@@" for i in range(len(RAW))])
weird = st.one_of(
    scalars,
    raw_values,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=8), scalars, max_size=4),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner)),
)


def pick(draw: Callable[..., Any], weights: dict[str, int]) -> str:
    """One key of ``weights``, chosen in proportion to its weight (one Hypothesis integer)."""
    n = draw(st.integers(0, sum(weights.values()) - 1))
    for key, weight in weights.items():
        if n < weight:
            return key
        n -= weight
    raise AssertionError("unreachable")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return out
    for key, item in items:
        out.append((*prefix, key))
        out.extend(_paths(item, (*prefix, key)))
    return out


def _containers(value: Any) -> list[dict[str, Any]]:
    found = [value] if isinstance(value, dict) else []
    if isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            found.extend(_containers(item))
    return found


def _at(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        root = root[key]
    return root


def render(draw: Callable[..., Any], msg: Any) -> str:
    text = json.dumps(msg, ensure_ascii=draw(st.booleans()))
    for i, raw in enumerate(RAW):
        text = text.replace(f'"@@RAW{i}@@"', raw)
    return text


@st.composite
def mutated(draw: Callable[..., Any], template: dict[str, Any], kind_key: str) -> str:
    """A valid message, broken 1-3 ways, then rendered (and maybe broken again as text)."""
    msg: Any = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        op = pick(draw, {"delete": 3, "set": 5, "add": 2, "kind": 2, "wrap": 1})
        paths = _paths(msg)
        if op in ("delete", "set") and paths:
            path = draw(st.sampled_from(paths))
            parent = _at(msg, path[:-1])
            if op == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(weird)
        elif op == "add" and (containers := _containers(msg)):
            draw(st.sampled_from(containers))[draw(st.text(max_size=10))] = draw(weird)
        elif op == "kind" and isinstance(msg, dict):
            msg[kind_key] = draw(st.one_of(st.sampled_from(EVENTS + TYPES), st.text(max_size=12), weird))
        elif op == "wrap":
            msg = draw(st.sampled_from([[msg], json.dumps(msg), 42, None, [], "start"]))
    text = render(draw, msg)
    how = pick(draw, {"as_is": 6, "truncate": 2, "insert": 1, "replace": 1})
    if how == "truncate":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif how in ("insert", "replace") and text:
        at = draw(st.integers(0, len(text) - 1))
        junk = draw(st.text(min_size=1, max_size=4))
        text = text[:at] + junk + text[at + (how == "replace") :]
    return text


@st.composite
def g711(draw: Callable[..., Any]) -> str:
    """A base64 μ-law/A-law payload: silence, a tone or noise, mostly 20 ms."""
    size = pick(draw, {"160": 8, "80": 1, "320": 1, "1": 1})
    shape = pick(draw, {"silence": 3, "noise": 3, "tone": 2})
    if shape == "silence":
        data = b"\xff" * int(size)
    elif shape == "noise":
        data = random.Random(draw(st.integers(0, 2**32))).randbytes(int(size))
    else:
        data = bytes(int(128 + 100 * math.sin(i / 3)) & 0xFF for i in range(int(size)))
    return base64.b64encode(data).decode()


def _pcm(draw: Callable[..., Any], even: bool = True) -> bytes:
    samples = pick(draw, {"320": 6, "160": 1, "960": 1, "0": 1})
    rng = random.Random(draw(st.integers(0, 2**32)))
    loud = draw(st.booleans())
    data = b"".join(
        int(rng.randint(-20000, 20000) if loud else rng.randint(-50, 50)).to_bytes(2, "little", signed=True)
        for _ in range(int(samples))
    )
    return data if even else data + b"\x00"


# the protocols' messages, with placeholders (filled per connection, see ``Connection.fill``)


def twilio_messages(payload: str) -> dict[str, dict[str, Any]]:
    account = "AC" + "0" * 32
    return {
        "connected": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        "start": {
            "event": "start",
            "sequenceNumber": "@@SEQ@@",
            "streamSid": "@@STREAM@@",
            "start": {
                "streamSid": "@@STREAM@@",
                "accountSid": account,
                "callSid": "@@CALL@@",
                "tracks": ["inbound"],
                "customParameters": {"token": "@@TOKEN@@"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        },
        "media": {
            "event": "media",
            "sequenceNumber": "@@SEQ@@",
            "streamSid": "@@STREAM@@",
            "media": {"track": "inbound", "chunk": "@@CHUNK:0@@", "timestamp": "@@TS@@", "payload": payload},
        },
        "mark": {"event": "mark", "sequenceNumber": "@@SEQ@@", "streamSid": "@@STREAM@@", "mark": {"name": "@@MARK@@"}},
        "dtmf": {
            "event": "dtmf",
            "sequenceNumber": "@@SEQ@@",
            "streamSid": "@@STREAM@@",
            "dtmf": {"track": "inbound_track", "digit": "5"},
        },
        "stop": {
            "event": "stop",
            "sequenceNumber": "@@SEQ@@",
            "streamSid": "@@STREAM@@",
            "stop": {"accountSid": account, "callSid": "@@CALL@@"},
        },
    }


def telnyx_messages(payload: str, codec: str = "PCMU") -> dict[str, dict[str, Any]]:
    return {
        "connected": {"event": "connected", "version": "1.0.0"},
        "start": {
            "event": "start",
            "sequence_number": "@@SEQ@@",
            "start": {
                "user_id": "3e6f995f-85f7-4705-9741-53b116d28237",
                "call_control_id": "@@CALL@@",
                "call_session_id": "@@STREAM@@",
                "from": "+15550001111",
                "to": "+15550002222",
                "client_state": "@@STATE@@",
                "media_format": {"encoding": codec, "sample_rate": 8000, "channels": 1},
            },
            "stream_id": "@@STREAM@@",
        },
        "media": {
            "event": "media",
            "sequence_number": "@@SEQ@@",
            "media": {"track": "inbound", "chunk": "@@CHUNK:0@@", "timestamp": "@@TS@@", "payload": payload},
            "stream_id": "@@STREAM@@",
        },
        "mark": {
            "event": "mark",
            "sequence_number": "@@SEQ@@",
            "stream_id": "@@STREAM@@",
            "mark": {"name": "@@MARK@@"},
        },
        "dtmf": {
            "event": "dtmf",
            "stream_id": "@@STREAM@@",
            "occurred_at": "2024-01-01T00:00:00.000Z",
            "sequence_number": "@@SEQ@@",
            "dtmf": {"digit": "#"},
        },
        "stop": {
            "event": "stop",
            "sequence_number": "@@SEQ@@",
            "stop": {"user_id": "3e6f995f-85f7-4705-9741-53b116d28237", "call_control_id": "@@CALL@@"},
            "stream_id": "@@STREAM@@",
        },
        "error": {"event": "error", "payload": {"code": 100002, "title": "Unknown error", "detail": "fuzz"}},
    }


def browser_messages(payload: str, sample_rate: int = 16000, token: bool = False) -> dict[str, dict[str, Any]]:
    start: dict[str, Any] = {"type": "start", "sample_rate": sample_rate, "agent_id": None}
    if token:
        start["token"] = "@@TOKEN@@"
    return {"start": start, "audio": {"type": "audio", "data": payload}, "stop": {"type": "stop"}}


# ("text", str) | ("bytes", bytes) | ("big_text", extra) | ("big_bytes", extra) | ("deep", n) | ("pause", s)
Frame = tuple[str, Any]


@st.composite
def garbage(draw: Callable[..., Any]) -> Frame:
    kind = pick(draw, {"text": 4, "bytes": 3, "json": 2, "deep": 1})
    if kind == "text":
        return ("text", draw(st.text(max_size=60)))
    if kind == "bytes":
        return ("bytes", draw(st.binary(max_size=400)))
    if kind == "json":
        return ("text", render(draw, draw(weird)))
    return ("deep", draw(st.sampled_from([50, 1100, 5000, 40_000])))


@st.composite
def phone_frame(draw: Callable[..., Any], protocol: str) -> Frame:
    codec = "PCMU"
    msgs = twilio_messages(draw(g711())) if protocol == "twilio" else telnyx_messages(draw(g711()), codec)
    kind = pick(
        draw,
        {
            "media": 40,
            "mutated": 16,
            "mark": 4,
            "dtmf": 2,
            "garbage": 6,
            "unknown": 2,
            "again": 1,
            "rare": 1,
            "pause": 1,
        },
    )
    if kind == "media":
        text = json.dumps(msgs["media"])
        jitter = pick(draw, {"0": 8, "1": 1, "-1": 1, "7": 1})  # Telnyx: out of order within (and past) the window
        return ("text", text.replace("@@CHUNK:0@@", f"@@CHUNK:{jitter}@@"))
    if kind in ("mark", "dtmf"):
        return ("text", json.dumps(msgs[kind]))
    if kind == "pause":
        return ("pause", draw(st.sampled_from(PAUSES)))
    if kind == "mutated":
        name = draw(st.sampled_from(sorted(msgs)))
        return ("text", draw(mutated(msgs[name], "event")))
    if kind == "garbage":
        return draw(garbage())
    if kind == "unknown":
        return ("text", json.dumps({"event": draw(st.one_of(st.sampled_from(EVENTS), st.text(max_size=12)))}))
    if kind == "again":
        return ("text", json.dumps(draw(st.sampled_from([msgs["start"], msgs["connected"]]))))
    rare = pick(draw, {"stop": 4, "big_text": 1, "big_bytes": 1})
    if rare == "stop":
        return ("text", json.dumps(msgs["stop"]))
    return (rare, draw(st.integers(1, 2000)))


@st.composite
def browser_frame(draw: Callable[..., Any]) -> Frame:
    msgs = browser_messages(base64.b64encode(_pcm(draw)).decode())
    kind = pick(
        draw,
        {"pcm": 40, "audio": 6, "mutated": 10, "odd": 2, "garbage": 5, "unknown": 2, "again": 1, "rare": 1, "pause": 1},
    )
    if kind == "pcm":
        return ("bytes", _pcm(draw))
    if kind == "odd":
        return ("bytes", _pcm(draw, even=False))
    if kind == "pause":
        return ("pause", draw(st.sampled_from(PAUSES)))
    if kind == "audio":
        return ("text", json.dumps(msgs["audio"]))
    if kind == "mutated":
        name = draw(st.sampled_from(sorted(msgs)))
        return ("text", draw(mutated(msgs[name], "type")))
    if kind == "garbage":
        return draw(garbage())
    if kind == "unknown":
        return ("text", json.dumps({"type": draw(st.one_of(st.sampled_from(TYPES), st.text(max_size=12)))}))
    if kind == "again":
        return ("text", json.dumps(msgs["start"]))
    rare = pick(draw, {"stop": 4, "big_text": 1, "big_bytes": 1})
    if rare == "stop":
        return ("text", json.dumps(msgs["stop"]))
    return (rare, draw(st.integers(1, 2000)))


@st.composite
def connection(draw: Callable[..., Any], protocol: str) -> list[Frame]:
    """The frames of one connection: (maybe ``connected``), a start (mostly valid), then a body."""
    frames: list[Frame] = []
    opening = pick(draw, {"valid": 14, "mutated": 4, "garbage": 1, "body_first": 1, "nothing": 1})
    if protocol == "browser":
        msgs = browser_messages(
            "", draw(st.sampled_from([8000, 16000, 24000, 48000])), token=draw(st.integers(0, 3)) == 0
        )
        body = browser_frame()
        kind_key = "type"
    else:
        payload = draw(g711())
        if protocol == "twilio":
            msgs = twilio_messages(payload)
        else:
            msgs = telnyx_messages(payload, draw(st.sampled_from(["PCMU", "PCMU", "PCMA", "pcmu"])))
        body = phone_frame(protocol)
        kind_key = "event"
        if draw(st.integers(0, 4)) > 0:
            frames.append(("text", json.dumps(msgs["connected"])))
    if opening == "valid":
        frames.append(("text", json.dumps(msgs["start"])))
        frames.append(("pause", draw(st.sampled_from([0.0, 0.02, 0.1, 0.4]))))  # often: let the call start
    elif opening == "mutated":
        frames.append(("text", draw(mutated(msgs["start"], kind_key))))
    elif opening == "garbage":
        frames.append(draw(garbage()))
    elif opening == "body_first":
        frames.append(draw(body))
    if opening != "nothing":
        frames.extend(draw(st.lists(body, min_size=30, max_size=100)))
    return frames


# --- running connections ------------------------------------------------------------------------------------


@dataclass
class Stats:
    frames: int = 0
    connections: int = 0
    started: int = 0  # connections the gateway answered with call audio/messages
    closes: Counter[str] = field(default_factory=Counter)


@dataclass
class Connection:
    protocol: str
    tokens: CallTokens
    call_id: str = ""
    stream_id: str = ""
    token: str = ""
    seq: int = 0
    chunk: int = 0
    marks: list[str] = field(default_factory=list)
    started: bool = False  # the gateway answered with a call (browser: ``started``; phone: media)

    def __post_init__(self) -> None:
        if self.protocol == "twilio":
            self.call_id, self.stream_id = "CA" + uuid.uuid4().hex, "MZ" + uuid.uuid4().hex
            self.token = self.tokens.mint("twilio", call_id=self.call_id)
        elif self.protocol == "telnyx":
            self.call_id, self.stream_id = "v3:" + uuid.uuid4().hex + "_fuzz-" + uuid.uuid4().hex[:8], str(uuid.uuid4())
            self.token = self.tokens.mint("telnyx", call_id=self.call_id)
        else:
            self.token = self.tokens.mint("browser")

    def _chunk(self, match: re.Match[str]) -> str:
        self.chunk += 1
        return str(self.chunk + int(match.group(1)))

    def fill(self, text: str) -> str:
        self.seq += 1
        text = (
            text.replace("@@CALL@@", self.call_id)
            .replace("@@STREAM@@", self.stream_id)
            .replace("@@TOKEN@@", self.token)
            .replace("@@STATE@@", encode_state({"token": self.token}))
            .replace("@@SEQ@@", str(self.seq))
            .replace("@@TS@@", str(self.chunk * 20))
            .replace("@@MARK@@", self.marks[-1] if self.marks else "no-such-mark")
        )
        return re.sub(r"@@CHUNK:(-?\d+)@@", self._chunk, text)

    def materialize(self, frame: Frame) -> str | bytes:
        kind, value = frame
        if kind == "text":
            return self.fill(value)
        if kind == "bytes":
            return value
        if kind == "big_bytes":
            return bytes(LIMIT + value)
        if kind == "deep":
            return ('{"event":' if self.protocol != "browser" else '{"type":') + "[" * value
        # big_text: a valid-looking audio message padded over the limit
        pad = "A" * (LIMIT + value)
        if self.protocol == "browser":
            return json.dumps({"type": "audio", "data": pad})
        return self.fill(
            json.dumps(twilio_messages(pad)["media"] if self.protocol == "twilio" else telnyx_messages(pad)["media"])
        )

    def drain(self, ws: Any, wait: float = 0.0) -> None:
        """Take whatever the gateway sent (for ``wait`` seconds, or what is there now); remember its marks so
        that they can be echoed."""
        until = time.monotonic() + wait
        while True:
            try:
                message = ws.recv(timeout=max(0.0, until - time.monotonic()))
            except TimeoutError:
                return
            if isinstance(message, bytes):
                continue
            try:
                parsed = json.loads(message)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                self.started = self.started or parsed.get("type") == "started" or parsed.get("event") == "media"
                if parsed.get("event") == "mark":
                    self.marks.append(str(parsed.get("mark", {}).get("name", "")))


def run_connection(url: str, protocol: str, frames: list[Frame], tokens: CallTokens, stats: Stats) -> None:
    conn = Connection(protocol, tokens)
    stats.connections += 1
    with connect(
        url, open_timeout=5, close_timeout=1, max_size=None, max_queue=None, compression=None, proxy=None
    ) as ws:
        try:
            for frame in frames:
                if frame[0] == "pause":
                    conn.drain(ws, frame[1])
                    continue
                ws.send(conn.materialize(frame))
                stats.frames += 1
                conn.drain(ws)
            conn.drain(ws)
        except ConnectionClosed:
            pass
        ws.close()
        stats.closes[str(ws.close_code)] += 1
        stats.started += conn.started


def seeds(protocol: str) -> list[list[Frame]]:
    """Connections always tried first (like Hypothesis's ``@example``): inputs that once broke the gateway and
    that random generation only hits now and then."""
    ulaw = base64.b64encode(b"\xff" * 160).decode()
    deep: Frame = ("deep", 5000)
    kind_key = "event" if protocol != "browser" else "type"
    digits = f'{{"{kind_key}":"audio","data":{"9" * 5000}}}'
    if protocol == "browser":
        start = json.dumps(browser_messages(ulaw)["start"])
        wait: Frame = ("pause", 0.05)
        return [
            [("text", start), wait, ("text", json.dumps({"type": "audio", "data": "\u00e9\u00e9\u00e9\u00e9"}))],
            [("text", start), wait, deep],
            [("text", start), wait, ("text", digits)],
        ]
    msgs = twilio_messages(ulaw) if protocol == "twilio" else telnyx_messages(ulaw)
    opening: list[Frame] = [("text", json.dumps(msgs["connected"])), ("text", json.dumps(msgs["start"]))]
    cases = [
        [("text", json.dumps(msgs["connected"])), deep],  # before the start
        [("text", json.dumps(msgs["connected"])), ("text", digits)],
        [*opening, ("pause", 0.05), deep],  # in the call
        [*opening, ("pause", 0.05), ("text", digits)],
    ]
    if protocol == "telnyx":
        media = json.dumps(msgs["media"])
        state = copy.deepcopy(msgs["start"])
        state["start"]["client_state"] = base64.b64encode(b"[" * 3000).decode()
        cases += [
            [*opening, ("text", media.replace('"@@CHUNK:0@@"', "Infinity"))],
            [*opening, ("text", media.replace('"@@CHUNK:0@@"', "null").replace('"@@SEQ@@"', "1e999"))],
            [("text", json.dumps(state))],
        ]
    return cases


def fuzz(protocol: str, base: str, tokens: CallTokens) -> Stats:
    """The seeds, then Hypothesis runs of ``BATCH`` connections each until ``TARGET_FRAMES`` frames went out
    (or the time budget ran out)."""
    stats = Stats()
    url = base + PATHS[protocol]
    for frames in seeds(protocol):
        run_connection(url, protocol, frames, tokens, stats)

    @settings(
        max_examples=BATCH,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: a failure is the gateway's, the frames are printed
        suppress_health_check=list(HealthCheck),
    )
    @given(frames=connection(protocol))
    def one(frames: list[Frame]) -> None:
        run_connection(url, protocol, frames, tokens, stats)

    deadline = time.monotonic() + BUDGET_S
    while stats.frames < TARGET_FRAMES and time.monotonic() < deadline:
        one()
    return stats


# --- the test -----------------------------------------------------------------------------------------------


def unhandled_errors(output: str) -> list[tuple[str, str]]:
    """(headline, traceback) of every unhandled error in the gateway's output: plain-text tracebacks (uvicorn's
    "Exception in ASGI application" on stderr) and JSON log lines at critical level or carrying an
    ``exception`` (the key structlog's ``format_exc_info`` writes the traceback to)."""
    found: list[tuple[str, str]] = []
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and (entry.get("level") == "critical" or "exception" in entry):
                where = f"{entry.get('client_type', 'browser')} call" if "call_id" in entry else "no call"
                headline = f"log event {entry.get('event')!r} ({entry.get('level')}, {where})"
                found.append((headline, str(entry.get("exception", line))))
        elif "Traceback" in line or "Exception in ASGI" in line:
            block = [line]
            while i < len(lines) and not lines[i].startswith(("{", "ERROR:", "WARNING:", "INFO:")):
                block.append(lines[i])
                i += 1
            found.append((f"stderr: {line.strip()}", "\n".join(block)))
    return found


def signature(traceback: str) -> str:
    """The exception and the innermost frame of our own code: what tells one bug from another."""
    last = [t for t in traceback.strip().splitlines() if t.strip()][-1:] or ["?"]
    ours = [f"{m[0].split('/work/main/')[-1]}:{m[1]} in {m[2]}" for m in FRAME_RE.findall(traceback)]
    ours = [f for f in ours if "site-packages" not in f and "/lib/python" not in f]
    return f"{last[0].strip()[:160]} at {ours[-1] if ours else '?'}"


def describe(errors: list[tuple[str, str]]) -> str:
    groups: dict[str, list[tuple[str, str]]] = {}
    for headline, traceback in errors:
        groups.setdefault(f"{headline}: {signature(traceback)}", []).append((headline, traceback))
    parts = [f"{len(errors)} unhandled errors in the gateway's log, {len(groups)} distinct:"]
    for key, items in groups.items():
        ours = [
            ln
            for ln in items[0][1].splitlines()
            if "site-packages" not in ln and "/lib/python" not in ln and ln.strip().strip("^~")
        ]
        parts.append(f"\n[{len(items)}x] {key}\n" + "\n".join(ours[-12:]))
    return "\n".join(parts)


@pytest.fixture
async def stack(start_stack):
    return await start_stack(
        {
            "STREAM_TOKEN_SECRET": SECRET,
            "MAX_BROWSER_CALLS_PER_CLIENT": "64",  # sequential sockets, but a closed one may still be ending
            "TELEPHONY_PROVIDERS": "twilio,telnyx",
        }
    )


async def test_websocket_protocols_survive_fuzzing(stack) -> None:
    gateway = stack
    tokens = CallTokens(SECRET.encode(), ttl_s=120)
    base = f"ws://127.0.0.1:{gateway.port}"
    results: dict[str, Stats] = {}
    timings: dict[str, float] = {}
    for protocol in PROTOCOLS:
        began = time.monotonic()
        results[protocol] = await asyncio.to_thread(fuzz, protocol, base, tokens)
        timings[protocol] = time.monotonic() - began
        gateway.assert_running()
    for protocol, s in results.items():  # shown with -s
        print(
            f"{protocol}: {s.frames} frames in {s.connections} connections ({s.started} calls started), "
            f"{timings[protocol]:.1f}s, close codes {dict(s.closes)}"
        )

    gateway.assert_running()
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/api/system/health")
        assert ready.status_code in (200, 503), ready.text

    # an ordinary call still works
    caller = SimCaller(f"{base}/ws/simulator")
    started = await caller.connect()
    assert started["type"] == "started", started
    await caller.send_silence(0.2)
    assert caller.ws is not None
    await caller.ws.send(json.dumps({"type": "stop"}))  # hang up, then wait for the gateway to end the call
    for _ in range(100):
        if caller.closed:
            break
        await asyncio.sleep(0.05)
    await caller.close()
    assert caller.close_code == 1000, caller.log[-5:]
    assert caller.events("ended")[-1]["reason"] == "caller_hangup", caller.log[-5:]

    await asyncio.sleep(0.5)  # let the last sessions' end be logged
    gateway.assert_running()
    errors = unhandled_errors(gateway.output())
    assert not errors, describe(errors)
    for protocol, s in results.items():
        assert s.frames >= TARGET_FRAMES, f"{protocol}: only {s.frames} frames sent in {BUDGET_S:.0f}s"
