"""Turn-taking on the real stack (NATS, PostgreSQL, the workers on fixed-latency test providers, the gateway
with its real VAD and end-of-turn model), spoken by the offline piper voice over the simulator socket:

- a caller who pauses mid-sentence is not cut off (the model waits), where the old fixed window cut them;
- the reply started at the last pause is the one the caller hears (preemptive reply), and one started at a
  pause the caller spoke on from is dropped;
- a short backchannel over the agent does not interrupt it; a sentence does;
- an interruption that turns out to hold only a backchannel resumes the agent where it stopped.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import numpy as np

from tests.integration.conftest import recorded_turns
from tools.simcaller import SimCaller
from tools.talk import synthesize

RATE = 16000
MODEL = {"END_OF_TURN_MODEL": "true"}  # the shipped default (the other integration tests run without it)
_SPEECH: dict[str, bytes] = {}
LONG_REPLY = (
    "Sure. We open at nine in the morning and close at eleven at night, every day of the week, "
    "holidays included, and the kitchen stays open until half past ten."
)


async def say(text: str) -> bytes:
    if text not in _SPEECH:
        _SPEECH[text] = await synthesize(text)
    return _SPEECH[text]


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * RATE) * 2)


async def paused_utterance() -> bytes:
    """A sentence with a 700 ms pause in the middle, where the caller looks for a word."""
    first, second = await say("I would like to book a table for"), await say("four people on Friday evening.")
    return trim(first) + silence(0.7) + trim(second)


def trim(pcm: bytes) -> bytes:
    """Without the synthesiser's own leading and trailing silence (so the pause is exactly the one we add)."""
    x = np.frombuffer(pcm, dtype=np.int16)
    loud = np.flatnonzero(np.abs(x) > 300)
    return x[loud[0] : loud[-1] + 1].tobytes() if len(loud) else pcm


async def agent(gateway: Any, name: str, **fields: Any) -> str:
    agent_id = f"{name}-{uuid.uuid4().hex[:6]}"
    spec = {"agent_id": agent_id, "first_message": "Hi.", **fields}
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
        resp = await client.post("/api/v1/agents", json=spec)
        assert resp.status_code == 201, resp.text
    return agent_id


async def caller(gateway: Any, agent_id: str) -> SimCaller:
    sim = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
    await sim.connect(agent_id)
    await sim.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=15)
    return sim


