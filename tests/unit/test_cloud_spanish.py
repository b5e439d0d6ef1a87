"""The Spanish agent on the cloud providers, checked at the HTTP boundary (respx, the providers' documented
request shapes): Azure TTS speaks es-ES with an es-ES neural voice, Azure STT listens for es-ES, Groq Whisper
gets the ``es`` hint, from the ``es`` agent's own settings (shared/db/migrations/0006_agent_es.sql)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
import respx

from shared.call_config import CallConfig
from shared.events import VoiceSpec
from shared.texts import CATALOGUE
from tests.unit.test_azure_providers import NS, PCM, STT_URL, TTS_URL, XML_LANG, azure_json, stt, synth, tts
from tests.unit.test_cloud_providers import GROQ_STT, whisper
from tests.unit.test_texts import es_agent_spec


def spanish_agent() -> CallConfig:
    return CallConfig.resolve("es", 1, es_agent_spec(), "twilio")


@respx.mock
async def test_azure_tts_speaks_the_spanish_greeting_with_an_es_es_voice() -> None:
    route = respx.post(TTS_URL).mock(return_value=httpx.Response(200, content=PCM))
    agent = spanish_agent()
    await synth(tts(), agent.first_message, VoiceSpec(name="es-ES-ElviraNeural"), language=agent.language)
    root = ET.fromstring(route.calls.last.request.content)
    assert root.get(XML_LANG) == "es-ES"
    voice = root.find(f"{NS}voice")
    assert voice is not None and voice.get("name") == "es-ES-ElviraNeural"
    assert (
        "".join(voice.itertext()) == CATALOGUE["es"]["first_message"] == "Hola, soy Victoria. ¿En qué puedo ayudarle?"
    )


@respx.mock
@pytest.mark.parametrize("hint", [None, "es"])  # the es agent's stt.language, or a bare hint (agent language)
async def test_azure_stt_listens_for_es_es(hint: str | None) -> None:
    route = respx.post(STT_URL).mock(return_value=httpx.Response(200, json=azure_json("Success", "¿A qué hora abren?")))
    language = hint or spanish_agent().stt.language
    result = await stt().transcribe(PCM, 16000, language=language)
    assert result.text == "¿A qué hora abren?" and route.calls.last.request.url.params["language"] == "es-ES"


@respx.mock
@pytest.mark.parametrize("hint", [None, "es"])
async def test_groq_whisper_gets_the_es_hint(hint: str | None) -> None:
    route = respx.post(GROQ_STT).mock(return_value=httpx.Response(200, json={"text": " ¿A qué hora abren mañana? "}))
    language = hint or spanish_agent().stt.language
    result = await whisper().transcribe(PCM, 16000, language=language)
    assert result.text == "¿A qué hora abren mañana?"
    assert b'name="language"\r\n\r\nes\r\n' in route.calls.last.request.content
