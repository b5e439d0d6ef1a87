"""The telephony REST commands an agent's tools use (Twilio transfer; Telnyx transfer and send_dtmf), faked at
the HTTP boundary with respx in the providers' documented request and answer shapes, and what the media-stream
transport does with them (no hang-up after a transfer, keys in band on Twilio)."""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest
import respx

from services.gateway.metrics import PROVIDER_API_CALLS
from services.gateway.telephony.telnyx.api import TelnyxRest
from services.gateway.telephony.twilio.api import TwilioRest, transfer_twiml
from services.gateway.transports.media_stream import MediaStreamTransport, keypad_audio
from shared.audio import DTMF_FREQUENCIES, ulaw_to_pcm16

ACCOUNT = "AC" + "1" * 32
CALL_SID = "CA" + "2" * 32
TWILIO_CALL_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL_SID}.json"
CCID = "v3:abc_DEF-123"
TELNYX_ACTIONS = f"https://api.telnyx.com/v2/calls/{CCID}/actions"
# Twilio's answer to a call update: the call resource (abridged); to an update of a call that is over: 21220
TWILIO_UPDATED = httpx.Response(200, json={"sid": CALL_SID, "status": "in-progress", "account_sid": ACCOUNT})
TWILIO_NOT_IN_PROGRESS = httpx.Response(
    400, json={"code": 21220, "message": "Call is not in-progress. Cannot redirect.", "status": 400}
)
TWILIO_NOT_FOUND = httpx.Response(404, json={"code": 20404, "message": "The requested resource was not found"})
TELNYX_OK = httpx.Response(200, json={"data": {"result": "ok"}})
TELNYX_ENDED = httpx.Response(422, json={"errors": [{"code": "90018", "title": "Call has already ended"}]})


def counted(provider: str, action: str, outcome: str) -> float:
    return PROVIDER_API_CALLS.labels(provider, action, outcome)._value.get()


def twiml_of(request: httpx.Request) -> ET.Element:
    form = parse_qs(request.content.decode())
    assert list(form) == ["Twiml"]
    return ET.fromstring(form["Twiml"][0].split("?>", 1)[1])


# --- Twilio ---------------------------------------------------------------------------------------------


async def test_twilio_transfer_updates_the_live_call_with_a_dial() -> None:
    rest = TwilioRest(ACCOUNT, "token", "https://api.twilio.com")
    before = counted("twilio", "transfer", "ok")
    with respx.mock(assert_all_called=True) as api:
        route = api.post(TWILIO_CALL_URL).mock(return_value=TWILIO_UPDATED)
        await rest.transfer(CALL_SID, "+34910000000")
    request = route.calls.last.request
    assert request.headers["authorization"].startswith("Basic ")
    root = twiml_of(request)
    assert root.tag == "Response" and [child.tag for child in root] == ["Dial"]
    assert root.find("Dial").text == "+34910000000"  # type: ignore[union-attr]
    assert counted("twilio", "transfer", "ok") == before + 1
    await rest.aclose()


def test_twilio_transfer_twiml_dials_sip_uris_and_escapes() -> None:
    root = ET.fromstring(transfer_twiml("sip:o'brien&co<x>@pbx.example.com").split("?>", 1)[1])
    sip = root.find("./Dial/Sip")
    assert sip is not None and sip.text == "sip:o'brien&co<x>@pbx.example.com"
    root = ET.fromstring(transfer_twiml("+15550001111", say='One moment & "thanks"', language="es-ES").split("?>")[1])
    say = root.find("Say")
    assert say is not None and say.text == 'One moment & "thanks"' and say.get("language") == "es-ES"
    assert [child.tag for child in root] == ["Say", "Dial"]
    with pytest.raises(ValueError, match="neither an E"):
        transfer_twiml("</Dial><Hangup/>")
    with pytest.raises(ValueError, match="neither an E"):
        transfer_twiml("0034910000000")


