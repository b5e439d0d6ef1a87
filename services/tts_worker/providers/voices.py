"""Which languages a TTS provider's voices speak, and the voice it uses for a request.

A fallback provider must never read Spanish with an English voice (or the reverse): the caller would hear
noise that sounds like a bug. So every provider says which languages its voices speak; a request in another
language fails with ``unsupported_language`` (not retryable, and not the provider's fault: its circuit breaker
does not count it), and the worker moves on to the next provider in ``PROVIDER_FALLBACKS``. When the agent's
voice is not one of the provider's voices (the agent was set up for another provider), the provider picks its
own voice for the language instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.provider_cache import ProviderError
from shared.provider_catalog import Voice

UNSUPPORTED_LANGUAGE = "unsupported_language"


def base_language(tag: str) -> str:
    """ "es-MX" → "es", "en_US" → "en": voices are matched on the language, not the region."""
    return tag.replace("_", "-").split("-")[0].lower()


def speaks(languages: Iterable[str], language: str) -> bool:
    """Whether a voice or provider that speaks ``languages`` can read text in ``language``."""
    wanted = base_language(language)
    return any(base_language(spoken) == wanted for spoken in languages)


def unsupported(provider: str, language: str) -> ProviderError:
    """The error a provider raises for a language none of its voices speaks."""
    return ProviderError(UNSUPPORTED_LANGUAGE, f"{provider} has no voice for {language}", retryable=False)


def pick_voice(provider: str, voices: Iterable[Voice], requested: str | None, default: str, language: str) -> str:
    """The voice to read ``language`` with: the requested one if it is ours and speaks it, else our default if it
    does, else our first voice that does; raises ``unsupported_language`` when none does."""
    by_name = {v.name: v for v in voices}
    for name in (requested, default):
        if name in by_name and speaks((by_name[name].language,), language):
            return name  # type: ignore[return-value]
    for voice in by_name.values():
        if speaks((voice.language,), language):
            return voice.name
    raise unsupported(provider, language)


def pick_locale_voice(
    provider: str, voices: Iterable[Voice], requested: str | None, default: str, language: str
) -> str:
    """For providers whose voice names start with their locale ("es-ES-ElviraNeural": Azure): the requested voice
    or the default when its prefix (or a "Multilingual" voice) speaks ``language``, else the first listed voice
    that does; raises ``unsupported_language`` when none does."""
    for name in (requested, default):
        if name and ("Multilingual" in name or speaks((name,), language)):
            return name
    return pick_voice(provider, voices, None, "", language)
