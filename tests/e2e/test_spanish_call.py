"""Spanish end to end on the offline stack: the ``es`` agent over the Twilio protocol and the browser simulator.

Every service runs as its own process with its default (offline) providers: Whisper base hears the Spanish,
Qwen 0.5B answers, Kokoro speaks. The caller's question is one of ``tests/data/es`` (spoken by Kokoro voices
other than the agent's ``jm_kumo``). Asserted from the history the recorder writes, as an operator would read
it: the question's words were heard, the greeting is the catalogue's Spanish one, the reply is Spanish and not
English, a failing turn is apologised for in Spanish, and the post-call summary is written in Spanish.

Two calls (each takes the offline models tens of seconds) cover both transports and both outcomes: a phone call
that is answered and summarised, and a browser call whose LLM fails (the failure path is the same call machine
on either transport; what the browser adds is that the page sees what the history records).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.texts import CATALOGUE
from tools.phonecaller import PhoneCaller, twilio_dial
from tools.simcaller import SimCaller
from tools.talk import load_utterance

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data" / "es"
QUESTION = DATA / "q01.wav"  # "¿A qué hora abren mañana?" (Kokoro jf_gongitsune)
# the words that carry the question; base Whisper on a phone line mishears one or two of them now and then (VAD
# cuts move with timing: "¿A qué hora abren mañana?" once came back "Aquí ahora abren mañana."): two must be heard
QUESTION_WORDS = {"qué", "hora", "abren", "abre", "mañana"}


def assistant(m: dict[str, Any]) -> bool:
    return m["type"] == "transcript" and m["role"] == "assistant"


def heard_the_question(text: str) -> bool:
    return len(QUESTION_WORDS & set(words(text))) >= 2


ES_NUMBER = "+34910000101"
SPANISH = set(
    "el la los las de del que y en un una unos por para con no es son su sus al lo se le les nos mi tu sí muy "
    "a hay está están puede podemos puedo gracias hola buenos buenas días horario abrimos abre mañana hasta desde "
    "qué cómo claro hoy ayudarte ayudarle".split()
)
ENGLISH = set("the and you to of is are we for with your that it can have will this our open from".split())


def words(text: str) -> list[str]:
    return re.findall(r"[a-záéíóúñü]+", text.lower())


def assert_spanish(text: str) -> None:
    found = words(text)
    es, en = sum(w in SPANISH for w in found), sum(w in ENGLISH for w in found)
    assert es >= 2 and es > 2 * en, f"not Spanish ({es} Spanish, {en} English stopwords): {text!r}"


@pytest.fixture
async def spanish_desk(system):
    """The offline stack, the `es` agent answering ES_NUMBER and a Spanish agent whose LLM cannot answer."""
    gateway = system
    base = f"http://127.0.0.1:{gateway.port}"
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as api:
        current = await api.get("/api/v1/agents/es")
        assert current.status_code == 200, current.text
        agent = current.json()  # PUT replaces the spec: send it whole, the catalogue's texts left to the catalogue
        spec = {**agent["spec"], "phone_numbers": [ES_NUMBER], **dict.fromkeys(agent["catalogue_texts"])}
        answered = await api.put("/api/v1/agents/es", json=spec, headers={"If-Match": current.headers["etag"]})
        assert answered.status_code == 200, answered.text
        # a Spanish agent whose LLM cannot answer (Groq without a key): its turns fail, and it apologises
        broken = {"agent_id": "es-averia", "language": "es-ES", "llm": {"provider": "groq"}}
        created = await api.post("/api/v1/agents", json=broken)
        assert created.status_code in (201, 409), created.text
    return gateway


async def history(db_pool, call_id: str, *, turns: int, timeout: float = 60) -> list[Any]:
    """The call's transcript once the recorder holds ``turns`` rows of it."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await db_pool.fetch("SELECT role, text FROM transcripts WHERE call_id = $1 ORDER BY seq", call_id)
        if len(rows) >= turns or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def extraction(db_pool, call_id: str, timeout: float = 150) -> dict[str, Any]:
    """The post-call extraction the recorder stores once the call has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = await db_pool.fetchval("SELECT extracted_data FROM calls WHERE call_id = $1", call_id)
        if isinstance(data, str):
            data = json.loads(data)
        if data and data.get("status") in ("ok", "failed", "skipped"):
            return data
        await asyncio.sleep(0.5)
    raise AssertionError(f"no extraction for {call_id} in {timeout:.0f}s")


async def ended(db_pool, call_id: str, timeout: float = 30) -> Any:
    """The call's row once its end is recorded (or as it is at the timeout)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.2)):
        row = await db_pool.fetchrow("SELECT status, end_reason FROM calls WHERE call_id = $1", call_id)
        if (row is not None and row["end_reason"] is not None) or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.2)
    return await db_pool.fetchrow("SELECT status, end_reason FROM calls WHERE call_id = $1", call_id)


