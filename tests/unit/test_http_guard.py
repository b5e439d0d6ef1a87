"""The gateway's HTTP hardening and dashboard serving, on bare FastAPI apps (no NATS, no database)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel, SecretStr

from services.gateway.api.admin import router as admin_router
from services.gateway.api.calls import csv_cell
from services.gateway.edge.http_guard import (
    CSP,
    BodyLimit,
    JsonHygiene,
    RateLimiter,
    SecurityHeaders,
    TokenBuckets,
    json_body_problems,
    request_validation_handler,
)
from services.gateway.web.dashboard import mount_dashboard
from shared.settings import GatewaySettings


def test_token_bucket_burst_refill_and_retry_after() -> None:
    buckets = TokenBuckets(per_minute=60, burst=2)
    assert buckets.take("a", now=0.0) == 0 and buckets.take("a", now=0.0) == 0
    assert buckets.take("a", now=0.0) == pytest.approx(1.0)  # one token a second
    assert buckets.take("a", now=0.5) == pytest.approx(0.5)
    assert buckets.take("a", now=1.0) == 0  # refilled
    assert buckets.take("b", now=0.0) == 0  # buckets are independent


def test_token_bucket_memory_is_bounded() -> None:
    buckets = TokenBuckets(per_minute=60, burst=1, max_entries=100)
    for i in range(1000):
        buckets.take(f"id-{i}", now=float(i) * 0.001)
    assert len(buckets._buckets) <= 101


def _guarded() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RateLimiter, per_minute=60, burst=2, keys=[b"good"])
    app.add_middleware(SecurityHeaders)
    return app


def test_rate_limit_and_headers_on_a_bare_app() -> None:
    client = TestClient(_guarded())
    assert [client.get("/api/v1/ping").status_code for _ in range(3)] == [200, 200, 429]
    limited = client.get("/api/v1/ping")
    assert limited.headers["retry-after"] == "1" and limited.headers["x-frame-options"] == "DENY"
    assert client.get("/api/v1/ping", headers={"X-API-Key": "good"}).status_code == 200  # a valid key: own bucket
    assert all(client.get("/health").status_code == 200 for _ in range(5))
    ok = client.get("/health")
    assert ok.headers["content-security-policy"] == CSP
    assert "strict-transport-security" not in ok.headers
    assert "strict-transport-security" in client.get("/health", headers={"X-Forwarded-Proto": "https"}).headers
    assert "strict-transport-security" in TestClient(_guarded(), base_url="https://testserver").get("/health").headers


def test_rate_limit_zero_is_off() -> None:
    app = FastAPI()

    @app.get("/api/v1/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RateLimiter, per_minute=0, burst=1)
    client = TestClient(app)
    assert all(client.get("/api/v1/ping").status_code == 200 for _ in range(10))


def _dashboard(dist: Path) -> TestClient:
    app = FastAPI()

    @app.get("/api/v1/thing")
    async def thing() -> dict[str, int]:
        return {"n": 1}

    mount_dashboard(app, dist)
    return TestClient(app)


def test_dashboard_serves_files_and_falls_back_to_the_app(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<div id="root"></div>')
    (dist / "assets" / "app-123.js").write_text("console.log(1)")
    (dist / "mic-worklet.js").write_text("registerProcessor()")
    (tmp_path / "secret.txt").write_text("outside dist")
    client = _dashboard(dist)

    for path in ("/", "/agents", "/history", "/history/v3:abc.def"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.text == '<div id="root"></div>', path
        assert resp.headers["cache-control"] == "no-cache"
    asset = client.get("/assets/app-123.js")
    assert asset.text == "console.log(1)" and "immutable" in asset.headers["cache-control"]
    assert client.get("/mic-worklet.js").text == "registerProcessor()"
    assert client.get("/assets/gone-456.js").status_code == 404
    assert client.get("/favicon.ico").status_code == 404
    assert client.get("/api/v1/thing").json() == {"n": 1}
    assert client.get("/api/v1/other").status_code == 404
    assert client.get("/ws/anything").status_code == 404
    assert client.get("/..%2fsecret.txt").text != "outside dist"
    assert client.get("/assets/..%2f..%2fsecret.txt").text != "outside dist"
    assert client.get("/simulator.html").text == '<div id="root"></div>'  # the old page's address: the app's


def test_dashboard_without_a_build_says_how_to_build(tmp_path: Path) -> None:
    resp = _dashboard(tmp_path / "missing").get("/agents")
    assert resp.status_code == 503 and "npm run build" in resp.text
    assert "python -m tools.talk" in resp.text and 'href="/docs"' in resp.text  # what works meanwhile
    assert "simulator.html" not in resp.text


# --- rate limiting: one bucket for every unknown key --------------------------------------------------------


def test_token_bucket_peek_takes_nothing() -> None:
    buckets = TokenBuckets(per_minute=60, burst=1)
    assert buckets.peek("a", now=0.0) == 0 and buckets.peek("a", now=0.0) == 0
    assert buckets.take("a", now=0.0) == 0
    assert buckets.peek("a", now=0.0) == pytest.approx(1.0) and buckets.peek("a", now=0.25) == pytest.approx(0.75)
    assert buckets.peek("a", now=1.0) == 0


def _pinged(**limiter: Any) -> TestClient:
    app = FastAPI()

    @app.get("/api/v1/ping")
    @app.get("/admin/ping")
    @app.get("/administrator")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RateLimiter, **limiter)
    return TestClient(app)


def test_random_bad_keys_share_one_bucket_per_address() -> None:
    client = _pinged(per_minute=60, burst=3, keys=[b"good", b"admin"])
    codes = [client.get("/api/v1/ping", headers={"X-API-Key": secrets.token_hex(8)}).status_code for _ in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]
    assert client.get("/api/v1/ping").status_code == 429  # no key at all: the same bucket
    assert [client.get("/api/v1/ping", headers={"X-API-Key": "good"}).status_code for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]
    assert client.get("/api/v1/ping", headers={"X-API-Key": "admin"}).status_code == 200  # each valid key its own


def test_rate_limit_covers_admin_but_not_lookalike_paths() -> None:
    client = _pinged(per_minute=60, burst=2)
    assert [client.get("/admin/ping").status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/v1/ping").status_code == 429  # one bucket for the address across both prefixes
    assert all(client.get("/administrator").status_code == 200 for _ in range(5))


# --- body limit ---------------------------------------------------------------------------------------------


def _limited_app(reads: list[int]) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/echo")
    @app.post("/twilio/voice")
    @app.post("/telnyx/events")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        reads.append(len(body))
        return {"size": len(body)}

    app.add_middleware(BodyLimit, max_bytes=10_000)
    return app


async def _chunks(total: int, size: int = 4096, sent: list[int] | None = None) -> AsyncIterator[bytes]:
    while total > 0:
        chunk = b"x" * min(size, total)
        total -= len(chunk)
        if sent is not None:
            sent.append(len(chunk))
        yield chunk


async def test_body_limit_by_content_length_and_while_streaming() -> None:
    reads: list[int] = []
    transport = httpx.ASGITransport(app=_limited_app(reads))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.post("/api/v1/echo", content=b"x" * 10_000)
        assert ok.status_code == 200 and ok.json() == {"size": 10_000}
        big = await client.post("/api/v1/echo", content=b"x" * 10_001)
        assert big.status_code == 413 and big.json() == {"detail": "request body over 10000 bytes"}
        assert reads == [10_000]  # the handler never ran for the declared oversize body

        sent: list[int] = []
        streamed = await client.post("/api/v1/echo", content=_chunks(1_000_000, sent=sent))
        assert streamed.status_code == 413 and streamed.json() == {"detail": "request body over 10000 bytes"}
        assert reads == [10_000]
        assert sum(sent) < 20_000  # answered as soon as it passed the limit, not after the whole megabyte

        small = await client.post("/api/v1/echo", content=_chunks(9_000))
        assert small.status_code == 200 and small.json() == {"size": 9_000}

        # the webhook prefixes have limits of their own
        assert (await client.post("/twilio/voice", content=b"x" * 64_000)).status_code == 200
        assert (await client.post("/twilio/voice", content=b"x" * 64_001)).status_code == 413
        assert (await client.post("/telnyx/events", content=b"x" * 256_000)).status_code == 200
        over = await client.post("/telnyx/events", content=_chunks(300_000))
        assert over.status_code == 413 and "256000" in over.json()["detail"]


async def test_body_limit_after_the_app_answered_just_stops_reading() -> None:
    got: list[Any] = []

    async def early(scope: Any, receive: Any, send: Any) -> None:  # answers first, then reads the body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            got.append(message["type"])
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.body", "body": b"done"})

    transport = httpx.ASGITransport(app=BodyLimit(early, max_bytes=5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.post("/api/v1/x", content=_chunks(50_000, size=1000))
    assert resp.status_code == 200 and resp.content == b"done"  # no second response start
    assert got[-1] == "http.disconnect" and got.count("http.request") == 5


def test_body_limit_leaves_websockets_alone() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text(await socket.receive_text())
        await socket.close()

    app.add_middleware(BodyLimit, max_bytes=1024)
    with TestClient(app).websocket_connect("/ws") as socket:
        socket.send_text("y" * 5000)
        assert len(socket.receive_text()) == 5000


# --- JSON hygiene -------------------------------------------------------------------------------------------


JSON = {"content-type": "application/json"}


class Llm(BaseModel):
    temperature: float = 0.3


class Spec(BaseModel):
    name: str = "x"
    llm: Llm = Llm()
    tags: dict[str, Any] = {}


def _hygienic() -> tuple[TestClient, list[dict[str, Any]]]:
    stored: list[dict[str, Any]] = []
    app = FastAPI()

    @app.put("/api/v1/spec")
    @app.put("/admin/spec")
    @app.put("/other/spec")
    async def put(spec: Spec) -> dict[str, Any]:
        stored.append(spec.model_dump())
        return {"ok": True}

    @app.post("/api/v1/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_middleware(JsonHygiene)
    app.add_middleware(BodyLimit, max_bytes=100_000)
    return TestClient(app, raise_server_exceptions=False), stored


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (b'{"llm": {"temperature": NaN}}', ["body", "llm", "temperature"], "finite_number"),
        (b'{"llm": {"temperature": Infinity}}', ["body", "llm", "temperature"], "finite_number"),
        (b'{"llm": {"temperature": -Infinity}}', ["body", "llm", "temperature"], "finite_number"),
        (b'{"llm": {"temperature": 1e999}}', ["body", "llm", "temperature"], "finite_number"),
        (b'{"tags": {"a": [1, 2, -1e400]}}', ["body", "tags", "a", 2], "finite_number"),
        (b'{"name": "\\ud800"}', ["body", "name"], "string_unicode"),
        (b'{"name": "ok \\udfff end"}', ["body", "name"], "string_unicode"),
        (b'{"tags": {"deep": [{"x": "\\ud83d"}]}}', ["body", "tags", "deep", 0, "x"], "string_unicode"),
        (b'{"tags": {"\\ud800key": 1}}', ["body", "tags", "\\ud800key"], "string_unicode"),
        ('{"name": "\udc80"}'.encode("utf-8", "surrogatepass"), ["body", "name"], "string_unicode"),  # raw bytes
    ],
)
def test_json_hygiene_rejects_unstorable_values_with_their_path(body: bytes, loc: list[Any], kind: str) -> None:
    client, stored = _hygienic()
    for prefix in ("/api/v1", "/admin"):
        resp = client.put(f"{prefix}/spec", content=body, headers={"content-type": "application/json"})
        assert resp.status_code == 422, resp.text
        assert resp.json() == {
            "detail": [{"type": kind, "loc": loc, "msg": resp.json()["detail"][0]["msg"], "input": None}]
        }
    assert stored == []


def test_json_hygiene_names_every_bad_field_and_passes_good_bodies_unchanged() -> None:
    client, stored = _hygienic()
    resp = client.put("/api/v1/spec", content=b'{"name": "\\ud800", "llm": {"temperature": NaN}}')  # no content type
    assert resp.status_code == 422
    assert sorted(e["loc"][-1] for e in resp.json()["detail"]) == ["name", "temperature"]

    good = {"name": "caf\u00e9 \U0001f600", "llm": {"temperature": 0.7}, "tags": {"n": [1, 2.5, None]}}
    assert client.put("/api/v1/spec", json=good).status_code == 200
    assert stored == [good]  # a valid surrogate pair ("\\ud83d\\ude00") is a real character and passes
    pair = client.put(
        "/api/v1/spec", content=b'{"name": "\\ud83d\\ude00"}', headers={"content-type": "application/json"}
    )
    assert pair.status_code == 200 and stored[-1]["name"] == "\U0001f600"
    raw = client.post("/api/v1/raw", content=b'{"a": 1}' * 100, headers={"content-type": "application/json"})
    assert raw.json() == {"size": 800}


def test_json_hygiene_keeps_fastapis_own_answers() -> None:
    client, _ = _hygienic()
    broken = client.put("/api/v1/spec", content=b'{"name": ', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    wrong = client.put("/api/v1/spec", json={"llm": {"temperature": "hot"}})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "llm", "temperature"]
    deep = client.put("/api/v1/spec", content=b"[" * 50_000, headers={"content-type": "application/json"})
    assert deep.status_code == 400  # too deep for json.loads: FastAPI's "error parsing the body"
    # outside /api/v1 and /admin the hygiene does not apply (there NaN is FastAPI's to handle)
    assert (
        client.put("/other/spec", content=b'{"name": "a"}', headers={"content-type": "application/json"}).status_code
        == 200
    )


def test_validation_errors_never_fail_to_encode() -> None:
    """FastAPI's own 422 for a non-JSON body echoes it as ``input``: invalid UTF-8 made that a 500."""
    client, _ = _hygienic()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        resp = client.put("/api/v1/spec", content=b"\xff\xfe", headers={"content-type": content_type})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"][0]["loc"] == ["body"]
    # NaN reaching a validation error past the middleware (here: a path it does not guard)
    nan = client.put("/other/spec", content=b'{"llm": {"temperature": "x"}, "name": NaN}', headers=JSON)
    assert nan.status_code == 422 and {e["loc"][-1] for e in nan.json()["detail"]} == {"temperature", "name"}
    json.dumps(nan.json(), allow_nan=False)


