"""Groq LLM: Groq's API is OpenAI-compatible, so this is ``OpenAICompatLlm`` pointed at Groq's base URL, key
and default model (plain httpx, no vendor SDK; see ``openai_compat``)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from services.llm_worker.providers.openai_compat import OpenAICompatLlm
from shared.provider_catalog import LLM_CONTEXT_TOKENS, Model, Offer, Usability, needs_env
from shared.provider_http import GroqSettings
from shared.settings import LlmSettings


class Settings(LlmSettings, GroqSettings):
    """Groq's key and URL (``shared.provider_http.GroqSettings``) and the LLM model."""

    groq_llm_model: str = "llama-3.1-8b-instant"


NAME = "groq"
OFFER = Offer(
    models=(
        Model("llama-3.1-8b-instant", "fastest"),
        Model("llama-3.3-70b-versatile", "more capable"),
        Model("openai/gpt-oss-20b", "open-weight GPT"),
        Model("openai/gpt-oss-120b", "open-weight GPT, larger"),
    ),
    default_model_setting="groq_llm_model",
    context_tokens=LLM_CONTEXT_TOKENS["groq"],
)


def usable(env: Mapping[str, str]) -> Usability:
    """With a Groq key."""
    return needs_env(env, "GROQ_API_KEY")


class GroqLlm(OpenAICompatLlm):
    """Streaming chat completions from ``GROQ_BASE_URL`` with ``GROQ_API_KEY`` (default ``GROQ_LLM_MODEL``)."""

    name = "groq"
    key_env = "GROQ_API_KEY"

    def _endpoint(self, settings: Settings) -> tuple[str, SecretStr, str]:
        return settings.groq_base_url, settings.groq_api_key, settings.groq_llm_model


Provider = GroqLlm
