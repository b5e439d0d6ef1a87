"""The short Whisper window's arithmetic and gates, without a model: how long a window a turn gets, when a decode is
silence, a loop or doubtful, and that STT_CONTEXT_S is validated from env."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers.whisper_window import (
    FULL_CONTEXT_S,
    compression_ratio,
    judge,
    token_cap,
    window_seconds,
)


@pytest.mark.parametrize(
    ("audio_s", "context_s", "window"),
    [
        (2.0, 10.0, 10.0),  # a phone turn: the configured window
        (3.5, 10.0, 11.0),  # 7 s of silence after the speech, rounded up to whole seconds
        (0.3, 1.0, 8.0),  # a tiny context never cuts the padding the decoder needs
        (2.0, 12.5, 13.0),
        (23.5, 10.0, FULL_CONTEXT_S),  # a long turn: the unchanged 30 s path
        (40.0, 10.0, FULL_CONTEXT_S),
        (2.0, 30.0, FULL_CONTEXT_S),  # STT_CONTEXT_S=30: as published
    ],
)
def test_the_window_keeps_seven_seconds_after_the_speech(audio_s: float, context_s: float, window: float) -> None:
    assert window_seconds(audio_s, context_s) == window


def test_the_padding_can_be_lowered_for_tests() -> None:
    assert window_seconds(2.2, 1.0, min_padding_s=0.5) == 3.0


def test_the_token_cap_grows_with_the_turn_and_stops_at_whisper_s_limit() -> None:
    assert token_cap(2.0) == 44
    assert token_cap(0.1) == 22
    assert token_cap(60.0) == 224


def test_repeated_text_compresses_well_and_a_sentence_does_not() -> None:
    assert compression_ratio("") == 0.0
    assert compression_ratio("Can I change my reservation to Friday evening?") < 2.4
    assert compression_ratio("Can I change my reservation to Friday evening? " * 6) > 2.4


@pytest.mark.parametrize(
    ("text", "avg_logprob", "no_speech_prob", "capped", "verdict"),
    [
        ("Do you take credit cards?", -0.2, 0.01, False, "ok"),
        ("Do you take credit cards? " * 6, -0.1, 0.01, False, "repetition"),
        ("Please... Please... Please...", -0.6, 0.01, True, "token_cap"),  # never ended its sentence
        ("Mi pérdido no, agegado", -1.3, 0.2, False, "low_confidence"),
        ("you", -1.3, 0.9, False, "silence"),  # faster-whisper skips such a segment: no text
        ("Yes.", -0.4, 0.9, False, "ok"),  # confident words win over the no-speech probability
        ("Thank you. " * 6, -1.5, 0.9, False, "silence"),  # silence is judged first, as faster-whisper does
    ],
)
def test_the_gates_are_faster_whisper_s(
    text: str, avg_logprob: float, no_speech_prob: float, capped: bool, verdict: str
) -> None:
    assert judge(text, avg_logprob, no_speech_prob, capped)[0] == verdict


def test_stt_context_s_comes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SttWorkerSettings().stt_context_s == 10.0
    monkeypatch.setenv("STT_CONTEXT_S", "30")
    assert SttWorkerSettings().stt_context_s == 30.0


@pytest.mark.parametrize("value", ["0", "0.5", "31", "ten"])
def test_stt_context_s_out_of_range_is_rejected_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STT_CONTEXT_S", value)
    with pytest.raises(ValidationError) as info:
        SttWorkerSettings()
    assert "stt_context_s" in str(info.value)