async def test_twilio_transfer_failures_raise_clearly() -> None:
    rest = TwilioRest(ACCOUNT, "token", "https://api.twilio.com")
    errors = counted("twilio", "transfer", "error")
    with respx.mock() as api:
        api.post(TWILIO_CALL_URL).mock(return_value=TWILIO_NOT_IN_PROGRESS)
        with pytest.raises(RuntimeError, match=r"Twilio transfer failed: HTTP 400 .*21220"):
            await rest.transfer(CALL_SID, "+34910000000")
        api.post(TWILIO_CALL_URL).mock(return_value=TWILIO_NOT_FOUND)
        with pytest.raises(RuntimeError, match="already ended"):
            await rest.transfer(CALL_SID, "+34910000000")
        api.post(TWILIO_CALL_URL).mock(side_effect=httpx.ConnectTimeout("timed out"))
        with pytest.raises(RuntimeError, match="Twilio transfer failed: ConnectTimeout"):
            await rest.transfer(CALL_SID, "+34910000000")
    assert counted("twilio", "transfer", "error") == errors + 2
    with pytest.raises(ValueError, match="CallSid"):
        await rest.transfer("CA../../Accounts", "+34910000000")
    await rest.aclose()


async def test_twilio_hangup_still_posts_status_completed() -> None:
    rest = TwilioRest(ACCOUNT, "token", "https://api.twilio.com")
    with respx.mock() as api:
        route = api.post(TWILIO_CALL_URL).mock(return_value=httpx.Response(200, json={"status": "completed"}))
        assert await rest.hangup(CALL_SID) == "completed"
        assert route.calls.last.request.content == b"Status=completed"
        api.post(TWILIO_CALL_URL).mock(return_value=TWILIO_NOT_FOUND)
        assert await rest.hangup(CALL_SID) == "already_ended"
    await rest.aclose()


# --- Telnyx ---------------------------------------------------------------------------------------------


async def test_telnyx_transfer_and_send_dtmf_commands() -> None:
    rest = TelnyxRest("KEY-test", "https://api.telnyx.com")
    with respx.mock(assert_all_called=True) as api:
        transfer = api.post(f"{TELNYX_ACTIONS}/transfer").mock(return_value=TELNYX_OK)
        dtmf = api.post(f"{TELNYX_ACTIONS}/send_dtmf").mock(return_value=TELNYX_OK)
        await rest.transfer(CCID, "sip:desk@pbx.example.com")
        await rest.send_dtmf(CCID, "1234#")
        await rest.send_dtmf(CCID, "1234#")
    sent = json.loads(transfer.calls.last.request.content)
    assert sent == {"to": "sip:desk@pbx.example.com", "command_id": f"victoria-transfer-{CCID}"}
    assert transfer.calls.last.request.headers["authorization"] == "Bearer KEY-test"
    presses = [json.loads(call.request.content) for call in dtmf.calls]
    assert all(p["digits"] == "1234#" and p["duration_millis"] == 250 for p in presses)
    # Telnyx ignores a repeated command_id: pressing the same keys twice needs two ids
    assert len({p["command_id"] for p in presses}) == 2
    await rest.aclose()


async def test_telnyx_command_failures_raise_clearly() -> None:
    rest = TelnyxRest("KEY-test", "https://api.telnyx.com")
    with respx.mock() as api:
        api.post(f"{TELNYX_ACTIONS}/transfer").mock(return_value=TELNYX_ENDED)
        with pytest.raises(RuntimeError, match="already ended"):
            await rest.transfer(CCID, "+34910000000")
        api.post(f"{TELNYX_ACTIONS}/send_dtmf").mock(return_value=httpx.Response(500, text="upstream"))
        with pytest.raises(RuntimeError, match="Telnyx send_dtmf failed: HTTP 500 upstream"):
            await rest.send_dtmf(CCID, "1")
    with pytest.raises(ValueError, match="digits"):
        await rest.send_dtmf(CCID, "12; rm")
    with pytest.raises(ValueError, match="neither an E"):
        await rest.transfer(CCID, "call mom")
    await rest.aclose()


# --- the transport --------------------------------------------------------------------------------------


