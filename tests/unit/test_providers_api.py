"""``GET /api/v1/providers``: every provider the workers describe (their micro metadata) with its catalogue, and
``usable`` from the workers' env keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway.api import providers as providers_api
from services.llm_worker.providers import PROVIDERS as LLM
from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers import describe as describe_llm
from services.stt_worker.providers import PROVIDERS as STT
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers import describe as describe_stt
from services.tts_worker.providers import PROVIDERS as TTS
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers import describe as describe_tts
from shared.call_config import known_providers
from shared.health import ServiceInfo
from shared.provider_catalog import ProviderModule
from tools.check_env import provider_status

KEY = "prov-key"
REGISTRIES: dict[str, dict[str, ProviderModule]] = {"stt": STT, "llm": LLM, "tts": TTS}


pytestmark = pytest.mark.usefixtures("no_provider_env")


async def workers_describing_themselves(_bus: object, window_s: float = 0.25) -> list[ServiceInfo]:
    """What a STATS request finds: one replica per worker kind, describing itself with the current env."""
    return [
        ServiceInfo(service="stt", instance="stt-1", metadata=describe_stt(SttWorkerSettings())),
        ServiceInfo(service="llm", instance="llm-1", metadata=describe_llm(LlmWorkerSettings())),
        ServiceInfo(service="tts", instance="tts-1", metadata=describe_tts(TtsWorkerSettings())),
        ServiceInfo(service="call_recorder", instance="rec-1"),
    ]


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(providers_api, "ping_services", workers_describing_themselves)
    app = FastAPI()
    app.state.api_keys = [KEY.encode()]
    app.state.runtime = SimpleNamespace(bus=SimpleNamespace(connected=True))
    app.include_router(providers_api.router)
    return TestClient(app)


def get(client: TestClient) -> dict[str, dict[str, dict]]:
    resp = client.get("/api/v1/providers", headers={"X-API-Key": KEY})
    assert resp.status_code == 200, resp.text
    return {kind: {p["name"]: p for p in items} for kind, items in resp.json().items()}


def test_agents_may_name_exactly_the_providers_the_workers_can_build() -> None:
    known = known_providers()
    for kind, registry in REGISTRIES.items():
        assert set(registry) == known[kind], kind
        for name, module in registry.items():
            assert module.NAME == name and module.OFFER and callable(module.usable) and module.Provider, name


def test_a_kind_no_worker_answers_for_lists_nothing_and_a_ready_replica_wins() -> None:
    fake_only = '[{"name": "fake", "usable": true, "status": "built in", "default": true, "models": [], ' + (
        '"voices": [], "languages": []}]'
    )
    infos = [
        ServiceInfo(service="tts", instance="0-not-ready", ready=False, metadata={"providers": fake_only}),
        ServiceInfo(service="tts", instance="a-garbled", metadata={"providers": '[{"name": "x"}]'}),
        ServiceInfo(service="tts", instance="b", metadata=describe_tts(TtsWorkerSettings())),
    ]
    out = providers_api.providers_from(infos)
    assert out.stt == [] and out.llm == []
    assert [p.name for p in out.tts] == sorted(TTS)  # the first ready replica that describes its providers
    assert [p.name for p in providers_api.providers_from(infos[:1]).tts] == ["fake"]  # else any replica


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
