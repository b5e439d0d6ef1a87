"""An agent's HTTP tool: the LLM's arguments sent to the one URL the agent configured, signed, and the answer
given back to the LLM as text.

Only that URL is ever requested (redirects are not followed: a 3xx is an error), with the tool's timeout. The
body is the arguments as JSON (GET: the query string), signed with ``shared.signing`` over the exact bytes sent
(for GET, the query string), so the receiver can check it came from this deployment and was not replayed.
Whatever goes wrong — a non-2xx answer, a timeout, a refused connection — becomes ``{"error": ...}`` for the
LLM to deal with: a tool never fails the call.

The answer is asked for uncompressed (``Accept-Encoding: identity``) and read raw, at most
:data:`MAX_RESULT_BYTES` of it: a server that compresses anyway has only those bytes decoded (gzip or deflate,
output capped too), any other encoding is an error; no body is ever buffered unbounded.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from shared.agent_tools import ToolDef
from shared.events import new_id
from shared.signing import DELIVERY_HEADER, SIGNATURE_HEADER, key_for, sign

MAX_RESULT_BYTES = 4096


@dataclass(frozen=True)
class HttpResult:
    text: str  # what the LLM is given back
    ok: bool


def _error(message: str) -> HttpResult:
    return HttpResult(json.dumps({"error": message}), ok=False)


def build_request(tool: ToolDef, arguments: dict[str, Any], *, secret: str, call_id: str) -> httpx.Request:
    """The signed request for ``arguments`` (exposed for tests: what a receiver gets)."""
    assert tool.url is not None
    url = str(tool.url)
    headers = {
        DELIVERY_HEADER: new_id(),
        "X-Victoria-Call-Id": call_id,
        "X-Victoria-Tool": tool.tool_name,
        "Accept-Encoding": "identity",  # read raw and capped (:func:`_read_capped`): nothing to inflate
    }
    if tool.method == "GET":
        query = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()})
        headers[SIGNATURE_HEADER] = sign(key_for(secret, url), query.encode())
        joined = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
        return httpx.Request("GET", joined, headers=headers)
    body = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False).encode()
    headers["Content-Type"] = "application/json"
    headers[SIGNATURE_HEADER] = sign(key_for(secret, url), body)
    return httpx.Request(tool.method, url, headers=headers, content=body)


async def call_http_tool(
    client: httpx.AsyncClient, tool: ToolDef, arguments: dict[str, Any], *, secret: str, call_id: str
) -> HttpResult:
    """Send the request and read at most :data:`MAX_RESULT_BYTES` of the answer."""
    request = build_request(tool, arguments, secret=secret, call_id=call_id)
    try:
        async with asyncio.timeout(tool.timeout_s):  # the whole exchange, not each read
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                body = await _read_capped(response)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return _error(f"the tool did not answer within {tool.timeout_s:g}s")
    except httpx.HTTPError as exc:
        return _error(f"could not reach the tool: {type(exc).__name__}")
    except UnreadableAnswer as exc:
        return _error(str(exc))
    text = body.decode("utf-8", errors="replace")
    if not 200 <= response.status_code < 300:
        return _error(f"the tool answered HTTP {response.status_code}: {text[:500]}")
    return HttpResult(text, ok=True)


async def _read_capped(response: httpx.Response) -> bytes:
    """At most :data:`MAX_RESULT_BYTES` of the body as sent, then decoded when the server compressed it
    anyway (gzip, deflate: only those bytes, and at most that much output); any other encoding is refused."""
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= MAX_RESULT_BYTES:
            break
    raw = bytes(data[:MAX_RESULT_BYTES])
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise UnreadableAnswer(f"the tool answered in an unsupported encoding ({encoding[:40]})")
    try:  # (wbits 47: a gzip or zlib header, whichever it is; a cut stream decodes as far as it goes)
        return zlib.decompressobj(wbits=47).decompress(raw, MAX_RESULT_BYTES)
    except zlib.error:
        raise UnreadableAnswer(f"the tool's {encoding} answer could not be decoded") from None


class UnreadableAnswer(Exception):
    """The answer came in a form the LLM cannot be given."""


def tools_client() -> httpx.AsyncClient:
    """The gateway's one client for every call's HTTP tools: pooled connections; never follows a redirect
    (only the configured URL is requested); no timeout of its own (each tool's ``timeout_s`` bounds the whole
    exchange, :func:`call_http_tool`: httpx's default 5 s read timeout would cut a slower tool short); and
    nothing from the environment (no proxy, no ``.netrc`` credentials sent to a tool's URL)."""
    return httpx.AsyncClient(
        follow_redirects=False, timeout=None, trust_env=False, limits=httpx.Limits(max_connections=200)
    )
