"""Streamed chat completions through a vendor SDK (``openai``, ``groq``: the same ``chat.completion.chunk``
stream), under the retry and error policy every cloud adapter shares (``shared.provider_http.HttpProvider``).

The SDK runs with ``max_retries=0`` over our pooled ``httpx.AsyncClient``: the retries are ours (only before
the first delta: after that the caller has heard part of the reply, so a retry would repeat it), and tests
intercept the SDK's requests with respx at the HTTP boundary. Its exceptions become ``ProviderError`` classes:
a status error (``AuthenticationError``, ``PermissionDeniedError``, ``RateLimitError``, ``BadRequestError``,
``NotFoundError``, ``InternalServerError``, ...) by its status and body, as every cloud adapter classifies
them (auth, quota — not retryable when the quota is spent —, bad_request, unavailable), with its
``Retry-After``; ``APITimeoutError`` is timeout, ``APIConnectionError`` unavailable (internal once the stream
had started), an error event inside the stream or a chunk that is not JSON internal.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from services.llm_worker.providers.base import Delta
from services.llm_worker.providers.tool_deltas import ToolCallDeltas, tool_params
from shared.events import ChatMessage, ToolSpec
from shared.provider_cache import ProviderError
from shared.provider_http import AttemptFailed, HttpProvider, needs_key, retry_after_s, status_error


class SdkChatLlm(HttpProvider):
    """One SDK client per provider instance, made on first use over the pooled ``httpx.AsyncClient``. Closing
    the ``stream`` iterator early, or cancelling its task, closes the HTTP response at once, so the server
    stops generating (barge-in). A subclass names its SDK (``sdk``) and builds its client (``_make_sdk``)."""

    service = "llm"

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        base_url, key, self.model = self._endpoint(settings)
        self.base_url = base_url.rstrip("/")
        self._api_key = key.get_secret_value()
        self._sdk: Any = None

    def _endpoint(self, settings: Any) -> tuple[str, SecretStr, str]:
        """(base URL, API key, default model) from the settings."""
        raise NotImplementedError

    def sdk(self) -> ModuleType:
        """The vendor SDK's module (its exception classes are named alike in both)."""
        raise NotImplementedError

    def _make_sdk(self, http_client: httpx.AsyncClient) -> Any:
        """The SDK's async client over ``http_client``, with no retries of its own."""
        raise NotImplementedError

    def _request_extras(self) -> dict[str, Any]:
        """Per-request SDK options beyond the chat (e.g. headers)."""
        return {}

    def client_config(self) -> tuple[str, dict[str, str]]:
        """The SDK sets the URL and the key on each request: the pool needs neither, only the key's check."""
        if not self._api_key and needs_key(self.base_url):
            raise ProviderError("auth", f"set {self.key_env} to use the {self.name} LLM provider")
        return self.base_url, {}

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s))

    def _sdk_client(self) -> Any:
        client = self._client_for_request()
        if self._sdk is None:
            self._sdk = self._make_sdk(client)
        return self._sdk

    async def warmup(self) -> None:
        self._sdk_client()

    async def aclose(self) -> None:
        self._sdk = None
        await super().aclose()

    async def stream(
        self,
        messages: list[ChatMessage],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 160,
        language: str | None = None,  # one model for every language
        tools: list[ToolSpec] | None = None,
    ) -> AsyncIterator[Delta]:
        sdk = self._sdk_client()
        request: dict[str, Any] = {
            "model": model or self.model,
            "messages": [m.openai() for m in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": True,
            # usage in a last chunk; in extra_body because the groq SDK has no parameter for it (its API has)
            "extra_body": {"stream_options": {"include_usage": True}},
            **self._request_extras(),
        }
        if tools:
            request["tools"] = tool_params(tools)
        # partial_is_final: once part of the reply was heard, a retry (here or by the caller) would repeat it
        deltas = self._retried_stream(lambda: self._attempt(sdk, request), partial_is_final=True)
        async with contextlib.aclosing(deltas):
            async for delta in deltas:
                yield delta

    async def _attempt(self, sdk: Any, request: dict[str, Any]) -> AsyncIterator[Delta]:
        """One request: its deltas, every failure raised as ``AttemptFailed``; GeneratorExit and cancellation
        pass through, and leaving the ``async with`` closes the response."""
        started = False
        try:
            stream = await sdk.chat.completions.create(**request)
            started = True
            async with stream, contextlib.aclosing(self._deltas(stream)) as deltas:
                async for delta in deltas:
                    yield delta
        except AttemptFailed:
            raise
        except Exception as exc:
            failure = self._failure(exc, started)
            if failure is None:
                raise
            raise failure from exc

    async def _deltas(self, chunks: AsyncIterator[Any]) -> AsyncIterator[Delta]:
        """Text as it arrives; then one last delta with the finish reason, the usage and the assembled calls."""
        finish: str | None = None
        usage: Any = None
        calls = ToolCallDeltas()
        async for chunk in chunks:
            # OpenAI sends usage in a last chunk with no choices; Groq has also used ``x_groq.usage``
            x_groq = _get(chunk, "x_groq")
            if _get(x_groq, "error"):
                error = ProviderError(
                    "internal", f"{self.name}: error in stream: {_get(x_groq, 'error')}", retryable=True
                )
                raise AttemptFailed(error)
            usage = _get(chunk, "usage") or _get(x_groq, "usage") or usage
            for choice in _get(chunk, "choices") or ():
                if _get(choice, "index"):
                    continue  # n > 1 is never asked for
                delta = _get(choice, "delta")  # read leniently: a compatible server may leave fields out
                if text := _get(delta, "content"):
                    yield Delta(text=text)
                calls.add(_get(delta, "tool_calls"))
                finish = _get(choice, "finish_reason") or finish
        if finish is None:
            raise AttemptFailed(
                ProviderError("internal", f"{self.name}: stream ended before it finished", retryable=True)
            )
        yield self._last(finish, usage, calls)

    def _last(self, finish: str, usage: Any, calls: ToolCallDeltas) -> Delta:
        """The closing delta. A reply cut at max_tokens keeps no calls (their arguments are cut too); calls
        made under another finish reason (some compatible servers say "stop") still say "tool_calls". A call
        out of ``ToolCall``'s bounds is made one the gateway answers as an error (``bounded_call``)."""
        whole = calls.calls() if finish != "length" else ()
        if whole:
            finish = "tool_calls"
        elif finish == "tool_calls":
            finish = "stop"
        return Delta(
            finish_reason=finish,
            prompt_tokens=_get(usage, "prompt_tokens"),
            completion_tokens=_get(usage, "completion_tokens"),
            tool_calls=whole,
        )

    def _failure(self, exc: Exception, started: bool) -> AttemptFailed | None:
        """``exc`` (the SDK's, or httpx's from the body once streaming) classified; None: not a provider failure."""
        sdk = self.sdk()
        if isinstance(exc, sdk.APIStatusError):
            return AttemptFailed(status_error(self.name, self.key_env, exc.response), retry_after_s(exc.response))
        what = f"{self.name}: {type(exc).__name__} {exc}".strip()
        if isinstance(exc, sdk.APITimeoutError | httpx.TimeoutException):
            return AttemptFailed(ProviderError("timeout", what, retryable=True))
        if isinstance(exc, sdk.APIConnectionError | httpx.HTTPError):
            if started:  # the connection broke mid-stream
                return AttemptFailed(ProviderError("internal", f"{self.name}: stream broken: {what}", retryable=True))
            return AttemptFailed(ProviderError("unavailable", what, retryable=True))
        if isinstance(exc, sdk.APIError):  # an error event inside the stream
            return AttemptFailed(ProviderError("internal", f"{self.name}: error in stream: {exc}", retryable=True))
        if isinstance(exc, ValueError):  # a chunk that is not JSON
            return AttemptFailed(
                ProviderError("internal", f"{self.name}: malformed stream chunk: {exc}", retryable=True)
            )
        return None


def _get(obj: Any, key: str) -> Any:
    """A field of an SDK object, or of the plain dict an SDK keeps for a field it does not declare."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)
