"""A pause judged by the words first and the end-of-turn model only when the words leave it open: a held
reply's transcript that plainly goes on keeps the turn (no inference), a question ends it (no inference),
anything else asks the model, whose answer ends the turn or not; with no held reply the model decides alone.
The turn detector is real (WebRTC VAD on piper speech); the model is a counting stand-in."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.vad_bench import run, synthesize, trim
from services.gateway.call.hold import Hold
from services.gateway.call.turn_detector import PausePoint, TurnDetector, TurnEnded
from services.gateway.call.turn_taking import Held, TurnTaking
from services.gateway.call.vad_webrtc import WebRtcVad
from shared.call_config import TurnSpec
from tests.unit.test_turn_pauses import scene


class CountingModel:
    def __init__(self, probability: float) -> None:
        self.value, self.asked = probability, 0

    async def probability(self, audio: bytes) -> float:
        self.asked += 1
        return self.value


@pytest.fixture(scope="module")
async def paused() -> bytes:
    """ "I would like to book a table for", then 300 ms of silence: the detector is at its first pause point."""
    (clip,) = await synthesize(("I would like to book a table for",))
    return scene([0.5, trim(clip), 0.3])


async def judged(paused: bytes, model: CountingModel, words: str | None) -> list[Any]:
    """Feed the detector up to its pause point, hold a reply there whose STT heard ``words`` (None: no reply
    held), judge the pause; the events dispatched."""
    detector = TurnDetector(
        WebRtcVad(2), start_ms=120, stop_ms=1500, preroll_ms=200, max_turn_s=20, preempt_ms=100, pause_ms=200
    )
    pause = next(e for e in run(detector, paused) if isinstance(e, PausePoint))
    dispatched: list[Any] = []

    async def dispatch(event: Any) -> None:
        dispatched.append(event)

    pipeline = SimpleNamespace(config=SimpleNamespace(language="en"), channel=None, record=None)
    taking = TurnTaking(
        turn=TurnSpec(),
        detector=detector,
        model=model,
        pipeline=pipeline,
        spawn=asyncio.ensure_future,
        dispatch=dispatch,
    )
    if words is not None:
        hold = Hold()
        hold.heard(words)
        taking.held = Held(1, asyncio.ensure_future(asyncio.sleep(0)), hold, pause.pause)
    await taking._judge(pause, model)
    return dispatched


async def test_words_that_go_on_keep_the_turn_without_asking_the_model(paused: bytes) -> None:
    model = CountingModel(0.99)  # the model would have ended it
    dispatched = await judged(paused, model, "I would like to book a table for")
    assert dispatched == [] and model.asked == 0


async def test_a_question_ends_the_turn_without_asking_the_model(paused: bytes) -> None:
    model = CountingModel(0.01)  # the model would have waited
    dispatched = await judged(paused, model, "Can I book a table?")
    assert [type(e) for e in dispatched] == [TurnEnded] and model.asked == 0


@pytest.mark.parametrize(("probability", "ends"), [(0.9, True), (0.2, False)])
async def test_words_that_settle_nothing_leave_it_to_the_model(paused: bytes, probability: float, ends: bool) -> None:
    model = CountingModel(probability)
    dispatched = await judged(paused, model, "I would like to book a table for four.")
    assert model.asked == 1 and (dispatched != []) == ends
    assert all(isinstance(e, TurnEnded) for e in dispatched)


async def test_with_no_reply_held_the_model_decides_alone(paused: bytes) -> None:
    model = CountingModel(0.9)
    dispatched = await judged(paused, model, None)
    assert model.asked == 1 and [type(e) for e in dispatched] == [TurnEnded]
    assert np.frombuffer(dispatched[0].audio, dtype=np.int16).size > 0
