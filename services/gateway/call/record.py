"""The record of what was said on a call: the conversation history the LLM sees, the ``TurnRecorded``
lifecycle events, and the live transcript, where an assistant's turn is what the caller *heard* of it (all
of it, or up to the barge-in: the played share of the segment cut off, by words).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from services.gateway.lifecycle.outbox import LifecycleOutbox
from services.gateway.metrics import TURN_STAGE_SECONDS
from services.gateway.transports.protocol import Transcript, TurnMetrics
from shared.events import ChatMessage, TurnRecorded

HISTORY_TURNS = 19  # messages of history an LLM request carries (besides the system prompt)


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

    def __init__(self, call_id: str, outbox: LifecycleOutbox, send: Callable[[Transcript | TurnMetrics], None]) -> None:
        self.call_id = call_id
        self.outbox = outbox
        self.send = send
        self.history: list[ChatMessage] = []
        self.turn_id = 0  # the latest turn started
        self.seq = 0  # turns recorded
        self.reply: Reply | None = None  # the assistant's reply in progress, until recorded

    def next_turn(self) -> int:
        self.turn_id += 1
        return self.turn_id

    def recent(self) -> list[ChatMessage]:
        return self.history[-HISTORY_TURNS:]

    def begin_reply(self, turn_id: int) -> Reply:
        self.reply = Reply(turn_id=turn_id)
        return self.reply

    def user(self, turn_id: int, text: str, *, started_at: float, ended_at: float, stt_ms: float) -> None:
        """The caller's turn, as transcribed."""
        self.send(Transcript(role="user", text=text, turn_id=turn_id))
        self._turn("user", text, started_at=started_at, ended_at=ended_at, latency={"stt_ms": stt_ms})
        self.history.append(ChatMessage(role="user", content=text))

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
        if heard_bytes is None:
            heard = " ".join(s.text for s in reply.segments)
        else:
            heard = heard_text(reply.segments, heard_bytes)
        if latency is not None:
            for stage, value in latency.items():
                TURN_STAGE_SECONDS.labels(stage.removesuffix("_ms")).observe(value / 1000)
            self.send(TurnMetrics(turn_id=reply.turn_id, **latency))
        if heard:
            self.history.append(ChatMessage(role="assistant", content=heard))
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
        role: Literal["user", "assistant"],
        text: str,
        *,
        started_at: float,
        ended_at: float,
        interrupted: bool = False,
        latency: dict[str, float],
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
            )
        )
        self.seq += 1


def latency_ms(marks: dict[str, float], vad_end: float, first_send_at: float | None) -> dict[str, float]:
    """Each stage's time from the end of the caller's turn, in ms (``first_audio_sent``: the first frame out)."""
    if first_send_at is not None:
        marks["first_audio_sent"] = first_send_at
    return {f"{k}_ms": round((v - vad_end) * 1000, 1) for k, v in marks.items()}
