"""The record of what was said on a call: the conversation history the LLM sees, the ``TurnRecorded``
lifecycle events, and the live transcript, where an assistant's turn is what the caller *heard* of it (all
of it, or up to the barge-in: the played share of the segment cut off, by words).

Tool calls are turns of their own (``role="tool"``, shown live as ``tool`` messages); in the history an
assistant message that calls tools is always followed by every one of its results, and the history an LLM
request carries never starts with a result. Keypad entries are caller turns (``dtmf``); a sensitive one is
masked in everything recorded or shown — and so are its digits (:class:`~.dtmf.Masker`) in tool arguments
and results and in what the assistant said — while the history the LLM gets keeps the digits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from services.gateway.call.dtmf import Masker, llm_text, mask
from services.gateway.call.tools import ToolOutcome
from services.gateway.lifecycle.outbox import LifecycleOutbox
from services.gateway.metrics import TOOL_CALLS, TOOL_SECONDS, TURN_STAGE_SECONDS
from services.gateway.transports.protocol import ToolActivity, Transcript, TurnMetrics
from shared.events import ChatMessage, ToolCall, ToolTurn, TurnRecorded

HISTORY_TURNS = 19  # messages of history an LLM request carries at most (besides the system prompt)
# the window's start moves this many messages at a time, not one per message: requests then share their start
# for ~4 turns, and what a provider has cached of it (llama.cpp's context, a cloud API's prompt cache) stays
# good; a window sliding by one changes the prompt right after the system prompt, so every turn of a long call
# re-read its whole history (bench/llm_contexts.py: ~2.5 ms a token for SmolLM2 on two cores, ~10 for Qwen)
HISTORY_STEP = 8


@dataclass
class Segment:
    index: int
    text: str
    start: int = -1  # audio byte offset where its audio starts
    end: int = -1


@dataclass
class Reply:
    turn_id: int
    segments: list[Segment] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    in_history: int = 0  # segments already in the history (said before a tool call, with the call)
    tools_ms: float = 0.0  # time spent running tools during the reply
    audio: bytearray = field(default_factory=bytearray)  # what was played, from audio_start on
    audio_start: int = -1  # output byte offset of its first audio

    def keep_audio(self, offset: int, chunk: bytes) -> None:
        """Keep the reply's audio as it is pushed at ``offset``, so a false interruption can replay the rest."""
        if self.audio_start < 0:
            self.audio_start = offset
        self.audio += chunk

    def unheard(self, heard_bytes: int) -> list[tuple[str, bytes]]:
        """What of the reply the caller did not hear (cut at ``heard_bytes``): each segment's text (for the one
        cut off, its unheard words) with its audio from the cut on."""
        parts: list[tuple[str, bytes]] = []
        end_of_audio = self.audio_start + len(self.audio)
        for s in self.segments:
            if s.start < 0:
                break  # (its audio never came: nothing to replay from here on)
            end = s.end if s.end >= 0 else end_of_audio
            if end <= heard_bytes:
                continue
            text = s.text
            if s.start < heard_bytes:  # the one cut off: the words not heard yet
                words = s.text.split()
                heard = int(len(words) * (heard_bytes - s.start) / max(1, end - s.start))
                text = " ".join(words[heard:])
            audio = bytes(self.audio[max(s.start, heard_bytes) - self.audio_start : end - self.audio_start])
            if audio and text:
                parts.append((text, audio))
        return parts


def heard_text(segments: list[Segment], heard_bytes: int) -> str:
    """Whole segments played before ``heard_bytes``, and the played share of the one cut off (by words)."""
    parts: list[str] = []
    for s in segments:
        if s.start < 0 or s.start >= heard_bytes:
            break
        if 0 <= s.end <= heard_bytes:
            parts.append(s.text)
            continue
        span = (s.end if s.end > s.start else heard_bytes + 1) - s.start
        words = s.text.split()
        keep = int(len(words) * (heard_bytes - s.start) / max(1, span))
        if keep:
            parts.append(" ".join(words[:keep]) + "…")
        break
    return " ".join(parts)


