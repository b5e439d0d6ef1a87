"""The Spanish agent out of the box: ``python -m tools.talk --agent es`` reaches agent ``es`` on the real
stack and is greeted in Spanish from the catalogue; the call is recorded under that agent."""

from __future__ import annotations

import asyncio

import pytest

from shared.texts import CATALOGUE
from tools.talk import talk


@pytest.fixture
async def stack(start_stack):
    return await start_stack()


async def test_talk_calls_the_spanish_agent(stack, db_pool) -> None:
    url = f"ws://127.0.0.1:{stack.port}/ws/simulator"
    conv = await talk(url, [], verbose=False, timeout_s=20, agent_id="es")
    assert conv.greeting == CATALOGUE["es"]["first_message"] and conv.greeting_audio_s > 0.5
    for _ in range(100):
        row = await db_pool.fetchrow("SELECT agent_id FROM calls WHERE call_id = $1", conv.call_id)
        if row is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None and row["agent_id"] == "es"
