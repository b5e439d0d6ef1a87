"""A live call's state machine: one transition table, the only place a call's state changes.

The state is two halves kept apart, as LiveKit Agents keeps ``user_state`` and ``agent_state``: the caller
(``listening`` or ``speaking``) and the agent (``starting``, ``idle``, ``thinking``, ``speaking``, ``closing``,
``ended``). :class:`CallMachine` is pure and synchronous: it takes a typed event, and returns the transition
(with the actions the session must run) or None when the event means nothing in the current state (it is
ignored, the state stays). The session executes the actions; unit tests drive the machine with no sockets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from services.gateway.call.turn_detector import (
    PausePoint,
    PreemptPoint,
    SpeechConfirmed,
    SpeechResumed,
    SpeechStarted,
    TurnEnded,
)
from shared.events import ErrorInfo


class Caller(enum.StrEnum):
    LISTENING = "listening"
    SPEAKING = "speaking"


class Agent(enum.StrEnum):
    STARTING = "starting"  # the session is wired, not yet started (LiveKit's "initializing")
    IDLE = "idle"
    THINKING = "thinking"
    SPEAKING = "speaking"
    ENDING = "ending"  # the reply ended the call (end_call): it plays out, the caller can no longer interrupt it
    CLOSING = "closing"  # saying a last message (goodbye, apology); the caller can no longer interrupt
    ENDED = "ended"


class State(NamedTuple):
    caller: Caller
    agent: Agent

    @property
    def label(self) -> str:
        """One word for dashboards and call control (the values the gateway always reported)."""
        if self.agent == Agent.IDLE:
            return "user_speaking" if self.caller == Caller.SPEAKING else "listening"
        return str(self.agent)

    @property
    def name(self) -> str:
        """The state's name in the table and the diagram."""
        return self.label.upper()


STARTING = State(Caller.LISTENING, Agent.STARTING)
LISTENING = State(Caller.LISTENING, Agent.IDLE)
USER_SPEAKING = State(Caller.SPEAKING, Agent.IDLE)
THINKING = State(Caller.LISTENING, Agent.THINKING)
SPEAKING = State(Caller.LISTENING, Agent.SPEAKING)
ENDING = State(Caller.LISTENING, Agent.ENDING)
CLOSING = State(Caller.LISTENING, Agent.CLOSING)
ENDED = State(Caller.LISTENING, Agent.ENDED)


# --- events (besides the turn detector's SpeechStarted and TurnEnded) -----------------------------------


@dataclass(frozen=True)
class Start:
    """The session started; the agent has no greeting: the caller speaks first."""


@dataclass(frozen=True)
class Greet:
    """The session started with the agent's greeting."""


@dataclass(frozen=True)
class NoWords:
    """The caller's turn had no words in it (a cough, a noise): nothing to answer."""

    turn_id: int | None = None


@dataclass(frozen=True)
class FalseInterruption:
    """The caller's speech that cut the agent off had no words in it (or only a backchannel): the agent goes on
    where it stopped (``parts``: what the caller had not heard, text and audio)."""

    parts: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class ReplyAudioStarted:
    """The reply's first audio is on its way to the caller."""


@dataclass(frozen=True)
class PlayedOut:
    """Everything the agent said has played at the caller's end."""


@dataclass(frozen=True)
class SilenceTimeout:
    """The caller said nothing for the agent's silence timeout: re-prompt."""


@dataclass(frozen=True)
class SilenceAfterReprompt:
    """The caller stayed silent after the re-prompt: say goodbye and hang up."""


@dataclass(frozen=True)
class MaxDuration:
    """The call reached the agent's maximum duration: say so and hang up."""


@dataclass(frozen=True)
class ReplyFailed:
    """A stage of a turn failed after its retries: apologise and hang up."""

    stage: str
    error: ErrorInfo


@dataclass(frozen=True)
class Shutdown:
    """The gateway is going away: say the shutdown goodbye and hang up."""


@dataclass(frozen=True)
class DigitsEntered:
    """The caller typed an entry on the keypad: a turn of its own, answered without STT (it barges in)."""

    digits: str


