"""STT providers by name (``shared.provider_catalog.ProviderRegistry``): adding one is one new module, and
its name here."""

from __future__ import annotations

from services.stt_worker.providers.base import SttProvider
from shared.provider_catalog import ProviderRegistry

REGISTRY: ProviderRegistry[SttProvider] = ProviderRegistry(
    __name__, "stt", ("fake", "local_whisper", "groq_whisper", "azure")
)
PROVIDERS = REGISTRY.modules
build_provider = REGISTRY.build
describe = REGISTRY.describe


class SttWorkerSettings(*REGISTRY.settings_classes()):  # type: ignore[misc]
    """The STT worker's settings: its own (``shared.settings.SttSettings``) and every provider's."""
