"""The first segment cut after a few words when no punctuation comes early (``SentenceSplitter.first_words``)."""

from __future__ import annotations

import pytest

from shared.sentence_splitter import SentenceSplitter


def _stream(text: str, step: int = 1, first_words: int = 5) -> list[str]:
    splitter = SentenceSplitter(first_words=first_words)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.feed(text[i : i + step])
    return out + splitter.flush()


def _whole(text: str, first_words: int = 5) -> list[str]:
    splitter = SentenceSplitter(first_words=first_words)
    return splitter.feed(text) + splitter.flush()


def test_a_long_first_sentence_is_cut_after_a_few_words() -> None:
    text = "I would be glad to check the availability for your booking tonight. Anything else?"
    assert _stream(text) == [
        "I would be glad to check",  # "to" leans on "check": the cut moves on one word
        "the availability for your booking tonight.",
        "Anything else?",
    ]


def test_the_cut_waits_for_the_next_word_to_start() -> None:
    splitter = SentenceSplitter(first_words=3)
    assert splitter.feed("Please hold on ") == []  # "on" leans on what follows
    assert splitter.feed("tight ") == []  # the word before the cut must be whole: wait for the next one
    assert splitter.feed("t") == ["Please hold on tight"]
    assert splitter.flush() == ["t"]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("We have a table for the family", "We have a table for the family"),  # no word may end it: flush
        ("You can pick up your order at the front desk after noon today.", "You can pick up your order"),
        ("Your room number is 412 on the fourth floor of the building.", "Your room number is 412 on the fourth"),
        (
            "The doctor will see you at 10:30 tomorrow morning in room five.",
            "The doctor will see you at 10:30 tomorrow",
        ),
        ("Thank you for calling the Grand Hotel how can I help you today?", "Thank you for calling the Grand Hotel"),
        ("Please ask Dr. Smith about the results of your test next week.", "Please ask Dr. Smith about the results"),
        ("I can book it for you — with a discount today.", "I can book it for you —"),
    ],
)
def test_never_after_a_word_that_leans_on_the_next(text: str, first: str) -> None:
    segments = _stream(text)
    assert segments[0] == first
    assert " ".join(segments) == text


def test_not_after_a_function_word_even_past_the_count() -> None:
    segments = _stream("Yes I can book it for the afternoon of the third of May.", first_words=4)
    last_word = segments[0].split()[-1].lower()
    assert last_word not in {"the", "of", "for", "a", "to", "and", "my", "is", "can", "i"}
    assert segments[0] == "Yes I can book"


@pytest.mark.parametrize(
    "text",
    [
        "Sure. I can help you with that booking right away today.",  # a sentence end first: "Sure."
        "Thanks for calling the clinic, how can I help you today?",  # a long enough clause first
    ],
)
def test_punctuation_early_keeps_the_old_cuts(text: str) -> None:
    assert _stream(text) == _stream(text, first_words=0)


def test_only_the_first_segment_is_cut_by_words() -> None:
    segments = _stream("Of course. I would be glad to check the availability for your booking tonight.")
    assert segments == ["Of course.", "I would be glad to check the availability for your booking tonight."]


def test_off_by_default() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("I would be glad to check the availability for you ") == []


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Claro que sí puedo ayudarle con su reserva para esta noche.", "Claro que sí puedo ayudarle"),
        ("¿Le gustaría reservar una mesa para cuatro personas esta noche?", "¿Le gustaría reservar una mesa"),
        ("Su cita con la Dra. Martínez es el martes a las 10:30 de la mañana.", "Su cita con la Dra. Martínez"),
        ("Le confirmo que su pedido llegará el jueves por la tarde.", "Le confirmo que su pedido"),
        ("El envío a Barcelona cuesta 4,95 euros con la tarifa normal.", "El envío a Barcelona cuesta"),
        ("Abrimos de lunes a sábado de nueve a ocho de la tarde.", "Abrimos de lunes a sábado"),
        ("¡ Por supuesto que puedo cambiar su cita del martes al jueves!", "¡ Por supuesto que puedo cambiar"),
    ],
)
def test_spanish_first_segments(text: str, first: str) -> None:
    segments = _stream(text)
    assert segments[0] == first
    assert " ".join(segments) == text
    last = segments[0].split()[-1].lower()
    assert last not in {"el", "la", "los", "un", "una", "de", "del", "a", "al", "en", "y", "que", "mi", "su"}
    assert last not in {"por", "para", "con", "es", "¿", "¡", "dra."}


@pytest.mark.parametrize("step", [1, 2, 3, 5, 8])
@pytest.mark.parametrize(
    "text",
    [
        "I would be glad to check the availability for your booking tonight. Anything else?",
        "Your appointment with Dr. Lee is on No. 5 Main Street at 10:30 in the morning.",
        "Claro que sí puedo ayudarle con su reserva para esta noche. ¿Algo más?",
        "Sure. I can help you with that booking.",
        "Thanks for calling the clinic, how can I help you today?",
        "Le atiende el Sr. García, que le dirá el precio: 3,5 euros por kilo.",
    ],
)
def test_streamed_token_by_token_gives_the_same_segments_as_the_whole_text(text: str, step: int) -> None:
    assert _stream(text, step) == _whole(text)
    assert " ".join(_whole(text)) == text
