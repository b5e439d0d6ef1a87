"""``GET /api/v1/providers``: every registered provider with its catalogue, and ``usable`` from the env keys."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway.api.providers import catalogs
from services.gateway.api.providers import router as providers_router
from shared.call_config import known_providers
from tools.check_env import provider_status

KEY = "prov-key"


pytestmark = pytest.mark.usefixtures("no_provider_env")


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    app.state.api_keys = [KEY.encode()]
    app.include_router(providers_router)
    return TestClient(app)


def get(client: TestClient) -> dict[str, dict[str, dict]]:
    resp = client.get("/api/v1/providers", headers={"X-API-Key": KEY})
    assert resp.status_code == 200, resp.text
    return {kind: {p["name"]: p for p in items} for kind, items in resp.json().items()}


def test_every_registered_provider_has_a_catalogue_entry() -> None:
    known, offers = known_providers(), catalogs()
    for kind in ("stt", "llm", "tts"):
        assert set(offers[kind]) == known[kind], kind


def test_needs_the_api_key(client: TestClient) -> None:
    assert client.get("/api/v1/providers").status_code == 401
    assert client.get("/api/v1/providers", headers={"X-API-Key": "wrong"}).status_code == 401


def test_shape_and_catalogue(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "my-served-model")
    monkeypatch.setenv("TTS_PROVIDER", "fake")
    data = get(client)
    assert set(data) == {"stt", "llm", "tts"}
    for kind, providers in data.items():
        assert set(providers) == known_providers()[kind]
        for p in providers.values():
            assert set(p) >= {"name", "usable", "status", "default", "models", "voices", "languages", "note"}
            assert isinstance(p["usable"], bool) and p["status"]
    tts, stt, llm = data["tts"], data["stt"], data["llm"]
    # the worker defaults: STT/LLM unset (local_*), TTS from TTS_PROVIDER
    assert [n for n, p in stt.items() if p["default"]] == ["local_whisper"]
    assert [n for n, p in tts.items() if p["default"]] == ["fake"]
    azure_voices = {v["name"]: v for v in tts["azure"]["voices"]}
    for name, lang in (("es-ES-ElviraNeural", "es-ES"), ("es-ES-AlvaroNeural", "es-ES"), ("en-US-GuyNeural", "en-US")):
        assert azure_voices[name]["language"] == lang
    assert "cheerful" in azure_voices["en-US-JennyNeural"]["styles"]
    assert {"es-ES", "en-US"} <= set(tts["azure"]["languages"])
    assert tts["azure"]["default_voice"] == "en-US-JennyNeural"
    assert [v["name"] for v in tts["local_piper"]["voices"]] == ["en_US-joe-medium"]
    groq_stt = [m["id"] for m in stt["groq"]["models"]]
    assert {"whisper-large-v3-turbo", "whisper-large-v3"} <= set(groq_stt)
    assert stt["groq"]["default_model"] == "whisper-large-v3-turbo"
    assert {"llama-3.3-70b-versatile", "llama-3.1-8b-instant"} <= {m["id"] for m in llm["groq"]["models"]}
    assert llm["openai"]["default_model"] == "my-served-model"  # from the settings, listed first
    assert llm["openai"]["models"][0]["id"] == "my-served-model"
    assert [m["id"] for m in stt["local_whisper"]["models"]] == ["tiny.en"]
    assert llm["local_llama"]["models"]


def test_usable_follows_the_keys(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    data = get(client)
    for kind in ("stt", "llm"):
        assert data[kind]["groq"]["usable"] is False and "GROQ_API_KEY" in data[kind]["groq"]["status"]
        assert data[kind]["fake"]["usable"] is True
    assert data["llm"]["openai"]["usable"] is False and "OPENAI_API_KEY" in data["llm"]["openai"]["status"]
    assert data["tts"]["azure"]["usable"] is False
    assert "AZURE_SPEECH_REGION" in data["tts"]["azure"]["status"]
    # local ones: whatever check_env says (their model packages may or may not be installed)
    assert data["tts"]["local_piper"]["usable"] is provider_status("tts", "local_piper").usable

    monkeypatch.setenv("GROQ_API_KEY", "gsk_x")
    monkeypatch.setenv("AZURE_SPEECH_KEY", "k")  # no region yet: still unusable
    data = get(client)
    assert data["stt"]["groq"]["usable"] and data["llm"]["groq"]["usable"]
    assert data["stt"]["groq"]["status"] == "key set"
    assert not data["tts"]["azure"]["usable"] and not data["stt"]["azure"]["usable"]

    monkeypatch.setenv("AZURE_SPEECH_REGION", "westeurope")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")  # self-hosted: no key needed
    data = get(client)
    assert data["tts"]["azure"]["usable"] and data["stt"]["azure"]["usable"]
    assert data["llm"]["openai"]["usable"]
