"""Telephony building blocks: G.711 A-law, Twilio signatures, Telnyx signatures, reordering, echoed marks."""

from __future__ import annotations

import asyncio
import base64
import time
import warnings

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.gateway.call.pacer import AudioPacer
from services.gateway.telephony.telnyx.api import SignatureError, verify_signature
from services.gateway.telephony.telnyx.media import Reorderer
from services.gateway.telephony.twilio.api import connect_stream_twiml, signature, url_variants, valid_signature
from shared import audio


def test_alaw_matches_the_g711_reference() -> None:
    # reference values from ITU-T G.711 tables: 0 -> 0xD5, max positive -> 0xAA, max negative -> 0x2A
    pcm = np.array([0, 32767, -32768, 1000, -1000], dtype=np.int16).tobytes()
    assert audio.pcm16_to_alaw(pcm)[:3] == bytes([0xD5, 0xAA, 0x2A])
    assert audio.alaw_to_pcm16(bytes([0xD5])) == np.array([8], dtype=np.int16).tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    every = np.arange(-32768, 32768, dtype=np.int16).tobytes()
    assert audio.pcm16_to_alaw(every) == audioop.lin2alaw(every, 2)
    assert audio.alaw_to_pcm16(bytes(range(256))) == audioop.alaw2lin(bytes(range(256)), 2)
    assert audio.ulaw_to_alaw(bytes(range(256))) == audioop.lin2alaw(audioop.ulaw2lin(bytes(range(256)), 2), 2)


def test_twilio_signature_matches_the_documented_example() -> None:
    # the example from Twilio's "Webhooks security" page
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert valid_signature("12345", [url], params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not valid_signature("12345", [url], {**params, "Digits": "9"}.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert url_variants("https://h.example:443/x") == ["https://h.example:443/x", "https://h.example/x"]
    assert url_variants("https://h.example/x") == ["https://h.example/x", "https://h.example:443/x"]


def test_twiml_escapes_parameters() -> None:
    import xml.etree.ElementTree as ET

    twiml = connect_stream_twiml("wss://h/twilio/media", {"agent_id": "a\"<b>&'x"})
    param = ET.fromstring(twiml.split("?>", 1)[1]).find("./Connect/Stream/Parameter")
    assert param is not None and param.get("value") == "a\"<b>&'x"


def test_telnyx_signature_checks() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    body = b'{"data":{"event_type":"call.initiated"}}'
    now = int(time.time())
    sig = base64.b64encode(key.sign(f"{now}|".encode() + body)).decode()
    verify_signature(public, body, sig, str(now))
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(public, body + b" ", sig, str(now))
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(public, body, sig, str(now), now=now + 301)
    with pytest.raises(SignatureError, match="missing"):
        verify_signature(public, body, "", str(now))
    with pytest.raises(SignatureError, match="undecodable"):
        verify_signature(public, body, "***", str(now))


def test_reorderer_restores_order_and_skips_lost_frames() -> None:
    r = Reorderer(window=2)
    assert r.push(1, b"1") == [b"1"]
    assert r.push(3, b"3") == []
    assert r.push(2, b"2") == [b"2", b"3"]
    assert r.push(2, b"2") == [] and r.dropped_late == 1  # a repeat
    assert r.push(5, b"5") == [] and r.push(6, b"6") == []
    assert r.push(7, b"7") == [b"5", b"6", b"7"] and r.skipped == 1  # frame 4 is lost: play on
    assert r.push(4, b"4") == [] and r.dropped_late == 2  # too late now


async def test_pacer_sends_marks_and_trusts_their_echo() -> None:
    sent: list[bytes] = []
    marks: list[str] = []

    async def sink(frame: bytes) -> None:
        sent.append(frame)

    async def mark_sink(name: str) -> None:
        marks.append(name)

    pacer = AudioPacer(sink, bytes_per_s=8000, frame_ms=20, lead_ms=20, remote_mark=mark_sink, echo_grace_s=5)
    pacer.start()
    played = asyncio.Event()
    pacer.push(b"\xff" * 800)  # 100 ms
    pacer.mark(played.set)
    for _ in range(100):
        if marks:
            break
        await asyncio.sleep(0.01)
    assert marks == ["m1"] and len(sent) == 5 and all(len(f) == 160 for f in sent)  # after the audio
    assert not played.is_set()
    assert not pacer.mark_echoed("nonsense")
    assert pacer.mark_echoed("m1") and played.is_set()
    assert pacer.played_bytes() == 800  # exactly what the client confirmed
    await pacer.stop()
