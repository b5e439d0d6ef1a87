"""Cutting streamed Spanish replies: ¿ ¡, Spanish abbreviations, decimal commas and times are never cut."""

from __future__ import annotations

import pytest

from shared.sentence_splitter import SentenceSplitter


def _stream(text: str, step: int = 1, **kwargs: int) -> list[str]:
    splitter = SentenceSplitter(**kwargs)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.feed(text[i : i + step])
    return out + splitter.flush()


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_spanish_sentences_are_cut_at_their_ends(step: int) -> None:
    text = "Buenos días, Sr. García. ¿En qué puedo ayudarle? ¡Claro que sí! Su pedido llegó."
    assert _stream(text, step) == [
        "Buenos días, Sr. García.",
        "¿En qué puedo ayudarle?",
        "¡Claro que sí!",
        "Su pedido llegó.",
    ]


@pytest.mark.parametrize(
    "abbreviation",
    ["Sr.", "Sra.", "Srta.", "Dr.", "Dra.", "Dña.", "D.", "Ud.", "Uds.", "p. ej.", "etc.", "núm.", "tel.", "sra."],
)
def test_a_spanish_abbreviation_is_not_a_sentence_end(abbreviation: str) -> None:
    text = f"Le atiende {abbreviation} Pérez hoy mismo. Gracias."
    assert _stream(text) == [f"Le atiende {abbreviation} Pérez hoy mismo.", "Gracias."]


@pytest.mark.parametrize("word", ["bueno", "uno", "salud", "usted", "red", "hotel"])
def test_a_word_ending_like_an_abbreviation_still_ends_a_sentence(word: str) -> None:
    # "bueno." ends in "no.", "salud." in "ud.", "hotel." in "tel.": only whole words are abbreviations
    assert _stream(f"Eso es {word}. Adiós.") == [f"Eso es {word}.", "Adiós."]


@pytest.mark.parametrize("amount", ["3,5 euros", "10:30 horas", "9.30 h", "1.250,75 euros", "4,95 €"])
def test_decimal_commas_and_times_are_never_cut(amount: str) -> None:
    text = f"El total, con el descuento aplicado, es de {amount} para mañana. Vale."
    segments = _stream(text, first_clause_chars=5, clause_chars=5)
    assert any(amount in segment for segment in segments), segments
    assert segments[-1] == "Vale."


def test_a_segment_never_ends_right_after_an_opening_mark() -> None:
    text = "bueno pues ¿ quiere que le llame mañana por la tarde o prefiere el jueves por la mañana"
    segments = _stream(text, max_chars=20)
    assert len(segments) > 2
    assert not any(segment.endswith(("¿", "¡")) for segment in segments), segments
    assert " ".join(segments) == text


def test_a_run_on_is_not_cut_between_a_title_and_the_name() -> None:
    segments = _stream("hoy le atiende la Sra. López y mañana el Dr. Ruiz en la consulta", max_chars=24)
    assert not any(segment.endswith(("Sra.", "Dr.")) for segment in segments), segments


def test_closing_guillemets_stay_with_their_sentence() -> None:
    assert _stream("Dijo «ya voy.» Luego colgó.") == ["Dijo «ya voy.»", "Luego colgó."]


def test_a_question_may_be_cut_at_a_long_clause_but_the_opening_mark_stays_in_front() -> None:
    segments = _stream("Dígame una cosa, por favor: ¿quiere la cita por la mañana o por la tarde? Gracias.")
    assert segments[0] == "Dígame una cosa, por favor:"
    assert segments[1].startswith("¿quiere")


@pytest.mark.parametrize("step", [1, 4])
def test_no_is_a_sentence_unless_a_number_follows(step: int) -> None:
    assert _stream("¿Tiene cita? No. Mañana sí. Es la habitación No. 5 del hotel. Vale.", step) == [
        "¿Tiene cita?",
        "No.",
        "Mañana sí.",
        "Es la habitación No. 5 del hotel.",
        "Vale.",
    ]
