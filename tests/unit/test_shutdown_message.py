"""The goodbye a draining gateway says: the agent's own, else the default in the agent's language."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.call_config import AgentSpec, CallConfig
from shared.texts import CATALOGUE

SHUTDOWN_MESSAGES = {language: texts["shutdown_message"] for language, texts in CATALOGUE.items()}


def config(**fields: object) -> CallConfig:
    return CallConfig.resolve("a", 1, AgentSpec.model_validate(fields), "browser")


def test_the_default_follows_the_agent_language() -> None:
    assert config().shutdown_text == SHUTDOWN_MESSAGES["en"]
    assert config(language="es-ES").shutdown_text == SHUTDOWN_MESSAGES["es"]
    assert config(language="es").shutdown_text == SHUTDOWN_MESSAGES["es"]
    assert config(language="fr-FR").shutdown_text == SHUTDOWN_MESSAGES["en"]  # no default of its own: English
    assert "Adiós" in SHUTDOWN_MESSAGES["es"] and "Goodbye" in SHUTDOWN_MESSAGES["en"]


def test_the_agent_can_say_it_its_own_way_per_client_type() -> None:
    spec = {"language": "es-ES", "shutdown_message": "Hasta luego.", "overlays": {"twilio": {"shutdown_message": None}}}
    assert config(**spec).shutdown_text == "Hasta luego."
    phone = CallConfig.resolve("a", 1, AgentSpec.model_validate(spec), "twilio")
    assert phone.shutdown_text == SHUTDOWN_MESSAGES["es"]


def test_a_blank_or_long_message_is_refused() -> None:
    for bad in ("  ", "x" * 501):
        with pytest.raises(ValidationError, match="shutdown_message"):
            AgentSpec.model_validate({"shutdown_message": bad})
