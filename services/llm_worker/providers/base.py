"""The LLM provider interface: chat messages (and the tools the model may call) in, a stream of text deltas
out; a reply that calls tools ends with the calls, assembled, on its last delta."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from shared.events import ChatMessage, ToolCall, ToolSpec


@dataclass(frozen=True)
class Delta:
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # on the last delta (finish_reason "tool_calls"): the calls, whole


class LlmProvider(Protocol):
    name: str

    async def warmup(self) -> None:
        """Load models or open connections before the first request (a no-op where nothing to load)."""
        ...

    # every provider restates this signature (a Protocol is matched by shape), so the duplicates tool pairs them
    def stream(
        self,
        messages: list[ChatMessage],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 160,
        language: str | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> AsyncIterator[Delta]:
        """Yield text deltas as they are generated; the last one carries ``finish_reason`` and usage, and,
        when the model called some of ``tools``, the calls (``finish_reason="tool_calls"``).
        ``language`` is the reply's (the agent's): a provider with a model per language picks by it, the others
        ignore it. Closing the iterator early (barge-in) must stop generation. Raise ``ProviderError`` on
        failure."""
        ...
