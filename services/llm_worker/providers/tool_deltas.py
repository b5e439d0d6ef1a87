"""The OpenAI chat-completions wire shapes of tools, shared by the ``openai`` and ``groq`` SDK adapters (both
stream the same ``chat.completion.chunk``): the ``tools`` request parameter, and the streamed tool-call
fragments assembled into whole calls.

A streamed call arrives in pieces keyed by ``index``: the first carries ``id``, ``type`` and
``function.name`` with empty arguments, the next ones carry fragments of ``function.arguments`` (Groq may send
a whole call in one piece). The calls only exist once the stream ends, so they travel on the last delta.

What a model generates is not trusted to fit ``ToolCall``: :func:`bounded_call` makes any call valid (an id
clipped; a name or arguments out of bounds become a call the gateway answers as an error), so a malformed call
is told back to the model, never a failed turn."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.events import ToolCall, ToolSpec
from shared.logging import get_logger

log = get_logger(__name__)

# ToolCall's bounds (shared/events/work.py)
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 64
MAX_ARGUMENTS_CHARS = 20_000


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


def bounded_call(call_id: str, name: str, arguments: str) -> ToolCall:
    """A call within ``ToolCall``'s bounds, whatever the model generated: a long id is clipped (it only ties the
    result to the call); a name over 64 characters is clipped and, like arguments over 20,000 characters, makes
    the arguments a JSON string saying what was wrong, which the gateway refuses ("arguments must be a JSON
    object") and tells the model, so nothing runs on a call it did not make as it meant to."""
    problems = []
    if len(name) > MAX_NAME_CHARS:
        problems.append(f"the tool name has {len(name)} characters (at most {MAX_NAME_CHARS})")
    if len(arguments) > MAX_ARGUMENTS_CHARS:
        problems.append(f"the arguments have {len(arguments)} characters (at most {MAX_ARGUMENTS_CHARS})")
    if problems:  # lengths only: the text may hold what the caller said (digits marked sensitive)
        log.warning("llm_tool_call_out_of_bounds", name_chars=len(name), arguments_chars=len(arguments))
        arguments = json.dumps("malformed call, not run: " + "; ".join(problems))
    return ToolCall(id=(call_id or new_call_id())[:MAX_ID_CHARS], name=name[:MAX_NAME_CHARS], arguments=arguments)


@dataclass
class _Pieces:
    id: str = ""
    name: str = ""
    arguments: str = ""


class ToolCallDeltas:
    """Accumulates ``ChoiceDeltaToolCall`` fragments (the SDKs' objects: ``index``, ``id``,
    ``function.name``, ``function.arguments``) by index; ``calls()`` gives them whole, in order. A new id at an
    index whose call is already whole starts another call: Ollama numbers every call of a batch 0."""

    def __init__(self) -> None:
        self._calls: list[_Pieces] = []
        self._at: dict[int, _Pieces] = {}  # index -> the call it currently names

    def add(self, fragments: Iterable[Any] | None) -> None:
        for fragment in fragments or ():
            index = fragment.index or 0
            pieces = self._at.get(index)
            if pieces is None or (fragment.id and pieces.id and fragment.id != pieces.id and _whole(pieces)):
                pieces = self._at[index] = _Pieces()
                self._calls.append(pieces)
            pieces.id = pieces.id or (fragment.id or "")
            function = fragment.function
            if function is None:
                continue
            # the name comes whole in one fragment (a server repeating it must not double it)
            pieces.name = pieces.name or (function.name or "")
            pieces.arguments += function.arguments or ""

    def calls(self) -> tuple[ToolCall, ...]:
        """The assembled calls (a fragment run without a name is no call and is left out), each within
        ``ToolCall``'s bounds (:func:`bounded_call`): never raises."""
        return tuple(bounded_call(p.id, p.name, p.arguments.strip() or "{}") for p in self._calls if p.name)


def _whole(pieces: _Pieces) -> bool:
    """Whether the call's arguments are complete JSON (so a fragment with a new id cannot continue them)."""
    try:
        json.loads(pieces.arguments or "{}")
    except ValueError:
        return False
    return True
