"""What a provider offers (models, voices, languages), as small declarative data.

Each worker kind keeps its catalogue next to its providers (``services/<kind>_worker/providers/catalog.py``,
``CATALOG``: provider name → :class:`Offer`), importing nothing heavy, so the gateway can list them for the
dashboard (``GET /api/v1/providers``) without loading a model or an SDK. The lists are suggestions, not limits:
an agent may name any model or voice the provider accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
