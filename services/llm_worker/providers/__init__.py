"""LLM providers by name (``shared.provider_catalog.ProviderRegistry``): adding one is one new module, and
its name here."""

from __future__ import annotations

from services.llm_worker.providers.base import LlmProvider
from shared.provider_catalog import ProviderRegistry

REGISTRY: ProviderRegistry[LlmProvider] = ProviderRegistry(
    __name__, "llm", ("fake", "local_llama", "openai_compat", "groq")
)
PROVIDERS = REGISTRY.modules
build_provider = REGISTRY.build
describe = REGISTRY.describe


class LlmWorkerSettings(*REGISTRY.settings_classes()):  # type: ignore[misc]
    """The LLM worker's settings: its own (``shared.settings.LlmSettings``) and every provider's."""
