"""Azure Speech adapters tested at the HTTP boundary (respx), with the documented REST request/response shapes.

The ``live`` test calls the real service and runs only when ``AZURE_SPEECH_KEY`` is set.
"""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers import build_provider as build_stt
from services.stt_worker.providers.azure import AzureStt, azure_locale
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers import build_provider as build_tts
from services.tts_worker.providers.azure import AzureTts, output_format
from shared.audio import read_wav
from shared.events import VoiceSpec
from shared.metrics import PROVIDER_ERRORS
from shared.worker import ProviderError

REGION = "westeurope"
TTS_URL = f"https://{REGION}.tts.speech.microsoft.com/cognitiveservices/v1"
STT_URL = f"https://{REGION}.stt.speech.microsoft.com/speech/recognition/conversation/cognitiveservices/v1"
NS = "{http://www.w3.org/2001/10/synthesis}"
MSTTS = "{https://www.w3.org/2001/mstts}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
FAST = {"azure_speech_key": "az-test", "azure_speech_region": REGION}
PCM = bytes(range(256)) * 25  # 6400 bytes = 200 ms at 16 kHz
HOSTILE = 'Tom & Jerry say "<hi>" ]]> it\'s 5 > 3 👋'


def tts(**overrides: Any) -> AzureTts:
    values = {**FAST, "tts_chunk_ms": 20, "tts_retry_base_delay_s": 0.001, "tts_retry_max_delay_s": 0.01}
    return AzureTts(TtsWorkerSettings(**{**values, **overrides}))


def stt(**overrides: Any) -> AzureStt:
    values = {**FAST, "stt_retry_base_delay_s": 0.001, "stt_retry_max_delay_s": 0.01}
    return AzureStt(SttWorkerSettings(**{**values, **overrides}))


async def synth(
    provider: AzureTts, text: str = "Hello.", voice: VoiceSpec | None = None, language: str = "en-US", rate: int = 16000
) -> list[tuple[bytes, int]]:
    return [c async for c in provider.synthesize(text, voice or VoiceSpec(), language=language, sample_rate=rate)]


def errors(service: str, error_class: str) -> float:
    return PROVIDER_ERRORS.labels(service, "azure", error_class)._value.get()


def azure_json(status: str, text: str = "") -> dict[str, Any]:
    return {"RecognitionStatus": status, "DisplayText": text, "Offset": 1800000, "Duration": 12300000}


class RecordingStream(httpx.AsyncByteStream):
    """A response body that records how far it was read and whether it was closed."""

    def __init__(self, pieces: list[bytes], delay: float = 0.0) -> None:
        self.pieces = pieces
        self.delay = delay
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.sent += 1
            yield piece
            await asyncio.sleep(self.delay)

    async def aclose(self) -> None:
        self.closed = True


# --- TTS: request ------------------------------------------------------------------------------------------


@respx.mock
@pytest.mark.parametrize(
    ("rate", "fmt"),
    [(8000, "raw-8khz-16bit-mono-pcm"), (16000, "raw-16khz-16bit-mono-pcm"), (24000, "raw-24khz-16bit-mono-pcm")],
)
async def test_tts_request_headers_and_output_format(rate: int, fmt: str) -> None:
    route = respx.post(TTS_URL).mock(return_value=httpx.Response(200, content=PCM))
    chunks = await synth(tts(), rate=rate)
    assert {r for _, r in chunks} == {rate}
    request = route.calls.last.request
    assert request.headers["Ocp-Apim-Subscription-Key"] == "az-test"
    assert request.headers["Content-Type"] == "application/ssml+xml"
    assert request.headers["X-Microsoft-OutputFormat"] == fmt
    assert request.headers["User-Agent"] == "victoria"


def test_output_format_for_other_rates() -> None:
    assert output_format(48000) == (48000, "raw-48khz-16bit-mono-pcm")
    assert output_format(12000) == (16000, "raw-16khz-16bit-mono-pcm")
    assert output_format(96000) == (48000, "raw-48khz-16bit-mono-pcm")


@respx.mock
async def test_tts_body_is_ssml_with_voice_prosody_style_and_escaped_text() -> None:
    route = respx.post(TTS_URL).mock(return_value=httpx.Response(200, content=PCM))
    voice = VoiceSpec(name="es-ES-ElviraNeural", style="cheerful", rate=1.25, pitch=-10)
    await synth(tts(), HOSTILE, voice, language="es-ES")
    root = ET.fromstring(route.calls.last.request.content)
    assert root.tag == f"{NS}speak" and root.get(XML_LANG) == "es-ES"
    voice_el = root.find(f"{NS}voice")
    assert voice_el is not None and voice_el.get("name") == "es-ES-ElviraNeural"
    express = voice_el.find(f"{MSTTS}express-as")
    assert express is not None and express.get("style") == "cheerful"
    prosody = express.find(f"{NS}prosody")
    assert prosody is not None
    assert (prosody.get("rate"), prosody.get("pitch"), prosody.text) == ("+25%", "-10%", HOSTILE)


