"""Unit-test fixtures shared by several files."""

from __future__ import annotations

import pytest

PROVIDER_ENV = (
    "GROQ_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "AZURE_SPEECH_KEY",
    "AZURE_SPEECH_REGION",
    "STT_PROVIDER",
    "LLM_PROVIDER",
    "TTS_PROVIDER",
)


@pytest.fixture
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests decide which keys and providers are set, not the developer's shell."""
    for var in PROVIDER_ENV:
        monkeypatch.delenv(var, raising=False)
