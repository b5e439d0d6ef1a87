"""STT providers by name, built from their modules: each module (``<provider>.py``) holds the provider's
settings, its catalogue entry (``OFFER``), ``usable(env)`` and its class (``Provider``), importing no heavy library
(models, SDKs) until the provider warms up. Adding a provider: one new module, and its name here."""

from __future__ import annotations

from services.stt_worker.providers.base import SttProvider
from shared.provider_catalog import build_registered, load_providers, provider_metadata
from shared.settings import SttSettings

PROVIDERS = load_providers(__name__, ("fake", "local_whisper", "groq_whisper", "azure"))


class SttWorkerSettings(*(module.Settings for module in PROVIDERS.values())):  # type: ignore[misc]
    """The STT worker's settings: its own (``shared.settings.SttSettings``) and every provider's."""


def build_provider(name: str, settings: SttSettings) -> SttProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    provider: SttProvider = build_registered(PROVIDERS, "stt", name, settings)
    return provider


def describe(settings: SttSettings) -> dict[str, str]:
    """This worker's micro service metadata: its providers, their offers and whether each is usable here."""
    return provider_metadata(PROVIDERS.values(), settings, settings.stt_provider)
