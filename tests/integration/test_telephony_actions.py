"""Agent actions on phone calls, through the real gateway, NATS, PostgreSQL and fake workers: end_call (the
closing line, then the REST hang-up), transfer_call (Twilio's ``<Dial>`` on the live call, Telnyx's
``transfer``; never a hang-up after it), send_dtmf (Telnyx's command) and keys from the caller (both
providers' ``dtmf`` messages) reaching the LLM and the history, masked when the agent says they are sensitive.

The providers' REST APIs are faked at the HTTP boundary with respx in their documented shapes; the LLM is the
fake provider scripted with ``FAKE_LLM_TOOL_SCRIPT`` (SCRIPT, a rule per test: what the caller's turn contains,
what to say, which tool to call) and the STT the fake one, whose transcript (``FAKE_STT_TEXT``) is what the rules
match. The workers are the module's (a stack takes seconds to start); a test's own transcript restarts the STT
worker alone. The callers speak the providers' media-stream messages (``tools/phonecaller.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest

from services.gateway.metrics import WS_PROTOCOL_ERRORS
from shared.audio import DTMF_FREQUENCIES, ulaw_to_pcm16
from shared.events import CallEnded
from tests.integration.conftest import Stacks, recorder_caught_up
from tests.integration.test_telephony import (
    ACCOUNT,
    TOKEN,
    TelnyxSigner,
    create_agent,
    gateway_here,
    history,
    post_telnyx,
    post_twilio,
    provider_api,
    say,
    telnyx_action,
    telnyx_event,
    twilio_caller,
    until_closed,
)
from tools.phonecaller import PhoneCaller

__all__ = ["provider_api"]  # a fixture, used below

SALES = "+34910000000"
CLOSING = "It was a pleasure to help you today. Goodbye!"
FRAMES_PER_CHAR = 3  # the fake TTS speaks 60 ms per character; a frame is 20 ms
Workers = Callable[[str], Awaitable[None]]


# every test's rule, one script for the module's LLM worker: a test's rules answer only its caller's words
SCRIPT = [
    {"when": "that is all", "call": "end_call"},
    {"when": "a person", "say": "Of course.", "call": "transfer_call", "arguments": {"target": "sales"}},
    {"when": "someone", "call": "transfer_call", "arguments": {"target": "sales"}},
    {"when": "press one then two", "say": "Pressing.", "call": "send_dtmf", "arguments": {"digits": "1w2#"}},
    {"when": "press one then nine", "call": "send_dtmf", "arguments": {"digits": "1w9#"}},
    {"when": "DTMF: 1234", "say": "Customer found."},
]


@pytest.fixture
def workers(stacks: Stacks, bus) -> Workers:
    """``await workers(stt_text)``: the module's workers (fake TTS, the fake LLM scripted with SCRIPT, a
    recorder that has caught up), with a fake STT that hears ``stt_text`` in every turn (a new text restarts
    the STT worker alone: the tests hearing the same follow each other)."""

    async def start(stt_text: str) -> None:
        await stacks.workers({"FAKE_STT_TEXT": stt_text, "FAKE_LLM_TOOL_SCRIPT": json.dumps(SCRIPT)})
        await recorder_caught_up(bus, stacks.durable)

    return start


async def call_ended(bus, call_id: str) -> asyncio.Future[CallEnded]:
    """The ``CallEnded`` the gateway publishes for ``call_id`` (what the recorder stores as the call's end)."""
    ended: asyncio.Future[CallEnded] = asyncio.get_running_loop().create_future()

    async def on_msg(msg: Any) -> None:
        event = CallEnded.model_validate_json(msg.data)
        if event.call_id == call_id and not ended.done():
            ended.set_result(event)

    sub = await bus.nc.subscribe("lifecycle.call.ended", cb=on_msg)
    ended.add_done_callback(lambda _: asyncio.ensure_future(sub.unsubscribe()))
    return ended


def tool_turns(turns: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(t["tool"]) for t in turns if t["role"] == "tool"]


def frames_after(caller: PhoneCaller, since: float) -> int:
    return sum(frame.at > since for frame in caller.frames)


async def twilio_call(host: str, agent_number: str) -> tuple[PhoneCaller, str]:
    """A Twilio call to ``agent_number``, answered by the gateway's webhook and connected; returns once the
    greeting has played."""
    call_sid = "CA" + uuid.uuid4().hex
    form = {"CallSid": call_sid, "AccountSid": ACCOUNT, "From": "+15550001111", "To": agent_number}
    answer = await post_twilio(host, "/twilio/voice", form)
    stream = ET.fromstring(answer.text).find("./Connect/Stream")
    assert stream is not None, answer.text
    caller = twilio_caller(host, call_sid, {p.get("name"): p.get("value") for p in stream.findall("Parameter")})
    await caller.connect()
    await caller.wait_for(lambda m: m["event"] == "mark")
    await caller.wait_quiet()
    return caller, call_sid


async def telnyx_call(host: str, ccid: str, signer: TelnyxSigner, answer: Any, agent_number: str) -> PhoneCaller:
    """A Telnyx call: ``call.initiated`` answered with a stream, the stream connected, the greeting played."""
    initiated = telnyx_event("call.initiated", ccid, direction="incoming", to=agent_number)
    assert (await post_telnyx(host, initiated, signer)).json() == {"status": "answered"}
    sent = json.loads(answer.calls.last.request.content)
    caller = PhoneCaller(
        f"ws://{host}/telnyx/media",
        "telnyx",
        call_id=ccid,
        parameters={"client_state": sent["client_state"]},
        headers={"x-telnyx-streaming-auth-token": "stream-secret"},
    )
    await caller.connect()
    await caller.wait_for(lambda m: m["event"] == "mark")
    await caller.wait_quiet()
    return caller


def telnyx_settings(signer: TelnyxSigner) -> dict[str, Any]:
    return {
        "telnyx_api_key": "KEY-test",
        "telnyx_public_key": signer.public_b64,
        "telnyx_stream_auth_token": "stream-secret",
    }


def number() -> str:
    return "+1555" + str(uuid.uuid4().int)[:7]


def twilio_settings() -> dict[str, Any]:
    return {"twilio_auth_token": TOKEN, "twilio_account_sid": ACCOUNT}


@contextlib.asynccontextmanager
async def phone_desk(
    nats_url: str, database_url: str, settings: dict[str, Any], name: str, **agent: Any
) -> AsyncIterator[tuple[str, str]]:
    """The in-process gateway with ``settings`` (once every service answers) and a new agent ``name`` (greeting
    "Hi." unless given) answering a new number of its own: yields (host, that number)."""
    async with gateway_here(nats_url, database_url, wait_workers=True, **settings) as (_, host):
        phone = number()
        fields = {"first_message": "Hi.", "phone_numbers": [phone], **agent}
        await create_agent(host, f"{name}-{uuid.uuid4().hex[:6]}", **fields)
        yield host, phone


# --- end_call -------------------------------------------------------------------------------------------


async def test_twilio_end_call_says_the_closing_line_then_hangs_up(
    nats_url, database_url, workers, provider_api, db_pool
) -> None:
    await workers("that is all, thank you")
    async with phone_desk(
        nats_url, database_url, twilio_settings(), "closer", tools=[{"kind": "end_call"}], end_call_message=CLOSING
    ) as (host, phone):
        hung_up_at: list[float] = []
        sid_holder: dict[str, str] = {}

        def completed(request: httpx.Request) -> httpx.Response:
            hung_up_at.append(time.perf_counter())
            return httpx.Response(200, json={"sid": sid_holder.get("sid"), "status": "completed"})

        calls_api = provider_api.post(url__regex=rf"https://api\.twilio\.com/2010-04-01/Accounts/{ACCOUNT}/Calls/")
        calls_api.mock(side_effect=completed)
        caller, call_sid = await twilio_call(host, phone)
        sid_holder["sid"] = call_sid
        spoke_at = await caller.speak(await say("That is all, thank you."))
        await until_closed(caller)

    assert calls_api.call_count == 1, [c.request.content for c in calls_api.calls]
    request = calls_api.calls.last.request
    assert request.url.path.endswith(f"/Calls/{call_sid}.json") and request.content == b"Status=completed"
    assert request.headers["authorization"].startswith("Basic ")
    # the closing line was played (its audio came after the caller's turn) and only then was the call hung up
    assert frames_after(caller, spoke_at) >= len(CLOSING) * FRAMES_PER_CHAR * 0.9
    last_echo = max(at for at, m in caller.events if m["event"] == "mark")
    assert caller.frames[-1].at < last_echo <= hung_up_at[0]
    row, turns = await history(db_pool, call_sid)
    assert row["end_reason"] == "agent_hangup"
    assert [(t["name"], t["kind"], t["status"]) for t in tool_turns(turns)] == [("end_call", "end_call", "ok")]
    tool_seq = next(t["seq"] for t in turns if t["role"] == "tool")
    after = [t for t in turns if t["seq"] > tool_seq]
    assert after and after[-1]["role"] == "assistant" and after[-1]["text"] == CLOSING


# --- transfer_call --------------------------------------------------------------------------------------


async def test_twilio_transfer_dials_the_target_and_never_hangs_up(
    nats_url, database_url, workers, provider_api, db_pool, bus
) -> None:
    await workers("can I talk to a person")
    async with phone_desk(
        nats_url,
        database_url,
        twilio_settings(),
        "switchboard",
        tools=[{"kind": "transfer_call", "targets": {"sales": SALES}}],
    ) as (host, phone):
        callers: list[PhoneCaller] = []
        updates: list[tuple[float, dict[str, list[str]]]] = []

        async def update(request: httpx.Request) -> httpx.Response:
            form = parse_qs(request.content.decode())
            updates.append((time.perf_counter(), form))
            if "Twiml" in form:  # Twilio dials and ends our stream at once: here before its answer reaches us
                await callers[0].stop()
                await asyncio.sleep(0.3)
            return httpx.Response(200, json={"sid": callers[0].call_id, "status": "in-progress"})

        calls_api = provider_api.post(url__regex=rf"https://api\.twilio\.com/2010-04-01/Accounts/{ACCOUNT}/Calls/")
        calls_api.mock(side_effect=update)
        caller, call_sid = await twilio_call(host, phone)
        callers.append(caller)
        ended = await call_ended(bus, call_sid)
        spoke_at = await caller.speak(await say("Can I talk to a person?"))
        await until_closed(caller)
        event = await asyncio.wait_for(ended, 10)

    assert [sorted(form) for _, form in updates] == [["Twiml"]], updates  # one update, and no Status=completed
    updated_at, form = updates[0]
    dial = ET.fromstring(form["Twiml"][0].split("?>", 1)[1]).find("Dial")
    assert dial is not None and dial.text == SALES
    # "Of course." and the transfer message were played out before the call was handed over
    heard = sum(spoke_at < f.at < updated_at for f in caller.frames)
    assert heard >= (len("Of course.") + len("I'm transferring you now. Please hold.")) * FRAMES_PER_CHAR * 0.9
    assert (event.reason, event.transferred_to) == ("transferred", SALES)
    row, turns = await history(db_pool, call_sid)
    assert (row["end_reason"], row["transferred_to"]) == ("transferred", SALES)
    assert [(t["kind"], t["status"]) for t in tool_turns(turns)] == [("transfer_call", "ok")]


async def test_telnyx_transfer_sends_the_command_and_never_hangs_up(
    nats_url, database_url, workers, provider_api, db_pool, bus
) -> None:
    await workers("can I talk to someone")
    signer, ccid = TelnyxSigner(), "v3:" + uuid.uuid4().hex
    answer = telnyx_action(provider_api, ccid, "answer")
    transfer = telnyx_action(provider_api, ccid, "transfer")
    hangup = telnyx_action(provider_api, ccid, "hangup")
    async with phone_desk(
        nats_url,
        database_url,
        telnyx_settings(signer),
        "switchboard",
        tools=[{"kind": "transfer_call", "targets": {"sales": "sip:sales@pbx.example.com"}}],
    ) as (host, phone):
        caller = await telnyx_call(host, ccid, signer, answer, phone)
        ended = await call_ended(bus, ccid)
        await caller.speak(await say("Can I talk to someone?"))
        await until_closed(caller)
        event = await asyncio.wait_for(ended, 10)

    assert transfer.call_count == 1 and not hangup.called
    sent = json.loads(transfer.calls.last.request.content)
    assert sent == {"to": "sip:sales@pbx.example.com", "command_id": f"victoria-transfer-{ccid}"}
    assert transfer.calls.last.request.headers["authorization"] == "Bearer KEY-test"
    assert (event.reason, event.transferred_to) == ("transferred", "sip:sales@pbx.example.com")
    row, turns = await history(db_pool, ccid)
    assert (row["end_reason"], row["transferred_to"]) == ("transferred", "sip:sales@pbx.example.com")
    assert [(t["kind"], t["status"]) for t in tool_turns(turns)] == [("transfer_call", "ok")]


# --- send_dtmf ------------------------------------------------------------------------------------------


async def test_telnyx_send_dtmf_presses_the_keys_through_the_command(
    nats_url, database_url, workers, provider_api, db_pool
) -> None:
    await workers("press one then two")
    signer, ccid = TelnyxSigner(), "v3:" + uuid.uuid4().hex
    answer = telnyx_action(provider_api, ccid, "answer")
    keys = telnyx_action(provider_api, ccid, "send_dtmf")
    telnyx_action(provider_api, ccid, "hangup")
    async with phone_desk(nats_url, database_url, telnyx_settings(signer), "ivr", tools=[{"kind": "send_dtmf"}]) as (
        host,
        phone,
    ):
        caller = await telnyx_call(host, ccid, signer, answer, phone)
        spoken = len(caller.frames)
        await caller.speak(await say("Press one, then two."))
        await caller.wait_reply(spoken)
        await caller.stop()

    assert keys.call_count == 1
    sent = json.loads(keys.calls.last.request.content)
    assert (sent["digits"], sent["duration_millis"]) == ("1w2#", 250) and sent["command_id"]
    assert not [m for _, m in caller.events if m["event"] == "dtmf"]  # nothing in band: Telnyx pressed them
    row, turns = await history(db_pool, ccid)
    assert row["end_reason"] == "caller_hangup"  # pressing keys does not end the call
    assert [(t["kind"], t["status"]) for t in tool_turns(turns)] == [("send_dtmf", "ok")]
    tool_seq = next(t["seq"] for t in turns if t["role"] == "tool")
    replies = [t["text"] for t in turns if t["seq"] > tool_seq and t["role"] == "assistant"]
    assert replies and replies[0].endswith('Done: {"status": "sent"}')  # the LLM was told they were sent


def keys_heard(caller: PhoneCaller, since: float) -> str:
    """The DTMF keys in the audio received after ``since``: a 20 ms frame is a key when the power at its
    row's and its column's frequency (a single-bin DFT each) dwarfs every other keypad frequency and the
    fake TTS's 440 Hz tone; consecutive frames of one key are one press."""
    freqs = (440, 697, 770, 852, 941, 1209, 1336, 1477, 1633)
    by_pair = {frozenset(pair): key for key, pair in DTMF_FREQUENCIES.items()}
    keys, last = "", None
    for frame in (f for f in caller.frames if f.at > since):
        pcm = np.frombuffer(ulaw_to_pcm16(frame.payload), dtype=np.int16).astype(np.float64)
        n = np.arange(len(pcm))
        power = {f: abs(np.sum(pcm * np.exp(-2j * np.pi * f * n / 8000))) for f in freqs}
        top = sorted(power, key=power.__getitem__, reverse=True)
        key = by_pair.get(frozenset(top[:2])) if power[top[1]] > 4 * power[top[2]] else None
        if key is not None and key != last:
            keys += key
        last = key
    return keys


async def test_twilio_send_dtmf_plays_the_keys_in_band(nats_url, database_url, workers, provider_api, db_pool) -> None:
    await workers("press one then nine")
    async with phone_desk(nats_url, database_url, twilio_settings(), "ivr", tools=[{"kind": "send_dtmf"}]) as (
        host,
        phone,
    ):
        calls_api = provider_api.post(url__regex=r"https://api\.twilio\.com/")
        calls_api.mock(return_value=httpx.Response(200, json={"status": "completed"}))
        caller, call_sid = await twilio_call(host, phone)
        spoke_at = await caller.speak(await say("Press one, then nine."))
        await caller.wait_reply(len(caller.frames))
        await caller.stop()

    assert keys_heard(caller, spoke_at) == "19#"  # the tones, in order; the pause is silence
    assert not calls_api.called  # Twilio has no REST DTMF for a streamed call: nothing was asked of it
    _row, turns = await history(db_pool, call_sid)
    assert [(t["kind"], t["status"]) for t in tool_turns(turns)] == [("send_dtmf", "ok")]


# --- keys from the caller -------------------------------------------------------------------------------


async def press(caller: PhoneCaller, keys: str) -> None:
    """The caller presses ``keys``, one ``dtmf`` message each (Twilio adds the track), between media."""
    for key in keys:
        body: dict[str, str] = {"digit": key}
        if caller.protocol == "twilio":
            body = {"track": "inbound_track", "digit": key}
        await caller.send_json({"event": "dtmf", **caller._envelope(), "dtmf": body})
        await caller.silence(0.1)


async def test_twilio_keys_reach_the_llm_and_are_masked_in_history(
    nats_url, database_url, workers, provider_api, db_pool, capfd
) -> None:
    await workers("hello")
    async with phone_desk(
        nats_url,
        database_url,
        {},
        "pin",
        first_message="Your customer number?",
        dtmf={"mode": "collect", "terminator": "#", "sensitive": True},
    ) as (host, phone):
        caller = PhoneCaller(f"ws://{host}/twilio/media", "twilio")
        await caller.dial_and_connect(f"http://{host}", to_number=phone)
        await caller.wait_for(lambda m: m["event"] == "mark")
        await caller.wait_quiet()
        bad = WS_PROTOCOL_ERRORS.labels("twilio", "bad_dtmf")._value.get()
        await caller.send_json({"event": "dtmf", **caller._envelope(), "dtmf": {"digit": "x"}})
        await caller.send_json({"event": "dtmf", **caller._envelope()})
        spoken = len(caller.frames)
        await press(caller, "1234#")
        await caller.wait_reply(spoken)
        assert not caller.closed.is_set()  # bad key messages are ignored, not fatal
        await caller.stop()

    assert WS_PROTOCOL_ERRORS.labels("twilio", "bad_dtmf")._value.get() == bad + 2
    row, turns = await history(db_pool, caller.call_id)
    assert row["end_reason"] == "caller_hangup"
    keyed = [t for t in turns if t["dtmf"]]
    assert [(t["role"], t["text"]) for t in keyed] == [("user", "••••")]  # sensitive: masked
    answer = next(t for t in turns if t["seq"] > keyed[0]["seq"])
    assert (answer["role"], answer["text"]) == ("assistant", "Customer found.")  # the LLM got "DTMF: 1234"
    logged = [line for line in capfd.readouterr().out.splitlines() if "dtmf" in line.lower()]
    assert logged and not [line for line in logged if "1234" in line]


async def test_telnyx_keys_reach_the_llm_and_the_history(
    nats_url, database_url, workers, provider_api, db_pool
) -> None:
    await workers("hello")
    signer, ccid = TelnyxSigner(), "v3:" + uuid.uuid4().hex
    answer = telnyx_action(provider_api, ccid, "answer")
    telnyx_action(provider_api, ccid, "hangup")
    async with phone_desk(
        nats_url,
        database_url,
        telnyx_settings(signer),
        "pin",
        first_message="Your customer number?",
        dtmf={"mode": "collect", "terminator": "#", "sensitive": False},
    ) as (host, phone):
        caller = await telnyx_call(host, ccid, signer, answer, phone)
        spoken = len(caller.frames)
        await press(caller, "1234#")
        await caller.wait_reply(spoken)
        await caller.stop()

    row, turns = await history(db_pool, ccid)
    assert row["end_reason"] == "caller_hangup"
    keyed = [t for t in turns if t["dtmf"]]
    assert [(t["role"], t["text"]) for t in keyed] == [("user", "1234")]  # not sensitive: as typed, no "#"
    answer_turn = next(t for t in turns if t["seq"] > keyed[0]["seq"])
    assert (answer_turn["role"], answer_turn["text"]) == ("assistant", "Customer found.")
