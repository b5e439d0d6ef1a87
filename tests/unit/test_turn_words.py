"""What the caller's words add to the end-of-turn model's verdict on a pause, and which transcripts are only
a backchannel (English and Spanish)."""

from __future__ import annotations

import pytest

from services.gateway.call.backchannel import is_backchannel
from services.gateway.call.turn_taking import COMPLETE, decided_by_words
from services.gateway.call.unfinished import sounds_unfinished


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("I would like to book a table for", "en"),
        ("I'd like to book a table for.", "en"),  # (a recogniser's full stop after "for")
        ("Can I pay with", "en"),
        ("My name is, um", "en"),
        ("I was thinking...", "en"),
        ("Quería reservar una mesa para", "es"),
        ("Quiero hablar con", "es-ES"),
        ("La reserva es a nombre de", "es"),
        ("Pues, este", "es"),
        ("Quería preguntar si…", "es"),
    ],
)
def test_words_that_plainly_go_on(text: str, language: str) -> None:
    assert sounds_unfinished(text, language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("A table for two.", "en"),
        ("Can you help me?", "en"),
        ("Come in", "en"),
        ("What time do you open tomorrow?", "en"),
        ("¿A qué hora abren mañana?", "es"),
        ("Para cuatro personas.", "es"),
        ("Sí, gracias", "es"),
        ("", "en"),
    ],
)
def test_whole_utterances_are_not_taken_for_unfinished(text: str, language: str) -> None:
    assert not sounds_unfinished(text, language)


def test_the_verdict_of_a_pause() -> None:
    assert decided_by_words(None, "en") is None  # no words known: the model decides
    assert decided_by_words("I'd like to book a table for", "en") == "unfinished_words"
    assert decided_by_words("¿A qué hora abren mañana?", "es") == "question"  # the model often misses these
    assert decided_by_words("Quería reservar una mesa para", "es") == "unfinished_words"
    assert decided_by_words("Para cuatro personas.", "es") is None  # a whole statement: the model decides
    assert {"complete", "question"} == COMPLETE


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Mm-hmm.", "en", True),
        ("Uh-huh", "en", True),
        ("Okay, okay.", "en", True),
        ("Sí, sí.", "es", True),
        ("Ajá", "es-MX", True),
        ("Vale.", "es", True),
        ("Okay, vale", "es", True),  # callers mix "okay" into Spanish
        ("Yes, I want the table at eight.", "en", False),
        ("Sí, para cuatro", "es", False),
        ("Vale", "en", False),  # not an English backchannel
        ("", "en", False),
        ("mm mm mm mm", "en", False),  # more than three words: something else is going on
    ],
)
def test_backchannels(text: str, language: str, expected: bool) -> None:
    assert is_backchannel(text, language) is expected
