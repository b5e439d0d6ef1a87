"""What every HTTP provider adapter needs the same way: classifying failures (auth, quota, timeout,
unavailable, bad request), reading ``Retry-After``, computing a jittered backoff, and retrying one request or a
streamed one. Shared by the STT, LLM and TTS adapters, so each adapter file holds only its provider's protocol."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

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


class AttemptFailed(Exception):
    """One failed streamed attempt: the classified error plus the server's requested delay, if any."""

    def __init__(self, error: ProviderError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class HttpProvider:
    """What every cloud adapter shares: one pooled ``httpx.AsyncClient`` made on first use (``warmup`` checks
    the credentials and opens the pool without sending anything billable), the retry policy read from the
    worker's settings (``{service}_request_timeout_s``, ``{service}_max_retries``, ``{service}_retry_*``),
    counting failures by class, and the two request shapes: one response (``_post``) or a streamed body
    (``_stream``). An adapter supplies ``client_config`` and its protocol."""

    name = ""
    service = ""  # "stt", "llm" or "tts": the metrics label and the prefix of the retry settings
    key_env = ""

    def __init__(self, settings: BaseSettings) -> None:
        def setting(suffix: str) -> Any:
            return getattr(settings, f"{self.service}_{suffix}")

        self.timeout_s: float = setting("request_timeout_s")
        self.max_retries: int = setting("max_retries")
        self.retry_base_s: float = setting("retry_base_delay_s")
        self.retry_cap_s: float = setting("retry_max_delay_s")
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

    def _client_for_request(self) -> httpx.AsyncClient:
        """The client, or the (counted) auth error of missing credentials."""
        try:
            return self._get_client()
        except ProviderError as err:
            self._count(err)
            raise

    async def warmup(self) -> None:
        self._get_client()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _count(self, error: ProviderError) -> None:
        PROVIDER_ERRORS.labels(self.service, self.name, error.code).inc()

    def _json_string(self, resp: httpx.Response, key: str) -> tuple[Any, str]:
        """``resp``'s JSON body and its string field ``key``; any other body is a retryable internal error."""
        try:
            body = resp.json()
            value = body[key]
            if not isinstance(value, str):
                raise TypeError(f"{key} is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                "internal", f"{self.name}: unexpected response {resp.text[:100]!r}", retryable=True
            ) from exc
        return body, value

    async def _post(
        self, client: httpx.AsyncClient, url: str, *, parse: Callable[[httpx.Response], T], **request: Any
    ) -> T:
        """One non-streamed request with the shared policy: an error status or transport failure is classified,
        counted and, when retryable, retried up to ``max_retries`` times with backoff (honouring
        ``Retry-After``). ``parse`` turns a successful response into the result and may raise ``ProviderError``."""
        for attempt in itertools.count():
            retry_after: float | None = None
            try:
                resp = await client.post(url, **request)
                if resp.status_code >= 400:
                    retry_after = retry_after_s(resp)
                    raise status_error(self.name, self.key_env, resp)
                return parse(resp)
            except httpx.HTTPError as exc:
                error = transport_error(self.name, exc)
                cause: BaseException | None = exc
            except ProviderError as exc:
                error = exc
                cause = exc.__cause__
            await self._retry_or_raise(error, cause, attempt, retry_after)

    def _stream(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        parse: Callable[[httpx.Response], AsyncIterator[T]],
        partial_is_final: bool,
        **request: Any,
    ) -> AsyncIterator[T]:
        """A streamed POST, retried like ``_post`` but only before the first item was yielded: after that the
        caller has already used part of the output, so a retry would repeat it. ``partial_is_final`` also marks
        such a mid-stream failure not retryable for the caller. ``parse`` raises ``AttemptFailed``."""
        return self._retried_stream(
            lambda: self._stream_attempt(client, url, parse, **request), partial_is_final=partial_is_final
        )

    async def _retried_stream(
        self, attempt_stream: Callable[[], AsyncIterator[T]], *, partial_is_final: bool
    ) -> AsyncIterator[T]:
        """``_stream``'s policy over any attempt (an SDK's stream too): ``attempt_stream()`` starts one attempt,
        which raises ``AttemptFailed``; it is retried only while nothing has been yielded."""
        yielded = False
        for attempt in itertools.count():
            try:
                # aclosing: closing this generator (barge-in) must close the HTTP response now, not at GC time
                async with contextlib.aclosing(attempt_stream()) as items:
                    async for item in items:
                        yielded = True
                        yield item
                return
            except AttemptFailed as failure:
                error, retry_after, cause = failure.error, failure.retry_after, failure.__cause__
            if yielded and partial_is_final:
                error.retryable = False
            await self._retry_or_raise(error, cause, attempt, retry_after, final=yielded)

    async def _retry_or_raise(
        self,
        error: ProviderError,
        cause: BaseException | None,
        attempt: int,
        retry_after: float | None,
        *,
        final: bool = False,
    ) -> None:
        """After failed attempt number ``attempt``: count ``error``, raise it when it is ``final``, not retryable
        or the retries are spent, else wait the backoff (or the server's ``Retry-After``) before the next."""
        self._count(error)
        if final or not error.retryable or attempt >= self.max_retries:
            raise error from cause
        await asyncio.sleep(backoff_s(attempt, self.retry_base_s, self.retry_cap_s, retry_after))

    async def _stream_attempt(
        self,
        client: httpx.AsyncClient,
        url: str,
        parse: Callable[[httpx.Response], AsyncIterator[T]],
        **request: Any,
    ) -> AsyncIterator[T]:
        """One request. Every failure is raised as ``AttemptFailed``; GeneratorExit and cancellation pass
        through untouched, and leaving the ``async with`` closes the response."""
        started = False
        try:
            async with client.stream("POST", url, **request) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise AttemptFailed(status_error(self.name, self.key_env, resp), retry_after_s(resp))
                started = True
                async with contextlib.aclosing(parse(resp)) as items:
                    async for item in items:
                        yield item
        except httpx.TimeoutException as exc:
            raise AttemptFailed(transport_error(self.name, exc)) from exc
        except httpx.HTTPError as exc:
            if started:  # the connection broke mid-stream
                raise AttemptFailed(
                    ProviderError("internal", f"{self.name}: stream broken: {type(exc).__name__}", retryable=True)
                ) from exc
            raise AttemptFailed(transport_error(self.name, exc)) from exc


class AzureSpeechProvider(HttpProvider):
    """The Azure Speech resource's endpoint and key, shared by its STT and TTS adapters: the base URL is
    ``AZURE_BASE_URL`` or ``https://{region}.{service}.speech.microsoft.com``."""

    name = "azure"
    key_env = "AZURE_SPEECH_KEY"

    def __init__(self, settings: AzureSpeechSettings) -> None:
        super().__init__(settings)
        self._key = settings.azure_speech_key.get_secret_value()
        self.region = settings.azure_speech_region.strip()
        base = settings.azure_base_url.strip() or (
            f"https://{self.region}.{self.service}.speech.microsoft.com" if self.region else ""
        )
        self.base_url = base.rstrip("/")

    def client_config(self) -> tuple[str, dict[str, str]]:
        if not self._key or not self.base_url:
            raise ProviderError("auth", "set AZURE_SPEECH_KEY and AZURE_SPEECH_REGION")
        return self.base_url, {"Ocp-Apim-Subscription-Key": self._key, "User-Agent": "victoria"}
