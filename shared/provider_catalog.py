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
from typing import Any, Generic, Protocol, TypeVar


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


def built_in(env: Mapping[str, str]) -> Usability:
    """``usable`` of a provider with nothing to install or set (the fakes)."""
    return BUILT_IN


def needs_env(env: Mapping[str, str], *names: str) -> Usability:
    """Usable when every env var in ``names`` is set."""
    missing = [n for n in names if not env.get(n, "").strip()]
    return (False, f"set {', '.join(missing)}") if missing else (True, "key set")


def needs_packages(*packages: str) -> Usability:
    """Usable offline when every package (the engine and its bundled model) is installed."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    return (False, f"install {', '.join(missing)} (make install)") if missing else (True, "offline")


P = TypeVar("P")


class ProviderModule(Protocol):
    """What a provider's module (``services/<kind>_worker/providers/<provider>.py``) declares (and ``Settings``,
    its pydantic-settings class, and ``Provider``, its class, built with the worker's settings)."""

    NAME: str
    OFFER: Offer
    Settings: type
    Provider: Any

    def usable(self, env: Mapping[str, str]) -> Usability: ...


class ProviderRegistry(Generic[P]):
    """A worker kind's providers by name, built from their modules: each module (``<provider>.py``) holds the
    provider's settings, its catalogue entry (``OFFER``), ``usable(env)`` and its class (``Provider``), importing
    no heavy library (models, SDKs) until the provider warms up. Adding a provider: one new module, and its name
    in the worker's registry."""

    def __init__(self, package: str, kind: str, modules: Iterable[str]) -> None:
        loaded: list[ProviderModule] = [import_module(f"{package}.{m}") for m in modules]  # type: ignore[misc]
        self.kind = kind
        self.modules: dict[str, ProviderModule] = {module.NAME: module for module in loaded}

    def settings_classes(self) -> tuple[type, ...]:
        """Every provider's settings class: the bases of the worker's settings."""
        return tuple(module.Settings for module in self.modules.values())

    def build(self, name: str, settings: object) -> P:
        """Instantiate provider ``name`` with the worker's ``settings`` (no model is loaded until its ``warmup``
        or first use); an unknown name is a ``ValueError``."""
        if name not in self.modules:
            raise ValueError(f"unknown {self.kind} provider {name!r}; known: {', '.join(sorted(self.modules))}")
        provider: P = self.modules[name].Provider(settings)
        return provider

    def describe(self, settings: object) -> dict[str, str]:
        """This worker's micro service metadata: its providers, their offers and whether each is usable here
        (the default is ``{kind}_provider`` of ``settings``)."""
        return provider_metadata(self.modules.values(), settings, getattr(settings, f"{self.kind}_provider"))


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
