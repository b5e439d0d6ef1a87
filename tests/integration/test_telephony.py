"""Twilio and Telnyx calls through the real gateway, NATS and workers (fixed-latency test providers).

The gateway runs in this process so that the providers' REST APIs can be faked at the HTTP boundary with
respx (answer, speak, hang-up); the callers speak the providers' documented media-stream messages
(tools/phonecaller.py) and play what they receive in real time, echoing marks like Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.gateway.app import create_app
from services.gateway.telephony.telnyx.api import encode_state
from services.gateway.telephony.twilio.api import signature
from services.gateway.transports import browser as simulator_ws
from services.gateway.transports import telephony as telephony_stream
from shared.global_stop import GlobalStopState, write_state
from shared.settings import GatewaySettings
from tests.conftest import free_port
from tests.integration.conftest import Stacks, recorder_caught_up
from tools.phonecaller import FRAME_BYTES, PhoneCaller
from tools.simcaller import SimCaller
from tools.talk import synthesize

TOKEN = "twilio-auth-token-for-tests"
ACCOUNT = "AC" + "1" * 32
LONG_REPLY = "Sure. Option one. Option two. Option three."
_SPEECH: dict[str, bytes] = {}


TELNYX_OK = httpx.Response(200, json={"data": {"result": "ok"}})
ALREADY_ENDED = httpx.Response(422, json={"errors": [{"code": "90018", "title": "Call has already ended"}]})


def telnyx_action(api: respx.MockRouter, ccid: str, action: str, answer: httpx.Response = TELNYX_OK) -> respx.Route:
    """Telnyx's Call Control ``action`` on call ``ccid``, faked: it answers ``answer``."""
    return api.post(f"https://api.telnyx.com/v2/calls/{ccid}/actions/{action}").mock(return_value=answer)


def twilio_caller(host: str, call_sid: str, params: dict[str, str | None]) -> PhoneCaller:
    """A phone on ``/twilio/media`` connected the way Twilio connects it: the TwiML stream's parameters and a
    signed upgrade request."""
    return PhoneCaller(
        f"ws://{host}/twilio/media",
        "twilio",
        call_id=call_sid,
        parameters=params,
        headers={"X-Twilio-Signature": signature(TOKEN, f"wss://{host}/twilio/media")},
    )


async def say(text: str) -> bytes:
    if text not in _SPEECH:
        _SPEECH[text] = await synthesize(text)
    return _SPEECH[text]


