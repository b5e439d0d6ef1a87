"""Settings come from env, reject bad values with the field's name, never show secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import GatewaySettings, SttSettings
from tools.env_example import PATH, render


def test_env_example_documents_every_setting() -> None:
    assert PATH.read_text() == render(), "run `python -m tools.env_example` to refresh .env.example"


def test_values_come_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "8123")
    monkeypatch.setenv("VAD_ENGINE", "webrtc")
    monkeypatch.setenv("NATS_URL", "nats://a:4222,nats://b:4222")
    s = GatewaySettings()
    assert s.gateway_port == 8123 and s.vad_engine == "webrtc" and s.nats_url.endswith("b:4222")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_PORT", "0"),
        ("VAD_ENGINE", "magic"),
        ("MAX_TURN_SECONDS", "100"),
        ("END_OF_TURN_MARGIN_S", "-1"),
        ("END_OF_TURN_MARGIN_S", "nan"),
        ("END_OF_TURN_MARGIN_S", "two"),
        ("END_OF_TURN_WINDOW_S", "9"),
    ],
)
def test_bad_values_name_the_field(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        GatewaySettings()
    assert name.lower() in str(info.value)


def test_database_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/victoria")
    s = SttSettings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert "hunter2" in s.database_url.get_secret_value()


def test_agent_extraction_fields_are_validated() -> None:
    from shared.call_config import AgentSpec

    assert AgentSpec(extraction_fields={"party_size": "people"}).extraction_fields == {"party_size": "people"}
    for bad in ({"Party Size": "x"}, {"summary": "x"}, {"ok_name": " "}):
        with pytest.raises(ValidationError):
            AgentSpec(extraction_fields=bad)


@pytest.mark.parametrize("value", ["0", "17", "three"])
def test_llm_contexts_out_of_range_names_the_field(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from services.llm_worker.providers import LlmWorkerSettings

    monkeypatch.setenv("LLM_CONTEXTS", value)
    with pytest.raises(ValidationError) as info:
        LlmWorkerSettings()
    assert "llm_contexts" in str(info.value)
