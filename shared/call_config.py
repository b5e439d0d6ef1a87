"""Agents and the immutable configuration one call runs with (the seeds' ``CallConfig``).

An agent (stored in PostgreSQL, edited over the API) is a set of :class:`AgentFields` plus per-client-type
overlays (``browser``, ``twilio``, ``telnyx``) that override any of them. At call start the gateway resolves
the agent and the caller's overlay into one frozen :class:`CallConfig`, so nothing changes under a live call.
Everything is validated when it is written — unknown providers, empty prompts, out-of-range numbers are
rejected with the field's path — so a call never starts on a config that cannot work.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.agent_tools import DtmfSpec, ToolDef, WebhookSpec, check_tools
from shared.events import VoiceSpec
from shared.texts import AGENT_TEXTS, CATALOGUE, DEFAULT_LANGUAGE, TextKey, text_for

ClientType = Literal["browser", "twilio", "telnyx"]
CLIENT_TYPES: tuple[ClientType, ...] = ("browser", "twilio", "telnyx")
AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
TEXT_FIELDS = AGENT_TEXTS  # the texts an agent may set or leave to the catalogue (shared/texts.py)
UNSET = "null = the catalogue's text in the agent's language (shared/texts.py: es, en; English otherwise)"
Prompt = Annotated[str, Field(min_length=1, max_length=8000)]
Greeting = Annotated[str, Field(max_length=1000)]
Line = Annotated[str, Field(min_length=1, max_length=500)]


# the provider names each worker kind can build, so that an agent naming another is refused when it is written;
# plain names, so that validating an agent imports no worker code (tests/unit/test_providers_api.py checks that the
# workers' registries agree)
PROVIDER_NAMES: dict[str, frozenset[str]] = {
    "stt": frozenset({"fake", "local_whisper", "groq", "azure"}),
    "llm": frozenset({"fake", "local_llama", "openai", "groq"}),
    "tts": frozenset({"fake", "local_piper", "local_kokoro", "azure"}),
}


def known_providers() -> dict[str, set[str]]:
    """Provider names each worker kind can build."""
    return {kind: set(names) for kind, names in PROVIDER_NAMES.items()}


class LlmSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: str | None = None
    model: str | None = Field(default=None, max_length=200)
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    max_tokens: int = Field(default=80, ge=1, le=4096)


class SttSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: str | None = None
    model: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=16)


class TurnSpec(BaseModel):
    """Turn-taking: when the caller's turn ends (the end-of-turn model at a pause, or a fixed silence window),
    when the reply starts ahead of that end (preemptively, held back until the turn is over), what may
    interrupt the agent (a backchannel or a cough may not), silence handling and the call's length limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    vad_start_ms: int = Field(default=120, ge=20, le=2000, description="speech that opens a caller's turn")
    vad_stop_ms: int = Field(
        default=500, ge=60, le=5000, description="end_of_turn 'silence': the silence that ends a turn"
    )
    vad_preroll_ms: int = Field(default=200, ge=0, le=1000)
    end_of_turn: Literal["model", "silence"] = Field(
        default="model",
        description="'model': at each pause the end-of-turn model (Smart Turn) decides whether the caller has "
        "finished; 'silence': a fixed vad_stop_ms window, as before",
    )
    pause_ms: int = Field(
        default=200, ge=60, le=2000, description="end_of_turn 'model': the silence after which the model decides"
    )
    max_silence_ms: int = Field(
        default=1500,
        ge=200,
        le=10000,
        description="end_of_turn 'model': the longest pause the agent waits out when the model says the caller "
        "has not finished",
    )
    eot_threshold: float = Field(
        default=0.5, ge=0.01, le=0.99, description="end_of_turn 'model': probability of 'finished' that ends a turn"
    )
    preempt_ms: int = Field(
        default=100,
        ge=0,
        le=2000,
        description="after this much silence the reply starts (STT, LLM, TTS), held back until the turn ends and "
        "dropped if the caller goes on; 0 = only after the turn ends",
    )
    interrupt_min_ms: int = Field(
        default=500,
        ge=0,
        le=3000,
        description="caller speech that interrupts the agent while it speaks; shorter (a backchannel, a cough) "
        "does not cut it off",
    )
    resume_after_false_interruption: bool = Field(
        default=True,
        description="an interruption with no words in it (or only a backchannel: 'mm-hm', 'sí') resumes the "
        "agent where it stopped",
    )
    silence_timeout_s: float = Field(default=10.0, ge=2.0, le=600.0)
    max_call_s: float = Field(default=1800.0, ge=10.0, le=4 * 3600.0)