@dataclass(frozen=True)
class EndingCall:
    """The reply called ``end_call``: what it still has to say plays out, and no speech or key cuts it off."""


@dataclass(frozen=True)
class AgentHangUp:
    """The reply called ``end_call`` and has played out: the closing line (unless it ``spoke``), then hang up."""

    spoke: bool


@dataclass(frozen=True)
class Transferred:
    """The reply called ``transfer_call`` and the transport handed the call to ``target``: it is no longer ours."""

    target: str


@dataclass(frozen=True)
class HangUp:
    """The call is over now, with no last words (the caller hung up, broke the protocol, was ended remotely)."""

    reason: str


CallEvent = (
    Start
    | Greet
    | SpeechStarted
    | SpeechConfirmed
    | PreemptPoint
    | PausePoint
    | SpeechResumed
    | TurnEnded
    | NoWords
    | FalseInterruption
    | ReplyAudioStarted
    | PlayedOut
    | SilenceTimeout
    | SilenceAfterReprompt
    | MaxDuration
    | ReplyFailed
    | Shutdown
    | DigitsEntered
    | EndingCall
    | AgentHangUp
    | Transferred
    | HangUp
)


class Action(enum.StrEnum):
    """What the session does on a transition, in the order listed."""

    GREET = "greet"  # speak the first message
    BARGE_IN = "barge_in"  # silence the agent, stop its workers, keep what the caller heard
    CALLER_SPOKE = "caller_spoke"  # the silence count starts again
    RESPOND = "respond"  # the reply pipeline for the turn's audio (or the one started at its last pause)
    PREEMPT = "preempt"  # start the reply at a pause, held back until the turn ends
    JUDGE_TURN = "judge_turn"  # ask the end-of-turn model whether the pause ends the turn
    DROP_PREEMPTED = "drop_preempted"  # the caller went on: the reply started at the pause is cancelled
    BACKCHANNEL = "backchannel"  # speech too short to interrupt the agent ended: it talks on
    RESUME = "resume"  # play the rest of the reply a false interruption cut off
    RESPOND_DIGITS = "respond_digits"  # the reply pipeline for a keypad entry (no STT)
    REPROMPT = "reprompt"  # speak the re-prompt
    REPORT_ERROR = "report_error"  # the error policy: log, ``call error`` event, ``error`` message
    LAST_WORDS = "last_words"  # cut what plays, say the event's last message, end the call
    HAND_OVER = "hand_over"  # the call was transferred: end it as ``transferred`` (no last words: not ours)


class Transition(NamedTuple):
    """A change of state (announced), or with ``source == target`` an internal transition: actions only."""

    source: State
    target: State
    actions: tuple[Action, ...] = ()

    @property
    def internal(self) -> bool:
        return self.source == self.target


_CONVERSING = (STARTING, LISTENING, USER_SPEAKING, THINKING, SPEAKING)
_CLOSERS: tuple[type[CallEvent], ...] = (MaxDuration, ReplyFailed, Shutdown)


