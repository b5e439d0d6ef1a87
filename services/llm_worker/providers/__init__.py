"""LLM providers by name, built from their modules: each module (``<provider>.py``) holds the provider's
settings, its catalogue entry (``OFFER``), ``usable(env)`` and its class (``Provider``), importing no heavy library
(models, SDKs) until the provider warms up. Adding a provider: one new module, and its name in ``MODULES``."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from services.llm_worker.providers.base import LlmProvider
from shared.provider_catalog import provider_metadata
from shared.settings import LlmSettings

MODULES: tuple[ModuleType, ...] = tuple(
    import_module(f"{__name__}.{module}") for module in ("fake", "local_llama", "openai_compat", "groq")
)
PROVIDERS: dict[str, ModuleType] = {module.NAME: module for module in MODULES}


class LlmWorkerSettings(*(module.Settings for module in MODULES)):  # type: ignore[misc]
    """The LLM worker's settings: its own (``shared.settings.LlmSettings``) and every provider's."""


def build_provider(name: str, settings: LlmSettings) -> LlmProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown llm provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    provider: LlmProvider = PROVIDERS[name].Provider(settings)
    return provider


def describe(settings: LlmSettings) -> dict[str, str]:
    """This worker's micro service metadata: its providers, their offers and whether each is usable here."""
    return provider_metadata(MODULES, settings, settings.llm_provider)