@respx.mock
async def test_tts_default_voice_and_no_style() -> None:
    route = respx.post(TTS_URL).mock(return_value=httpx.Response(200, content=PCM))
    await synth(tts(azure_tts_voice="en-GB-SoniaNeural"))
    root = ET.fromstring(route.calls.last.request.content)
    voice_el = root.find(f"{NS}voice")
    assert voice_el is not None and voice_el.get("name") == "en-GB-SoniaNeural"
    assert voice_el.find(f"{MSTTS}express-as") is None
    assert root.get(XML_LANG) == "en-US"


@respx.mock
async def test_tts_base_url_override_needs_no_region() -> None:
    route = respx.post("http://azure.test/cognitiveservices/v1").mock(return_value=httpx.Response(200, content=PCM))
    chunks = await synth(tts(azure_speech_region="", azure_base_url="http://azure.test/"))
    assert route.call_count == 1 and b"".join(c for c, _ in chunks) == PCM


# --- TTS: streaming ----------------------------------------------------------------------------------------


@respx.mock
async def test_tts_streams_chunks_in_order() -> None:
    pieces = [PCM[i : i + 333] for i in range(0, len(PCM), 333)]  # odd sizes: samples split across reads
    respx.post(TTS_URL).mock(return_value=httpx.Response(200, stream=RecordingStream(pieces)))
    chunks = await synth(tts())  # 20 ms at 16 kHz = 640 bytes
    assert len(chunks) == 10
    assert all(len(c) == 640 for c, _ in chunks)
    assert b"".join(c for c, _ in chunks) == PCM


@respx.mock
async def test_tts_drops_a_trailing_odd_byte() -> None:
    respx.post(TTS_URL).mock(return_value=httpx.Response(200, content=PCM[:1001]))
    chunks = await synth(tts())
    assert b"".join(c for c, _ in chunks) == PCM[:1000]
    assert all(len(c) % 2 == 0 for c, _ in chunks)


@respx.mock
async def test_tts_aclose_mid_stream_closes_the_response() -> None:
    body = RecordingStream([PCM[:640]] * 50, delay=0.005)
    respx.post(TTS_URL).mock(return_value=httpx.Response(200, stream=body))
    stream = tts().synthesize("Hello.", VoiceSpec(), language="en-US", sample_rate=16000)
    first = await anext(stream)
    assert first == (PCM[:640], 16000)
    await stream.aclose()
    assert body.closed
    assert body.sent < len(body.pieces)


# --- TTS: errors -------------------------------------------------------------------------------------------


@respx.mock
async def test_tts_401_is_auth_and_not_retried() -> None:
    before = errors("tts", "auth")
    body = {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}
    route = respx.post(TTS_URL).mock(return_value=httpx.Response(401, json=body))
    with pytest.raises(ProviderError) as err:
        await synth(tts())
    assert err.value.code == "auth" and not err.value.retryable
    assert "AZURE_SPEECH_KEY" in str(err.value)
    assert route.call_count == 1
    assert errors("tts", "auth") == before + 1


@respx.mock
async def test_tts_429_honours_retry_after_then_succeeds() -> None:
    route = respx.post(TTS_URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, content=PCM)]
    )
    chunks = await synth(tts(tts_retry_base_delay_s=10.0, tts_retry_max_delay_s=10.0))  # Retry-After wins
    assert b"".join(c for c, _ in chunks) == PCM
    assert route.call_count == 2


@respx.mock
async def test_tts_503_is_unavailable_after_retries() -> None:
    before = errors("tts", "unavailable")
    route = respx.post(TTS_URL).mock(return_value=httpx.Response(503, text="Service Unavailable"))
    with pytest.raises(ProviderError) as err:
        await synth(tts())
    assert err.value.code == "unavailable"
    assert route.call_count == 3
    assert errors("tts", "unavailable") == before + 3


