"""Whether a transcript sounds unfinished: it ends on a word that leans on the next one (an article, a
preposition, a conjunction, a possessive: "a table for", "quería reservar una mesa para"), on a filler
("um", "eh", "este"), or on a mark a recogniser writes for speech that trails off ("...", ",", "-").

The end-of-turn model hears how the caller speaks; this reads what they said. Together they decide a pause
(:mod:`.turn_taking`): a turn the model thinks complete whose words are plainly unfinished is waited out. The
lists are short on purpose: only words that almost never end an utterance (not "it", "me", "two", "in" —
"can you help me", "a table for two" and "come in" are whole).
"""

from __future__ import annotations

import re

_LEANING: dict[str, frozenset[str]] = {
    "en": frozenset(
        """a an the my your our their his her to of for with and or but because than
        um uh er erm hmm like""".split()
    ),
    "es": frozenset(
        """el la los las un una unos unas mi mis tu tus su sus nuestro nuestra nuestros nuestras
        de del al para por con y e o u ni que pero porque aunque sin hasta desde entre sobre
        eh em este esto pues""".split()
    ),
}
_TRAILING_MARK = re.compile(r"(\.\.\.|…|,|-|—|;|:)\s*$")
_LAST_WORD = re.compile(r"([\w'-]+)\W*$")


def sounds_unfinished(text: str, language: str) -> bool:
    """Whether ``text`` ends the way an unfinished utterance does (``language``: its BCP 47 tag or code)."""
    text = text.strip()
    if not text:
        return False
    if _TRAILING_MARK.search(text):
        return True
    if text[-1] in ".?!¿¡":  # a recogniser's full stop after "for" still ends on "for": read the word
        text = text.rstrip(".?!")
    found = _LAST_WORD.search(text)
    if found is None:
        return False
    words = _LEANING.get(language.split("-")[0].lower(), frozenset()) | _LEANING["en"]
    return found.group(1).lower().strip("-'") in words