async def phone_call(gateway, to_number: str, question: bytes, db_pool, *, turns: int) -> tuple[str, list[Any]]:
    """A Twilio-protocol call: dial, hear the greeting, ask, keep the line open until ``turns`` are recorded."""
    call_sid = "CA" + uuid.uuid4().hex
    params = await twilio_dial(f"http://127.0.0.1:{gateway.port}", call_sid, to_number=to_number)
    caller = PhoneCaller(f"ws://127.0.0.1:{gateway.port}/twilio/media", "twilio", call_id=call_sid, parameters=params)
    await caller.connect()
    try:
        await caller.wait_for(lambda m: m["event"] == "mark", timeout=60)  # the greeting played
        await caller.wait_quiet(timeout=60)
        await caller.speak(question)
        deadline = time.monotonic() + 90
        while len(await history(db_pool, call_sid, turns=0, timeout=0)) < turns and not caller.closed.is_set():
            assert time.monotonic() < deadline, "the turn was never answered"
            await caller.silence(0.2)
    finally:
        if not caller.closed.is_set():
            await caller.stop()
        else:
            await caller.close()
    return call_sid, await history(db_pool, call_sid, turns=turns)


async def test_a_spanish_phone_call_is_heard_answered_and_summarised_in_spanish(spanish_desk, db_pool) -> None:
    call_sid, rows = await phone_call(spanish_desk, ES_NUMBER, load_utterance(QUESTION), db_pool, turns=3)

    assert [r["role"] for r in rows[:3]] == ["assistant", "user", "assistant"], rows
    assert rows[0]["text"] == CATALOGUE["es"]["first_message"]
    assert heard_the_question(rows[1]["text"]), rows[1]["text"]
    assert_spanish(rows[2]["text"])
    summary = await extraction(db_pool, call_sid)
    assert summary["status"] == "ok", summary
    assert_spanish(summary["summary"])


async def test_a_failing_spanish_browser_call_is_heard_apologises_in_spanish_and_ends(spanish_desk, db_pool) -> None:
    """The browser side of the Spanish calls, on an agent whose LLM fails: the caller is heard, the page is told
    why (``llm_auth``), the apology is the catalogue's Spanish one, the call ends in error, and the history holds
    what the page showed."""
    sim = SimCaller(f"ws://127.0.0.1:{spanish_desk.port}/ws/simulator")
    await sim.connect("es-averia")
    try:
        greeting = await sim.next(assistant, timeout=60)
        await sim.send_frames(load_utterance(QUESTION))
        heard = await sim.next(lambda m: m["type"] == "transcript" and m["role"] == "user", timeout=90)
        apology = await sim.next(assistant, timeout=90)
        end = await sim.next(lambda m: m["type"] == "ended", timeout=60)
    finally:
        await asyncio.wait_for(sim.close(), 10)

    assert greeting["text"] == CATALOGUE["es"]["first_message"]
    assert heard_the_question(heard["text"]), heard["text"]
    assert [e.get("code") for e in sim.events("error")] == ["llm_auth"], sim.events("error")  # Groq without its key
    assert apology["text"] == CATALOGUE["es"]["apology_message"]
    assert end["reason"] == "error"
    rows = await history(db_pool, sim.call_id, turns=3)
    assert [(r["role"], r["text"]) for r in rows] == [
        ("assistant", greeting["text"]),
        ("user", heard["text"]),
        ("assistant", apology["text"]),
    ]
    row = await ended(db_pool, sim.call_id)  # the call's end is recorded just after its last turn
    assert row is not None and row["end_reason"] == "error", row
