"""Property-based testing of the HTTP API with schemathesis: every ``/api/v1`` operation of the running gateway's
own OpenAPI schema gets generated requests, valid and invalid (bounded: ``MAX_EXAMPLES`` each), with the API key.
No answer may be a 5xx, and answers the schema documents (200s, 422 validation errors) must match it.

The stack runs on a database of its own (created and migrated here, dropped after): the fuzzer creates, edits and
deletes agents, which must not leak into the session's database that other tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import hypothesis
import hypothesis.errors
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import _drop_database
from tools.embedded import migrate, with_database

KEY = "fuzz-key"
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def fuzz_operation(
    op: schemathesis.APIOperation, mode: GenerationMode, base_url: str, session: requests.Session, seen: Counter[str]
) -> None:
    """``MAX_EXAMPLES`` generated requests to one operation; raises the first failure schemathesis found."""
    headers = {"X-API-Key": KEY}

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=op.as_strategy(generation_mode=mode, headers=headers))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=CHECKS)
        seen[f"{op.label} {response.status_code}"] += 1

    run()


def fuzz(base_url: str) -> tuple[Counter[str], list[str]]:
    """Every /api/v1 operation in both generation modes: (answers seen per operation and status, failures)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers={"X-API-Key": KEY}, timeout=10)
    session = requests.Session()
    session.trust_env = False
    seen: Counter[str] = Counter()
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith("/api/v1/")]
    assert len(operations) >= 10, [op.label for op in operations]
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(op, mode, base_url, session, seen)
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, op.label  # nothing to make invalid (e.g. no parameters)
            except Exception as exc:  # one failing operation must not hide the others
                failures.append(f"{op.label} ({mode.value}): {type(exc).__name__}: {exc}"[:3000])
    print("\n".join(f"{k}: {v}" for k, v in sorted(seen.items())))  # shown with -s
    return seen, failures


@pytest_asyncio.fixture
async def fuzz_database(database_url: str) -> AsyncIterator[str]:
    """A migrated database of its own; requested before ``start_stack``, so it is dropped after the services stop."""
    name = f"victoria_fuzz_{uuid.uuid4().hex[:10]}"
    dsn = with_database(database_url, name)
    await migrate(dsn)
    try:
        yield dsn
    finally:
        await _drop_database(database_url, name)


async def test_every_api_operation_survives_generated_requests(fuzz_database: str, start_stack) -> None:
    gateway = await start_stack({"API_KEYS": KEY, "DATABASE_URL": fuzz_database, "API_RATE_LIMIT_PER_MINUTE": "0"})
    seen, failures = await asyncio.to_thread(fuzz, gateway.url)
    assert not failures, "\n\n".join(failures)
    assert sum(seen.values()) >= 100, seen
    assert seen["POST /api/v1/agents 201"] and seen["GET /api/v1/calls 200"], seen  # valid requests got through
    assert gateway.returncode is None  # the gateway is still up


async def test_nul_characters_are_a_bad_request(fuzz_database: str, start_stack) -> None:
    """What schemathesis found: PostgreSQL stores no NUL character, and text with one was a 500."""
    gateway = await start_stack({"API_KEYS": KEY, "DATABASE_URL": fuzz_database}, services=(), wait_ready=False)
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": KEY}, trust_env=False) as client:
        for _ in range(100):  # the log line can come just before the socket is bound
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        for params in ({"agent_id": "a\x00b"}, {"q": "\x00"}):
            for path in ("/api/v1/calls", "/api/v1/calls/export"):
                resp = await client.get(path, params=params)
                assert resp.status_code == 400 and "NUL" in resp.json()["detail"], (path, params, resp.text)
        assert (await client.get("/api/v1/calls/x%00y")).status_code == 400
        created = await client.post("/api/v1/agents", json={"agent_id": "nul-agent", "system_prompt": "a\x00b"})
        assert created.status_code == 400, created.text
        assert (await client.get("/api/v1/agents/nul-agent")).status_code == 404
        default = await client.put("/api/v1/agents/default", json={"first_message": "\x00"})
        assert default.status_code == 400, default.text
        assert (await client.get("/api/v1/agents/default")).json()["spec"]["first_message"] != "\x00"