class AgentFields(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="Victoria", min_length=1, max_length=100)
    language: str = Field(default="en-US", pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")
    system_prompt: Prompt | None = Field(default=None, description=f"what the LLM is told; {UNSET}")
    first_message: Greeting | None = Field(
        default=None, description=f"said when the call starts; empty = wait for the caller; {UNSET}"
    )
    apology_message: Line | None = Field(default=None, description=f"said before a failed call ends; {UNSET}")
    reprompt_message: Line | None = Field(default=None, description=f"said after a silence; {UNSET}")
    silence_goodbye_message: Line | None = Field(
        default=None, description=f"said before hanging up on silence; {UNSET}"
    )
    max_duration_message: Line | None = Field(default=None, description=f"said at the call's time limit; {UNSET}")
    shutdown_message: Line | None = Field(
        default=None, description=f"said when the gateway shuts down under the call; {UNSET}"
    )
    tool_filler_message: Line | None = Field(
        default=None, description=f"said while a slow tool runs (after tool_filler_after_ms); {UNSET}"
    )
    end_call_message: Line | None = Field(
        default=None, description=f"said before end_call hangs up, unless the reply already said goodbye; {UNSET}"
    )
    transfer_message: Line | None = Field(default=None, description=f"said before transfer_call; {UNSET}")
    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    llm: LlmSpec = Field(default_factory=LlmSpec)
    stt: SttSpec = Field(default_factory=SttSpec)
    turn: TurnSpec = Field(default_factory=TurnSpec)
    tools: list[ToolDef] = Field(
        default_factory=list,
        max_length=20,
        description="what the agent may do: end_call, transfer_call, send_dtmf and HTTP tools (nothing else runs)",
    )
    tool_filler_after_ms: int = Field(
        default=1000, ge=0, le=10_000, description="a tool still running after this says tool_filler_message"
    )
    dtmf: DtmfSpec = Field(default_factory=DtmfSpec)
    webhook: WebhookSpec = Field(default_factory=WebhookSpec)
    extraction_fields: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description="extra post-call fields for this agent: name (snake_case) -> what to extract",
    )

    @field_validator(
        "system_prompt",
        "apology_message",
        "reprompt_message",
        "silence_goodbye_message",
        "max_duration_message",
        "shutdown_message",
        "name",
    )
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    def text(self, key: TextKey) -> str:
        """One of the agent's texts: its own if set, else the catalogue's in the agent's language."""
        own = getattr(self, key, None)
        return own if own is not None else text_for(key, self.language)

    @property
    def shutdown_text(self) -> str:
        """The shutdown goodbye (the agent's own, else the catalogue's in its language)."""
        return self.text("shutdown_message")

    def catalogue_texts(self) -> list[str]:
        """The texts this agent leaves to the catalogue (they follow its language)."""
        return [key for key in TEXT_FIELDS if getattr(self, key) is None]

    def with_catalogue_texts(self) -> Self:
        """A copy with every unset text filled from the catalogue: what a call with these fields says."""
        return self.model_copy(update={key: self.text(key) for key in self.catalogue_texts()})

    @field_validator("extraction_fields")
    @classmethod
    def _extraction_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name, what in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(f"{name!r}: field names are snake_case, at most 40 characters")
            if name in {"summary", "intent", "sentiment", "entities", "next_action"}:
                raise ValueError(f"{name!r} is already a standard extraction field")
            if not what.strip() or len(what) > 200:
                raise ValueError(f"{name!r}: describe what to extract in 1-200 characters")
        return value

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[ToolDef]) -> list[ToolDef]:
        return check_tools(value)

    @model_validator(mode="after")
    def _providers_exist(self) -> AgentFields:
        known = known_providers()
        for kind, name, path in (
            ("stt", self.stt.provider, "stt.provider"),
            ("llm", self.llm.provider, "llm.provider"),
            ("tts", self.voice.provider, "voice.provider"),
        ):
            if name is not None and name not in known[kind]:
                raise ValueError(f"{path}: unknown {kind} provider {name!r}; known: {', '.join(sorted(known[kind]))}")
        return self


class AgentSpec(AgentFields):
    """What is stored and written over the API: the agent's fields plus partial overlays per client type."""

    overlays: dict[ClientType, dict[str, Any]] = Field(default_factory=dict)
    phone_numbers: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="E.164 numbers (e.g. +34910000000) whose incoming Twilio/Telnyx calls this agent answers",
    )

    @field_validator("phone_numbers")
    @classmethod
    def _e164(cls, value: list[str]) -> list[str]:
        for number in value:
            if not E164.fullmatch(number):
                raise ValueError(f"{number!r} is not an E.164 number such as +34910000000")
        return sorted(set(value))

    @model_validator(mode="after")
    def _overlays_resolve(self) -> AgentSpec:
        for client_type in self.overlays:
            try:
                self.fields_for(client_type)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"overlays.{client_type}.{loc}: {err['msg']}") from None
        return self

    def fields_for(self, client_type: ClientType) -> AgentFields:
        base = self.model_dump(include=set(AgentFields.model_fields))
        return AgentFields.model_validate(_deep_merge(base, self.overlays.get(client_type, {})))


class CallConfig(AgentFields):
    """One call's resolved, frozen configuration: every text is set (the catalogue's, in the call's language,
    where the agent left it unset), so nothing during the call looks a text up."""

    agent_id: str = "default"
    agent_version: int = 1
    client_type: ClientType = "browser"
    system_prompt: Prompt = CATALOGUE[DEFAULT_LANGUAGE]["system_prompt"]
    first_message: Greeting = CATALOGUE[DEFAULT_LANGUAGE]["first_message"]
    apology_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["apology_message"]
    reprompt_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["reprompt_message"]
    silence_goodbye_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["silence_goodbye_message"]
    max_duration_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["max_duration_message"]
    shutdown_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["shutdown_message"]
    tool_filler_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["tool_filler_message"]
    end_call_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["end_call_message"]
    transfer_message: Line = CATALOGUE[DEFAULT_LANGUAGE]["transfer_message"]

    @model_validator(mode="before")
    @classmethod
    def _texts_from_catalogue(cls, data: Any) -> Any:
        if isinstance(data, dict):
            language = data.get("language") or AgentFields.model_fields["language"].default
            unset = {key: text_for(key, language) for key in TEXT_FIELDS if data.get(key) is None}
            data = {**data, **unset}
        return data

    @classmethod
    def resolve(cls, agent_id: str, version: int, spec: AgentSpec, client_type: ClientType) -> CallConfig:
        fields = spec.fields_for(client_type).model_dump()
        return cls(agent_id=agent_id, agent_version=version, client_type=client_type, **fields)


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
