"""What a provider offers (models, voices, languages), as small declarative data.

Each provider's module (``services/<kind>_worker/providers/<provider>.py``) declares its ``OFFER`` and
``usable(env)``, importing nothing heavy at module level. A worker describes every provider it can build in its
micro service metadata (:func:`provider_metadata`), and the gateway lists them for the dashboard
(``GET /api/v1/providers``) from there, without importing worker code. The lists are suggestions, not limits:
an agent may name any model or voice the provider accepts.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import import_module
from typing import Any, Protocol


@dataclass(frozen=True)
class Model:
    id: str
    description: str = ""


@dataclass(frozen=True)
class Voice:
    name: str
    language: str
    gender: str = ""
    styles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Offer:
    models: tuple[Model, ...] = ()
    voices: tuple[Voice, ...] = ()
    languages: tuple[str, ...] = field(default=(), metadata={"doc": "empty: not restricted / not declared"})
    # the worker setting (env var, lower case) that names the model used when an agent names none
    default_model_setting: str = ""
    # the worker setting that names the voice used when an agent names none
    default_voice_setting: str = ""
    note: str = ""
    # LLMs: the context window (prompt + reply, in tokens) a request must fit; 0 = not declared / very large
    context_tokens: int = 0
    # the setting (env var, lower case) that changes that window, when the deployment chooses it
    context_tokens_setting: str = ""


# LLM context windows (prompt + reply, in tokens) by provider, and the setting that changes one when the deployment
# chooses it: the LLM providers' offers declare theirs from here, and the call recorder sizes post-call extraction
# prompts with them without importing the LLM worker
LLM_CONTEXT_TOKENS: dict[str, int] = {"local_llama": 2048, "openai": 128_000, "groq": 131_072}
LLM_CONTEXT_TOKENS_SETTING: dict[str, str] = {"local_llama": "llm_context_tokens"}

Usability = tuple[bool, str]  # (usable, why: "key set", "offline", "built in", or what to set or install)
BUILT_IN: Usability = (True, "built in")


def needs_env(env: Mapping[str, str], *names: str) -> Usability:
    """Usable when every env var in ``names`` is set."""
    missing = [n for n in names if not env.get(n, "").strip()]
    return (False, f"set {', '.join(missing)}") if missing else (True, "key set")


def needs_packages(*packages: str) -> Usability:
    """Usable offline when every package (the engine and its bundled model) is installed."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    return (False, f"install {', '.join(missing)} (make install)") if missing else (True, "offline")


class ProviderModule(Protocol):
    """What a provider's module (``services/<kind>_worker/providers/<provider>.py``) declares (and ``Settings``,
    its pydantic-settings class, and ``Provider``, its class, built with the worker's settings)."""

    NAME: str
    OFFER: Offer
    Settings: type
    Provider: Any

    def usable(self, env: Mapping[str, str]) -> Usability: ...


def load_providers(package: str, modules: Iterable[str]) -> dict[str, ProviderModule]:
    """A worker kind's registry: its provider modules (``package.<module>``) by provider name."""
    loaded: list[ProviderModule] = [import_module(f"{package}.{module}") for module in modules]  # type: ignore[misc]
    return {module.NAME: module for module in loaded}


def build_registered(registry: Mapping[str, ProviderModule], kind: str, name: str, settings: object) -> Any:
    """Instantiate provider ``name`` with the worker's ``settings``; an unknown name is a ``ValueError``."""
    if name not in registry:
        raise ValueError(f"unknown {kind} provider {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name].Provider(settings)


def describe(module: ProviderModule, settings: object, default: str, env: Mapping[str, str]) -> dict[str, Any]:
    """One provider as ``GET /api/v1/providers`` lists it, judged by the worker with its own settings and env."""
    offer = module.OFFER
    ok, why = module.usable(env)

    def setting(field: str) -> str | None:
        value = getattr(settings, field, None) if field else None
        return str(value) if value else None

    models = [{"id": m.id, "description": m.description} for m in offer.models]
    default_model = setting(offer.default_model_setting)
    if default_model and all(m["id"] != default_model for m in models):
        models.insert(0, {"id": default_model, "description": "configured default"})
    return {
        "name": module.NAME,
        "usable": ok,
        "status": why,
        "default": module.NAME == default,
        "default_model": default_model,
        "default_voice": setting(offer.default_voice_setting),
        "models": models,
        "voices": [asdict(v) for v in offer.voices],
        "languages": list(offer.languages) or sorted({v.language for v in offer.voices}),
        "note": offer.note,
        "context_tokens": int(setting(offer.context_tokens_setting) or offer.context_tokens),
    }


def provider_metadata(
    modules: Iterable[ProviderModule], settings: object, default: str, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A worker's micro service metadata: its default provider and every provider it can build, JSON-encoded
    (micro metadata values are strings)."""
    env = os.environ if env is None else env
    described = [describe(m, settings, default, env) for m in sorted(modules, key=lambda m: m.NAME)]
    return {"default_provider": default, "providers": json.dumps(described)}
