"""check-env: which providers are usable, and which agents can't run."""

from __future__ import annotations

import pytest

from shared.call_config import AgentSpec
from tools.check_env import agent_problems, main, provider_status

pytestmark = pytest.mark.usefixtures("no_provider_env")


def test_offline_providers_are_usable_and_cloud_ones_name_their_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    assert provider_status("llm", "local_llama").usable
    assert provider_status("llm", "fake").usable
    groq = provider_status("llm", "groq")
    assert not groq.usable and "GROQ_API_KEY" in groq.why
    monkeypatch.setenv("GROQ_API_KEY", "gsk_x")
    assert provider_status("llm", "groq").usable
    assert not provider_status("llm", "skynet").usable


def test_an_agent_that_needs_a_missing_key_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = AgentSpec(overlays={"twilio": {"llm": {"provider": "groq"}}})
    problems = agent_problems("sales", spec)
    assert problems == ["agent 'sales' (twilio) needs llm provider 'groq': set GROQ_API_KEY"]
    monkeypatch.setenv("GROQ_API_KEY", "gsk_x")
    assert agent_problems("sales", spec) == []


def test_exit_code_reflects_the_worker_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--no-db"]) == 0
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    assert main(["--no-db"]) == 1
    assert "OPENAI_API_KEY" in capsys.readouterr().out
