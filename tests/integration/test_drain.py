"""Graceful drain on real processes (NATS, PostgreSQL, workers with fixed-latency test providers, the recorder):
SIGTERM a gateway or a worker in the middle of the work and see that nothing in progress is dropped.

The gateway tests share the module's workers and recorder (``stacks``), each with a new gateway to drain; the
worker and recorder tests stop them first (``no_stack``): they must be the only replica on the bus."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
import xml.etree.ElementTree as ET

import httpx
import websockets

from services.gateway.drain import drain_gateway
from shared import subjects
from shared.bus import NoWorkerError
from shared.events import ChatMessage, LlmChunk, LlmRequest
from shared.texts import text_for
from tests.integration.conftest import FAST
from tests.integration.test_edge_security import history_row
from tests.integration.test_recorder_reliability import (
    EVENTS_PER_CALL,
    _unique,
    expected_counts,
    history_counts,
    publish_calls,
    wait_until,
)
from tests.integration.test_telephony import gateway_here, post_telnyx, post_twilio, provider_api, telnyx_event
from tools.simcaller import SimCaller
from tools.talk import synthesize

__all__ = ["provider_api"]  # a fixture, used below
REPLY = "Sure. A table for two at eight."
_SPEECH: list[bytes] = []


async def speech() -> bytes:
    if not _SPEECH:
        _SPEECH.append(await synthesize("Hello, I would like to book a table."))
    return _SPEECH[0]


def ws_url(gateway) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ws/simulator"


async def greeted(gateway, agent_id: str | None = None) -> SimCaller:
    caller = SimCaller(ws_url(gateway))
    started = await caller.connect(agent_id)
    assert started["type"] == "started", started
    await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=15)
    return caller


async def wait_exit(proc, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (code := proc.returncode) is None:
        assert time.monotonic() < deadline, f"{proc.name} still running {timeout:.0f}s after SIGTERM:\n{proc.tail()}"
        await asyncio.sleep(0.05)
    return code


async def test_sigterm_refuses_new_calls_and_lets_the_live_one_finish(stacks, db_pool) -> None:
    gateway = await stacks.get({"DRAIN_TIMEOUT_S": "30"}, new_gateway=True)
    live = await greeted(gateway)
    utterance = await speech()

    gateway.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=2) as client:
        while (ready := await client.get("/api/system/health")).status_code != 503:
            assert time.monotonic() - signalled < 2.0, "readiness did not turn 503 at once after SIGTERM"
            await asyncio.sleep(0.02)
        assert ready.json()["status"] == "draining" and ready.json()["ready"] is False
        assert (await client.get("/health")).status_code == 200  # alive: an orchestrator must not kill it
        token = await client.post("/api/v1/simulator/tokens", json={})
        assert token.status_code == 503 and int(token.headers["retry-after"]) >= 1
        metrics = (await client.get("/metrics")).text
        assert "victoria_gateway_draining 1.0" in metrics

    async with websockets.connect(ws_url(gateway)) as newcomer:  # a new call is refused: try another replica
        await newcomer.send(json.dumps({"type": "start", "sample_rate": 16000}))
        refusal = json.loads(await asyncio.wait_for(newcomer.recv(), 5))
        await asyncio.wait_for(newcomer.wait_closed(), 5)
    assert refusal["type"] == "error" and refusal["code"] == "draining"
    assert newcomer.close_code == 1013 and newcomer.close_reason == "draining"

    # the live call goes on as if nothing happened: a whole turn, answered, then the caller hangs up
    await live.send_frames(utterance)
    user = await live.next(lambda m: m["type"] == "transcript" and m["role"] == "user", timeout=15)
    reply = await live.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=15)
    assert user["text"] and reply["text"] == REPLY and not reply.get("interrupted")
    await live.hang_up()
    assert live.close_code == 1000
    assert await wait_exit(gateway, 10) == 0  # drained as soon as its last call ended, long before 30 s
    took = time.monotonic() - signalled
    assert took < 25, took
    assert "gateway_drained" in gateway.output()
    row = await history_row(db_pool, live.call_id)
    assert row["end_reason"] == "caller_hangup"


async def test_calls_that_outlast_the_drain_hear_the_goodbye_in_their_language(stacks, db_pool) -> None:
    gateway = await stacks.get({"DRAIN_TIMEOUT_S": "1"}, new_gateway=True)
    agent_id = f"es-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as client:
        resp = await client.post(
            "/api/v1/agents", json={"agent_id": agent_id, "language": "es-ES", "first_message": "Hola."}
        )
        assert resp.status_code == 201, resp.text
    english, spanish = await asyncio.gather(greeted(gateway), greeted(gateway, agent_id))

    gateway.proc.send_signal(signal.SIGTERM)
    signalled = time.perf_counter()
    for caller, language in ((english, "en"), (spanish, "es")):
        goodbye = await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=20)
        assert goodbye["text"] == text_for("shutdown_message", language)
        assert caller.last_at - signalled >= 0.9  # first the drain timeout (1 s) let the call go on
        ended = await caller.next(lambda m: m["type"] == "ended", timeout=20)
        assert ended["reason"] == "gateway_shutdown"
        # the goodbye was spoken (fake TTS: 60 ms a character), not just shown
        heard = sum(len(r.data) for r in caller.audio_after(signalled)) / 2 / 16000
        assert heard >= 0.8 * 0.06 * len(goodbye["text"]), heard
        await caller.close()
        assert caller.close_code == 1012  # service restart: call again
    assert await wait_exit(gateway, 20) == 0
    for caller, language in ((english, "en"), (spanish, "es")):
        row = await history_row(db_pool, caller.call_id)
        assert row["end_reason"] == "gateway_shutdown"
        lines = await db_pool.fetch(
            "SELECT role, text FROM transcripts WHERE call_id = $1 ORDER BY seq", caller.call_id
        )
        assert (lines[-1]["role"], lines[-1]["text"]) == ("assistant", text_for("shutdown_message", language))


async def test_a_caller_hanging_up_during_the_goodbye_lets_the_gateway_go_at_once(stacks) -> None:
    """The goodbye (5 s of audio here) is not waited out once its caller has hung up."""
    gateway = await stacks.get({"DRAIN_TIMEOUT_S": "1"}, new_gateway=True)
    caller = await greeted(gateway)
    gateway.proc.send_signal(signal.SIGTERM)
    signalled = time.perf_counter()
    while not caller.has_audio_after(signalled + 1.2):  # the drain timed out and the goodbye is playing
        await caller.send_silence(0.02)
        assert time.perf_counter() - signalled < 15, "no goodbye audio"
    await caller.hang_up()
    hung_up = time.monotonic()
    assert await wait_exit(gateway, 20) == 0
    assert time.monotonic() - hung_up < 4  # not the goodbyes' 10 s bound
    assert "shutdown_goodbyes_timed_out" not in gateway.output()


async def test_a_second_sigterm_ends_the_calls_at_once(stacks, db_pool) -> None:
    gateway = await stacks.get({"DRAIN_TIMEOUT_S": "60"}, new_gateway=True)
    caller = await greeted(gateway)
    gateway.proc.send_signal(signal.SIGTERM)
    await gateway.wait_for_output("gateway_draining", timeout=5)
    gateway.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    ended = await caller.next(lambda m: m["type"] == "ended", timeout=10)
    assert time.monotonic() - signalled < 5 and ended["reason"] == "gateway_shutdown"
    await caller.close()
    assert caller.close_code == 1012
    await wait_exit(gateway, 15)  # uvicorn re-raises the signal it handled: no exit code to check
    row = await history_row(db_pool, caller.call_id)
    assert row["end_reason"] == "gateway_shutdown"  # not taken for the caller hanging up
    assert "gateway_ending_calls_now" in gateway.output()


async def test_a_worker_sigtermed_mid_stream_finishes_the_reply_and_exits_0(no_stack, run_service, bus) -> None:
    reply = " ".join(f"word{i}" for i in range(40)) + "."
    worker = run_service(
        "llm_worker", {**FAST, "FAKE_LLM_TOKENS_PER_S": "20", "FAKE_LLM_REPLY": reply, "WORKER_DRAIN_TIMEOUT_S": "20"}
    )
    await worker.wait_for_output("worker_listening")
    call_id = f"drain-{uuid.uuid4().hex[:8]}"
    reply_to = subjects.call_subject(call_id, "llm")
    chunks: list[LlmChunk] = []
    first, done = asyncio.Event(), asyncio.Event()

    async def on_chunk(chunk: LlmChunk, _msg) -> None:
        chunks.append(chunk)
        first.set()
        if chunk.done:
            done.set()

    sub = await bus.subscribe(reply_to, LlmChunk, on_chunk)
    try:
        request = LlmRequest(
            call_id=call_id,
            turn_id=1,
            messages=[ChatMessage(role="user", content="hi")],
            max_tokens=400,
            reply_to=reply_to,
        )
        ack = await bus.request_work(subjects.LLM_REQUEST, request, timeout=5)
        assert ack.accepted
        await asyncio.wait_for(first.wait(), 5)
        worker.proc.send_signal(signal.SIGTERM)
        await worker.wait_for_output("worker_draining", timeout=5)
        assert not done.is_set(), "the stream ended before the worker was asked to stop: make it longer"
        # it takes nothing new while it finishes: the only replica has left the queue group
        later = request.model_copy(update={"turn_id": 2})
        try:
            await bus.request_work(subjects.LLM_REQUEST, later, timeout=1)
            raise AssertionError("a draining worker accepted new work")
        except NoWorkerError:
            pass
        await asyncio.wait_for(done.wait(), 15)
        assert await wait_exit(worker, 10) == 0
    finally:
        await sub.unsubscribe()
    text = "".join(c.delta for c in sorted(chunks, key=lambda c: c.seq))
    assert text.split() == reply.split() and chunks[-1].error is None
    assert "worker_drained" in worker.output()


async def test_phone_calls_are_refused_busy_while_draining(nats_url, database_url, provider_api) -> None:
    """Draining, a phone call hears busy the way its provider does it (Twilio <Reject reason="busy"/>, Telnyx
    ``reject`` USER_BUSY), while one answered just before may still connect its stream; the drain waits for it."""
    ccid = "v3:" + uuid.uuid4().hex
    reject = provider_api.post(f"https://api.telnyx.com/v2/calls/{ccid}/actions/reject").mock(
        return_value=httpx.Response(200, json={"data": {"result": "ok"}})
    )
    async with gateway_here(nats_url, database_url, telnyx_api_key="KEY-test") as (app, host):
        runtime = app.state.runtime
        answered = "CA" + uuid.uuid4().hex
        assert "<Stream" in (await post_twilio(host, "/twilio/voice", {"CallSid": answered}, sign=False)).text
        drain = asyncio.create_task(drain_gateway(runtime, timeout_s=30))
        await asyncio.sleep(0.2)
        assert not drain.done()  # the answered call's stream has not connected yet: it is waited for
        assert runtime.refusal() == "draining" and runtime.refusal(answered) is None
        busy = await post_twilio(host, "/twilio/voice", {"CallSid": "CA" + uuid.uuid4().hex}, sign=False)
        assert ET.fromstring(busy.text).find("Reject").get("reason") == "busy"
        initiated = telnyx_event("call.initiated", ccid, direction="incoming")
        assert (await post_telnyx(host, initiated, None)).json() == {"status": "busy"}
        assert json.loads(reject.calls.last.request.content)["cause"] == "USER_BUSY"
        runtime.release(answered)  # as when its stream started and ended
        await asyncio.wait_for(drain, 2)
        assert not runtime.global_stop.active  # refusals for a drain are no errors


async def test_a_recorder_sigtermed_mid_batch_finishes_the_message_in_hand_and_hands_back_the_rest(
    no_stack, bus, db_pool, run_service
) -> None:
    prefix, durable = _unique("term")
    calls = 200
    await bus.ensure_lifecycle_stream()
    await publish_calls(bus, prefix, 0, calls)  # all waiting: the first fetch takes a whole batch
    env = {
        "RECORDER_DURABLE": durable,
        "RECORDER_BATCH": "1000",
        "RECORDER_ACK_WAIT_S": "60",  # what a message fetched and neither acked nor nak'ed would wait
        "EXTRACTION_ENABLED": "false",
    }
    first = run_service("call_recorder", env)
    await wait_until(lambda: _at_least(db_pool, prefix, 50), 30, "the recorder did not start applying")
    first.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(first, 10) == 0
    at_stop = await history_counts(db_pool, prefix)
    assert at_stop["events"] < calls * EVENTS_PER_CALL, "the SIGTERM came too late to test anything"
    assert "lifecycle_messages_handed_back" in first.output()

    second = run_service("call_recorder", env)
    started = time.monotonic()

    async def done() -> bool:
        return await history_counts(db_pool, prefix) == expected_counts(calls)

    await wait_until(done, 45, lambda: _state(db_pool, prefix, second))
    assert time.monotonic() - started < 45  # well within ack_wait: nothing was left to time out


async def _at_least(db_pool, prefix: str, events: int) -> bool:
    return (await history_counts(db_pool, prefix))["events"] >= events


async def _state(db_pool, prefix: str, recorder) -> str:
    return f"{await history_counts(db_pool, prefix)}; recorder:\n{recorder.tail(20)}"
