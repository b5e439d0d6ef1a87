"""The turn detector's pauses and interruptions, on speech synthesised offline by the piper voice: a caller who
pauses mid-sentence gives a preempt point and a pause point per pause (numbered), speech coming back is told,
the end-of-turn decision ends the turn at the pause it was about (never at a later one), and speech over the
agent is an interruption only once it is long enough."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.vad_bench import SR, run, synthesize, to_pcm16, trim, white_noise
from services.gateway.call.turn_detector import (
    PausePoint,
    PreemptPoint,
    SpeechConfirmed,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
)
from services.gateway.call.vad_webrtc import WebRtcVad

PHRASES = ("I would like to book a table for", "four people on Friday evening.", "Okay.")


@pytest.fixture(scope="module")
async def speech() -> list[np.ndarray]:
    return [trim(s) for s in await synthesize(PHRASES)]


def scene(parts: list[np.ndarray | float]) -> bytes:
    """Speech clips and silences (seconds) one after another, over a quiet noise floor."""
    rng = np.random.default_rng(7)
    clips = [p if isinstance(p, np.ndarray) else np.zeros(round(p * SR), np.float32) for p in parts]
    x = np.concatenate(clips)
    return to_pcm16(x + white_noise(len(x) / SR, -60.0, rng)[: len(x)])


def detector(**kw: int) -> TurnDetector:
    args = {"start_ms": 120, "stop_ms": 1500, "preroll_ms": 200, "preempt_ms": 100, "pause_ms": 200}
    return TurnDetector(WebRtcVad(2), max_turn_s=20.0, **(args | kw))


def names(events: list[TurnEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_a_mid_sentence_pause_is_reported_and_the_turn_goes_on(speech: list[np.ndarray]) -> None:
    pcm = scene([0.5, speech[0], 0.6, speech[1], 1.8])
    events = run(detector(interrupt_ms=500), pcm)
    # (a gap between words may pass 100 ms: a preempt point, then speech again; only the long pause reaches 200)
    assert names([e for e in events if not isinstance(e, PreemptPoint | SpeechResumed)]) == [
        "SpeechStarted",
        "SpeechConfirmed",
        "PausePoint",
        "PausePoint",
        "TurnEnded",
    ]
    for before, after in itertools.pairwise(events):
        if isinstance(after, SpeechResumed):
            assert isinstance(before, PreemptPoint | PausePoint), "speech comes back only after a pause"
    first, second = [e for e in events if isinstance(e, PausePoint)]
    preempts = {e.pause: e for e in events if isinstance(e, PreemptPoint)}
    assert second.pause == first.pause + 1 == max(preempts)
    assert preempts[first.pause].at_s == pytest.approx(first.at_s - 0.1, abs=0.021)  # 100 ms before the 200 ms one
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.reason == "silence"  # nobody decided: the longest pause
    assert ended.silence_s == pytest.approx(1.5, abs=0.03)
    # the turn is the whole utterance, both halves: the pause did not split it
    assert len(ended.audio) / 2 / SR > (len(speech[0]) + len(speech[1])) / SR
    assert len(second.audio) <= len(ended.audio)


def test_a_decision_ends_the_turn_at_its_own_pause_only(speech: list[np.ndarray]) -> None:
    det = detector()
    pcm = scene([0.5, speech[0], 0.6, speech[1], 1.0])
    ended: list[TurnEvent] = []
    stale: list[object] = []
    first_pause: PausePoint | None = None
    for i in range(0, len(pcm), 640):
        for event in det.feed(pcm[i : i + 640]):
            ended.append(event)
            if isinstance(event, PausePoint) and first_pause is None:
                first_pause = event  # the model is slow: it answers only after the caller spoke again
            elif isinstance(event, SpeechResumed) and first_pause is not None:
                stale.append(det.end_after(0, first_pause.pause))
            elif isinstance(event, PausePoint):
                decided = det.end_after(0, event.pause)
                assert isinstance(decided, TurnEnded) and decided.reason == "model"
                ended.append(decided)
    assert stale == [None], "an answer about a pause the caller broke must not end the turn"
    turn_ends = [e for e in ended if isinstance(e, TurnEnded)]
    assert len(turn_ends) == 1 and turn_ends[0].silence_s == pytest.approx(0.2, abs=0.03)
    assert not det.speaking


def test_the_fixed_window_fallback_ends_the_turn_after_its_own_silence(speech: list[np.ndarray]) -> None:
    det = detector()
    pcm = scene([0.5, speech[1], 1.0])
    events: list[TurnEvent] = []
    for i in range(0, len(pcm), 640):
        for event in det.feed(pcm[i : i + 640]):
            events.append(event)
            if isinstance(event, PausePoint):
                assert det.end_after(500, event.pause) is None  # not yet: 200 ms of silence so far
    turn_ends = [e for e in events if isinstance(e, TurnEnded)]
    assert len(turn_ends) == 1 and turn_ends[0].reason == "model"
    assert turn_ends[0].silence_s == pytest.approx(0.5, abs=0.03)


def test_a_backchannel_is_too_short_to_interrupt_and_a_sentence_is_not(speech: list[np.ndarray]) -> None:
    short = run(detector(interrupt_ms=500, pause_ms=0, preempt_ms=0, stop_ms=400), scene([0.3, speech[2], 0.8]))
    assert names(short) == ["SpeechStarted", "TurnEnded"], "an 'okay' must not count as an interruption"
    long = run(detector(interrupt_ms=500, pause_ms=0, preempt_ms=0, stop_ms=400), scene([0.3, speech[1], 0.8]))
    assert names(long) == ["SpeechStarted", "SpeechConfirmed", "TurnEnded"]
    started, confirmed = long[0], long[1]
    assert isinstance(started, SpeechStarted) and isinstance(confirmed, SpeechConfirmed)
    assert confirmed.at_s - started.at_s >= 0.36  # 500 ms of speech in all, of which 120 ms opened the turn


def test_with_no_pause_settings_the_detector_reports_only_turns(speech: list[np.ndarray]) -> None:
    events = run(detector(preempt_ms=0, pause_ms=0, stop_ms=500), scene([0.5, speech[0], 0.3, speech[1], 1.0]))
    assert not [e for e in events if isinstance(e, PreemptPoint | PausePoint | SpeechResumed)]
    assert names([e for e in events if isinstance(e, SpeechStarted | TurnEnded)]) == ["SpeechStarted", "TurnEnded"]
