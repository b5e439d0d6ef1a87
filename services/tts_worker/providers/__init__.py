"""TTS providers by name, built from their modules: each module (``<provider>.py``) holds the provider's
settings, its catalogue entry (``OFFER``), ``usable(env)`` and its class (``Provider``), importing no heavy library
(models, SDKs) until the provider warms up. Adding a provider: one new module, and its name here."""

from __future__ import annotations

from services.tts_worker.providers.base import TtsProvider
from shared.provider_catalog import build_registered, load_providers, provider_metadata
from shared.settings import TtsSettings

PROVIDERS = load_providers(__name__, ("fake", "local_piper", "azure"))


class TtsWorkerSettings(*(module.Settings for module in PROVIDERS.values())):  # type: ignore[misc]
    """The TTS worker's settings: its own (``shared.settings.TtsSettings``) and every provider's."""


def build_provider(name: str, settings: TtsSettings) -> TtsProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    provider: TtsProvider = build_registered(PROVIDERS, "tts", name, settings)
    return provider


def describe(settings: TtsSettings) -> dict[str, str]:
    """This worker's micro service metadata: its providers, their offers and whether each is usable here."""
    return provider_metadata(PROVIDERS.values(), settings, settings.tts_provider)
