"""TTS providers by name (``shared.provider_catalog.ProviderRegistry``): adding one is one new module, and
its name here."""

from __future__ import annotations

from services.tts_worker.providers.base import TtsProvider
from shared.provider_catalog import ProviderRegistry

REGISTRY: ProviderRegistry[TtsProvider] = ProviderRegistry(__name__, "tts", ("fake", "local_piper", "azure"))
PROVIDERS = REGISTRY.modules
build_provider = REGISTRY.build
describe = REGISTRY.describe


class TtsWorkerSettings(*REGISTRY.settings_classes()):  # type: ignore[misc]
    """The TTS worker's settings: its own (``shared.settings.TtsSettings``) and every provider's."""
