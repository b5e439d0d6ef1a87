"""The gateway's HTTP hardening and dashboard serving, on bare FastAPI apps (no NATS, no database)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway.dashboard import mount_dashboard
from services.gateway.http_guard import CSP, RateLimiter, SecurityHeaders, TokenBuckets


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

    app.add_middleware(RateLimiter, per_minute=60, burst=2)
    app.add_middleware(SecurityHeaders)
    return app


def test_rate_limit_and_headers_on_a_bare_app() -> None:
    client = TestClient(_guarded())
    assert [client.get("/api/v1/ping").status_code for _ in range(3)] == [200, 200, 429]
    limited = client.get("/api/v1/ping")
    assert limited.headers["retry-after"] == "1" and limited.headers["x-frame-options"] == "DENY"
    assert client.get("/api/v1/ping", headers={"X-API-Key": "other"}).status_code == 200
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
    legacy = client.get("/simulator.html")
    assert legacy.status_code == 200 and "Victoria call simulator" in legacy.text


def test_dashboard_without_a_build_says_how_to_build(tmp_path: Path) -> None:
    resp = _dashboard(tmp_path / "missing").get("/agents")
    assert resp.status_code == 503 and "npm run build" in resp.text and "/simulator.html" in resp.text