class StreamSocket:
    """The provider's end of a media stream: keeps what the gateway sent and echoes marks once received."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.transport: MediaStreamTransport | None = None

    async def send_text(self, text: str) -> None:
        message = json.loads(text)
        self.sent.append(message)
        if message["event"] == "mark" and self.transport is not None:
            self.transport.mark_played(message["mark"]["name"])

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def stream(**kw: Any) -> tuple[MediaStreamTransport, StreamSocket, list[str]]:
    ws, hangups = StreamSocket(), []

    async def hangup() -> None:
        hangups.append("hangup")

    transport = MediaStreamTransport(ws, "twilio", envelope={"streamSid": "MZ1"}, hangup=hangup, **kw)  # type: ignore[arg-type]
    ws.transport = transport
    return transport, ws, hangups


async def test_after_a_transfer_closing_the_stream_does_not_hang_up() -> None:
    targets: list[str] = []

    async def transfer_to(target: str) -> None:
        targets.append(target)

    transport, ws, hangups = stream(transfer_to=transfer_to)
    await transport.transfer("+34910000000")
    await transport.close(1000, "transferred")
    assert targets == ["+34910000000"] and transport.transferred_to == "+34910000000"
    assert hangups == [] and ws.closed == (1000, "transferred")


async def test_a_refused_transfer_keeps_the_call_ours() -> None:
    async def refused(target: str) -> None:
        raise RuntimeError("Twilio transfer failed: HTTP 400")

    transport, _, hangups = stream(transfer_to=refused)
    with pytest.raises(RuntimeError, match="HTTP 400"):
        await transport.transfer("+34910000000")
    await transport.close(1000, "agent_hangup")
    assert hangups == ["hangup"] and await transport.transfer_outcome() is None
    bare, _, _ = stream()
    with pytest.raises(RuntimeError, match="credentials"):
        await bare.transfer("+34910000000")


async def test_a_stream_stopped_mid_transfer_learns_where_the_call_went() -> None:
    """Twilio may stop the stream before its REST answer reaches us: the outcome waits for the answer."""
    answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def transfer_to(target: str) -> None:
        await answer

    transport, _, _ = stream(transfer_to=transfer_to)
    assert await transport.transfer_outcome() is None  # no transfer: the caller hung up
    transfer = asyncio.create_task(transport.transfer("+34910000000"))
    await asyncio.sleep(0.01)
    outcome = asyncio.create_task(transport.transfer_outcome())
    await asyncio.sleep(0.05)
    assert not outcome.done()
    answer.set_result(None)
    assert await outcome == "+34910000000"
    await transfer


async def test_keys_use_the_providers_command_when_there_is_one() -> None:
    pressed: list[str] = []

    async def command(digits: str) -> None:
        pressed.append(digits)

    transport, ws, _ = stream(dtmf_command=command)
    transport.open_output(frame_ms=20, lead_ms=20).start()
    await transport.send_dtmf("9#")
    assert pressed == ["9#"] and not [m for m in ws.sent if m["event"] == "media"]
    await transport.output.stop()  # type: ignore[union-attr]


def strongest(pcm: np.ndarray, rate: int = 8000) -> set[int]:
    """The two loudest DTMF frequencies in ``pcm`` (Goertzel-free: an FFT is plenty at 100 ms)."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    candidates = {697, 770, 852, 941, 1209, 1336, 1477, 1633}
    power = {f: spectrum[np.argmin(np.abs(freqs - f))] for f in candidates}
    return set(sorted(power, key=power.get, reverse=True)[:2])  # type: ignore[arg-type]


async def test_twilio_keys_are_played_in_band_and_awaited() -> None:
    transport, ws, _ = stream()
    transport.open_output(frame_ms=20, lead_ms=20).start()
    await asyncio.wait_for(transport.send_dtmf("1w#"), 5)
    media = [m for m in ws.sent if m["event"] == "media"]
    assert ws.sent[-1]["event"] == "mark" and all(m["streamSid"] == "MZ1" for m in media)
    ulaw = b"".join(base64.b64decode(m["media"]["payload"]) for m in media)
    assert ulaw.rstrip(b"\xff") == keypad_audio("1w#").rstrip(b"\xff")
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16)
    assert strongest(pcm[:800]) == set(DTMF_FREQUENCIES["1"])  # the first 100 ms: key 1
    pause = pcm[1280 : 1280 + 4000]  # after 1's tone and gap: half a second of silence ("w")
    assert np.abs(pause).max() < 50
    assert strongest(pcm[5280 : 5280 + 800]) == set(DTMF_FREQUENCIES["#"])
    await transport.output.stop()  # type: ignore[union-attr]
