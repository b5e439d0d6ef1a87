"""The call state machine: every transition of its table, every ignored event, and the diagram in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.gateway.call import machine as m
from services.gateway.call.machine import Action as A
from services.gateway.call.turn_detector import (
    PausePoint,
    PreemptPoint,
    SpeechConfirmed,
    SpeechResumed,
    SpeechStarted,
    TurnEnded,
)
from shared.events import ErrorInfo

REPO = Path(__file__).resolve().parents[2]

EVENTS: list[m.CallEvent] = [
    m.Start(),
    m.Greet(),
    SpeechStarted(at_s=1.0),
    SpeechConfirmed(at_s=1.4),
    PreemptPoint(audio=b"\0\0", at_s=1.5, pause=1),
    PausePoint(audio=b"\0\0", at_s=1.6, pause=1),
    SpeechResumed(at_s=1.7),
    TurnEnded(audio=b"\0\0", at_s=2.0, reason="silence"),
    m.NoWords(),
    m.FalseInterruption(),
    m.ReplyAudioStarted(),
    m.PlayedOut(),
    m.SilenceTimeout(),
    m.SilenceAfterReprompt(),
    m.MaxDuration(),
    m.ReplyFailed("llm", ErrorInfo(code="timeout", message="stalled")),
    m.Shutdown(),
    m.DigitsEntered("1234"),
    m.EndingCall(),
    m.AgentHangUp(spoke=False),
    m.Transferred("+34910000000"),
    m.HangUp("caller_hangup"),
]
STATES = [m.STARTING, m.LISTENING, m.USER_SPEAKING, m.THINKING, m.SPEAKING, m.ENDING, m.CLOSING, m.ENDED]
BARGE = (A.BARGE_IN, A.CALLER_SPOKE)
CLOSE = (A.LAST_WORDS,)
FAIL = (A.REPORT_ERROR, A.LAST_WORDS)
KEYS = (A.CALLER_SPOKE, A.RESPOND_DIGITS)

# (state, event, next state, actions): what the call does, written out by hand
EXPECTED: list[tuple[m.State, type, m.State, tuple[A, ...]]] = [
    (m.STARTING, m.Start, m.LISTENING, ()),
    (m.STARTING, m.Greet, m.SPEAKING, (A.GREET,)),
    (m.LISTENING, SpeechStarted, m.USER_SPEAKING, (A.CALLER_SPOKE,)),
    (m.THINKING, SpeechStarted, m.USER_SPEAKING, BARGE),
    # over the agent's voice only speech long enough to be an interruption cuts it off; shorter is a backchannel
    (m.SPEAKING, SpeechConfirmed, m.USER_SPEAKING, BARGE),
    (m.SPEAKING, TurnEnded, m.SPEAKING, (A.BACKCHANNEL,)),
    (m.THINKING, m.FalseInterruption, m.SPEAKING, (A.RESUME,)),
    # a pause inside the caller's turn: the reply starts (held), the model judges it, or the caller goes on
    (m.USER_SPEAKING, PreemptPoint, m.USER_SPEAKING, (A.PREEMPT,)),
    (m.USER_SPEAKING, PausePoint, m.USER_SPEAKING, (A.JUDGE_TURN,)),
    (m.USER_SPEAKING, SpeechResumed, m.USER_SPEAKING, (A.DROP_PREEMPTED,)),
    (m.USER_SPEAKING, TurnEnded, m.THINKING, (A.RESPOND,)),
    # speech that began over the agent and outlasted its reply is the caller's turn after all
    (m.LISTENING, SpeechConfirmed, m.USER_SPEAKING, (A.CALLER_SPOKE,)),
    (m.LISTENING, PausePoint, m.LISTENING, (A.JUDGE_TURN,)),
    (m.LISTENING, TurnEnded, m.THINKING, (A.CALLER_SPOKE, A.RESPOND)),
    (m.THINKING, m.NoWords, m.LISTENING, ()),
    (m.THINKING, m.ReplyAudioStarted, m.SPEAKING, ()),
    (m.SPEAKING, m.PlayedOut, m.LISTENING, ()),
    (m.THINKING, m.PlayedOut, m.LISTENING, ()),
    (m.LISTENING, m.SilenceTimeout, m.SPEAKING, (A.REPROMPT,)),
    (m.LISTENING, m.SilenceAfterReprompt, m.CLOSING, CLOSE),
    *[(s, m.MaxDuration, m.CLOSING, CLOSE) for s in STATES[:6]],
    *[(s, m.Shutdown, m.CLOSING, CLOSE) for s in STATES[:6]],
    *[(s, m.ReplyFailed, m.CLOSING, FAIL) for s in STATES[:6]],
    *[(s, m.HangUp, m.ENDED, ()) for s in STATES[:7]],
    # a keypad entry is a turn: it answers from listening (or over a turn the tones opened), barges in otherwise
    (m.LISTENING, m.DigitsEntered, m.THINKING, KEYS),
    (m.USER_SPEAKING, m.DigitsEntered, m.THINKING, KEYS),
    (m.THINKING, m.DigitsEntered, m.THINKING, (A.BARGE_IN, *KEYS)),
    (m.SPEAKING, m.DigitsEntered, m.THINKING, (A.BARGE_IN, *KEYS)),
    # the reply's own end of the call: once its tool round says so nothing cuts it off (ending), then after it
    # played out (so never from listening: it would have played out)
    (m.THINKING, m.EndingCall, m.ENDING, ()),
    (m.SPEAKING, m.EndingCall, m.ENDING, ()),
    (m.ENDING, m.AgentHangUp, m.CLOSING, CLOSE),
    (m.THINKING, m.AgentHangUp, m.CLOSING, CLOSE),
    (m.SPEAKING, m.AgentHangUp, m.CLOSING, CLOSE),
    (m.THINKING, m.Transferred, m.CLOSING, (A.HAND_OVER,)),
    (m.SPEAKING, m.Transferred, m.CLOSING, (A.HAND_OVER,)),
]


def _event(kind: type) -> m.CallEvent:
    return next(e for e in EVENTS if type(e) is kind)


def test_every_transition_of_the_table() -> None:
    exercised: set[tuple[m.State, type]] = set()
    for state, kind, target, actions in EXPECTED:
        machine = m.CallMachine(state)
        transition = machine.handle(_event(kind))
        assert transition == m.Transition(state, target, actions), (state, kind)
        assert machine.state == target
        exercised.add((state, kind))
    assert exercised == set(m.TABLE), "the table and the transitions tested differ"


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.name)
def test_events_that_mean_nothing_in_a_state_are_ignored(state: m.State) -> None:
    ignored = [e for e in EVENTS if (state, type(e)) not in m.TABLE]
    assert ignored, "every state ignores something"
    for event in ignored:
        machine = m.CallMachine(state)
        assert machine.handle(event) is None
        assert machine.state == state


def test_a_closing_call_never_goes_back_and_an_ended_call_never_moves() -> None:
    for state in (m.CLOSING, m.ENDED):
        targets = {m.CallMachine(state).handle(e) for e in EVENTS} - {None}
        assert all(t is not None and t.target == m.ENDED for t in targets), state
    assert not any(m.CallMachine(m.ENDED).handle(e) for e in EVENTS)


def test_a_conversation_walks_the_table() -> None:
    machine = m.CallMachine()
    walk = [m.Greet(), m.PlayedOut(), SpeechStarted(0.3), _event(TurnEnded), m.ReplyAudioStarted()]
    walk += [SpeechConfirmed(5.0), _event(TurnEnded), m.NoWords(), m.SilenceTimeout(), m.PlayedOut()]
    walk += [m.SilenceAfterReprompt(), m.HangUp("silence_timeout")]
    labels = []
    for event in walk:
        assert machine.handle(event) is not None, (machine.state, event)
        labels.append(machine.state.label)
    assert labels == [
        "speaking",
        "listening",
        "user_speaking",
        "thinking",
        "speaking",
        "user_speaking",
        "thinking",
        "listening",
        "speaking",
        "listening",
        "closing",
        "ended",
    ]


def test_keys_before_the_call_starts_or_while_it_closes_are_ignored() -> None:
    for state in (m.STARTING, m.CLOSING, m.ENDED):
        assert m.CallMachine(state).handle(m.DigitsEntered("5")) is None
        assert m.CallMachine(state).handle(m.AgentHangUp(spoke=True)) is None
        assert m.CallMachine(state).handle(m.Transferred("+34910000000")) is None


def test_a_keypad_turn_over_the_agent_then_an_end_call() -> None:
    machine = m.CallMachine(m.SPEAKING)
    assert machine.handle(m.DigitsEntered("42")) == m.Transition(m.SPEAKING, m.THINKING, (A.BARGE_IN, *KEYS))
    assert machine.handle(m.ReplyAudioStarted()) is not None and machine.state == m.SPEAKING
    assert machine.handle(m.AgentHangUp(spoke=True)) == m.Transition(m.SPEAKING, m.CLOSING, CLOSE)
    assert machine.handle(SpeechStarted(1.0)) is None  # the caller can no longer interrupt
    assert machine.handle(m.HangUp("agent_hangup")) is not None and machine.state == m.ENDED


def test_nothing_the_caller_does_cuts_off_a_reply_that_ends_the_call() -> None:
    machine = m.CallMachine(m.SPEAKING)
    assert machine.handle(m.EndingCall()) == m.Transition(m.SPEAKING, m.ENDING, ()) and machine.state.label == "ending"
    for event in (SpeechStarted(1.0), SpeechConfirmed(1.6), _event(TurnEnded), m.DigitsEntered("0"), m.PlayedOut()):
        assert machine.handle(event) is None and machine.state == m.ENDING, event
    assert machine.handle(m.AgentHangUp(spoke=True)) == m.Transition(m.ENDING, m.CLOSING, CLOSE)


def test_caller_and_agent_states_are_kept_apart() -> None:
    assert (m.USER_SPEAKING.caller, m.USER_SPEAKING.agent) == (m.Caller.SPEAKING, m.Agent.IDLE)
    assert (m.SPEAKING.caller, m.SPEAKING.agent) == (m.Caller.LISTENING, m.Agent.SPEAKING)
    assert m.STARTING.label == "starting" and m.THINKING.label == "thinking"


def test_the_docs_show_the_table_as_it_is() -> None:
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    section = doc.split("## The gateway's call session", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```mermaid\n(stateDiagram-v2\n.*?)```", section, re.S)
    assert found, "docs/ARCHITECTURE.md 'The gateway's call session' has no stateDiagram-v2"
    assert found.group(1) == m.mermaid(), "regenerate it: python -m services.gateway.call.machine"


def test_the_diagram_has_every_transition() -> None:
    diagram = m.mermaid()
    for (state, kind), transition in m.TABLE.items():
        edge = re.search(rf"^    {state.name} --> {transition.target.name}: (.*)$", diagram, re.M)
        assert edge and kind.__name__ in edge.group(1).split(", "), (state, kind)


def test_a_backchannel_over_the_agent_does_not_cut_it_off_but_a_longer_interruption_does() -> None:
    machine = m.CallMachine(m.SPEAKING)
    assert machine.handle(SpeechStarted(1.0)) is None  # not yet an interruption
    backchannel = machine.handle(_event(TurnEnded))  # "mm-hm" ended before it was long enough
    assert backchannel == m.Transition(m.SPEAKING, m.SPEAKING, (A.BACKCHANNEL,)) and backchannel.internal
    assert machine.handle(SpeechStarted(2.0)) is None
    assert machine.handle(SpeechConfirmed(2.4)) == m.Transition(m.SPEAKING, m.USER_SPEAKING, BARGE)
    assert machine.handle(_event(TurnEnded)) is not None and machine.state == m.THINKING
    # the interruption had no words: the agent goes on
    assert machine.handle(m.FalseInterruption()) == m.Transition(m.THINKING, m.SPEAKING, (A.RESUME,))


def test_pauses_inside_the_callers_turn_change_no_state() -> None:
    machine = m.CallMachine(m.USER_SPEAKING)
    for event in (_event(PreemptPoint), _event(PausePoint), SpeechResumed(1.8)):
        transition = machine.handle(event)
        assert transition is not None and transition.internal and machine.state == m.USER_SPEAKING
    assert not m.Transition(m.LISTENING, m.USER_SPEAKING).internal
