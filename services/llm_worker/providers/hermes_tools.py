"""Tool calling for the local models, in the Hermes format Qwen2.5 is trained on: the tools' signatures in the
system message inside ``<tools></tools>``, the model's calls as ``<tool_call>{"name": .., "arguments": {..}}
</tool_call>``, results given back as ``<tool_response>`` in a user turn.

The chat is rendered here into plain role/content messages (character for character what Qwen2.5's own chat
template makes of ``tools``, ``tool_calls`` and ``tool`` messages), so it works with any ChatML template,
SmolLM2's too, and the model's template is never asked to understand tools. On the way out the text before
``<tool_call>`` is spoken as it streams; from the tag on it is held back, and parsed into calls at the end.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import Any

from services.llm_worker.providers.base import Delta
from services.llm_worker.providers.tool_deltas import bounded_call, new_call_id
from shared.events import ChatMessage, ToolCall, ToolSpec
from shared.logging import get_logger

log = get_logger(__name__)

OPEN, CLOSE = "<tool_call>", "</tool_call>"
TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)
_CALL = re.compile(re.escape(OPEN) + r"\s*(.*?)\s*(?:" + re.escape(CLOSE) + r"|$)", re.DOTALL)


def tools_block(tools: list[ToolSpec]) -> str:
    """The tools' signatures as Qwen2.5's template lists them (one JSON object per line)."""
    lines = "".join("\n" + _json({"type": "function", "function": t.model_dump()}) for t in tools)
    return TOOLS_INTRO + lines + TOOLS_OUTRO


def render_chat(messages: list[ChatMessage], tools: list[ToolSpec]) -> list[dict[str, str]]:
    """``messages`` as role/content pairs: the tools appended to the system message (one is added if there is
    none), an assistant's calls as ``<tool_call>`` blocks after its text, consecutive tool results as
    ``<tool_response>`` blocks of one user turn. Without tools or tool messages: the plain chat."""
    chat: list[dict[str, str]] = []
    previous = ""
    for m in messages:
        if m.role == "tool":
            block = f"<tool_response>\n{m.content}\n</tool_response>"
            if previous == "tool":
                chat[-1]["content"] += "\n" + block
            else:
                chat.append({"role": "user", "content": block})
        elif m.role == "assistant" and m.tool_calls:
            calls = "\n".join(_call_text(c) for c in m.tool_calls)
            chat.append({"role": "assistant", "content": f"{m.content}\n{calls}" if m.content else calls})
        else:
            chat.append({"role": m.role, "content": m.content})
        previous = m.role
    if tools:
        if chat and chat[0]["role"] == "system":
            chat[0]["content"] += "\n\n" + tools_block(tools)
        else:
            chat.insert(0, {"role": "system", "content": tools_block(tools)})
    return chat


def _call_text(call: ToolCall) -> str:
    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments  # as the template would: the text, quoted
    return f'{OPEN}\n{{"name": "{call.name}", "arguments": {_json(arguments)}}}\n{CLOSE}'


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # the template's ``tojson``


class CallText:
    """Splits the model's streamed text into what may be spoken (everything before ``<tool_call>``, released
    as soon as it cannot be the start of the tag) and the calls (parsed from the rest at the end). A reply
    that starts with ``{`` is held whole too: small models (Qwen2.5 0.5B) often write the call's JSON without
    the tags; if it is no call after all, it is spoken at the end, as it would have been without tools."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.pending = ""  # leading blanks, or a tail that may be the start of the tag
        self.started = False  # a visible character has come
        self.held: str | None = None  # from the tag (or the leading brace) on

    def feed(self, piece: str) -> str:
        """The part of ``piece`` (with what was pending) that may be spoken now."""
        if self.held is not None:
            self.held += piece
            return ""
        text = self.pending + piece
        if not self.started:
            if not text.strip():
                self.pending = text
                return ""
            self.started = True
            if text.lstrip().startswith("{"):
                self.held, self.pending = text.lstrip(), ""
                return ""
        at = text.find(OPEN)
        if at >= 0:
            self.held, self.pending = text[at:], ""
            return text[:at]
        keep = next((n for n in range(min(len(OPEN) - 1, len(text)), 0, -1) if OPEN.startswith(text[-n:])), 0)
        self.pending = text[len(text) - keep :]
        return text[: len(text) - keep]

    def finish(self) -> tuple[str, tuple[ToolCall, ...]]:
        """(the text still to speak, the calls): a pending tail that never became the tag is spoken, and so is
        a leading JSON object that is no call; broken ``<tool_call>`` text is dropped."""
        if self.held is None:
            return self.pending, ()
        tagged = self.held.startswith(OPEN)
        calls = parse_calls(self.held, self.names)
        if calls or not tagged:
            return ("" if calls else self.held), calls
        # its length only: the model's text may repeat what the caller said (digits marked sensitive)
        log.warning("local_tool_call_unparsed", chars=len(self.held))
        return "", ()


def parse_calls(text: str, names: set[str]) -> tuple[ToolCall, ...]:
    """The well-formed calls of offered tools in ``text``: ``<tool_call>`` blocks (a last one may lack its
    closing tag: the model stopped right after the JSON), else one bare JSON object at its start. Anything
    else is dropped: a made-up tool or broken JSON runs nothing."""
    bodies = _CALL.findall(text) if text.startswith(OPEN) else [text]
    calls = (_call(body, names) for body in bodies)
    return tuple(c for c in calls if c is not None)


def _call(body: str, names: set[str]) -> ToolCall | None:
    try:
        value, _ = json.JSONDecoder().raw_decode(body.strip())
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or value["name"] not in names:
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return bounded_call(new_call_id(), value["name"], _json(arguments))


async def with_calls(deltas: AsyncGenerator[Delta, None], tools: list[ToolSpec]) -> AsyncIterator[Delta]:
    """``deltas`` with the ``<tool_call>`` text held back and its calls on the last delta (closing this closes
    ``deltas``)."""
    text = CallText({t.name for t in tools})
    async with contextlib.aclosing(deltas):
        async for delta in deltas:
            spoken = text.feed(delta.text)
            if delta.finish_reason is None:
                if spoken:
                    yield replace(delta, text=spoken)
                continue
            rest, calls = text.finish()
            if spoken + rest:
                yield Delta(text=spoken + rest)
            finish = "tool_calls" if calls else delta.finish_reason
            yield replace(delta, text="", finish_reason=finish, tool_calls=calls)