def test_json_body_problems_is_none_for_non_json() -> None:
    assert json_body_problems(b"{nope") is None and json_body_problems(b"\xff") is None
    assert json_body_problems(b"[" * 100_000) is None
    assert json_body_problems(b'{"a": [1, {"b": "c"}]}') == []
    assert json_body_problems(b"NaN") == [
        {
            "type": "finite_number",
            "loc": ["body"],
            "msg": "Input should be a finite number (no NaN or Infinity)",
            "input": None,
        }
    ]


# --- CSV cells ----------------------------------------------------------------------------------------------


def test_csv_cell_neutralises_formulas() -> None:
    for text in ('=HYPERLINK("http://x")', "+15550001", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    for value in ("plain", "", "a=b", 12.5, 3, -4, None):
        assert csv_cell(value) == value


# --- failed admin keys --------------------------------------------------------------------------------------


def _admin_app(failures_per_minute: int) -> FastAPI:
    app = FastAPI()
    settings = GatewaySettings(admin_api_key=SecretStr("right"), admin_failures_per_minute=failures_per_minute)
    app.state.runtime = SimpleNamespace(settings=settings, bus=None)  # read_state fails: 503 once past the key
    app.include_router(admin_router)
    return app


def test_admin_key_failures_throttle_the_address_even_with_the_right_key(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(_admin_app(3))
    assert client.get("/admin/global-stop", headers={"X-API-Key": "right"}).status_code == 503  # key accepted
    codes = [client.get("/admin/global-stop", headers={"X-API-Key": f"guess-{i}"}).status_code for i in range(2)]
    assert [*codes, client.get("/admin/global-stop").status_code] == [401, 401, 401]  # missing key counts too
    throttled = client.get("/admin/global-stop", headers={"X-API-Key": "right"})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert client.post("/admin/global-stop/reset", headers={"X-API-Key": "guess"}).status_code == 429
    other = TestClient(_admin_app(3)).get("/admin/global-stop", headers={"X-API-Key": "right"})
    assert other.status_code == 503  # a separate app (and so separate buckets) is not throttled


async def test_admin_throttle_refills() -> None:
    app = _admin_app(60)  # one failure a second back
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(60):
            assert (await client.get("/admin/global-stop", headers={"X-API-Key": "bad"})).status_code == 401
        assert (await client.get("/admin/global-stop", headers={"X-API-Key": "right"})).status_code == 429
        await asyncio.sleep(1.1)
        assert (await client.get("/admin/global-stop", headers={"X-API-Key": "right"})).status_code == 503
