"""STT providers by name. Entries are import paths, so that choosing one provider never imports the heavy
libraries (models, SDKs) of the others."""

from __future__ import annotations

from services.stt_worker.providers.base import SttProvider
from shared.provider_cache import build_registered
from shared.settings import SttSettings

PROVIDERS: dict[str, str] = {
    "fake": "services.stt_worker.providers.fake:FakeStt",
    "local_whisper": "services.stt_worker.providers.local_whisper:LocalWhisperStt",
    "groq": "services.stt_worker.providers.groq_whisper:GroqWhisperStt",
    "azure": "services.stt_worker.providers.azure:AzureStt",
}


def build_provider(name: str, settings: SttSettings) -> SttProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    provider: SttProvider = build_registered(PROVIDERS, "stt", name, settings)
    return provider
