"""The post-call extraction asks for its answers in the call's language, with the same English keys."""

from __future__ import annotations

import pytest

from services.call_recorder.extraction import SYSTEM_PROMPT, extraction_prompt, parse_extraction


@pytest.mark.parametrize("language", ["en-US", "en-GB", "en", None])
def test_an_english_call_keeps_the_prompt_it_always_had(language: str | None) -> None:
    assert extraction_prompt({}, language) == SYSTEM_PROMPT
    custom = extraction_prompt({"order_id": "the order number"}, language)
    assert (
        custom == SYSTEM_PROMPT + ' Also include these keys: "order_id" (the order number, or null if not mentioned).'
    )


@pytest.mark.parametrize("language", ["es-ES", "es-MX", "es"])
def test_a_spanish_call_asks_for_spanish_answers_and_english_keys(language: str) -> None:
    prompt = extraction_prompt({"order_id": "the order number"}, language)
    assert prompt.startswith(SYSTEM_PROMPT + ' Also include these keys: "order_id"')
    assert "The call is in Spanish" in prompt and "summary, the next action" in prompt
    assert "keep every key, the intent label and the sentiment value in English" in prompt
    for key in ('"summary"', '"intent"', '"sentiment"', '"entities"', '"next_action"', '"order_id"'):
        assert key in prompt


def test_a_language_without_a_name_is_named_by_its_tag() -> None:
    assert "The call is in the language fr-FR" in extraction_prompt({}, "fr-FR")


def test_a_spanish_answer_parses_into_the_same_keys() -> None:
    reply = (
        '{"summary": "La clienta pregunta el horario de mañana.", "intent": "opening_hours",'
        ' "sentiment": "Neutral", "entities": {"día": "mañana"}, "next_action": "Ninguna.", "order_id": null}'
    )
    data, custom = parse_extraction(reply, {"order_id": "the order number"})
    assert data.summary.startswith("La clienta") and data.sentiment == "neutral" and custom == {"order_id": None}
