"""The catalogue of fixed texts: every language has every text, an agent's language picks them, an agent's
own text wins, and English agents sound exactly as before."""

from __future__ import annotations

import json
import re

import pytest

from shared.call_config import TEXT_FIELDS, AgentSpec, CallConfig
from shared.db.migrate import MIGRATIONS_DIR
from shared.texts import CATALOGUE, catalogue_language, language_name, speech_locale, text_for


def stored_agent(migration: str, agent_id: str) -> dict[str, object]:
    """The spec a migration inserts for ``agent_id``."""
    sql = (MIGRATIONS_DIR / migration).read_text()
    stored = re.search(rf"VALUES \('{agent_id}', '(.*)'::jsonb\)", sql)
    assert stored is not None
    return dict(json.loads(stored.group(1).replace("''", "'")))


def es_agent_spec() -> AgentSpec:
    """The ``es`` agent as its migration stores it."""
    return AgentSpec.model_validate(stored_agent("0006_agent_es.sql", "es"))


NEW_TEXTS = ("tool_filler_message", "end_call_message", "transfer_message")  # issue 16: agent actions


def english_before() -> dict[str, object]:
    """The English texts Victoria said before the catalogue: the `default` agent as 0002 stored them, the old
    shutdown goodbye and the old TELEPHONY_REFUSAL_MESSAGE default (an English agent must not change a word)."""
    default = stored_agent("0002_agents.sql", "default")
    new = {"shutdown_message", *NEW_TEXTS}  # texts that came after 0002 (what the agent does besides talking)
    return {key: default[key] for key in TEXT_FIELDS if key not in new} | {
        "tool_filler_message": "One moment, please.",
        "end_call_message": "Thank you for calling. Goodbye!",
        "transfer_message": "I'm transferring you now. Please hold.",
        "shutdown_message": (
            "Sorry, I have to end the call now for maintenance. Please call again in a minute. Goodbye!"
        ),
        "telephony_refusal": "Sorry, we can't take your call right now. Please try again later. Goodbye.",
    }


BEFORE = english_before()


def config(client_type: str = "browser", **fields: object) -> CallConfig:
    return CallConfig.resolve("a", 1, AgentSpec.model_validate(fields), client_type)  # type: ignore[arg-type]


def test_every_language_has_every_text() -> None:
    keys = {*TEXT_FIELDS, "telephony_refusal"}  # every agent text, and what the platform says for it
    assert {"es", "en"} <= set(CATALOGUE)
    for language, texts in CATALOGUE.items():
        assert set(texts) == keys, language
        assert all(text.strip() == text and text for text in texts.values()), language


def test_english_is_what_victoria_always_said() -> None:
    assert CATALOGUE["en"] == BEFORE


def test_spanish_is_written_for_spain() -> None:
    es = CATALOGUE["es"]
    assert es["apology_message"] == "Lo sentimos, hemos tenido un problema. La llamada terminará."  # the seeds' text
    assert es["reprompt_message"].startswith("¿") and es["reprompt_message"].endswith("?")
    assert "¡Adiós!" in es["silence_goodbye_message"] and "¿" in es["first_message"]
    assert "español" in es["system_prompt"] and "Inténtelo" in es["telephony_refusal"]
    assert not set(es.values()) & set(CATALOGUE["en"].values())


@pytest.mark.parametrize(
    ("language", "expected"),
    [("es-ES", "es"), ("es-MX", "es"), ("es", "es"), ("ES_es", "es"), ("en-GB", "en"), ("fr-FR", "en"), (None, "en")],
)
def test_lookup_by_the_agent_language(language: str | None, expected: str) -> None:
    assert catalogue_language(language) == expected
    assert text_for("reprompt_message", language) == CATALOGUE[expected]["reprompt_message"]


@pytest.mark.parametrize(
    ("language", "locale"),
    [("es-ES", "es-ES"), ("es-MX", "es-MX"), ("es", "es-ES"), ("en-GB", "en-GB"), ("en", "en-US"), ("fr-FR", "en-US")],
)
def test_the_speech_locale_matches_the_text_language(language: str, locale: str) -> None:
    assert speech_locale(language) == locale


def test_language_names_for_prompts() -> None:
    assert (language_name("es-MX"), language_name("en-US")) == ("Spanish", "English")
    assert language_name("fr-FR") == "the language fr-FR" and language_name(None) == "English"


def test_unset_texts_follow_the_agent_language() -> None:
    spanish = config(language="es-ES")
    assert [getattr(spanish, key) for key in TEXT_FIELDS] == [CATALOGUE["es"][key] for key in TEXT_FIELDS]
    english = config()
    assert [getattr(english, key) for key in TEXT_FIELDS] == [BEFORE[key] for key in TEXT_FIELDS]
    assert config(language="de-DE").first_message == BEFORE["first_message"]  # no German texts: English


def test_a_set_text_wins_and_an_empty_greeting_still_means_wait() -> None:
    own = config(language="es-ES", apology_message="Perdone, se ha cortado.", first_message="")
    assert own.apology_message == "Perdone, se ha cortado." and own.first_message == ""
    assert own.reprompt_message == "¿Sigue ahí?"
    # explicit English texts (every agent stored before the catalogue) keep them, whatever the language
    old = config(language="es-ES", **{key: BEFORE[key] for key in TEXT_FIELDS})
    assert [getattr(old, key) for key in TEXT_FIELDS] == [BEFORE[key] for key in TEXT_FIELDS]


def test_an_overlay_can_change_the_language_and_so_the_texts() -> None:
    phone = config("twilio", language="en-US", overlays={"twilio": {"language": "es-ES"}})
    assert phone.first_message == CATALOGUE["es"]["first_message"]
    assert (
        config("browser", language="en-US", overlays={"twilio": {"language": "es-ES"}}).first_message
        == (BEFORE["first_message"])
    )


def test_blank_texts_are_still_refused() -> None:
    for key in ("system_prompt", "apology_message", "reprompt_message", "silence_goodbye_message"):
        with pytest.raises(ValueError, match=key):
            AgentSpec.model_validate({key: "   "})


def test_the_api_view_shows_resolved_texts_and_names_the_unset_ones() -> None:
    spec = AgentSpec.model_validate({"language": "es-ES", "first_message": "Hola."})
    assert spec.apology_message is None and "apology_message" in spec.catalogue_texts()
    shown = spec.with_catalogue_texts()
    assert shown.first_message == "Hola." and shown.apology_message == CATALOGUE["es"]["apology_message"]
    assert shown.catalogue_texts() == [] and "first_message" not in spec.catalogue_texts()


def test_the_spanish_agent_migration() -> None:
    sql = (MIGRATIONS_DIR / "0006_agent_es.sql").read_text()
    assert "ON CONFLICT (agent_id) DO NOTHING" in sql and "'default'" not in sql
    spec = es_agent_spec()
    assert spec.language == "es-ES" and spec.stt.language == "es-ES" and spec.extraction_fields == {}
    es = CallConfig.resolve("es", 1, spec, "twilio")
    assert [getattr(es, key) for key in TEXT_FIELDS] == [CATALOGUE["es"][key] for key in TEXT_FIELDS]
