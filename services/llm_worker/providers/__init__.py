"""LLM providers by name. Entries are import paths, so that choosing one provider never imports the heavy
libraries (models, SDKs) of the others."""

from __future__ import annotations

from services.llm_worker.providers.base import LlmProvider
from shared.provider_cache import build_registered
from shared.settings import LlmSettings

PROVIDERS: dict[str, str] = {
    "fake": "services.llm_worker.providers.fake:FakeLlm",
    "local_llama": "services.llm_worker.providers.local_llama:LocalLlamaLlm",
    "openai": "services.llm_worker.providers.openai_compat:OpenAICompatLlm",
    "groq": "services.llm_worker.providers.groq:GroqLlm",
}


def build_provider(name: str, settings: LlmSettings) -> LlmProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    provider: LlmProvider = build_registered(PROVIDERS, "llm", name, settings)
    return provider