@respx.mock
async def test_tts_timeout() -> None:
    route = respx.post(TTS_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as err:
        await synth(tts(tts_max_retries=1))
    assert err.value.code == "timeout"
    assert route.call_count == 2


class BreakingStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield PCM[:640]
        raise httpx.ReadError("connection reset")


@respx.mock
async def test_tts_no_retry_after_audio_was_yielded() -> None:
    route = respx.post(TTS_URL).mock(return_value=httpx.Response(200, stream=BreakingStream()))
    got: list[bytes] = []
    with pytest.raises(ProviderError) as err:
        async for pcm, _ in tts().synthesize("Hello.", VoiceSpec(), language="en-US", sample_rate=16000):
            got.append(pcm)
    assert err.value.code == "internal"
    assert got == [PCM[:640]]
    assert route.call_count == 1


@pytest.mark.parametrize("missing", [{"azure_speech_key": ""}, {"azure_speech_region": ""}])
async def test_tts_missing_key_or_region_is_auth(missing: dict[str, str]) -> None:
    with pytest.raises(ProviderError) as err:
        await synth(tts(**missing))
    assert err.value.code == "auth"
    assert "AZURE_SPEECH_KEY" in str(err.value) and "AZURE_SPEECH_REGION" in str(err.value)


def test_registries_know_azure() -> None:
    assert isinstance(build_tts("azure", TtsWorkerSettings(**FAST)), AzureTts)
    assert isinstance(build_stt("azure", SttWorkerSettings(**FAST)), AzureStt)


# --- STT ---------------------------------------------------------------------------------------------------


@respx.mock
async def test_stt_sends_wav_and_language_and_returns_display_text() -> None:
    route = respx.post(STT_URL).mock(return_value=httpx.Response(200, json=azure_json("Success", " Hello world. ")))
    result = await stt().transcribe(PCM, 16000, language="es-ES")
    assert result.text == "Hello world." and result.language == "es-ES"
    request = route.calls.last.request
    assert request.url.params["language"] == "es-ES" and request.url.params["format"] == "simple"
    assert request.headers["Ocp-Apim-Subscription-Key"] == "az-test"
    assert request.headers["Content-Type"] == "audio/wav; codecs=audio/pcm; samplerate=16000"
    assert request.content[:4] == b"RIFF" and request.content[8:12] == b"WAVE"
    assert read_wav(request.content) == (PCM, 16000)


@respx.mock
async def test_stt_resamples_to_16k() -> None:
    route = respx.post(STT_URL).mock(return_value=httpx.Response(200, json=azure_json("Success", "hi")))
    await stt().transcribe(PCM, 8000)
    pcm, rate = read_wav(route.calls.last.request.content)
    assert rate == 16000 and abs(len(pcm) - 2 * len(PCM)) <= 4
    assert route.calls.last.request.url.params["language"] == "en-US"


@pytest.mark.parametrize("status", ["NoMatch", "InitialSilenceTimeout"])
@respx.mock
async def test_stt_no_speech_is_empty(status: str) -> None:
    respx.post(STT_URL).mock(return_value=httpx.Response(200, json={"RecognitionStatus": status, "Offset": 0}))
    assert (await stt().transcribe(PCM, 16000, language="en")).text == ""


@pytest.mark.parametrize("status", ["BabbleTimeout", "Error"])
@respx.mock
async def test_stt_failed_recognition_is_internal(status: str) -> None:
    respx.post(STT_URL).mock(return_value=httpx.Response(200, json={"RecognitionStatus": status}))
    with pytest.raises(ProviderError) as err:
        await stt().transcribe(PCM, 16000)
    assert err.value.code == "internal" and status in str(err.value)


@respx.mock
async def test_stt_400_is_bad_request_not_retried() -> None:
    before = errors("stt", "bad_request")
    route = respx.post(STT_URL).mock(return_value=httpx.Response(400, text="Unsupported audio format"))
    with pytest.raises(ProviderError) as err:
        await stt().transcribe(PCM, 16000)
    assert err.value.code == "bad_request" and route.call_count == 1
    assert errors("stt", "bad_request") == before + 1


@respx.mock
async def test_stt_retries_5xx_then_succeeds() -> None:
    route = respx.post(STT_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=azure_json("Success", "ok"))]
    )
    assert (await stt().transcribe(PCM, 16000)).text == "ok"
    assert route.call_count == 2


async def test_stt_missing_key_is_auth() -> None:
    with pytest.raises(ProviderError) as err:
        await stt(azure_speech_key="").transcribe(PCM, 16000)
    assert err.value.code == "auth" and "AZURE_SPEECH_KEY" in str(err.value)


@pytest.mark.parametrize(
    ("language", "expected"),
    [("es-ES", "es-ES"), ("pt_PT", "pt-PT"), ("en", "en-US"), ("es", "es-ES"), (None, "fr-FR"), ("xx", "fr-FR")],
)
def test_azure_locale(language: str | None, expected: str) -> None:
    assert azure_locale(language, "fr-FR") == expected


# --- live ----------------------------------------------------------------------------------------------------


@pytest.mark.live(env="AZURE_SPEECH_KEY")
async def test_live_azure_tts_then_stt() -> None:
    if not os.environ.get("AZURE_SPEECH_REGION"):
        pytest.skip("live: set AZURE_SPEECH_REGION too")
    speaker = AzureTts(TtsWorkerSettings())
    chunks = await synth(speaker, "Hello world.", rate=16000)
    audio = b"".join(c for c, _ in chunks)
    assert len(audio) > 16000  # more than half a second
    listener = AzureStt(SttWorkerSettings())
    result = await listener.transcribe(audio, 16000, language="en-US")
    assert "hello" in result.text.lower()
    await speaker.aclose()
    await listener.aclose()
