"""The dashboard's APIs on a real gateway (NATS, PostgreSQL, workers with test providers): live calls of this
gateway and the services it can reach, API keys with rotation, the per-key rate limit and the security headers."""

from __future__ import annotations

import asyncio

import httpx

from shared.global_stop import GlobalStopState, write_state
from tests.integration.conftest import FAST
from tools.simcaller import SimCaller, call_token

OLD, NEW = "dash-key-old", "dash-key-new"


def api(gateway, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10, headers=headers)


async def wait_http(gateway) -> None:
    await gateway.wait_for_output("database_connected")
    async with api(gateway) as client:
        for _ in range(100):  # the log line can come just before the socket is bound
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("gateway did not answer /health")


async def test_live_calls_and_services_with_rotated_keys(start_stack, bus) -> None:
    await write_state(bus.js, GlobalStopState())  # calls are accepted whatever an earlier test left behind
    gateway = await start_stack({"API_KEYS": f"{OLD},{NEW}"})
    caller = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
    await caller.connect(token=await call_token(gateway.url, OLD))  # keys set: a browser call needs a token
    try:
        async with api(gateway) as client:
            for path in ("/api/v1/live/calls", "/api/v1/services"):
                missing = await client.get(path)
                assert missing.status_code == 401 and missing.headers["www-authenticate"] == "ApiKey", path
                assert (await client.get(path, headers={"X-API-Key": "wrong"})).status_code == 401, path
                for key in (OLD, NEW):  # both keys of a rotation work
                    assert (await client.get(path, headers={"X-API-Key": key})).status_code == 200, (path, key)

            live = (await client.get("/api/v1/live/calls", headers={"X-API-Key": NEW})).json()
            assert live["accepting_calls"] is True and live["refusal"] is None and live["instance"]
            assert live["global_stop"]["active"] is False
            mine = [c for c in live["calls"] if c["call_id"] == caller.call_id]
            assert len(mine) == 1, live
            call = mine[0]
            assert call["agent_id"] == "default" and call["client_type"] == "browser"
            assert call["state"] in {"starting", "speaking", "listening"}, call["state"]
            assert call["started_at"] and call["duration_s"] >= 0 and call["agent_version"] >= 1

            services = (await client.get("/api/v1/services", headers={"X-API-Key": OLD})).json()["services"]
            by_name = {g["service"]: g for g in services}
            for name in ("gateway", "stt", "llm", "tts", "call_recorder"):
                group = by_name[name]
                assert group["replicas"] >= 1 and group["ready_replicas"] >= 1, group
                assert group["replicas"] == len(group["instances"])
                instance = group["instances"][0]
                assert instance["instance"] and instance["version"] and instance["uptime_s"] >= 0
            assert [g["service"] for g in services][:5] == ["gateway", "stt", "llm", "tts", "call_recorder"]
    finally:
        await caller.hang_up()

    async with api(gateway, **{"X-API-Key": OLD}) as client:
        for _ in range(50):  # the session leaves the registry when its socket handler returns
            calls = (await client.get("/api/v1/live/calls")).json()["calls"]
            if all(c["call_id"] != caller.call_id for c in calls):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"call {caller.call_id} still listed after hang-up")


async def test_rate_limit_per_key_and_ip(run_service) -> None:
    gateway = run_service(
        "gateway", {"API_RATE_LIMIT_PER_MINUTE": "60", "API_RATE_LIMIT_BURST": "3", "API_KEYS": "a,b"}
    )
    await wait_http(gateway)
    async with api(gateway) as client:
        codes = [(await client.get("/api/v1/live/calls", headers={"X-API-Key": "a"})).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429], codes
        limited = await client.get("/api/v1/live/calls", headers={"X-API-Key": "a"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        assert "rate limit" in limited.json()["detail"]
        assert limited.headers["x-content-type-options"] == "nosniff"  # headers on a 429 too
        # another valid key from the same address has its own bucket; probes and pages are never limited
        assert (await client.get("/api/v1/live/calls", headers={"X-API-Key": "b"})).status_code == 200
        for _ in range(5):
            assert (await client.get("/health")).status_code == 200
        await asyncio.sleep(1.1)  # one token a second comes back
        assert (await client.get("/api/v1/live/calls", headers={"X-API-Key": "a"})).status_code == 200


async def test_security_headers_and_pages(run_service) -> None:
    gateway = run_service("gateway")
    await wait_http(gateway)
    async with api(gateway) as client:
        for path in ("/", "/health", "/api/v1/live/calls", "/agents", "/simulator.html"):
            resp = await client.get(path)
            csp = resp.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "connect-src 'self' ws: wss:" in csp, path
            assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp, path
            assert resp.headers["x-frame-options"] == "DENY", path
            assert resp.headers["x-content-type-options"] == "nosniff", path
            assert resp.headers["referrer-policy"] == "strict-origin-when-cross-origin", path
            assert "strict-transport-security" not in resp.headers, path
        behind_tls = await client.get("/health", headers={"X-Forwarded-Proto": "https"})
        assert behind_tls.headers["strict-transport-security"].startswith("max-age=31536000")

        old_page = await client.get("/simulator.html")  # the single-file simulator is gone (strict CSP above)
        assert old_page.status_code in (200, 503) and "Victoria call simulator" not in old_page.text
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["content-security-policy"]

        index = await client.get("/")
        assert index.status_code in (200, 503) and index.headers["content-type"].startswith("text/html")
        if index.status_code == 503:  # no build: the page says how to make one
            assert "npm run build" in index.text
        else:
            assert '<div id="root">' in index.text
            assert (await client.get("/history/some-call")).text == index.text  # SPA fallback
        missing_api = await client.get("/api/v1/nothing-here")
        assert missing_api.status_code == 404 and missing_api.headers["content-type"] == "application/json"


async def test_providers_catalogue_on_a_running_gateway(run_service) -> None:
    # the workers describe their providers (micro metadata), judged with their own env: only they have the key
    for name in ("stt_worker", "llm_worker", "tts_worker"):
        run_service(name, {**FAST, "GROQ_API_KEY": "gsk_test", "AZURE_SPEECH_KEY": ""})
    gateway = run_service("gateway", {"API_KEYS": NEW, "GROQ_API_KEY": "", "AZURE_SPEECH_KEY": ""})
    await wait_http(gateway)
    async with api(gateway) as client:
        assert (await client.get("/api/v1/providers")).status_code == 401
        for _ in range(100):  # until every worker kind answers
            resp = await client.get("/api/v1/providers", headers={"X-API-Key": NEW})
            assert resp.status_code == 200, resp.text
            if all(resp.json().values()):
                break
            await asyncio.sleep(0.2)
        data = {kind: {p["name"]: p for p in items} for kind, items in resp.json().items()}
    assert set(data) == {"stt", "llm", "tts"}
    assert {"fake", "local_whisper", "groq", "azure"} <= set(data["stt"])
    assert data["stt"]["groq"]["usable"] and data["llm"]["groq"]["usable"]  # the workers have GROQ_API_KEY
    assert not data["tts"]["azure"]["usable"] and "AZURE_SPEECH_KEY" in data["tts"]["azure"]["status"]
    assert any(v["name"] == "es-ES-ElviraNeural" and v["language"] == "es-ES" for v in data["tts"]["azure"]["voices"])
