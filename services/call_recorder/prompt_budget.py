"""What post-call extraction sends must fit the model's context window: prompt and reply together. A 40-turn
call on the offline model (2048 tokens) failed outright ("Requested tokens (2581) exceed context window").

The recorder has no tokenizer for whichever model a worker runs, so sizes are estimated with a conservative
characters-per-token ratio (English averages about 4; 3 leaves room for names, numbers and short words), and a
long transcript keeps its beginning (who called, why) and its most recent turns (how it ended), with an
explicit marker where turns were left out, so the model knows the middle is missing rather than guessing.
"""

from __future__ import annotations

import re
from typing import Any

CHARS_PER_TOKEN = 3.0
# chat-template tokens around each message (role markers, separators) and a margin for estimate error
TEMPLATE_OVERHEAD_TOKENS = 64
MIN_TRANSCRIPT_CHARS = 400
HEAD_SHARE = 0.25  # of the transcript budget, for the call's opening turns
OMITTED = "[... {n} turns omitted ...]"

_CONTEXT_ERROR = re.compile(r"context (?:window|length)[^0-9]{0,40}(\d+)", re.IGNORECASE)


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def provider_context_tokens(provider: str, settings: Any, override: int = 0) -> int | None:
    """The context window of ``provider`` (``shared.provider_catalog``), or the deployment's setting for it
    (``LLM_CONTEXT_TOKENS`` for local_llama); ``override`` (EXTRACTION_CONTEXT_TOKENS) wins; None = unbounded."""
    if override:
        return override
    from shared.provider_catalog import LLM_CONTEXT_TOKENS, LLM_CONTEXT_TOKENS_SETTING

    if provider in LLM_CONTEXT_TOKENS_SETTING:
        configured = getattr(settings, LLM_CONTEXT_TOKENS_SETTING[provider], 0)
        if isinstance(configured, int) and configured > 0:
            return configured
    return LLM_CONTEXT_TOKENS.get(provider) or None


def transcript_char_budget(context_tokens: int | None, system_prompt: str, reply_tokens: int) -> int | None:
    """Characters of transcript that fit beside ``system_prompt`` and a reply of ``reply_tokens``."""
    if context_tokens is None:
        return None
    free = context_tokens - reply_tokens - TEMPLATE_OVERHEAD_TOKENS - estimate_tokens(system_prompt)
    return max(MIN_TRANSCRIPT_CHARS, int(free * CHARS_PER_TOKEN))


def context_limit_from_error(message: str) -> int | None:
    """The window a provider reported when it refused a prompt ("exceed context window of 2048")."""
    found = _CONTEXT_ERROR.search(message)
    return int(found.group(1)) if found else None


def _clip(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: max(0, limit - 1)].rstrip() + "…"


def fit_transcript(lines: list[str], max_chars: int | None) -> tuple[str, int]:
    """``lines`` (one per turn) joined, within ``max_chars``: the opening turns, a marker, then the latest
    turns. Returns the text and how many turns were omitted (0 when everything fit)."""
    full = "\n".join(lines)
    if max_chars is None or len(full) <= max_chars:
        return full, 0
    line_cap = max(80, max_chars // 3)  # one rambling turn cannot take the whole budget
    clipped = [_clip(line, line_cap) for line in lines]
    marker_room = len(OMITTED.format(n=len(lines))) + 2
    head: list[str] = []
    used = 0
    for line in clipped:
        if head and used + len(line) + 1 > max_chars * HEAD_SHARE:  # the first turn always stays
            break
        head.append(line)
        used += len(line) + 1
    tail: list[str] = []
    for line in reversed(clipped[len(head) :]):
        if used + len(line) + 1 + marker_room > max_chars:
            break
        tail.append(line)
        used += len(line) + 1
    tail.reverse()
    omitted = len(lines) - len(head) - len(tail)
    if omitted == 0:
        return "\n".join(clipped), 0
    if not tail:  # not even the last turn fits beside the head: the call's end matters more than its start
        head, tail = head[:1], [_clip(clipped[-1], max_chars - len(head[0] if head else "") - marker_room - 2)]
        omitted = len(lines) - len(head) - 1
    return "\n".join([*head, OMITTED.format(n=omitted), *tail]), omitted