@contextlib.asynccontextmanager
async def gateway_here(
    nats_url: str, database_url: str, *, wait_workers: bool = False, **settings: Any
) -> AsyncIterator[tuple[Any, str]]:
    """The gateway app served by uvicorn inside the test's event loop; yields (app, host:port) once its
    database is connected (and, with ``wait_workers``, every service answers pings)."""
    port = free_port()
    settings.setdefault("end_of_turn_model", False)  # as FAST (conftest): the test STT's words fit any audio
    config = GatewaySettings(
        nats_url=nats_url, database_url=database_url, gateway_port=port, public_host=f"127.0.0.1:{port}", **settings
    )
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False)
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # pytest owns the signals
    task = asyncio.create_task(server.serve())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=5) as client:
        for _ in range(600):
            if server.started and app.state.runtime.pool is not None:
                if not wait_workers or (await client.get("/api/system/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the in-process gateway never became ready")
    runtime = app.state.runtime
    if runtime.global_stop.active:  # left by earlier tests' errors: lift it, these tests are about phones
        await write_state(runtime.bus.js, GlobalStopState())
        for _ in range(50):
            if not runtime.global_stop.active:
                break
            await asyncio.sleep(0.1)
    try:
        yield app, f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def workers(stacks: Stacks, bus) -> None:
    """The workers and a recorder (the module's: started by its first test); returns once the recorder has caught
    up with the lifecycle stream and any global stop that earlier tests' errors left behind is lifted (these
    tests are about phone calls)."""
    await stacks.workers({"FAKE_LLM_REPLY": LONG_REPLY})
    await recorder_caught_up(bus, stacks.durable)


@pytest.fixture
def provider_api() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        yield mock


async def create_agent(host: str, agent_id: str, **fields: Any) -> None:
    async with httpx.AsyncClient(base_url=f"http://{host}", trust_env=False, timeout=10) as client:
        resp = await client.post("/api/v1/agents", json={"agent_id": agent_id, **fields})
        assert resp.status_code == 201, resp.text


async def create_desk(host: str, agent_id: str, greeting: str, number: str) -> None:
    """A phone agent answering ``number`` with ``greeting``, which ends a call after 2 s of silence."""
    await create_agent(host, agent_id, first_message=greeting, phone_numbers=[number], turn={"silence_timeout_s": 2})


def twilio_post(host: str, path: str, form: dict[str, str], *, sign: bool = True, url_host: str | None = None):
    url = f"https://{url_host or host}{path}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign:
        headers["X-Twilio-Signature"] = signature(TOKEN, url, form.items())
    return httpx.AsyncClient(base_url=f"http://{host}", trust_env=False, timeout=10), headers, urlencode(form)


async def post_twilio(host: str, path: str, form: dict[str, str], **kw: Any) -> httpx.Response:
    client, headers, body = twilio_post(host, path, form, **kw)
    async with client:
        return await client.post(path, content=body, headers=headers)


async def history(db_pool, call_id: str, *, ended: bool = True, timeout: float = 15) -> tuple[Any, list[Any]]:
    deadline = time.monotonic() + timeout
    while True:
        row = await db_pool.fetchrow("SELECT * FROM calls WHERE call_id = $1", call_id)
        if row is not None and (row["ended_at"] is not None or not ended):
            turns = await db_pool.fetch("SELECT * FROM transcripts WHERE call_id = $1 ORDER BY seq", call_id)
            if len(turns) >= row["turns"]:
                return row, turns
        if time.monotonic() > deadline:
            raise AssertionError(f"no complete history for {call_id}: {row}")
        await asyncio.sleep(0.1)


async def until_closed(caller: PhoneCaller, timeout: float = 40) -> None:
    """Keep the line open (a phone stream sends audio all the time) until the gateway ends the call."""
    deadline = time.monotonic() + timeout
    while not caller.closed.is_set():
        assert time.monotonic() < deadline, "the call was never ended"
        await caller.silence(0.1)


def assert_paced(caller: PhoneCaller) -> None:
    """Every frame is 20 ms of G.711, and no utterance arrives faster than real time (no bursts)."""
    assert caller.frames and all(len(f.payload) == FRAME_BYTES for f in caller.frames)
    for utterance in caller.utterances():
        if len(utterance) > 10:
            span = utterance[-1].at - utterance[0].at
            assert span >= (len(utterance) - 3) * 0.02, (len(utterance), span)


# --- Twilio ---------------------------------------------------------------------------------------------


async def test_twilio_three_turns_with_greeting_barge_in_and_goodbye(
    nats_url, database_url, workers, provider_api, db_pool
) -> None:
    async with gateway_here(
        nats_url, database_url, wait_workers=True, twilio_auth_token=TOKEN, twilio_account_sid=ACCOUNT
    ) as (app, host):
        await create_desk(host, "front-desk", "Hi, front desk.", "+15550002222")
        call_sid = "CA" + uuid.uuid4().hex
        form = {"CallSid": call_sid, "AccountSid": ACCOUNT, "From": "+15550001111", "To": "+15550002222"}
        hung_up_at: list[float] = []

        def completed(request: httpx.Request) -> httpx.Response:
            hung_up_at.append(time.perf_counter())
            return httpx.Response(200, json={"sid": call_sid, "status": "completed"})

        hangup = provider_api.post(f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{call_sid}.json").mock(
            side_effect=completed
        )

        answer = await post_twilio(host, "/twilio/voice", form)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
        stream = ET.fromstring(answer.text).find("./Connect/Stream")
        assert stream is not None and stream.get("url") == f"wss://{host}/twilio/media"
        params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        assert list(params) == ["token"]  # agent and numbers travel inside the signed token, not as parameters
        claims = app.state.runtime.tokens.peek(params["token"])
        assert (claims.call_id, claims.agent_id, claims.from_number, claims.to_number) == (
            call_sid,
            "front-desk",
            "+15550001111",
            "+15550002222",
        )

        caller = twilio_caller(host, call_sid, params)
        await caller.connect()
        await caller.wait_for(lambda m: m["event"] == "mark")  # the greeting, then its mark
        await caller.wait_quiet()
        greeting_frames = len(caller.frames)
        assert greeting_frames > 0

        # turn 1: a question, answered in full
        spoken = len(caller.frames)
        await caller.speak(await say("What options do I have?"))
        await caller.wait_reply(spoken)

        # turn 2: talk over the reply: the gateway clears Twilio's buffer
        before = len(caller.frames)
        await caller.speak(await say("Tell me more about them."))
        while len(caller.frames) < before + 25:  # half a second of the reply
            await caller.silence(0.02)
        await caller.speak(await say("Stop, the second one please."))
        clears = caller.sent_events("clear")
        assert clears and clears[0][1] == {"event": "clear", "streamSid": caller.stream_id}

        # turn 3 is answered, then silence: re-prompt, then the goodbye and a REST hang-up after it played
        await until_closed(caller)
        assert hangup.call_count == 1
        request = hangup.calls.last.request
        assert request.content == b"Status=completed"
        assert request.headers["authorization"].startswith("Basic ")
        last_echo = max(at for at, m in caller.events if m["event"] == "mark")
        assert caller.frames[-1].at < last_echo <= hung_up_at[0]  # the goodbye was played before the hang-up

    assert caller.media_shapes == {'{"event": "event", "media": {"payload": "str"}, "streamSid": "str"}'}
    marks = caller.sent_events("mark")
    assert all(
        m == {"event": "mark", "streamSid": caller.stream_id, "mark": {"name": m["mark"]["name"]}} for _, m in marks
    )
    assert_paced(caller)
    row, turns = await history(db_pool, call_sid)
    assert row["client_type"] == "twilio" and row["agent_id"] == "front-desk"
    assert row["end_reason"] == "silence_timeout" and row["from_number"] == "+15550001111"
    roles = [t["role"] for t in turns]
    assert roles.count("user") == 3, [(t["role"], t["text"], t["interrupted"]) for t in turns]
    assert roles[:2] == ["assistant", "user"] and roles.count("user") == 3
    interrupted = [t for t in turns if t["interrupted"]]
    assert interrupted and interrupted[0]["text"].startswith("Sure.") and len(interrupted[0]["text"]) < len(LONG_REPLY)
    assert turns[-1]["text"].endswith("Goodbye!")


async def test_twilio_signatures_are_checked(nats_url, database_url, provider_api) -> None:
    async with gateway_here(nats_url, database_url, twilio_auth_token=TOKEN, twilio_account_sid=ACCOUNT) as (
        app,
        host,
    ):
        form = {"CallSid": "CA" + uuid.uuid4().hex, "From": "+15550001111", "To": "+15550009999"}
        assert (await post_twilio(host, "/twilio/voice", form, sign=False)).status_code == 403
        client, headers, body = twilio_post(host, "/twilio/voice", form)
        headers["X-Twilio-Signature"] = signature("wrong-token", f"https://{host}/twilio/voice", form.items())
        async with client:
            assert (await client.post("/twilio/voice", content=body, headers=headers)).status_code == 403
        tampered = {**form, "To": "+15550000000"}
        client, headers, _ = twilio_post(host, "/twilio/voice", form)
        async with client:
            resp = await client.post("/twilio/voice", content=urlencode(tampered), headers=headers)
            assert resp.status_code == 403
        # Twilio may sign the URL with or without its port: both are accepted
        without_port = await post_twilio(host, "/twilio/voice", form, url_host=host.split(":")[0])
        assert without_port.status_code == 200
        ok = await post_twilio(host, "/twilio/voice", form)
        assert ok.status_code == 200 and "<Stream" in ok.text
        assert not app.state.runtime.sessions  # nothing started by the rejected ones


async def test_twilio_refuses_with_speech_during_global_stop(nats_url, database_url, provider_api) -> None:
    async with gateway_here(nats_url, database_url) as (app, host):
        runtime = app.state.runtime
        runtime.accepting = False  # the same refusal path as the global stop (see runtime.refusal)
        try:
            resp = await post_twilio(host, "/twilio/voice", {"CallSid": "CA" + uuid.uuid4().hex}, sign=False)
        finally:
            runtime.accepting = True
        root = ET.fromstring(resp.text)
        assert resp.status_code == 200 and root.find("Say") is not None and root.find("Hangup") is not None
        assert root.find("Connect") is None


async def test_twilio_status_callback_is_recorded(nats_url, database_url, workers, db_pool) -> None:
    async with gateway_here(nats_url, database_url, twilio_auth_token=TOKEN) as (_, host):
        call_sid = "CA" + uuid.uuid4().hex
        for status in ("ringing", "in-progress", "completed"):
            form = {"CallSid": call_sid, "CallStatus": status, "CallDuration": "12"}
            assert (await post_twilio(host, "/twilio/status", form)).status_code == 204
        assert (await post_twilio(host, "/twilio/status", {"CallSid": call_sid})).status_code == 400
    for _ in range(100):
        rows = await db_pool.fetch("SELECT status FROM call_status_events WHERE call_id = $1 ORDER BY at", call_sid)
        if len(rows) == 3:
            break
        await asyncio.sleep(0.1)
    assert [r["status"] for r in rows] == ["ringing", "in-progress", "completed"]
    row = await db_pool.fetchrow("SELECT provider_status, client_type FROM calls WHERE call_id = $1", call_sid)
    assert row["provider_status"] == "completed" and row["client_type"] == "twilio"


async def test_twilio_bad_frames_are_survived(nats_url, database_url, workers, provider_api, db_pool) -> None:
    async with gateway_here(nats_url, database_url, wait_workers=True) as (_, host):
        url = f"ws://{host}/twilio/media"
        early = PhoneCaller(url, "twilio")
        await early.connect(send_start=False)
        await early.send_json(early.media_message(b"\xff" * 160))  # media before start
        await asyncio.wait_for(early.closed.wait(), 5)
        assert early.close_code == 1008 and "before start" in early.close_reason

        caller = PhoneCaller(url, "twilio")
        other = PhoneCaller(url, "twilio")
        await caller.dial_and_connect(f"http://{host}")
        await other.dial_and_connect(f"http://{host}")
        await caller.wait_for(lambda m: m["event"] == "mark")
        await caller.send_raw(b"\x00\x01binary")  # Twilio sends text only
        await caller.send_raw("{not json")
        await caller.send_json({"event": "wiggle", "streamSid": caller.stream_id})
        bad = caller.media_message(b"")
        bad["media"]["payload"] = "%%% not base64 %%%"
        await caller.send_json(bad)
        wrong = caller.media_message(b"\xff" * 160)
        wrong["streamSid"] = "MZ-somebody-else"
        await caller.send_json(wrong)
        await caller.silence(0.2)
        assert not caller.closed.is_set()  # logged and ignored
        flood = json.dumps(caller.media_message(b"\xff" * 160))
        for _ in range(80):  # 10,000 frames a second: dropped, and after a few seconds the stream is closed
            start = time.perf_counter()
            for _ in range(1000):
                await caller.send_raw(flood)
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - start)))
            if caller.closed.is_set():
                break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caller.closed.wait(), 10)
        assert caller.closed.is_set() and caller.close_code == 1008, caller.close_code
        # the other call and the gateway keep going
        await other.wait_quiet()
        before = len(other.frames)
        await other.speak(await say("Are you still there?"))
        await other.wait_reply(before)
        await other.stop()
    row, turns = await history(db_pool, caller.call_id)
    assert row["end_reason"] == "protocol_error" and turns[0]["role"] == "assistant"
    row, _ = await history(db_pool, other.call_id)
    assert row["end_reason"] == "caller_hangup"


