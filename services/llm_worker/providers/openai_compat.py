"""Cloud LLM over any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp
server), streamed through the official ``openai`` SDK (``AsyncOpenAI``), tool calls included.

The streaming, the assembling of streamed tool calls and the error and retry policy are
``providers.chat_sdk.SdkChatLlm``'s, shared with the Groq adapter; this module holds the settings and the
client: a self-hosted server may run without a key, and then no ``Authorization`` header is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import httpx
from pydantic import Field, SecretStr

from services.llm_worker.providers.chat_sdk import SdkChatLlm
from shared.provider_catalog import LLM_CONTEXT_TOKENS, Model, Offer, Usability, needs_env
from shared.provider_http import needs_key
from shared.settings import LlmSettings

NO_KEY = "no-key"  # the SDK refuses an empty key; a keyless request then omits the header (_request_extras)


class Settings(LlmSettings):
    """OpenAI, or any OpenAI-compatible server."""

    openai_api_key: SecretStr = Field(default=SecretStr(""), description="OPENAI_API_KEY for the openai provider")
    openai_base_url: str = Field(
        default="https://api.openai.com/v1", description="any OpenAI-compatible server (vLLM, Ollama, llama.cpp)"
    )
    openai_model: str = "gpt-4o-mini"


NAME = "openai"
OFFER = Offer(
    models=(
        Model("gpt-4o-mini", "fast and cheap"),
        Model("gpt-4o", "more capable"),
        Model("gpt-4.1-mini", "fast and cheap"),
        Model("gpt-4.1-nano", "fastest"),
    ),
    default_model_setting="openai_model",
    context_tokens=LLM_CONTEXT_TOKENS["openai"],
    note="any OpenAI-compatible server (OPENAI_BASE_URL): vLLM, Ollama, llama.cpp server",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With an OpenAI key, or with OPENAI_BASE_URL at a self-hosted server (no key needed)."""
    base_url = env.get("OPENAI_BASE_URL", "").strip()
    if base_url and not needs_key(base_url):
        return True, f"self-hosted endpoint {base_url}"
    return needs_env(env, "OPENAI_API_KEY")


class OpenAICompatLlm(SdkChatLlm):
    """Streaming chat completions from ``OPENAI_BASE_URL`` (default OpenAI) with ``OPENAI_API_KEY``."""

    name = "openai"
    key_env = "OPENAI_API_KEY"

    def _endpoint(self, settings: Settings) -> tuple[str, SecretStr, str]:
        return settings.openai_base_url, settings.openai_api_key, settings.openai_model

    def sdk(self) -> ModuleType:
        import openai

        return openai

    def _make_sdk(self, http_client: httpx.AsyncClient) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key or NO_KEY,
            http_client=http_client,
            max_retries=0,
            timeout=self._timeout(),
        )

    def _request_extras(self) -> dict[str, Any]:
        if self._api_key:
            return {}
        from openai import Omit

        return {"extra_headers": {"Authorization": Omit()}}


Provider = OpenAICompatLlm
