"""Fixed-latency LLM for benchmarks and fast tests: streams the words of ``fake_llm_reply`` on a fixed clock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from pydantic import Field

from services.llm_worker.providers.base import Delta
from shared.events import ChatMessage, ToolSpec
from shared.provider_catalog import Model, Offer, built_in
from shared.settings import LlmSettings

_TOKEN = re.compile(r"\S+\s*")


class Settings(LlmSettings):
    """The fixed reply and its clock (bench and fast tests)."""

    fake_llm_first_token_ms: float = Field(default=150.0, ge=0)
    fake_llm_tokens_per_s: float = Field(default=50.0, gt=0)
    fake_llm_reply: str = (
        "Sure. I can help you with that booking. What time would you like to come in, and for how many people?"
    )
    fake_llm_model_replies: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"model": "reply"}: a request for that model gets that reply (e.g. a canned post-call '
        "extraction for EXTRACTION_MODEL, while calls get FAKE_LLM_REPLY)",
    )


NAME = "fake"
OFFER = Offer(
    models=(Model("fake", "streams FAKE_LLM_REPLY on a fixed clock"),),
    note="test provider: ignores the conversation",
)


usable = built_in


class FakeLlm:
    """First token after ``fake_llm_first_token_ms``, then one word every ``1/fake_llm_tokens_per_s`` seconds.

    Token times are computed from the start of the request (not slept one after another), so the schedule
    stays exact however slowly the consumer runs.
    """

    name = "fake"

    def __init__(self, settings: Settings) -> None:
        self.first_token_s = settings.fake_llm_first_token_ms / 1000
        self.token_interval_s = 1 / settings.fake_llm_tokens_per_s
        self.tokens = _TOKEN.findall(settings.fake_llm_reply)
        self.by_model = {name: _TOKEN.findall(reply) for name, reply in settings.fake_llm_model_replies.items()}

    async def warmup(self) -> None:
        """Nothing to load."""

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
        loop = asyncio.get_running_loop()
        start = loop.time()
        every = self.by_model.get(model or "", self.tokens)
        tokens = every[:max_tokens]
        for i, token in enumerate(tokens):
            delay = start + self.first_token_s + i * self.token_interval_s - loop.time()
            await asyncio.sleep(max(delay, 0.0))
            yield Delta(text=token)
        yield Delta(
            finish_reason="length" if len(every) > max_tokens else "stop",
            prompt_tokens=sum(len(m.content.split()) for m in messages),
            completion_tokens=len(tokens),
        )


Provider = FakeLlm