async def test_a_caller_that_sends_nothing_is_ended_as_idle(
    nats_url, database_url, workers, db_pool, monkeypatch
) -> None:
    """A stream that stops delivering frames (a dead phone leg, a frozen browser) ends the call cleanly as
    ``caller_idle``, with its history complete; a caller that keeps sending is not touched."""
    monkeypatch.setattr(telephony_stream, "IDLE_TIMEOUT_S", 1.5)
    monkeypatch.setattr(simulator_ws, "IDLE_TIMEOUT_S", 1.5)
    async with gateway_here(nats_url, database_url, wait_workers=True) as (_, host):
        phone = PhoneCaller(f"ws://{host}/twilio/media", "twilio")
        browser = SimCaller(f"ws://{host}/ws/simulator")
        talker = SimCaller(f"ws://{host}/ws/simulator")
        await phone.dial_and_connect(f"http://{host}")
        await browser.connect()
        await talker.connect()
        started = time.perf_counter()
        await talker.send_silence(3.0)  # real time: 3 s of frames, never 1.5 s apart
        await asyncio.wait_for(phone.closed.wait(), 5)
        await browser.next(lambda m: m.get("type") == "ended", timeout=5)
        assert time.perf_counter() - started < 5 and not talker.closed
        await talker.hang_up()
    row, turns = await history(db_pool, phone.call_id)
    assert row["end_reason"] == "caller_idle" and turns[0]["role"] == "assistant"  # the greeting was recorded
    row, _ = await history(db_pool, browser.call_id)
    assert row["end_reason"] == "caller_idle"
    row, _ = await history(db_pool, talker.call_id)
    assert row["end_reason"] == "caller_hangup"