def _table() -> dict[tuple[State, type[CallEvent]], Transition]:
    spoke = (Action.CALLER_SPOKE,)
    cut = (Action.BARGE_IN, Action.CALLER_SPOKE)
    rows: dict[tuple[State, type[CallEvent]], Transition] = {
        (STARTING, Start): Transition(STARTING, LISTENING),
        (STARTING, Greet): Transition(STARTING, SPEAKING, (Action.GREET,)),
        (LISTENING, SpeechStarted): Transition(LISTENING, USER_SPEAKING, spoke),
        (THINKING, SpeechStarted): Transition(THINKING, USER_SPEAKING, cut),
        # over the agent's voice, speech interrupts once it is long enough (a backchannel never is)
        (SPEAKING, SpeechConfirmed): Transition(SPEAKING, USER_SPEAKING, cut),
        (SPEAKING, TurnEnded): Transition(SPEAKING, SPEAKING, (Action.BACKCHANNEL,)),
        # speech that began over the agent's voice and outlasted it: the caller's turn after all
        (LISTENING, SpeechConfirmed): Transition(LISTENING, USER_SPEAKING, spoke),
        (LISTENING, PausePoint): Transition(LISTENING, LISTENING, (Action.JUDGE_TURN,)),
        (LISTENING, TurnEnded): Transition(LISTENING, THINKING, (Action.CALLER_SPOKE, Action.RESPOND)),
        (USER_SPEAKING, PreemptPoint): Transition(USER_SPEAKING, USER_SPEAKING, (Action.PREEMPT,)),
        (USER_SPEAKING, PausePoint): Transition(USER_SPEAKING, USER_SPEAKING, (Action.JUDGE_TURN,)),
        (USER_SPEAKING, SpeechResumed): Transition(USER_SPEAKING, USER_SPEAKING, (Action.DROP_PREEMPTED,)),
        (USER_SPEAKING, TurnEnded): Transition(USER_SPEAKING, THINKING, (Action.RESPOND,)),
        (THINKING, NoWords): Transition(THINKING, LISTENING),
        (THINKING, FalseInterruption): Transition(THINKING, SPEAKING, (Action.RESUME,)),
        (THINKING, ReplyAudioStarted): Transition(THINKING, SPEAKING),
        (SPEAKING, PlayedOut): Transition(SPEAKING, LISTENING),
        (THINKING, PlayedOut): Transition(THINKING, LISTENING),  # the reply ended with nothing to say
        (LISTENING, SilenceTimeout): Transition(LISTENING, SPEAKING, (Action.REPROMPT,)),
        (LISTENING, SilenceAfterReprompt): Transition(LISTENING, CLOSING, (Action.LAST_WORDS,)),
    }
    keys = (Action.CALLER_SPOKE, Action.RESPOND_DIGITS)
    for state in (LISTENING, USER_SPEAKING):  # (a turn the VAD opened on the tones is dropped with it)
        rows[(state, DigitsEntered)] = Transition(state, THINKING, keys)
    for state in (THINKING, SPEAKING):
        rows[(state, DigitsEntered)] = Transition(state, THINKING, (Action.BARGE_IN, *keys))
        rows[(state, EndingCall)] = Transition(state, ENDING)
        rows[(state, AgentHangUp)] = Transition(state, CLOSING, (Action.LAST_WORDS,))
        rows[(state, Transferred)] = Transition(state, CLOSING, (Action.HAND_OVER,))
    # the reply that ended the call has played out: its closing line (unless it spoke), then hang up
    rows[(ENDING, AgentHangUp)] = Transition(ENDING, CLOSING, (Action.LAST_WORDS,))
    for state in (*_CONVERSING, ENDING):
        for event in _CLOSERS:
            actions = (Action.REPORT_ERROR, Action.LAST_WORDS) if event is ReplyFailed else (Action.LAST_WORDS,)
            rows[(state, event)] = Transition(state, CLOSING, actions)
    for state in (*_CONVERSING, ENDING, CLOSING):
        rows[(state, HangUp)] = Transition(state, ENDED)
    return rows


TABLE: dict[tuple[State, type[CallEvent]], Transition] = _table()


class CallMachine:
    """Holds a call's state; :meth:`handle` is the only way it changes."""

    def __init__(self, state: State = STARTING) -> None:
        self.state = state

    def handle(self, event: CallEvent) -> Transition | None:
        """The transition ``event`` causes (the state has changed when this returns), or None: ignored."""
        transition = TABLE.get((self.state, type(event)))
        if transition is not None:
            self.state = transition.target
        return transition


def mermaid() -> str:
    """The table as a Mermaid ``stateDiagram-v2`` (docs/ARCHITECTURE.md includes it; a test keeps it equal)."""
    lines = ["stateDiagram-v2", f"    [*] --> {STARTING.name}"]
    edges: dict[tuple[str, str], list[str]] = {}
    for (state, event), transition in TABLE.items():
        edges.setdefault((state.name, transition.target.name), []).append(event.__name__)
    for (source, target), events in edges.items():
        lines.append(f"    {source} --> {target}: {', '.join(events)}")
    lines.append(f"    {ENDED.name} --> [*]")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m services.gateway.call.machine > the diagram for docs/ARCHITECTURE.md
    print(mermaid(), end="")
