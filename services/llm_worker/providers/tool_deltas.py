"""The OpenAI chat-completions wire shapes of tools, shared by the ``openai`` and ``groq`` SDK adapters (both
stream the same ``chat.completion.chunk``): the ``tools`` request parameter, and the streamed tool-call
fragments assembled into whole calls.

A streamed call arrives in pieces keyed by ``index``: the first carries ``id``, ``type`` and
``function.name`` with empty arguments, the next ones carry fragments of ``function.arguments`` (Groq may send
a whole call in one piece). The calls only exist once the stream ends, so they travel on the last delta."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.events import ToolCall, ToolSpec


def tool_params(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """``tools`` as the chat-completions ``tools`` parameter."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def new_call_id() -> str:
    """An id for a call whose server sent none (some OpenAI-compatible servers do not)."""
    return f"call_{uuid.uuid4().hex[:8]}"


@dataclass
class _Pieces:
    id: str = ""
    name: str = ""
    arguments: str = ""


class ToolCallDeltas:
    """Accumulates ``ChoiceDeltaToolCall`` fragments (the SDKs' objects: ``index``, ``id``,
    ``function.name``, ``function.arguments``) by index; ``calls()`` gives them whole, in index order."""

    def __init__(self) -> None:
        self._by_index: dict[int, _Pieces] = {}

    def add(self, fragments: Iterable[Any] | None) -> None:
        for fragment in fragments or ():
            pieces = self._by_index.setdefault(fragment.index or 0, _Pieces())
            pieces.id = pieces.id or (fragment.id or "")
            function = fragment.function
            if function is None:
                continue
            # the name comes whole in one fragment (a server repeating it must not double it)
            pieces.name = pieces.name or (function.name or "")
            pieces.arguments += function.arguments or ""

    def calls(self) -> tuple[ToolCall, ...]:
        """The assembled calls (a fragment run without a name is no call and is left out). Raises
        ``ValueError`` (pydantic's) on a call outside ``ToolCall``'s bounds."""
        return tuple(
            ToolCall(id=p.id or new_call_id(), name=p.name, arguments=p.arguments.strip() or "{}")
            for _, p in sorted(self._by_index.items())
            if p.name
        )

    def __bool__(self) -> bool:
        return bool(self._by_index)