# --- Telnyx ---------------------------------------------------------------------------------------------


def telnyx_event(event_type: str, call_control_id: str, **payload: Any) -> dict[str, Any]:
    return {
        "data": {
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": "2026-11-22T17:00:00.000000Z",
            "payload": {"call_control_id": call_control_id, "call_session_id": "sess-1", **payload},
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com/telnyx/webhook"},
    }


class TelnyxSigner:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes_raw()
        self.public_b64 = base64.b64encode(raw).decode()

    def headers(self, body: bytes, *, ts: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if ts is None else ts)
        sig = self.key.sign(stamp.encode() + b"|" + body)
        return {
            "telnyx-signature-ed25519": base64.b64encode(sig).decode(),
            "telnyx-timestamp": stamp,
            "content-type": "application/json",
        }


async def post_telnyx(host: str, event: dict[str, Any], signer: TelnyxSigner | None, **kw: Any) -> httpx.Response:
    body = json.dumps(event).encode()
    headers = signer.headers(body, **kw) if signer else {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=f"http://{host}", trust_env=False, timeout=10) as client:
        return await client.post("/telnyx/webhook", content=body, headers=headers)


async def test_telnyx_three_turns_with_greeting_barge_in_and_goodbye(
    nats_url, database_url, workers, provider_api, db_pool
) -> None:
    signer = TelnyxSigner()
    ccid = "v3:" + uuid.uuid4().hex
    answer = telnyx_action(provider_api, ccid, "answer")
    hangup = telnyx_action(provider_api, ccid, "hangup")
    async with gateway_here(
        nats_url,
        database_url,
        wait_workers=True,
        telnyx_api_key="KEY-test",
        telnyx_public_key=signer.public_b64,
        telnyx_stream_auth_token="stream-secret",
    ) as (_, host):
        await create_desk(host, "telnyx-desk", "Hi, Telnyx desk.", "+15550003333")
        initiated = telnyx_event(
            "call.initiated", ccid, direction="incoming", to="+15550003333", **{"from": "+15550001111"}
        )
        assert (await post_telnyx(host, initiated, signer)).json() == {"status": "answered"}
        assert (await post_telnyx(host, initiated, signer)).json() == {"status": "duplicate"}  # a repeat
        assert answer.call_count == 1
        sent = json.loads(answer.calls.last.request.content)
        assert answer.calls.last.request.headers["authorization"] == "Bearer KEY-test"
        assert sent["stream_url"] == f"wss://{host}/telnyx/media" and sent["stream_bidirectional_mode"] == "rtp"
        assert sent["stream_bidirectional_codec"] == "PCMU" and sent["stream_track"] == "inbound_track"
        assert sent["command_id"] and sent["stream_auth_token"] == "stream-secret"

        refused = PhoneCaller(f"ws://{host}/telnyx/media", "telnyx", call_id=ccid)
        with pytest.raises(Exception):  # noqa: B017  # no auth token: the upgrade is refused
            await refused.connect()

        caller = PhoneCaller(
            f"ws://{host}/telnyx/media",
            "telnyx",
            call_id=ccid,
            parameters={"client_state": sent["client_state"]},
            headers={"x-telnyx-streaming-auth-token": "stream-secret"},
            shuffle_inbound=True,  # frames arrive pairwise out of order: the gateway reorders them
        )
        await caller.connect()
        await caller.wait_for(lambda m: m["event"] == "mark")
        await caller.wait_quiet()
        spoken = len(caller.frames)
        await caller.speak(await say("What options do I have?"))
        await caller.wait_reply(spoken)
        before = len(caller.frames)
        await caller.speak(await say("Tell me more about them."))
        while len(caller.frames) < before + 25:
            await caller.silence(0.02)
        await caller.speak(await say("Stop, the second one please."))
        clears = caller.sent_events("clear")
        assert clears and clears[0][1] == {"event": "clear"}
        await until_closed(caller)
        assert hangup.called and json.loads(hangup.calls.last.request.content)["command_id"]
        hangup_event = telnyx_event("call.hangup", ccid, hangup_cause="normal_clearing")
        assert (await post_telnyx(host, hangup_event, signer)).json() == {"status": "hangup"}

    assert caller.media_shapes == {'{"event": "event", "media": {"payload": "str"}}'}
    marks = caller.sent_events("mark")
    assert marks and all(m == {"event": "mark", "mark": {"name": m["mark"]["name"]}} for _, m in marks)
    assert_paced(caller)
    row, turns = await history(db_pool, ccid)
    assert row["client_type"] == "telnyx" and row["agent_id"] == "telnyx-desk"
    assert row["end_reason"] == "silence_timeout" and row["to_number"] == "+15550003333"
    assert [t["role"] for t in turns].count("user") == 3
    assert any(t["interrupted"] for t in turns)


async def test_telnyx_webhook_signatures_order_and_refusal(nats_url, database_url, provider_api) -> None:
    signer = TelnyxSigner()
    ccid = "v3:" + uuid.uuid4().hex
    answer = telnyx_action(provider_api, ccid, "answer")
    speak = telnyx_action(provider_api, ccid, "speak")
    hangup = telnyx_action(provider_api, ccid, "hangup", ALREADY_ENDED)
    async with gateway_here(nats_url, database_url, telnyx_api_key="KEY-test", telnyx_public_key=signer.public_b64) as (
        app,
        host,
    ):
        initiated = telnyx_event("call.initiated", ccid, direction="incoming", to="+15550004444")
        assert (await post_telnyx(host, initiated, None)).status_code == 403  # unsigned
        assert (await post_telnyx(host, initiated, signer, ts=int(time.time()) - 600)).status_code == 403  # stale
        other = TelnyxSigner()
        assert (await post_telnyx(host, initiated, other)).status_code == 403  # someone else's key
        assert not answer.called

        # out of order: the hang-up overtakes the initiated event; the call is never answered
        assert (await post_telnyx(host, telnyx_event("call.hangup", ccid), signer)).json() == {"status": "hangup"}
        assert (await post_telnyx(host, initiated, signer)).json() == {"status": "already_ended"}
        assert not answer.called

        # refusal while calls are refused: answer without a stream, speak, hang up (already ended is fine)
        ccid2 = "v3:" + uuid.uuid4().hex
        answer2 = telnyx_action(provider_api, ccid2, "answer")
        speak2 = telnyx_action(provider_api, ccid2, "speak")
        hangup2 = telnyx_action(provider_api, ccid2, "hangup", ALREADY_ENDED)
        app.state.runtime.accepting = False
        try:
            out = await post_telnyx(host, telnyx_event("call.initiated", ccid2, direction="incoming"), signer)
            assert out.json() == {"status": "refusing"}
            state = json.loads(answer2.calls.last.request.content)["client_state"]
            assert "stream_url" not in json.loads(answer2.calls.last.request.content)
            await post_telnyx(host, telnyx_event("call.answered", ccid2, client_state=state), signer)
            assert speak2.called and "try again later" in json.loads(speak2.calls.last.request.content)["payload"]
            done = await post_telnyx(host, telnyx_event("call.speak.ended", ccid2, client_state=state), signer)
            assert done.json() == {"status": "refused"} and hangup2.called
        finally:
            app.state.runtime.accepting = True
        assert not speak.called and not hangup.called
        assert (await post_telnyx(host, {"data": {"nope": 1}}, signer)).status_code == 400


def test_client_state_round_trips() -> None:
    from services.gateway.telephony.telnyx.api import decode_state

    assert decode_state(encode_state({"agent_id": "a", "to": "+1555"})) == {"agent_id": "a", "to": "+1555"}
    assert decode_state("%%%") == {} and decode_state(None) == {}


async def test_a_full_gateway_answers_phone_calls_busy(nats_url, database_url, provider_api) -> None:
    """Over MAX_CALLS a phone call is refused the way its provider expects: Twilio <Reject reason="busy"/>,
    Telnyx ``reject`` with USER_BUSY. A webhook that answered with a stream holds a slot until it connects."""
    ccid = "v3:" + uuid.uuid4().hex
    reject = telnyx_action(provider_api, ccid, "reject")
    async with gateway_here(nats_url, database_url, max_calls=1, telnyx_api_key="KEY-test") as (app, host):
        first = await post_twilio(host, "/twilio/voice", {"CallSid": "CA" + uuid.uuid4().hex}, sign=False)
        assert "<Stream" in first.text  # answered: its slot is reserved while the stream connects
        second = await post_twilio(host, "/twilio/voice", {"CallSid": "CA" + uuid.uuid4().hex}, sign=False)
        assert ET.fromstring(second.text).find("Reject").get("reason") == "busy"
        initiated = telnyx_event("call.initiated", ccid, direction="incoming")
        assert (await post_telnyx(host, initiated, None)).json() == {"status": "busy"}
        assert json.loads(reject.calls.last.request.content)["cause"] == "USER_BUSY"
        assert app.state.runtime.refusal() == "busy" and not app.state.runtime.global_stop.active
