"""TTS providers by name. Entries are import paths, so that choosing one provider never imports the heavy
libraries (models, SDKs) of the others."""

from __future__ import annotations

from services.tts_worker.providers.base import TtsProvider
from shared.provider_cache import build_registered
from shared.settings import TtsSettings

PROVIDERS: dict[str, str] = {
    "fake": "services.tts_worker.providers.fake:FakeTts",
    "local_piper": "services.tts_worker.providers.local_piper:LocalPiperTts",
    "azure": "services.tts_worker.providers.azure:AzureTts",
}


def build_provider(name: str, settings: TtsSettings) -> TtsProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    provider: TtsProvider = build_registered(PROVIDERS, "tts", name, settings)
    return provider