async def metric(gateway: Any, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
        text = (await client.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def user_turns(sim: SimCaller) -> list[dict[str, Any]]:
    return [m for m in sim.events("transcript") if m["role"] == "user"]


async def test_a_pause_mid_sentence_cuts_the_caller_off_only_with_the_fixed_window(stacks) -> None:
    # what STT hears at the pause (the test STT says it of any audio): words that plainly go on
    gateway = await stacks.get({"FAKE_STT_TEXT": "I would like to book a table for", **MODEL})
    model = await agent(gateway, "eot-model")  # the shipped defaults: the end-of-turn model decides
    fixed = await agent(gateway, "eot-fixed", turn={"end_of_turn": "silence", "preempt_ms": 0, "vad_stop_ms": 500})
    utterance = await paused_utterance()
    seen: dict[str, int] = {}
    dropped_before = await metric(gateway, "victoria_preemptive_replies_total", outcome="dropped")
    used_before = await metric(gateway, "victoria_preemptive_replies_total", outcome="used")
    for agent_id in (model, fixed):
        sim = await caller(gateway, agent_id)
        spoken_at = await sim.send_frames(utterance)
        reply = await sim.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=15)
        await sim.send_silence(1.5)  # whatever the fixed window's cut turned into has been answered by now
        seen[agent_id] = len(user_turns(sim))
        if agent_id == model:
            # the model's reply came after the whole utterance, not at its pause
            assert sim.last_at > spoken_at, "the agent answered before the caller had finished"
            assert reply["turn_id"] == user_turns(sim)[0]["turn_id"]
        await sim.hang_up()
    assert seen[model] == 1, "the end-of-turn model split the sentence at its pause"
    assert seen[fixed] == 2, "the 500 ms window should have cut the caller off at the 700 ms pause"
    assert await metric(gateway, "victoria_preemptive_replies_total", outcome="dropped") > dropped_before
    assert await metric(gateway, "victoria_preemptive_replies_total", outcome="used") > used_before
    assert await metric(gateway, "victoria_end_of_turn_decisions_total", decision="unfinished_words") >= 1


async def test_a_backchannel_does_not_interrupt_the_agent_but_a_sentence_does(stacks) -> None:
    gateway = await stacks.get({"FAKE_LLM_REPLY": LONG_REPLY, **MODEL})
    sim = await caller(gateway, await agent(gateway, "backchannel"))
    await sim.send_frames(await say("When do you open?"))
    await sim.next(lambda m: m["type"] == "state" and m.get("agent") == "speaking", timeout=15)
    await sim.send_silence(1.0)
    said_at = await sim.send_frames(trim(await say("Okay.")))
    await sim.send_silence(1.5)
    assert not [m for m in sim.events("clear")], "the backchannel cut the agent off"
    assert sim.has_audio_after(said_at + 1.0), "the agent stopped talking after the backchannel"
    # (whether the VAD opened a turn for it — counted as a backchannel — or not, the agent talked on)
    started = await sim.send_frames(trim(await say("Sorry, can I ask something else?")))
    cleared = await sim.next(lambda m: m["type"] == "clear", timeout=5)
    assert cleared and sim.last_at - started < 1.0
    await sim.hang_up()


async def test_an_interruption_with_only_a_backchannel_in_it_resumes_the_agent(stacks, db_pool) -> None:
    gateway = await stacks.get({"FAKE_STT_TEXT": "Mm-hmm.", **MODEL})  # whatever the caller says is heard as this
    greeting = "Welcome to the Blue Door restaurant. " + LONG_REPLY.removeprefix("Sure. ")
    agent_id = await agent(gateway, "resume", first_message=greeting)
    sim = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
    await sim.connect(agent_id)
    await sim.next(lambda m: m["type"] == "state" and m.get("agent") == "speaking", timeout=15)
    await sim.send_silence(1.5)
    await sim.send_frames(trim(await say("Yes, yes, I know that already.")))
    await sim.next(lambda m: m["type"] == "clear", timeout=5)
    cut_at = sim.last_at
    # the turn is heard as "Mm-hmm.": a false interruption; the agent plays the rest of its greeting
    resumed = await sim.next(lambda m: m["type"] == "transcript" and not m.get("interrupted"), timeout=20)
    assert sim.has_audio_after(cut_at + 0.5)
    first = next(m for m in sim.events("transcript") if m["role"] == "assistant")
    assert first["interrupted"] and first["text"].endswith("…")
    head, tail = first["text"].removesuffix("…").split(), resumed["text"].split()
    assert not resumed["interrupted"] and tail[-1] == greeting.split()[-1], resumed
    # nothing of the greeting is lost (one word may be in both: the cut fell inside it)
    assert len(head) + len(tail) in (len(greeting.split()), len(greeting.split()) + 1)
    assert not user_turns(sim), "a backchannel is not a turn to answer"
    await sim.send_silence(0.5)
    await sim.hang_up()
    rows = await recorded_turns(db_pool, sim.call_id, 2)
    assert [(r["role"], r["interrupted"]) for r in rows] == [("assistant", True), ("assistant", False)]
    assert re.sub(r"\s+", " ", rows[1]["text"]).endswith("half past ten.")
    assert await metric(gateway, "victoria_interruptions_total", kind="resumed") >= 1


async def test_a_turn_ended_too_soon_is_carried_into_the_next_so_no_words_are_lost(stacks, db_pool) -> None:
    # the fixed window ends the turn at the 700 ms pause; STT is slow, so the caller goes on before the words
    # of the first half are taken: the first half must open the next turn, not vanish
    gateway = await stacks.get({"FAKE_STT_LATENCY_MS": "1500", **MODEL})
    fixed = await agent(gateway, "carry", turn={"end_of_turn": "silence", "preempt_ms": 0, "vad_stop_ms": 500})
    first, second = (
        trim(await say("I would like to book a table for")),
        trim(await say("four people on Friday evening.")),
    )
    sim = await caller(gateway, fixed)
    await sim.send_frames(first + silence(0.7) + second)
    await sim.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=20)
    await sim.hang_up()
    rows = [r for r in await recorded_turns(db_pool, sim.call_id, 3) if r["role"] == "user"]
    assert len(rows) == 1, "one utterance, one turn"
    spoken_s = rows[0]["ended_at"].timestamp() - rows[0]["started_at"].timestamp()
    assert spoken_s >= (len(first) + len(second)) / 2 / RATE, "the words before the pause were lost"
