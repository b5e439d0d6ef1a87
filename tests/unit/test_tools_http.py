"""HTTP tools against a real local HTTP server: the signed request a receiver gets, and every way a tool can
fail turned into an error for the LLM (never an exception)."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import string
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from services.gateway.call.http_tool import MAX_RESULT_BYTES, call_http_tool, tools_client
from shared.agent_tools import ToolDef
from shared.signing import key_for, verify

SECRET = "test-secret"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ToolServer:
    """A tiny HTTP/1.1 server on 127.0.0.1: records each request, answers after ``delay_s`` (noticing a client
    that gives up first), with ``status``, ``body`` and ``headers``."""

    status: int = 200
    body: bytes = b'{"temp_c": 21}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # a client hung up before the answer
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # a request came in
    port: int = 0

    async def __aenter__(self) -> ToolServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tool"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:] if ":" in line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.seen.append(Seen(method, target, headers, body))
            self.arrived.set()
            if self.delay_s:
                try:
                    if await asyncio.wait_for(reader.read(1), self.delay_s) == b"":
                        self.gone.set()
                        return
                except TimeoutError:
                    pass
            extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
            head_out = f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.body)}\r\n{extra}Connection: close\r\n"
            writer.write(head_out.encode() + b"\r\n" + self.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.gone.set()
        finally:
            writer.close()


def tool(url: str, **fields: object) -> ToolDef:
    return ToolDef(kind="http", name="weather", url=url, parameters=SCHEMA, **fields)  # type: ignore[arg-type]


async def _call(t: ToolDef, arguments: dict[str, object]) -> tuple[str, bool]:
    async with httpx.AsyncClient() as client:
        result = await call_http_tool(client, t, arguments, secret=SECRET, call_id="call-1")
    return result.text, result.ok


async def test_a_post_carries_the_arguments_signed_and_the_answer_comes_back() -> None:
    async with ToolServer() as server:
        text, ok = await _call(tool(server.url), {"city": "Málaga"})
    assert (text, ok) == ('{"temp_c": 21}', True)
    [seen] = server.seen
    assert seen.method == "POST" and seen.target == "/tool"
    assert json.loads(seen.body) == {"city": "Málaga"}
    assert seen.headers["content-type"] == "application/json"
    key = key_for(SECRET, server.url)  # the receiver's own key: the tool URL's, not the master
    assert verify(key, seen.body, seen.headers["x-victoria-signature"])
    assert not verify(SECRET, seen.body, seen.headers["x-victoria-signature"])
    assert not verify(key_for(SECRET, server.url + "/other"), seen.body, seen.headers["x-victoria-signature"])
    assert seen.headers["x-victoria-call-id"] == "call-1" and seen.headers["x-victoria-tool"] == "weather"
    assert len(seen.headers["x-victoria-delivery"]) >= 16


async def test_a_get_sends_a_signed_query_string() -> None:
    async with ToolServer() as server:
        _, ok = await _call(tool(server.url, method="GET"), {"city": "Rome & Paris"})
    [seen] = server.seen
    query = urlsplit(seen.target).query
    assert ok and seen.method == "GET" and seen.body == b""
    assert dict(parse_qsl(query)) == {"city": "Rome & Paris"}
    assert verify(key_for(SECRET, server.url), query.encode(), seen.headers["x-victoria-signature"])


async def test_each_delivery_has_its_own_id() -> None:
    async with ToolServer() as server:
        await _call(tool(server.url), {"city": "a"})
        await _call(tool(server.url), {"city": "a"})
    assert len({s.headers["x-victoria-delivery"] for s in server.seen}) == 2


@pytest.mark.parametrize("status", [404, 500, 503])
async def test_a_non_2xx_answer_is_an_error_for_the_llm(status: int) -> None:
    async with ToolServer(status=status, body=b"no such city") as server:
        text, ok = await _call(tool(server.url), {"city": "x"})
    assert not ok
    assert json.loads(text) == {"error": f"the tool answered HTTP {status}: no such city"}


async def test_a_slow_tool_times_out_and_the_server_sees_the_request_dropped() -> None:
    async with ToolServer(delay_s=5.0) as server:
        started = time.monotonic()
        text, ok = await _call(tool(server.url, timeout_s=0.3), {"city": "x"})
        took = time.monotonic() - started
        await asyncio.wait_for(server.gone.wait(), 2)
    assert not ok and "did not answer within 0.3s" in json.loads(text)["error"]
    assert 0.3 <= took < 1.5


async def test_an_unreachable_tool_is_an_error() -> None:
    async with ToolServer() as server:
        url = server.url
    text, ok = await _call(tool(url), {"city": "x"})  # the server is closed: connection refused
    assert not ok and json.loads(text)["error"].startswith("could not reach the tool")


async def test_a_redirect_is_not_followed() -> None:
    async with ToolServer() as elsewhere:
        async with ToolServer(status=302, body=b"", headers={"Location": elsewhere.url}) as server:
            text, ok = await _call(tool(server.url), {"city": "x"})
    assert not ok and "HTTP 302" in json.loads(text)["error"]
    assert len(server.seen) == 1 and elsewhere.seen == []


async def test_the_answer_is_cut_at_4_kb() -> None:
    async with ToolServer(body=b"x" * (MAX_RESULT_BYTES * 3)) as server:
        text, ok = await _call(tool(server.url), {"city": "x"})
    assert ok and text == "x" * MAX_RESULT_BYTES


async def test_the_gateway_client_leaves_the_timeout_to_the_tool_and_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpx's default 5 s read timeout would cut a tool of ``timeout_s=20`` short; an environment proxy (or
    ``.netrc``) must not see tool requests."""
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    client = tools_client()
    assert client.timeout == httpx.Timeout(None)
    assert not client.trust_env and not client.follow_redirects
    async with ToolServer() as server, client:
        result = await call_http_tool(client, tool(server.url, timeout_s=20), {"city": "x"}, secret=SECRET, call_id="c")
    assert result.ok and len(server.seen) == 1


async def test_the_answer_is_asked_for_uncompressed_and_a_compressed_one_is_decoded_only_up_to_the_cap() -> None:
    bomb = gzip.compress(b"x" * 2_000_000)  # ~2 KB on the wire, 2 MB inflated
    assert len(bomb) < MAX_RESULT_BYTES
    async with ToolServer(body=bomb, headers={"Content-Encoding": "gzip"}) as server:
        text, ok = await _call(tool(server.url), {"city": "x"})
    assert server.seen[0].headers["accept-encoding"] == "identity"
    assert ok and text == "x" * MAX_RESULT_BYTES


async def test_a_long_compressed_answer_is_cut_on_the_wire_then_decoded() -> None:
    letters = "".join(random.Random(7).choices(string.ascii_letters, k=20_000))
    body = gzip.compress(letters.encode())
    assert len(body) > MAX_RESULT_BYTES
    async with ToolServer(body=body, headers={"Content-Encoding": "gzip"}) as server:
        text, ok = await _call(tool(server.url), {"city": "x"})
    assert ok and text == letters[:MAX_RESULT_BYTES]


async def test_an_answer_in_an_unknown_encoding_is_an_error() -> None:
    async with ToolServer(body=b"\x8b\x00garbage", headers={"Content-Encoding": "br"}) as server:
        text, ok = await _call(tool(server.url), {"city": "x"})
    assert not ok and json.loads(text) == {"error": "the tool answered in an unsupported encoding (br)"}
