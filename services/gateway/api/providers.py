"""``GET /api/v1/providers``: the STT, LLM and TTS providers an agent can name, whether each is usable with the
current environment and what it offers (models, voices, languages), for the dashboard's agent form.

The names come from the workers' registries (``known_providers``), usability from ``tools.check_env`` (keys set,
model packages installed) and the offers from each kind's ``providers/catalog.py``. Usability is judged from the
gateway's own environment: with the workers deployed apart, run ``python -m tools.check_env`` next to them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from services.gateway.edge.security import require_api_key
from shared.call_config import known_providers
from shared.provider_catalog import Offer
from shared.settings import LlmSettings, SttSettings, TtsSettings
from tools.check_env import defaults, provider_status

router = APIRouter(prefix="/api/v1", tags=["providers"], dependencies=[Depends(require_api_key)])

KINDS = ("stt", "llm", "tts")


class ModelOut(BaseModel):
    id: str
    description: str = ""


class VoiceOut(BaseModel):
    name: str
    language: str
    gender: str = ""
    styles: list[str] = []


class ProviderOut(BaseModel):
    name: str
    usable: bool
    status: str  # why (not) usable: "key set", "set GROQ_API_KEY", "offline", ...
    default: bool  # the worker's default (STT_PROVIDER, LLM_PROVIDER, TTS_PROVIDER)
    default_model: str | None = None
    default_voice: str | None = None
    models: list[ModelOut]
    voices: list[VoiceOut]
    languages: list[str]  # empty: not restricted / not declared
    note: str = ""


class ProvidersOut(BaseModel):
    stt: list[ProviderOut]
    llm: list[ProviderOut]
    tts: list[ProviderOut]


def catalogs() -> dict[str, dict[str, Offer]]:
    from services.llm_worker.providers.catalog import CATALOG as LLM
    from services.stt_worker.providers.catalog import CATALOG as STT
    from services.tts_worker.providers.catalog import CATALOG as TTS

    return {"stt": STT, "llm": LLM, "tts": TTS}


def _settings(kind: str) -> BaseSettings | None:
    cls = {"stt": SttSettings, "llm": LlmSettings, "tts": TtsSettings}[kind]
    try:
        return cls()
    except ValidationError:  # a worker setting the gateway cannot parse: list the catalogue's defaults only
        return None


def provider_info(kind: str, name: str, offer: Offer, default_name: str, settings: BaseSettings | None) -> ProviderOut:
    status = provider_status(kind, name)

    def setting(field: str) -> str | None:
        value = getattr(settings, field, None) if field and settings is not None else None
        return str(value) if value else None

    models = [ModelOut(id=m.id, description=m.description) for m in offer.models]
    default_model = setting(offer.default_model_setting)
    if default_model and all(m.id != default_model for m in models):
        models.insert(0, ModelOut(id=default_model, description="configured default"))
    voices = [VoiceOut(name=v.name, language=v.language, gender=v.gender, styles=list(v.styles)) for v in offer.voices]
    languages = list(offer.languages) or sorted({v.language for v in offer.voices})
    return ProviderOut(
        name=name,
        usable=status.usable,
        status=status.why,
        default=name == default_name,
        default_model=default_model,
        default_voice=setting(offer.default_voice_setting),
        models=models,
        voices=voices,
        languages=languages,
        note=offer.note,
    )


@router.get("/providers", response_model=ProvidersOut)
async def providers() -> ProvidersOut:
    """Every registered provider per kind, sorted by name, with its usability and catalogue."""
    known, offers, wanted = known_providers(), catalogs(), defaults()
    out: dict[str, list[ProviderOut]] = {}
    for kind in KINDS:
        settings = _settings(kind)
        out[kind] = [
            provider_info(kind, name, offers[kind].get(name, Offer()), wanted[kind], settings)
            for name in sorted(known[kind])
        ]
    return ProvidersOut(**out)
