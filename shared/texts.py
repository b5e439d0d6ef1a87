"""The catalogue of fixed texts: what an agent says, or the platform speaks, that no LLM writes.

One table per language (``es``, ``en``) so that an agent's ``language`` picks all of them at once: a Spanish
agent greets, re-prompts, apologises and says goodbye in Spanish without anyone writing those texts, and a
phone call refused while calls are stopped hears its refusal in the language of the agent its number reaches.
Keys are :class:`shared.call_config.AgentFields` field names (an agent may set any of them; unset, the
catalogue answers), plus ``telephony_refusal``, which only the platform says. The English texts are the
defaults Victoria always had, so English agents sound exactly as before.
"""

from __future__ import annotations

from typing import Literal, get_args

# the texts an agent says, each one of its fields (it may set it or leave it to the catalogue)
AgentTextKey = Literal[
    "system_prompt",
    "first_message",
    "apology_message",
    "reprompt_message",
    "silence_goodbye_message",
    "max_duration_message",
    "shutdown_message",
    "tool_filler_message",
    "end_call_message",
    "transfer_message",
]
AGENT_TEXTS: tuple[AgentTextKey, ...] = get_args(AgentTextKey)
TextKey = AgentTextKey | Literal["telephony_refusal"]  # what the platform says for the agent too
DEFAULT_LANGUAGE = "en"

CATALOGUE: dict[str, dict[TextKey, str]] = {
    "en": {
        "system_prompt": "You are Victoria, a friendly phone assistant. Answer in one or two short sentences.",
        "first_message": "Hello, this is Victoria. How can I help you today?",
        "apology_message": "I'm sorry, I'm having a technical problem. Please call again later. Goodbye.",
        "reprompt_message": "Are you still there?",
        "silence_goodbye_message": "I haven't heard from you, so I'll hang up now. Goodbye!",
        "max_duration_message": "We've reached the time limit for this call. Thank you for calling, goodbye!",
        "shutdown_message": (
            "Sorry, I have to end the call now for maintenance. Please call again in a minute. Goodbye!"
        ),
        "tool_filler_message": "One moment, please.",
        "end_call_message": "Thank you for calling. Goodbye!",
        "transfer_message": "I'm transferring you now. Please hold.",
        "telephony_refusal": "Sorry, we can't take your call right now. Please try again later. Goodbye.",
    },
    "es": {
        "system_prompt": (
            "Eres Victoria, una asistente telefónica amable. Responde solo en español, con una o dos frases "
            "cortas y naturales, como se habla por teléfono: sin listas, sin emojis y sin formato."
        ),
        "first_message": "Hola, soy Victoria. ¿En qué puedo ayudarle?",
        "apology_message": "Lo sentimos, hemos tenido un problema. La llamada terminará.",
        "reprompt_message": "¿Sigue ahí?",
        "silence_goodbye_message": "No le oigo, así que voy a colgar. ¡Adiós!",
        "max_duration_message": "Hemos llegado al tiempo máximo de esta llamada. Gracias por llamar, ¡adiós!",
        "shutdown_message": (
            "Lo siento, tengo que cortar la llamada por mantenimiento. Vuelva a llamar en un minuto. ¡Adiós!"
        ),
        "tool_filler_message": "Un momento, por favor.",
        "end_call_message": "Gracias por llamar. ¡Adiós!",
        "transfer_message": "Le paso con un compañero. No cuelgue, por favor.",
        "telephony_refusal": (
            "Lo sentimos, ahora mismo no podemos atender su llamada. Inténtelo de nuevo más tarde. Adiós."
        ),
    },
}
# the locale a speech engine (Twilio <Say>, Telnyx speak) is given for each catalogue language
SPEECH_LOCALES = {"en": "en-US", "es": "es-ES"}
# what the post-call extraction calls each language when it asks for answers in it
LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}


def catalogue_language(language: str | None) -> str:
    """The catalogue's language for an agent's BCP 47 tag: ``es-ES``, ``es-MX``, ``es`` → ``es``; a language
    the catalogue lacks (or none) → English."""
    primary = (language or "").replace("_", "-").split("-")[0].lower()
    return primary if primary in CATALOGUE else DEFAULT_LANGUAGE


def text_for(key: TextKey, language: str | None) -> str:
    """The fixed text ``key`` in ``language`` (English when the catalogue lacks that language)."""
    return CATALOGUE[catalogue_language(language)][key]


def language_name(language: str | None) -> str:
    """A language's English name for prompts (``es-MX`` → Spanish); a tag the catalogue lacks is given as is."""
    primary = (language or "").replace("_", "-").split("-")[0].lower()
    if primary in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[primary]
    return f"the language {language}" if language else LANGUAGE_NAMES[DEFAULT_LANGUAGE]


def speech_locale(language: str | None) -> str:
    """The locale to speak a catalogue text for an agent in ``language``: its own tag when the catalogue has its
    language and it names a region (``es-MX``), else the catalogue language's usual one (``es`` → ``es-ES``), so
    the locale always matches the text's language (a ``fr-FR`` agent's English refusal is spoken ``en-US``)."""
    tag = (language or "").replace("_", "-")
    primary, _, region = tag.partition("-")
    if primary.lower() == catalogue_language(tag) and len(region) == 2:
        return f"{primary.lower()}-{region.upper()}"
    return SPEECH_LOCALES[catalogue_language(tag)]
