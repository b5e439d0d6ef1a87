"""Backchannels: what a listener says to show they follow ("mm-hm", "yeah", "sí", "ajá") without taking the
turn. Said over the agent, such a transcript is no reason to stop talking: a caller's turn that holds only
these words, right after cutting the agent off, is a false interruption and the agent goes on."""

from __future__ import annotations

import re
import unicodedata

_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("mm mmm mhm mm-hm mm-hmm hm hmm uh-huh uh huh um ah oh yeah yep yup ok okay right".split()),
    "es": frozenset("mm mmm mhm hm hmm ajá aja ahá aha sí si vale ya ok okey eh ah oh".split()),
}
_TOKEN = re.compile(r"[\w'-]+")


def _fold(word: str) -> str:
    """Lower case without a trailing hyphen run; "Mm-hm", "MHM" and "mm-hm" are one word."""
    return unicodedata.normalize("NFC", word.lower()).strip("-'")


def is_backchannel(text: str, language: str, *, max_words: int = 3) -> bool:
    """Whether ``text`` (a transcript) is only backchannel words, at most ``max_words`` of them (English words
    count in every language: callers mix "okay" into Spanish)."""
    words = [_fold(w) for w in _TOKEN.findall(text)]
    if not words or len(words) > max_words:
        return False
    known = _WORDS["en"] | _WORDS.get(language.split("-")[0].lower(), frozenset())
    return all(w in known for w in words)
