"""The recorder finds a call's language (its agent's, or the agent's overlay for the call's client type) and
its agent's own fields in one query; a call whose agent is gone is extracted in English with the standard keys."""

from __future__ import annotations

import json
import uuid

from services.call_recorder.extraction import Extractor


def extractor(pool) -> Extractor:
    return Extractor(
        None,  # type: ignore[arg-type]  # the schema query needs only the database
        pool,
        max_attempts=1,
        timeout_s=1.0,
        concurrency=1,
        sweep_s=60.0,
        provider=None,
        model=None,
        instance="test",
    )


async def test_the_call_language_comes_from_its_agent_and_overlay(db_pool) -> None:
    agent_id = f"lang-{uuid.uuid4().hex[:8]}"
    spec = {
        "language": "es-ES",
        "extraction_fields": {"order_id": "the order number"},
        "overlays": {"twilio": {"language": "en-US"}},
    }
    await db_pool.execute("INSERT INTO agents (agent_id, spec) VALUES ($1, $2::jsonb)", agent_id, json.dumps(spec))
    calls = {client_type: f"lang-{client_type}-{uuid.uuid4().hex[:8]}" for client_type in ("browser", "twilio")}
    calls["gone"] = f"lang-gone-{uuid.uuid4().hex[:8]}"
    for client_type, call_id in calls.items():
        agent = "no-such-agent" if client_type == "gone" else agent_id
        await db_pool.execute(
            "INSERT INTO calls (call_id, agent_id, client_type) VALUES ($1, $2, $3)",
            call_id,
            agent,
            "browser" if client_type == "gone" else client_type,
        )
    schema = extractor(db_pool)._agent_schema
    assert await schema(calls["browser"]) == ({"order_id": "the order number"}, "es-ES")
    assert await schema(calls["twilio"]) == ({"order_id": "the order number"}, "en-US")
    assert await schema(calls["gone"]) == ({}, None)
    assert (await schema(f"unknown-{uuid.uuid4().hex[:8]}")) == ({}, None)
