"""Two gateway replicas on one NATS and PostgreSQL: whatever replica a webhook or an API request reaches, it acts
on the replica that owns the call (call control over NATS), sees every replica's calls, deduplicates once, and
an agent change through one replica reaches the other's next call, even across a NATS reconnect.

Both gateways run in this process (as in test_telephony.py) so the providers' REST APIs are faked at the HTTP
boundary with respx; replica A reaches NATS through a TCP relay the test can cut, to make it reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from services.gateway.telephony.telnyx.api import encode_state
from tests.integration.test_telephony import (  # noqa: F401  # fixtures: workers, provider_api
    ACCOUNT,
    TOKEN,
    TelnyxSigner,
    gateway_here,
    history,
    post_telnyx,
    post_twilio,
    provider_api,
    telnyx_event,
    twilio_caller,
    workers,
)
from tools.phonecaller import PhoneCaller
from tools.simcaller import SimCaller

ADMIN = "admin-key-for-replica-tests"
SECRET = "one-stream-token-secret-for-every-replica"


class NatsRelay:
    """A TCP relay in front of nats-server: ``cut()`` drops every connection and refuses new ones (a network
    outage for whoever connects through it), ``restore()`` accepts again on the same port."""

    def __init__(self, target: str) -> None:
        url = urlparse(target)
        self.target = (url.hostname or "127.0.0.1", url.port or 4222)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()


@contextlib.asynccontextmanager
async def replicas(nats_url: str, database_url: str, signer: TelnyxSigner) -> AsyncIterator[tuple[Any, str, Any, str]]:
    """Gateways A (through a NATS relay: ``a.state.relay``) and B, configured alike; yields (a, host, b, host)."""
    relay = NatsRelay(nats_url)
    await relay.start()
    common: dict[str, Any] = {
        "twilio_auth_token": TOKEN,
        "twilio_account_sid": ACCOUNT,
        "telnyx_api_key": "KEY-test",
        "telnyx_public_key": signer.public_b64,
        "admin_api_key": ADMIN,
        "stream_token_secret": SECRET,
    }
    try:
        async with (
            gateway_here(relay.url, database_url, wait_workers=True, instance_id="gw-a", **common) as (a, a_host),
            gateway_here(nats_url, database_url, instance_id="gw-b", **common) as (b, b_host),
        ):
            a.state.relay = relay
            yield a, a_host, b, b_host
    finally:
        await relay.close()


def client(host: str, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://{host}", trust_env=False, timeout=10, headers=headers)


async def live_ids(host: str) -> dict[str, str]:
    async with client(host) as c:
        body = (await c.get("/api/v1/live/calls")).json()
    return {call["call_id"]: call["instance"] for call in body["calls"]}


async def until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        await asyncio.sleep(0.05)


def ok(status: str = "ok") -> httpx.Response:
    return httpx.Response(200, json={"data": {"result": status}})


@pytest.mark.usefixtures("workers")
async def test_phone_webhooks_and_live_state_reach_the_owner(nats_url, database_url, db_pool, request) -> None:
    rest = request.getfixturevalue("provider_api")  # respx: the providers' REST APIs
    signer = TelnyxSigner()
    ccid = "v3:" + uuid.uuid4().hex
    answer = rest.post(f"https://api.telnyx.com/v2/calls/{ccid}/actions/answer").mock(return_value=ok())
    telnyx_hangup = rest.post(f"https://api.telnyx.com/v2/calls/{ccid}/actions/hangup").mock(return_value=ok())
    async with replicas(nats_url, database_url, signer) as (a, a_host, b, b_host):
        # the same Telnyx webhook delivered to both replicas is processed once
        initiated = telnyx_event("call.initiated", ccid, direction="incoming", to="+15550007777")
        assert (await post_telnyx(a_host, initiated, signer)).json() == {"status": "answered"}
        assert (await post_telnyx(b_host, initiated, signer)).json() == {"status": "duplicate"}
        assert answer.call_count == 1
        state = json.loads(answer.calls.last.request.content)["client_state"]

        telnyx = PhoneCaller(f"ws://{a_host}/telnyx/media", "telnyx", call_id=ccid, parameters={"client_state": state})
        await telnyx.connect()
        await telnyx.wait_for(lambda m: m["event"] == "mark")  # the greeting played: the call is live on A
        assert ccid in a.state.runtime.sessions and ccid not in b.state.runtime.sessions

        # the same token replayed to the other replica: already spent (on every replica), refused there
        again = PhoneCaller(f"ws://{b_host}/telnyx/media", "telnyx", call_id=ccid, parameters={"client_state": state})
        await again.connect()
        await asyncio.wait_for(again.closed.wait(), 10)
        assert again.close_code == 1008 and "token" in again.close_reason
        # a second stream for the live call with a valid token of its own, on B: a duplicate of A's call
        fresh = encode_state({"token": b.state.runtime.tokens.mint("telnyx", call_id=ccid)})
        dup = PhoneCaller(f"ws://{b_host}/telnyx/media", "telnyx", call_id=ccid, parameters={"client_state": fresh})
        await dup.connect()
        await asyncio.wait_for(dup.closed.wait(), 10)
        assert dup.close_code == 1008 and "duplicate" in dup.close_reason
        assert ccid in a.state.runtime.sessions

        # a browser call on B: each replica's live-calls API lists both replicas' calls
        browser = SimCaller(f"ws://{b_host}/ws/simulator")
        assert (await browser.connect())["type"] == "started"
        for host in (a_host, b_host):
            assert (await live_ids(host)) == {ccid: "gw-a", browser.call_id: "gw-b"}
        async with client(b_host) as c:
            body = (await c.get("/api/v1/live/calls")).json()
        assert [(r["instance"], r["calls"]) for r in body["replicas"]] == [("gw-a", 1), ("gw-b", 1)]

        # Telnyx says the caller hung up, to replica B: A ends its call (nothing is sent back to Telnyx)
        hangup = telnyx_event("call.hangup", ccid, hangup_cause="normal_clearing")
        assert (await post_telnyx(b_host, hangup, signer)).json() == {"status": "hangup"}
        await asyncio.wait_for(telnyx.closed.wait(), 10)
        await until(lambda: ccid not in a.state.runtime.sessions, what="A's Telnyx call ended")
        assert not telnyx_hangup.called

        # Twilio: the call answered and streaming on A, its "completed" status callback sent to B
        call_sid = "CA" + uuid.uuid4().hex
        form = {"CallSid": call_sid, "AccountSid": ACCOUNT, "From": "+15550001111", "To": "+15550008888"}
        twiml = await post_twilio(a_host, "/twilio/voice", form)
        stream = ET.fromstring(twiml.text).find("./Connect/Stream")
        assert stream is not None
        params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        twilio = twilio_caller(a_host, call_sid, params)
        await twilio.connect()
        await twilio.wait_for(lambda m: m["event"] == "mark")
        assert call_sid in a.state.runtime.sessions
        status = {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "3"}
        assert (await post_twilio(b_host, "/twilio/status", status)).status_code == 204
        await asyncio.wait_for(twilio.closed.wait(), 10)
        await until(lambda: call_sid not in a.state.runtime.sessions, what="A's Twilio call ended")

        await browser.ws.close()
        await telnyx.close()
        await twilio.close()

    row, _ = await history(db_pool, ccid)
    assert row["end_reason"] == "caller_hangup" and row["client_type"] == "telnyx"
    row, _ = await history(db_pool, call_sid)
    assert row["end_reason"] == "caller_hangup" and row["client_type"] == "twilio"


@pytest.mark.usefixtures("workers", "provider_api")
async def test_admin_hangup_and_agent_in_use_through_the_other_replica(nats_url, database_url, db_pool) -> None:
    async with replicas(nats_url, database_url, TelnyxSigner()) as (a, a_host, _, b_host):
        agent_id = f"busy-{uuid.uuid4().hex[:8]}"
        async with client(b_host) as c:
            assert (await c.post("/api/v1/agents", json={"agent_id": agent_id})).status_code == 201
        caller = SimCaller(f"ws://{a_host}/ws/simulator")
        started = await caller.connect(agent_id=agent_id)
        assert started["type"] == "started" and started["call_id"] in a.state.runtime.sessions

        async with client(b_host, **{"X-API-Key": ADMIN}) as admin:
            # the agent of a call live on A cannot be deleted through B
            deleted = await admin.delete(f"/api/v1/agents/{agent_id}")
            assert deleted.status_code == 409 and "in use by 1 live call" in deleted.text
            assert (await admin.post("/admin/calls/no-such-call/hangup")).status_code == 404
            async with client(b_host, **{"X-API-Key": "wrong"}) as stranger:
                assert (await stranger.post(f"/admin/calls/{caller.call_id}/hangup")).status_code == 401
            out = await admin.post(f"/admin/calls/{caller.call_id}/hangup")
            assert out.status_code == 200, out.text
            assert out.json() == {
                "call_id": caller.call_id,
                "instance": "gw-a",
                "client_type": "browser",
                "status": "ending",
            }
        ended = await caller.next(lambda m: m["type"] == "ended", timeout=10)
        assert ended["reason"] == "admin_hangup"
        await until(lambda: caller.call_id not in a.state.runtime.sessions, what="A's call ended")
        async with client(b_host) as c:
            assert (await c.delete(f"/api/v1/agents/{agent_id}")).status_code == 204
    row, _ = await history(db_pool, caller.call_id)
    assert row["end_reason"] == "admin_hangup"


@pytest.mark.usefixtures("workers")
async def test_agent_changes_through_b_reach_a_even_across_a_reconnect(nats_url, database_url) -> None:
    async with replicas(nats_url, database_url, TelnyxSigner()) as (a, a_host, _, b_host):
        agent_id = f"desk-{uuid.uuid4().hex[:8]}"
        resolver = a.state.runtime.agents
        async with client(b_host) as c:
            assert (await c.post("/api/v1/agents", json={"agent_id": agent_id})).status_code == 201
            assert (await resolver.config_for_call("browser", agent_id)).agent_version == 1  # cached on A
            spec = (await c.get(f"/api/v1/agents/{agent_id}")).json()["spec"]

            # updated through B: A's next call runs version 2
            put = await c.put(f"/api/v1/agents/{agent_id}", json={**spec, "first_message": "Version two."})
            assert put.status_code == 200
            await until(lambda: (agent_id, "browser") not in resolver._cache, what="A's cache dropped")
            caller = SimCaller(f"ws://{a_host}/ws/simulator")
            assert (await caller.connect(agent_id=agent_id))["type"] == "started"
            assert a.state.runtime.sessions[caller.call_id].config.agent_version == 2
            await caller.ws.close()
            assert (await resolver.config_for_call("browser", agent_id)).first_message == "Version two."

            # A loses NATS; the update through B happens meanwhile (A can't hear any message about it)
            reconnects = a.state.runtime.bus.nc.stats["reconnects"]
            await a.state.relay.cut()
            await until(lambda: not a.state.runtime.bus.connected, what="A disconnected")
            put = await c.put(f"/api/v1/agents/{agent_id}", json={**spec, "first_message": "Version three."})
            assert put.status_code == 200
            assert (agent_id, "browser") in resolver._cache  # A still holds version 2
            await a.state.relay.restore()
            await until(lambda: a.state.runtime.bus.nc.stats["reconnects"] > reconnects, 15, "A reconnected")
            await until(lambda: (agent_id, "browser") not in resolver._cache, what="A's cache dropped")
            config = await resolver.config_for_call("browser", agent_id)
            assert (config.agent_version, config.first_message) == (3, "Version three.")
            caller = SimCaller(f"ws://{a_host}/ws/simulator")
            assert (await caller.connect(agent_id=agent_id))["type"] == "started"
            assert a.state.runtime.sessions[caller.call_id].config.agent_version == 3
            await caller.ws.close()


@pytest.mark.usefixtures("workers")
async def test_a_call_token_is_spent_once_across_replicas(nats_url, database_url) -> None:
    """A browser call's token used on A, then replayed to B (after A's call ended): B refuses it."""
    async with replicas(nats_url, database_url, TelnyxSigner()) as (a, a_host, b, b_host):
        token = a.state.runtime.tokens.mint("browser")
        first = SimCaller(f"ws://{a_host}/ws/simulator")
        assert (await first.connect(token=token))["type"] == "started"
        await first.hang_up()
        replay = SimCaller(f"ws://{b_host}/ws/simulator")
        answer = await replay.connect(token=token)
        assert answer["type"] == "error" and answer["code"] == "unauthorized"
        await asyncio.wait_for(replay._reader, 10)  # type: ignore[arg-type]
        assert replay.close_code == 1008
        # a fresh token still works on B
        fresh = SimCaller(f"ws://{b_host}/ws/simulator")
        assert (await fresh.connect(token=b.state.runtime.tokens.mint("browser")))["type"] == "started"
        await fresh.hang_up()
