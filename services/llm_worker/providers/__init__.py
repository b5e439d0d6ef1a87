"""LLM providers by name, built from their modules: each module (``<provider>.py``) holds the provider's
settings, its catalogue entry (``OFFER``), ``usable(env)`` and its class (``Provider``), importing no heavy library
(models, SDKs) until the provider warms up. Adding a provider: one new module, and its name here."""

from __future__ import annotations

from services.llm_worker.providers.base import LlmProvider
from shared.provider_catalog import build_registered, load_providers, provider_metadata
from shared.settings import LlmSettings

PROVIDERS = load_providers(__name__, ("fake", "local_llama", "openai_compat", "groq"))


class LlmWorkerSettings(*(module.Settings for module in PROVIDERS.values())):  # type: ignore[misc]
    """The LLM worker's settings: its own (``shared.settings.LlmSettings``) and every provider's."""


def build_provider(name: str, settings: LlmSettings) -> LlmProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    provider: LlmProvider = build_registered(PROVIDERS, "llm", name, settings)
    return provider


def describe(settings: LlmSettings) -> dict[str, str]:
    """This worker's micro service metadata: its providers, their offers and whether each is usable here."""
    return provider_metadata(PROVIDERS.values(), settings, settings.llm_provider)
