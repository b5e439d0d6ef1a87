"""What every HTTP provider adapter needs the same way: classifying failures (auth, quota, timeout,
unavailable, bad request), reading ``Retry-After`` and computing a jittered backoff. Shared by the LLM and
STT adapters (and the TTS ones to come), so each adapter file holds only its provider's protocol."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr

from shared.metrics import PROVIDER_ERRORS
from shared.provider_cache import ProviderError
from shared.settings import ProviderSettings

# hosts that always need a key; any other base URL (a self-hosted vLLM/Ollama/llama.cpp) may run without one
KEYED_HOSTS = ("api.openai.com", "api.groq.com")


class GroqSettings(ProviderSettings):
    """Groq's key and URL, shared by its STT and LLM providers (each adds its default model)."""

    groq_api_key: SecretStr = Field(default=SecretStr(""), description="GROQ_API_KEY for the groq providers")
    groq_base_url: str = "https://api.groq.com/openai/v1"


class AzureSpeechSettings(ProviderSettings):
    """The Azure Speech resource, shared by its STT and TTS providers."""

    azure_speech_key: SecretStr = Field(default=SecretStr(""), description="AZURE_SPEECH_KEY for the azure provider")
    azure_speech_region: str = Field(default="", description="Azure Speech resource region, e.g. westeurope")
    azure_base_url: str = Field(
        default="", description="per worker: override of https://{region}.{stt,tts}.speech.microsoft.com"
    )


def needs_key(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return any(host == h or host.endswith("." + h) for h in KEYED_HOSTS)


def error_detail(resp: httpx.Response) -> tuple[str, str]:
    """(message, code) from an OpenAI-style error body ``{"error": {"message": ..., "code": ...}}``."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300].strip(), ""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or "")[:300], str(err.get("code") or err.get("type") or "")
    if isinstance(err, str):
        return err[:300], ""
    return resp.text[:300].strip(), ""


def status_error(provider: str, key_env: str, resp: httpx.Response) -> ProviderError:
    """Classify an HTTP error status (the body must have been read)."""
    status = resp.status_code
    message, code = error_detail(resp)
    where = f"{provider} HTTP {status}" + (f": {message}" if message else "")
    if status in (401, 403):
        return ProviderError("auth", f"{where}; check {key_env}")
    if status == 429:
        # an exhausted plan/billing quota will not come back in a few seconds; a rate limit will
        return ProviderError("quota", where, retryable=code != "insufficient_quota")
    if status == 408:
        return ProviderError("timeout", where, retryable=True)
    if status >= 500:
        return ProviderError("unavailable", where, retryable=True)
    return ProviderError("bad_request", where)


def transport_error(provider: str, exc: httpx.HTTPError) -> ProviderError:
    """Classify a failure below HTTP: timeouts, refused or dropped connections."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError("timeout", f"{provider}: {type(exc).__name__} {exc}".strip(), retryable=True)
    return ProviderError("unavailable", f"{provider}: {type(exc).__name__} {exc}".strip(), retryable=True)


def retry_after_s(resp: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is ignored: backoff applies instead)."""
    value = resp.headers.get("retry-after", "").strip()
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def backoff_s(attempt: int, base_s: float, cap_s: float, retry_after: float | None) -> float:
    """Delay before retry number ``attempt + 1``: the server's ``Retry-After`` if given, else exponential
    backoff with full jitter; both capped at ``cap_s``."""
    if retry_after is not None:
        return min(retry_after, cap_s)
    return random.uniform(0.5, 1.0) * min(base_s * 2**attempt, cap_s)


T = TypeVar("T")


async def post_with_retries(
    client: httpx.AsyncClient,
    url: str,
    *,
    parse: Callable[[httpx.Response], T],
    provider: str,
    key_env: str,
    max_retries: int,
    base_s: float,
    cap_s: float,
    count: Callable[[ProviderError], None],
    **request: Any,
) -> T:
    """One non-streamed request with the shared policy: an error status or transport failure is classified,
    counted (``count``) and, when retryable, retried up to ``max_retries`` times with backoff (honouring
    ``Retry-After``). ``parse`` turns a successful response into the result and may raise ``ProviderError``."""
    attempt = 0
    while True:
        retry_after: float | None = None
        try:
            resp = await client.post(url, **request)
            if resp.status_code >= 400:
                retry_after = retry_after_s(resp)
                raise status_error(provider, key_env, resp)
            return parse(resp)
        except httpx.HTTPError as exc:
            error = transport_error(provider, exc)
            cause: BaseException | None = exc
        except ProviderError as exc:
            error = exc
            cause = exc.__cause__
        count(error)
        if not error.retryable or attempt >= max_retries:
            raise error from cause
        await asyncio.sleep(backoff_s(attempt, base_s, cap_s, retry_after))
        attempt += 1


class HttpProvider:
    """What every cloud adapter shares: one pooled ``httpx.AsyncClient`` made on first use (``warmup`` checks
    the credentials and opens the pool without sending anything billable), the retry settings, and counting
    failures by class. An adapter supplies ``client_config`` and its protocol."""

    name = ""
    service = ""
    key_env = ""

    def __init__(self, *, timeout_s: float, max_retries: int, retry_base_s: float, retry_cap_s: float) -> None:
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._client: httpx.AsyncClient | None = None

    def client_config(self) -> tuple[str, dict[str, str]]:
        """(base URL, default headers); raise ``ProviderError("auth", ...)`` when credentials are missing."""
        raise NotImplementedError

    def _get_client(self) -> httpx.AsyncClient:
        base_url, headers = self.client_config()
        if self._client is None:
            timeout = httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s))
            self._client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)
        return self._client

    async def warmup(self) -> None:
        self._get_client()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _count(self, error: ProviderError) -> None:
        PROVIDER_ERRORS.labels(self.service, self.name, error.code).inc()
