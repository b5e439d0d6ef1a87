"""``GET /api/v1/providers``: the STT, LLM and TTS providers an agent can name, whether each is usable and what it
offers (models, voices, languages), for the dashboard's agent form.

The gateway imports no worker code: it asks the workers. Each worker replica describes its providers in its micro
service metadata (``shared.provider_catalog.provider_metadata``: judged with the worker's own settings and env, so
usability is the truth where the work runs), and this lists, per kind, what a ready replica says (the first by
instance name; a kind no replica answers for has no providers listed).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError

from services.gateway.edge.security import require_api_key
from services.gateway.runtime import GatewayRuntime
from shared.health import ServiceInfo, ping_services
from shared.logging import get_logger

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1", tags=["providers"], dependencies=[Depends(require_api_key)])

KINDS = ("stt", "llm", "tts")
ASK_WINDOW_S = 0.3


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
    context_tokens: int = 0  # LLMs: the window a prompt and its reply must fit; 0 = not declared


class ProvidersOut(BaseModel):
    stt: list[ProviderOut]
    llm: list[ProviderOut]
    tts: list[ProviderOut]


def described(info: ServiceInfo) -> list[ProviderOut] | None:
    """The providers a worker replica describes, sorted by name; None when it describes none (or garbage)."""
    try:
        found = [ProviderOut.model_validate(p) for p in json.loads(info.metadata.get("providers", "null")) or []]
    except (ValueError, TypeError, ValidationError):
        log.warning("bad_provider_metadata", service=info.service, instance=info.instance)
        return None
    return sorted(found, key=lambda p: p.name) if found else None


def providers_from(infos: list[ServiceInfo]) -> ProvidersOut:
    """Per kind, the providers of its first ready replica (by instance), else of its first replica at all."""
    out: dict[str, list[ProviderOut]] = {}
    for kind in KINDS:
        replicas = sorted((i for i in infos if i.service == kind), key=lambda i: (not i.ready, i.instance))
        out[kind] = next((found for i in replicas if (found := described(i)) is not None), [])
    return ProvidersOut(**out)


@router.get("/providers", response_model=ProvidersOut)
async def providers(request: Request) -> ProvidersOut:
    """Every provider the workers can build, per kind, with its usability and catalogue."""
    runtime: GatewayRuntime = request.app.state.runtime
    infos = await ping_services(runtime.bus, window_s=ASK_WINDOW_S) if runtime.bus.connected else []
    return providers_from(infos)