class CallRecord:
    """One call's turns: numbered, kept as history, recorded (outbox) and shown (``send``)."""

    def __init__(
        self, call_id: str, outbox: LifecycleOutbox, send: Callable[[Transcript | TurnMetrics | ToolActivity], None]
    ) -> None:
        self.call_id = call_id
        self.outbox = outbox
        self.send = send
        self.masked = Masker()  # the call's sensitive keypad entries
        self.history: list[ChatMessage] = []
        self.turn_id = 0  # the latest turn started
        self.seq = 0  # turns recorded
        self.heard_turn = 0  # the latest caller turn whose words were recorded
        self.reply: Reply | None = None  # the assistant's reply in progress, until recorded

    def next_turn(self) -> int:
        self.turn_id += 1
        return self.turn_id

    def recent(self) -> list[ChatMessage]:
        """The last :data:`HISTORY_TURNS` messages or fewer (the start moves by :data:`HISTORY_STEP`), starting
        after any tool result whose call was cut off."""
        start = -(-max(0, len(self.history) - HISTORY_TURNS) // HISTORY_STEP) * HISTORY_STEP
        while start < len(self.history) and self.history[start].role == "tool":
            start += 1
        return self.history[start:]

    def begin_reply(self, turn_id: int) -> Reply:
        self.reply = Reply(turn_id=turn_id)
        return self.reply

    def user(self, turn_id: int, text: str, *, started_at: float, ended_at: float, stt_ms: float) -> None:
        """The caller's turn, as transcribed."""
        self.heard_turn = turn_id
        self.masked.break_run()
        self.send(Transcript(role="user", text=text, turn_id=turn_id))
        self._turn("user", text, started_at=started_at, ended_at=ended_at, latency={"stt_ms": stt_ms})
        self.history.append(ChatMessage(role="user", content=text))

    def keypad(self, turn_id: int, digits: str, *, sensitive: bool) -> None:
        """A keypad entry as the caller's turn; the LLM gets the digits (:func:`llm_text`), the rest the mask."""
        if sensitive:
            self.masked.add(digits)
        shown = mask(digits) if sensitive else digits
        now = time.time()
        self.send(Transcript(role="user", text=shown, turn_id=turn_id, dtmf=True))
        self._turn("user", shown, started_at=now, ended_at=now, latency={}, dtmf=True)
        self.history.append(ChatMessage(role="user", content=llm_text(digits)))

    def tool_exchange(self, said: str, calls: list[ToolCall], outcomes: list[ToolOutcome]) -> list[ChatMessage]:
        """An assistant message that called ``calls`` (after saying ``said``) and their results, into the
        history together; returned for the next request of the turn."""
        messages = [ChatMessage(role="assistant", content=said, tool_calls=calls), *(o.message() for o in outcomes)]
        self.history.extend(messages)
        return messages

    def tool(self, turn_id: int, outcome: ToolOutcome) -> None:
        """A tool call as a turn of its own, and a ``tool`` message to the client."""
        TOOL_CALLS.labels(outcome.kind, outcome.status).inc()
        TOOL_SECONDS.labels(outcome.kind).observe(outcome.duration_ms / 1000)
        arguments, result = self.masked(outcome.call.arguments), self.masked(outcome.result)
        summary = f"{outcome.call.name}({_short(arguments)}) → {_short(result)}"
        self.send(
            ToolActivity(
                turn_id=turn_id,
                name=outcome.call.name,
                status=outcome.status,
                text=summary,
                duration_ms=outcome.duration_ms,
            )
        )
        turn = ToolTurn(
            call_id=outcome.call.id,
            name=outcome.call.name,
            kind=outcome.kind,
            arguments=arguments,
            result=result[:20_000],
            status=outcome.status,
            duration_ms=outcome.duration_ms,
        )
        self._turn("tool", summary, started_at=outcome.started_at, ended_at=outcome.ended_at, latency={}, tool=turn)

    def late_tool(self, turn_id: int, outcome: ToolOutcome) -> None:
        """A tool left running past a barge-in has finished: its result replaces "still running" in the
        history (if the message is still there) and is recorded."""
        for i, message in enumerate(self.history):
            if message.role == "tool" and message.tool_call_id == outcome.call.id:
                self.history[i] = outcome.message()
        self.tool(turn_id, outcome)

    def assistant(
        self,
        reply: Reply,
        *,
        interrupted: bool,
        heard_bytes: int | None = None,
        latency: dict[str, float] | None = None,
    ) -> None:
        """The assistant's turn as the caller heard it (``heard_bytes``: up to the barge-in)."""
        self.reply = None
        tail = reply.segments[reply.in_history :]  # (said before a tool call: in the history with the call)
        if heard_bytes is None:
            heard, rest = " ".join(s.text for s in reply.segments), " ".join(s.text for s in tail)
        else:
            heard, rest = heard_text(reply.segments, heard_bytes), heard_text(tail, heard_bytes)
        if latency is not None:
            for stage, value in latency.items():
                TURN_STAGE_SECONDS.labels(stage.removesuffix("_ms")).observe(value / 1000)
            self.send(TurnMetrics(turn_id=reply.turn_id, **latency))
        if rest:  # (the LLM's own history keeps what it said; what is recorded or shown is masked)
            self.history.append(ChatMessage(role="assistant", content=rest))
        heard = self.masked(heard)
        if heard:
            self.send(Transcript(role="assistant", text=heard, turn_id=reply.turn_id, interrupted=interrupted))
            self._turn(
                "assistant",
                heard,
                started_at=reply.started_at,
                ended_at=time.time(),
                interrupted=interrupted,
                latency=latency or {},
            )

    def _turn(
        self,
        role: Literal["user", "assistant", "tool"],
        text: str,
        *,
        started_at: float,
        ended_at: float,
        interrupted: bool = False,
        latency: dict[str, float],
        dtmf: bool = False,
        tool: ToolTurn | None = None,
    ) -> None:
        self.outbox.put(
            TurnRecorded(
                call_id=self.call_id,
                turn_id=self.turn_id,
                seq=self.seq,
                role=role,
                text=text,
                started_at=started_at,
                ended_at=ended_at,
                interrupted=interrupted,
                latency_ms=latency,
                dtmf=dtmf,
                tool=tool,
            )
        )
        self.seq += 1


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def latency_ms(marks: dict[str, float], vad_end: float, first_send_at: float | None) -> dict[str, float]:
    """Each stage's time from the end of the caller's turn, in ms (``first_audio_sent``: the first frame out)."""
    if first_send_at is not None:
        marks["first_audio_sent"] = first_send_at
    return {f"{k}_ms": round((v - vad_end) * 1000, 1) for k, v in marks.items()}
