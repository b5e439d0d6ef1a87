"""What an agent may do besides talking, as stored with the agent and validated when it is written: its tools
(call control built in, HTTP tools), how it takes keypad digits, and where its finished calls are posted.

Nothing else is ever executed: no code, no shell, no URL the agent's config does not name. A built-in tool's
parameters are fixed here (the LLM chooses among the transfer targets the agent lists, never a number of its
own); an HTTP tool's parameters are the JSON schema its author wrote, checked to be a valid schema now and
the LLM's arguments checked against it before each call.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from shared.events import TOOL_NAME, ToolSpec

ToolKind = Literal["end_call", "transfer_call", "send_dtmf", "http"]
BUILT_IN: tuple[ToolKind, ...] = ("end_call", "transfer_call", "send_dtmf")
TRANSFER_TARGET = re.compile(r"^(\+[1-9][0-9]{6,14}|sips?:[^\s@]+@[^\s]+)$")  # E.164 or a SIP URI
DTMF_DIGITS = re.compile(r"^[0-9*#A-Dw]{1,32}$")  # w: a half-second pause (Telnyx, Twilio)

_DESCRIPTIONS: dict[ToolKind, str] = {
    "end_call": "End the call when the conversation is over (after saying goodbye).",
    "transfer_call": "Transfer the caller to a person. Use only when they ask for one or you cannot help.",
    "send_dtmf": "Press keypad digits on the line, to navigate another system's phone menu.",
    "http": "",
}


class ToolDef(BaseModel):
    """One tool of an agent. ``name`` defaults to the kind for built-ins; an HTTP tool needs a name, a URL
    and a JSON-schema ``parameters`` object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ToolKind
    name: str | None = Field(default=None, pattern=TOOL_NAME)
    description: str | None = Field(default=None, max_length=1000)
    parameters: dict[str, Any] | None = Field(default=None, description="http: the arguments' JSON schema")
    url: AnyHttpUrl | None = Field(default=None, description="http: where the arguments are sent (JSON)")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    timeout_s: float = Field(default=5.0, gt=0, le=30.0)
    cancellable: bool = Field(default=True, description="a barge-in cancels the call (false: it runs to the end)")
    targets: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description="transfer_call: name -> E.164 number or SIP URI; the LLM picks a name",
    )

    @property
    def tool_name(self) -> str:
        return self.name or self.kind

    @model_validator(mode="after")
    def _by_kind(self) -> ToolDef:
        if self.kind == "http":
            if self.name is None or self.url is None:
                raise ValueError("an http tool needs a name and a url")
            if self.parameters is not None:
                _check_schema(self.parameters)
        elif self.url is not None or self.parameters is not None:
            raise ValueError(f"{self.kind} is built in: its url and parameters are fixed")
        elif not self.cancellable:  # (a transfer or keys left running past a barge-in act on a live talk)
            raise ValueError(f"{self.kind} is built in: a barge-in always cancels it (cancellable must be true)")
        if self.kind == "transfer_call":
            if not self.targets:
                raise ValueError("transfer_call needs at least one target (name -> E.164 number or SIP URI)")
            for label, target in self.targets.items():
                if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", label):
                    raise ValueError(f"transfer target name {label!r}: lowercase letters, digits, _ or -")
                if not TRANSFER_TARGET.fullmatch(target):
                    raise ValueError(f"transfer target {target!r} is neither an E.164 number nor a SIP URI")
        elif self.targets:
            raise ValueError("targets are for transfer_call only")
        return self

    def spec(self) -> ToolSpec:
        """What the LLM is offered."""
        return ToolSpec(
            name=self.tool_name,
            description=self.description or _DESCRIPTIONS[self.kind],
            parameters=self.schema_for_llm(),
        )

    def schema_for_llm(self) -> dict[str, Any]:
        if self.kind == "http":
            return self.parameters or {"type": "object", "properties": {}}
        if self.kind == "transfer_call":
            return {
                "type": "object",
                "properties": {"target": {"type": "string", "enum": sorted(self.targets)}},
                "required": ["target"],
            }
        if self.kind == "send_dtmf":
            return {
                "type": "object",
                "properties": {"digits": {"type": "string", "pattern": DTMF_DIGITS.pattern}},
                "required": ["digits"],
            }
        return {"type": "object", "properties": {}}


def _check_schema(schema: dict[str, Any]) -> None:
    if schema.get("type") != "object":
        raise ValueError('parameters must be a JSON schema of "type": "object"')
    remote = _remote_ref(schema, "parameters")
    if remote is not None:
        raise ValueError(f"{remote}: only local references (starting with #) are allowed in parameters")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"parameters is not a valid JSON schema: {exc.message}") from None


def _remote_ref(node: Any, path: str) -> str | None:
    """Where ``node`` has a ``$ref`` that is not local ("#..."), anywhere inside it (a schema's references
    must resolve within it: nothing is fetched, checking the LLM's arguments or the schema itself)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return f"{path}.$ref {ref[:80]!r}"
        children: Any = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return None
    for key, child in children:
        found = _remote_ref(child, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found is not None:
            return found
    return None


def check_tools(tools: list[ToolDef]) -> list[ToolDef]:
    """Names are unique; each built-in appears at most once."""
    seen: set[str] = set()
    for tool in tools:
        if tool.tool_name in seen:
            raise ValueError(f"two tools are named {tool.tool_name!r}")
        seen.add(tool.tool_name)
    return tools


def argument_errors(tool: ToolDef, arguments: Any) -> str | None:
    """Why the LLM's ``arguments`` don't fit ``tool``'s schema, or None (told to the LLM, not run)."""
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(tool.schema_for_llm()).iter_errors(arguments)
    )
    return None if error is None else f"invalid arguments: {error.message}"


class DtmfSpec(BaseModel):
    """Keypad digits from the caller. ``each``: every digit is the caller's input at once; ``collect``: digits
    gather until ``terminator`` or ``timeout_s`` without a key, then go to the LLM as one input (a "press
    your customer number" flow); ``off``: ignored. ``sensitive``: masked in logs and history (the LLM still
    gets them: it may need them for a tool)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["off", "each", "collect"] = "collect"
    terminator: Literal["#", "*", ""] = "#"
    timeout_s: float = Field(default=3.0, ge=0.5, le=30.0)
    max_digits: int = Field(default=32, ge=1, le=64)
    sensitive: bool = False


class WebhookSpec(BaseModel):
    """Where the finished call (ids, numbers, agent, timings, end reason, transcript, extraction) is posted,
    HMAC-signed, once its extraction is done; retried with backoff by the recorder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: AnyHttpUrl | None = None
