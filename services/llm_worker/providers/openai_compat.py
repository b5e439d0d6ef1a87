"""Cloud LLM over any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, Groq, vLLM, Ollama, llama.cpp
server), streamed as server-sent events.

Plain ``httpx.AsyncClient`` rather than a vendor SDK: it keeps the dependency surface small, behaves the same
for every compatible server, and lets tests intercept every request at the HTTP boundary with respx.

Failures become ``ProviderError`` with a class (auth, quota, timeout, bad_request, unavailable, internal).
Retryable ones are retried a bounded number of times, with jittered exponential backoff (or the server's
``Retry-After``), but only before the first delta has been yielded: after that the caller has already heard
part of the reply, so a retry would repeat it. The policy is ``shared.provider_http.HttpProvider``'s, shared by
every cloud adapter.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from pydantic import Field, SecretStr

from services.llm_worker.providers.base import Delta
from shared.events import ChatMessage, ToolSpec
from shared.provider_cache import ProviderError
from shared.provider_catalog import LLM_CONTEXT_TOKENS, Model, Offer, Usability, needs_env
from shared.provider_http import AttemptFailed, HttpProvider, needs_key
from shared.settings import LlmSettings


class Settings(LlmSettings):
    """OpenAI, or any OpenAI-compatible server."""

    openai_api_key: SecretStr = Field(default=SecretStr(""), description="OPENAI_API_KEY for the openai provider")
    openai_base_url: str = Field(
        default="https://api.openai.com/v1", description="any OpenAI-compatible server (vLLM, Ollama, llama.cpp)"
    )
    openai_model: str = "gpt-4o-mini"


NAME = "openai"
OFFER = Offer(
    models=(
        Model("gpt-4o-mini", "fast and cheap"),
        Model("gpt-4o", "more capable"),
        Model("gpt-4.1-mini", "fast and cheap"),
        Model("gpt-4.1-nano", "fastest"),
    ),
    default_model_setting="openai_model",
    context_tokens=LLM_CONTEXT_TOKENS["openai"],
    note="any OpenAI-compatible server (OPENAI_BASE_URL): vLLM, Ollama, llama.cpp server",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With an OpenAI key, or with OPENAI_BASE_URL at a self-hosted server (no key needed)."""
    base_url = env.get("OPENAI_BASE_URL", "").strip()
    if base_url and not needs_key(base_url):
        return True, f"self-hosted endpoint {base_url}"
    return needs_env(env, "OPENAI_API_KEY")


class OpenAICompatLlm(HttpProvider):
    """Streaming chat completions from an OpenAI-compatible server (``OPENAI_BASE_URL``, default OpenAI).

    One ``httpx.AsyncClient`` (connection pool) per provider instance, created on first use. Closing the
    ``stream`` iterator early, or cancelling its task, closes the HTTP response at once, so the server stops
    generating (barge-in).
    """

    name = "openai"
    service = "llm"
    key_env = "OPENAI_API_KEY"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.base_url, key, self.model = self._endpoint(settings)
        self.base_url = self.base_url.rstrip("/")
        self._api_key = key.get_secret_value()

    def _endpoint(self, settings: Settings) -> tuple[str, SecretStr, str]:
        """(base URL, API key as SecretStr, default model): subclasses point this at another vendor."""
        return settings.openai_base_url, settings.openai_api_key, settings.openai_model

    def client_config(self) -> tuple[str, dict[str, str]]:
        if not self._api_key and needs_key(self.base_url):
            raise ProviderError("auth", f"set {self.key_env} to use the {self.name} LLM provider")
        return self.base_url, ({"Authorization": f"Bearer {self._api_key}"} if self._api_key else {})

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
        client = self._client_for_request()
        body = {
            "model": model or self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # partial_is_final: once part of the reply was heard, a retry (here or by the caller) would repeat it
        deltas = self._stream(client, "/chat/completions", json=body, parse=self._parse, partial_is_final=True)
        async with contextlib.aclosing(deltas):
            async for delta in deltas:
                yield delta

    async def _parse(self, resp: httpx.Response) -> AsyncIterator[Delta]:
        """SSE lines ``data: {chunk}`` up to ``data: [DONE]``; the last delta carries finish_reason and usage."""
        finish: str | None = None
        usage: dict[str, Any] = {}
        done = False
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
                if not isinstance(chunk, dict):
                    raise ValueError("chunk is not an object")
            except ValueError as exc:
                raise AttemptFailed(
                    ProviderError("internal", f"{self.name}: malformed stream chunk {data[:100]!r}", retryable=True)
                ) from exc
            if "error" in chunk:
                err = chunk["error"]
                message = err.get("message") if isinstance(err, dict) else err
                raise AttemptFailed(
                    ProviderError("internal", f"{self.name}: error in stream: {message}", retryable=True)
                )
            # OpenAI sends usage in a last chunk with no choices; Groq has also used ``x_groq.usage``
            x_groq = chunk.get("x_groq")
            usage = chunk.get("usage") or (x_groq.get("usage") if isinstance(x_groq, dict) else None) or usage
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield Delta(text=text)
                finish = choice.get("finish_reason") or finish
        if not done and finish is None:
            raise AttemptFailed(ProviderError("internal", f"{self.name}: stream ended before [DONE]", retryable=True))
        yield Delta(
            finish_reason=finish or "stop",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )


Provider = OpenAICompatLlm
