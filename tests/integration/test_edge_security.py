"""Trust at the edge, tried as an attacker and a clumsy client would, on the real stack (gateway subprocess,
NATS, PostgreSQL, fake-provider workers): every socket needs our token, every bad input gets a precise error,
overload is refused politely, and no input leaves a traceback in the gateway's log.

The tests share the module's stack (``stacks``): each asks for gateway settings of its own, so each gets a
gateway of its own (a fresh log to search for tracebacks), while the workers and the recorder stay; those that
need the workers come first, those that need none last."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
import websockets

from services.gateway.edge.call_tokens import CallTokens
from services.gateway.telephony.telnyx.api import encode_state
from tools.phonecaller import PhoneCaller, twilio_dial
from tools.simcaller import SimCaller, call_token
from tools.talk import synthesize, talk

SECRET = "edge-test-secret-" + "x" * 32
API_KEY = "edge-api-key"
ADMIN_KEY = "edge-admin-key"
KEYED = {"STREAM_TOKEN_SECRET": SECRET, "API_KEYS": API_KEY, "ADMIN_API_KEY": ADMIN_KEY}
_SPEECH: list[bytes] = []


async def speech() -> bytes:
    if not _SPEECH:
        _SPEECH.append(await synthesize("Hello, I would like to book a table."))
    return _SPEECH[0]


def minted(kind: str, call_id: str = "", secret: str = SECRET, **claims: str) -> str:
    return CallTokens(secret.encode(), 120).mint(kind, call_id=call_id, **claims)  # type: ignore[arg-type]


def twilio_ids() -> tuple[str, str]:
    return "CA" + uuid.uuid4().hex, "MZ" + uuid.uuid4().hex


def no_traceback(gateway) -> None:
    out = gateway.output()
    assert "Traceback" not in out, out[-4000:]
    assert '"exception"' not in out, [line for line in out.splitlines() if '"exception"' in line][:5]


async def refused(caller: PhoneCaller, timeout: float = 5) -> tuple[int | None, str]:
    await asyncio.wait_for(caller.closed.wait(), timeout)
    return caller.close_code, caller.close_reason


async def no_history(db_pool, call_id: str) -> None:
    await asyncio.sleep(0.5)  # what a started call would have written by now (call.started, greeting)
    assert await db_pool.fetchrow("SELECT call_id FROM calls WHERE call_id = $1", call_id) is None


async def history_row(db_pool, call_id: str, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await db_pool.fetchrow("SELECT * FROM calls WHERE call_id = $1 AND ended_at IS NOT NULL", call_id)
        if row is not None:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"no ended history row for {call_id}")


async def test_phone_streams_start_only_with_our_single_use_token(stacks, db_pool) -> None:
    gateway = await stacks.get({"STREAM_TOKEN_SECRET": SECRET})
    twilio = f"ws://127.0.0.1:{gateway.port}/twilio/media"
    cases = {
        "no token": lambda sid: {},
        "forged (another secret)": lambda sid: {"token": minted("twilio", sid, secret="not-" + SECRET)},
        "another call's token": lambda sid: {"token": minted("twilio", "CA" + uuid.uuid4().hex)},
        "a browser token": lambda sid: {"token": minted("browser")},
        "garbage": lambda sid: {"token": "v1.e30.AAAA"},
    }
    for name, params in cases.items():
        call_sid, stream_sid = twilio_ids()
        caller = PhoneCaller(twilio, "twilio", call_id=call_sid, stream_id=stream_sid, parameters=params(call_sid))
        await caller.connect()
        code, reason = await refused(caller)
        assert code == 1008 and "token" in reason, (name, code, reason)
        assert not caller.frames, name  # no greeting: refused before any TTS work
        await no_history(db_pool, call_sid)

    # expired
    call_sid, _ = twilio_ids()
    old = CallTokens(SECRET.encode(), 120).mint("twilio", call_id=call_sid, now=time.time() - 600)
    caller = PhoneCaller(twilio, "twilio", call_id=call_sid, parameters={"token": old})
    await caller.connect()
    assert (await refused(caller))[0] == 1008

    # the real flow: the webhook's token starts the call once; the same token replayed is refused
    call_sid, _ = twilio_ids()
    # a number no other test gives an agent (history must say "default", whatever ran before)
    to_number = f"+1555{uuid.uuid4().int % 10**7:07d}"
    params = await twilio_dial(gateway.url, call_sid, from_number="+15550001111", to_number=to_number)
    assert list(params) == ["token"]
    forged_numbers = {**params, "from": "+19999999999", "agent_id": "someone-else"}  # ignored: claims win
    caller = PhoneCaller(twilio, "twilio", call_id=call_sid, parameters=forged_numbers)
    await caller.connect()
    await caller.wait_for(lambda m: m["event"] == "mark", timeout=10)  # the greeting played
    replay = PhoneCaller(twilio, "twilio", call_id=call_sid, parameters=params)
    await replay.connect()
    assert (await refused(replay))[0] == 1008
    await caller.stop()
    row = await history_row(db_pool, call_sid)
    assert row["from_number"] == "+15550001111" and row["agent_id"] == "default"

    # Telnyx: the token comes back in the start's client_state
    telnyx = f"ws://127.0.0.1:{gateway.port}/telnyx/media"
    ccid = "v3:" + uuid.uuid4().hex
    bad = PhoneCaller(telnyx, "telnyx", call_id=ccid, parameters={"client_state": encode_state({"agent_id": "x"})})
    await bad.connect()
    assert (await refused(bad))[0] == 1008
    await no_history(db_pool, ccid)
    good = PhoneCaller(
        telnyx, "telnyx", call_id=ccid, parameters={"client_state": encode_state({"token": minted("telnyx", ccid)})}
    )
    await good.connect()
    await good.wait_for(lambda m: m["event"] == "mark", timeout=10)
    await good.stop()
    await history_row(db_pool, ccid)
    no_traceback(gateway)


async def test_a_surrogate_anywhere_leaves_history_flowing(stacks, db_pool) -> None:
    gateway = await stacks.get({"STREAM_TOKEN_SECRET": SECRET, "TELNYX_API_KEY": "", "TELNYX_PUBLIC_KEY": ""})
    base = f"127.0.0.1:{gateway.port}"
    call_sid, stream_sid = twilio_ids()
    start = {
        "event": "start",
        "streamSid": stream_sid,
        "start": {"callSid": call_sid, "customParameters": {"from": "@@", "token": minted("twilio", call_sid)}},
    }
    async with websockets.connect(f"ws://{base}/twilio/media") as ws:
        await ws.send(json.dumps(start).replace("@@", "\\ud800"))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    body = json.dumps(
        {"data": {"event_type": "call.hangup", "id": "e1", "payload": {"call_control_id": "v3:abc", "from": "@@"}}}
    ).replace("@@", "\\ud800")
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        resp = await client.post("/telnyx/webhook", content=body, headers={"content-type": "application/json"})
        assert resp.status_code == 400 and "surrogate" in resp.text
    # the next call's turns land in PostgreSQL
    conv = await talk(f"ws://{base}/ws/simulator", [await speech()], verbose=False, timeout_s=20)
    row = await history_row(db_pool, conv.call_id)
    for _ in range(100):
        turns = await db_pool.fetch("SELECT role FROM transcripts WHERE call_id = $1", conv.call_id)
        if len(turns) >= row["turns"] and any(t["role"] == "user" for t in turns):
            break
        await asyncio.sleep(0.1)
    assert any(t["role"] == "user" for t in turns)
    no_traceback(gateway)


async def test_an_unsigned_telnyx_hangup_cannot_touch_a_browser_call(stacks, db_pool) -> None:
    gateway = await stacks.get()
    caller = SimCaller(f"ws://127.0.0.1:{gateway.port}/ws/simulator")
    await caller.connect()
    event = {
        "data": {"event_type": "call.hangup", "id": uuid.uuid4().hex, "payload": {"call_control_id": caller.call_id}}
    }
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        assert (await client.post("/telnyx/webhook", json=event)).status_code == 200
    await asyncio.sleep(0.5)
    assert not caller.closed  # still live
    await caller.send_silence(0.2)
    await caller.hang_up()
    row = await history_row(db_pool, caller.call_id)
    assert row["client_type"] == "browser" and row["end_reason"] == "caller_hangup"
    no_traceback(gateway)


async def test_browser_calls_need_a_token_when_keys_are_set_and_our_origin(stacks) -> None:
    gateway = await stacks.get(KEYED)
    url = f"ws://127.0.0.1:{gateway.port}/ws/simulator"
    keyless = SimCaller(url)
    answer = await keyless.connect()
    assert answer["type"] == "error" and answer["code"] == "unauthorized"
    await asyncio.sleep(0.3)
    assert keyless.closed and keyless.close_code == 1008

    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        assert (await client.post("/api/v1/simulator/tokens", json={})).status_code == 401
        wrong = await client.post("/api/v1/simulator/tokens", json={}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
    token = await call_token(gateway.url, API_KEY)
    caller = SimCaller(url)
    assert (await caller.connect(token=token))["type"] == "started"
    await caller.hang_up()
    again = SimCaller(url)  # single use
    assert (await again.connect(token=token))["code"] == "unauthorized"

    for origin in ("https://evil.example", f"http://127.0.0.1:{gateway.port}.evil.example"):
        with pytest.raises(websockets.InvalidStatus) as err:
            await websockets.connect(url, origin=origin)  # type: ignore[arg-type]
        assert err.value.response.status_code == 403
    same = await websockets.connect(url, origin=f"http://127.0.0.1:{gateway.port}")  # type: ignore[arg-type]
    await same.close()
    conv = await talk(url, [await speech()], verbose=False, timeout_s=20, api_key=API_KEY)
    assert conv.turns and conv.turns[0].user_text
    no_traceback(gateway)


async def test_overload_is_refused_politely_and_never_trips_the_global_stop(stacks) -> None:
    gateway = await stacks.get({"MAX_CALLS": "2", "MAX_BROWSER_CALLS_PER_CLIENT": "10", "ADMIN_API_KEY": ADMIN_KEY})
    url = f"ws://127.0.0.1:{gateway.port}/ws/simulator"
    live = [SimCaller(url), SimCaller(url)]
    for c in live:
        assert (await c.connect())["type"] == "started"
    refused_calls = []
    for _ in range(5):
        extra = SimCaller(url)
        answer = await extra.connect()
        assert answer["type"] == "error" and answer["code"] == "busy", answer
        refused_calls.append(extra)
    await asyncio.sleep(0.3)
    assert all(c.close_code == 1013 for c in refused_calls)
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        twiml = (await client.post("/twilio/voice", data={"CallSid": "CA" + uuid.uuid4().hex})).text
        assert '<Reject reason="busy"/>' in twiml
        metrics = (await client.get("/metrics")).text
        busy = [ln for ln in metrics.splitlines() if ln.startswith("victoria_calls_rejected_total") and "busy" in ln]
        assert sum(float(ln.rsplit(" ", 1)[1]) for ln in busy) >= 6
        for c in live:
            await c.hang_up()
        await asyncio.sleep(1.5)  # what the recorder would need to count errors and trip the stop
        stop = await client.get("/admin/global-stop", headers={"X-API-Key": ADMIN_KEY})
        assert stop.status_code == 200 and stop.json()["active"] is False
    after = SimCaller(url)  # capacity is back
    assert (await after.connect())["type"] == "started"
    await after.hang_up()
    no_traceback(gateway)


async def test_twilio_stream_handshake_needs_twilios_signature(stacks) -> None:
    gateway = await stacks.get(
        {"STREAM_TOKEN_SECRET": SECRET, "TWILIO_AUTH_TOKEN": "tw-token", "PUBLIC_HOST": "victoria.example"},
        services=(),
        wait_ready=False,
    )
    url = f"ws://127.0.0.1:{gateway.port}/twilio/media"
    with pytest.raises(websockets.InvalidStatus) as err:
        await websockets.connect(url)
    assert err.value.response.status_code == 403
    from services.gateway.telephony.twilio.api import signature

    signed = {"X-Twilio-Signature": signature("tw-token", "wss://victoria.example/twilio/media")}
    async with websockets.connect(url, additional_headers=signed) as ws:  # accepted: now it needs a start
        await ws.send(json.dumps({"event": "stop"}))
    no_traceback(gateway)


async def test_bad_start_fields_get_a_close_code_not_a_crash(stacks) -> None:
    gateway = await stacks.get({"STREAM_TOKEN_SECRET": SECRET}, services=(), wait_ready=False)
    base = f"ws://127.0.0.1:{gateway.port}"
    for rate in ("abc", None, [8000], 1e400):
        call_sid, stream_sid = twilio_ids()
        start = {
            "event": "start",
            "streamSid": stream_sid,
            "start": {
                "callSid": call_sid,
                "customParameters": {"token": minted("twilio", call_sid)},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": rate},
            },
        }
        async with websockets.connect(f"{base}/twilio/media") as ws:
            await ws.send(json.dumps(start).replace("Infinity", "1e400"))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, rate
        assert "sampleRate" in closed.value.rcvd.reason, closed.value.rcvd.reason
    for rate in ("abc", None):
        ccid = "v3:" + uuid.uuid4().hex
        start = {"event": "start", "start": {"call_control_id": ccid, "media_format": {"sample_rate": rate}}}
        async with websockets.connect(f"{base}/telnyx/media") as ws:
            await ws.send(json.dumps(start))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    # a caller-chosen id that would reach a REST URL: refused by shape
    async with websockets.connect(f"{base}/telnyx/media") as ws:
        await ws.send(json.dumps({"event": "start", "start": {"call_control_id": "v3:x/../../calls?x=1"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        bad_sid = await client.post("/twilio/voice", data={"CallSid": "CA1/../../Accounts/x.json?x="})
        assert bad_sid.status_code == 400
        spoofed = await client.post(
            "/twilio/voice", data={"CallSid": "CA" + "a" * 32}, headers={"X-Forwarded-Host": "evil.example"}
        )
        assert spoofed.status_code == 200 and "evil.example" not in spoofed.text
    no_traceback(gateway)


async def test_one_address_holds_only_so_many_simulator_sockets(stacks) -> None:
    gateway = await stacks.get({"MAX_BROWSER_CALLS_PER_CLIENT": "2"}, services=(), wait_ready=False)
    url = f"ws://127.0.0.1:{gateway.port}/ws/simulator"
    held = [await websockets.connect(url) for _ in range(2)]  # pending sockets count too (no start yet)
    third = await websockets.connect(url)
    message = json.loads(await asyncio.wait_for(third.recv(), 5))
    assert message["code"] == "too_many_calls"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(third.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    for ws in held:
        await ws.close()
    await asyncio.sleep(0.2)
    fourth = await websockets.connect(url)  # a slot is free again
    await fourth.send(json.dumps({"type": "stop"}))
    await fourth.close()
    no_traceback(gateway)


def test_production_mode_refuses_to_start_without_its_secrets(run_service) -> None:
    gateway = run_service("gateway", {"APP_ENV": "production", "API_KEYS": "k", "TELEPHONY_PROVIDERS": "twilio"})
    assert gateway.proc.wait(30) == 2
    out = gateway.output()
    for name in ("ADMIN_API_KEY", "STREAM_TOKEN_SECRET", "PUBLIC_HOST", "WEBHOOK_SIGNING_SECRET", "TWILIO_AUTH_TOKEN"):
        assert name in out, out
    assert "TELNYX_PUBLIC_KEY" not in out and "API_KEYS is not set" not in out


def test_the_recorder_refuses_production_without_a_signing_key(run_service) -> None:
    """Post-call webhooks signed with the development key would prove nothing to their receivers."""
    recorder = run_service("call_recorder", {"APP_ENV": "production", "WEBHOOK_SIGNING_SECRET": ""})
    assert recorder.proc.wait(30) == 2
    out = recorder.output()
    assert "WEBHOOK_SIGNING_SECRET is not set" in out and "Traceback" not in out, out
