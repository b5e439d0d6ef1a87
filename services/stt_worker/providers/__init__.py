"""STT providers by name, built from their modules: each module (``<provider>.py``) holds the provider's
settings, its catalogue entry (``OFFER``), ``usable(env)`` and its class (``Provider``), importing no heavy library
(models, SDKs) until the provider warms up. Adding a provider: one new module, and its name in ``MODULES``."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from services.stt_worker.providers.base import SttProvider
from shared.provider_catalog import provider_metadata
from shared.settings import SttSettings

MODULES: tuple[ModuleType, ...] = tuple(
    import_module(f"{__name__}.{module}") for module in ("fake", "local_whisper", "groq_whisper", "azure")
)
PROVIDERS: dict[str, ModuleType] = {module.NAME: module for module in MODULES}


class SttWorkerSettings(*(module.Settings for module in MODULES)):  # type: ignore[misc]
    """The STT worker's settings: its own (``shared.settings.SttSettings``) and every provider's."""


def build_provider(name: str, settings: SttSettings) -> SttProvider:
    """Instantiate the provider called ``name`` (no model is loaded until its ``warmup`` or first use)."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown stt provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    provider: SttProvider = PROVIDERS[name].Provider(settings)
    return provider


def describe(settings: SttSettings) -> dict[str, str]:
    """This worker's micro service metadata: its providers, their offers and whether each is usable here."""
    return provider_metadata(MODULES, settings, settings.stt_provider)
