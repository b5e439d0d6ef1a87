"""Extraction's prompt fits the model's context: the budget per provider and the trimming of long transcripts
(beginning and latest turns kept, an explicit marker for what was left out)."""

from __future__ import annotations

from services.call_recorder.extraction import REPLY_MAX_TOKENS, SYSTEM_PROMPT
from services.call_recorder.prompt_budget import (
    CHARS_PER_TOKEN,
    context_limit_from_error,
    estimate_tokens,
    fit_transcript,
    provider_context_tokens,
    transcript_char_budget,
)
from shared.settings import RecorderSettings


def turns(n: int) -> list[str]:
    return [
        f"{'Caller' if i % 2 else 'Agent'}: turn {i:02d}, about the booking for Friday at eight, for two people."
        for i in range(n)
    ]


def test_a_short_transcript_is_sent_whole() -> None:
    lines = turns(6)
    text, omitted = fit_transcript(lines, 10_000)
    assert omitted == 0 and text == "\n".join(lines)
    assert fit_transcript(lines, None) == ("\n".join(lines), 0)


def test_a_long_transcript_keeps_its_beginning_and_latest_turns_with_a_marker() -> None:
    lines = turns(40)
    budget = 1500
    text, omitted = fit_transcript(lines, budget)
    assert len(text) <= budget
    assert 0 < omitted < 40
    assert f"[... {omitted} turns omitted ...]" in text
    kept = text.split("\n")
    marker = kept.index(f"[... {omitted} turns omitted ...]")
    head, tail = kept[:marker], kept[marker + 1 :]
    assert head == lines[: len(head)] and len(head) >= 1  # the opening: who called and why
    assert tail == lines[-len(tail) :] and len(tail) > len(head)  # the latest turns: how it ended
    assert len(head) + len(tail) + omitted == 40


def test_one_rambling_turn_cannot_take_the_whole_budget() -> None:
    lines = ["Agent: Hello, how can I help?", "Caller: " + "blah " * 2000, "Agent: Goodbye."]
    text, omitted = fit_transcript(lines, 900)
    assert len(text) <= 900
    assert text.startswith("Agent: Hello") and text.endswith("Agent: Goodbye.")
    assert "…" in text and omitted == 0


def test_the_budget_follows_the_providers_context() -> None:
    settings = RecorderSettings(llm_context_tokens=2048)
    assert provider_context_tokens("local_llama", settings) == 2048
    assert provider_context_tokens("local_llama", RecorderSettings(llm_context_tokens=4096)) == 4096
    assert provider_context_tokens("openai", settings) == 128_000
    assert provider_context_tokens("fake", settings) is None  # no window declared: nothing trimmed
    assert provider_context_tokens("fake", settings, override=1024) == 1024  # EXTRACTION_CONTEXT_TOKENS wins
    chars = transcript_char_budget(2048, SYSTEM_PROMPT, REPLY_MAX_TOKENS)
    assert chars is not None
    # what is sent, estimated conservatively, leaves room for the reply
    assert estimate_tokens(SYSTEM_PROMPT) + chars / CHARS_PER_TOKEN + REPLY_MAX_TOKENS < 2048
    assert transcript_char_budget(None, SYSTEM_PROMPT, REPLY_MAX_TOKENS) is None


def test_the_window_is_read_from_a_providers_refusal() -> None:
    assert context_limit_from_error("Requested tokens (2581) exceed context window of 2048") == 2048
    assert context_limit_from_error("This model's maximum context length is 8192 tokens") == 8192
    assert context_limit_from_error("rate limited") is None
