"""Groq LLM through the official ``groq`` SDK (``AsyncGroq``): Groq streams the same chat-completion chunks as
OpenAI, so the streaming, tool-call assembling and error policy are ``providers.chat_sdk.SdkChatLlm``'s; this
module holds Groq's settings and client."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import httpx
from pydantic import SecretStr

from services.llm_worker.providers.chat_sdk import SdkChatLlm
from shared.provider_catalog import LLM_CONTEXT_TOKENS, Model, Offer, Usability, needs_env
from shared.provider_http import GroqSettings
from shared.settings import LlmSettings

SDK_PATH = "/openai/v1"  # the groq SDK appends it to its base URL; GROQ_BASE_URL (shared with STT) includes it


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


class GroqLlm(SdkChatLlm):
    """Streaming chat completions from ``GROQ_BASE_URL`` with ``GROQ_API_KEY`` (default ``GROQ_LLM_MODEL``)."""

    name = "groq"
    key_env = "GROQ_API_KEY"

    def _endpoint(self, settings: Settings) -> tuple[str, SecretStr, str]:
        return settings.groq_base_url, settings.groq_api_key, settings.groq_llm_model

    def sdk(self) -> ModuleType:
        import groq

        return groq

    def _make_sdk(self, http_client: httpx.AsyncClient) -> Any:
        from groq import AsyncGroq

        base = self.base_url.removesuffix(SDK_PATH)
        return AsyncGroq(
            base_url=base, api_key=self._api_key, http_client=http_client, max_retries=0, timeout=self._timeout()
        )


Provider = GroqLlm
