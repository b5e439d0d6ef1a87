"""Fixed-latency LLM for benchmarks and fast tests: streams the words of ``fake_llm_reply`` on a fixed clock,
or, scripted by ``FAKE_LLM_TOOL_SCRIPT``, says a line and calls a tool, and answers a tool's result with
``FAKE_LLM_TOOL_REPLY`` (what the gateway's agent-action tests drive it with)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

from services.llm_worker.providers.base import Delta
from shared.events import ChatMessage, ToolCall, ToolSpec
from shared.provider_catalog import Model, Offer, built_in
from shared.settings import LlmSettings

_TOKEN = re.compile(r"\S+\s*")
RESULT_CHARS = 200  # of a tool's result quoted by FAKE_LLM_TOOL_REPLY


class ToolRule(BaseModel):
    """A scripted turn: a caller's message containing ``when`` (case-insensitive) gets ``say``, then the call
    of the tool ``call`` with ``arguments`` when the request offers that tool."""

    when: str
    say: str = ""
    call: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)


class Settings(LlmSettings):
    """The fixed reply and its clock (bench and fast tests), and the scripted tool calls."""

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
    fake_llm_tool_script: list[ToolRule] = Field(
        default=[],
        description='JSON [{"when": "substring of the caller\'s last message", "say": "text first", "call": "tool", '
        '"arguments": {...}}]: the first rule whose "when" is in the last (user) message answers it, ending with '
        "that tool call when the request offers the tool",
    )
    fake_llm_tool_reply: str = Field(
        default="Done: {result}",
        description="the reply to a tool's result (a request whose last message is role tool); {result} is the "
        f"result's first {RESULT_CHARS} characters",
    )


NAME = "fake"
OFFER = Offer(
    models=(Model("fake", "streams FAKE_LLM_REPLY on a fixed clock"),),
    note="test provider: ignores the conversation (but for FAKE_LLM_TOOL_SCRIPT)",
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
        self.script = settings.fake_llm_tool_script
        self.tool_reply = settings.fake_llm_tool_reply

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
        every, call = self._reply(messages, model, tools or [])
        tokens = every[:max_tokens]
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, token in enumerate(tokens):
            delay = start + self.first_token_s + i * self.token_interval_s - loop.time()
            await asyncio.sleep(max(delay, 0.0))
            yield Delta(text=token)
        if not tokens:  # nothing to say (a bare tool call): the reply still takes its first-token time
            await asyncio.sleep(max(start + self.first_token_s - loop.time(), 0.0))
        finish = "tool_calls" if call else ("length" if len(every) > max_tokens else "stop")
        yield Delta(
            finish_reason=finish,
            prompt_tokens=sum(len(m.content.split()) for m in messages),
            completion_tokens=len(tokens),
            tool_calls=(call,) if call else (),
        )

    def _reply(
        self, messages: list[ChatMessage], model: str | None, tools: list[ToolSpec]
    ) -> tuple[list[str], ToolCall | None]:
        """The words to stream and the call to end with: a tool's result is answered with the tool reply, a
        caller's message a rule matches with the rule; anything else with the model's (or the fixed) reply."""
        last = messages[-1] if messages else None
        if last is not None and last.role == "tool":
            return _TOKEN.findall(self.tool_reply.replace("{result}", last.content[:RESULT_CHARS])), None
        rule = self._rule(last.content) if last is not None and last.role == "user" else None
        if rule is None:
            return self.by_model.get(model or "", self.tokens), None
        call = None
        if rule.call and any(t.name == rule.call for t in tools):
            call = ToolCall(id=f"call_{uuid.uuid4().hex[:8]}", name=rule.call, arguments=json.dumps(rule.arguments))
        return _TOKEN.findall(rule.say), call

    def _rule(self, text: str) -> ToolRule | None:
        lowered = text.lower()
        return next((r for r in self.script if r.when.lower() in lowered), None)


Provider = FakeLlm
