"""Groq LLM: Groq's API is OpenAI-compatible, so this is ``OpenAICompatLlm`` pointed at Groq's base URL, key
and default model (plain httpx, no vendor SDK; see ``openai_compat``)."""

from __future__ import annotations

from pydantic import SecretStr

from services.llm_worker.providers.openai_compat import OpenAICompatLlm
from shared.settings import LlmSettings


class GroqLlm(OpenAICompatLlm):
    """Streaming chat completions from ``GROQ_BASE_URL`` with ``GROQ_API_KEY`` (default ``GROQ_LLM_MODEL``)."""

    name = "groq"
    key_env = "GROQ_API_KEY"

    def _endpoint(self, settings: LlmSettings) -> tuple[str, SecretStr, str]:
        return settings.groq_base_url, settings.groq_api_key, settings.groq_llm_model
