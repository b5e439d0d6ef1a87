"""Cuts a stream of LLM tokens into speakable segments as they arrive, so TTS can start on the first
sentence while the LLM is still writing the rest.

A segment ends at a sentence end (``.!?…`` followed by a space or the end) or, once it is long enough to
sound natural on its own, at a clause break (``,;:``). The first segment may be cut shorter than the rest:
the sooner TTS gets it, the sooner the caller hears something. With ``first_words`` set, a first sentence with
no punctuation early is cut after that many words, at the first word that may end a phrase (not an article,
preposition, conjunction, possessive, pronoun or auxiliary, in English or Spanish), so a long first sentence
does not hold the first audio back (``bench/first_segment.py`` measures what the cut costs in prosody).

Every cut is the earliest one the rules allow, decided only on text already seen, so a reply streamed token by
token is cut exactly like the same text fed at once.

The LLM worker is the only user: it cuts every reply and names the segments on its chunks, so the gateway
plays exactly what was cut and never splits text itself.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]»”]*\s")
_CLAUSE_END = re.compile(r"[,;:—]\s")
# a period after one of these (a whole word, any case) is not a sentence end: English and Spanish titles and
# abbreviations ("Dr. Smith", "Sra. López", "Ud.", "p. ej.", "núm. 5", "tel. 91...")
_ABBREVIATIONS = (
    "mr", "mrs", "ms", "dr", "st", "sr", "jr", "e.g", "i.e", "etc", "vs",
    "sra", "srta", "dra", "dña", "ud", "uds", "p", "ej", "p. ej", "núm", "tel",
)  # fmt: skip
_ABBREVIATION_END = re.compile(
    r"(?:(?<!\w)(?:" + "|".join(re.escape(a) for a in _ABBREVIATIONS) + r")|(?<![\w.])D)\.$", re.IGNORECASE
)
# "No." abbreviates a number sign only before a number ("No. 5"); before a word it is the Spanish (or English) "no"
_NUMBER_SIGN = re.compile(r"(?<!\w)no\.$", re.IGNORECASE)
_OPENERS = "¿¡"  # Spanish opening marks belong to what follows them: a segment never ends right after one
_WORD_GAP = re.compile(r"\s+(?=\S)")  # a space with more text after it: the word before it is whole
# words that lean on the next one (English and Spanish in one set: the worker need not know the language, and
# the two overlap harmlessly), numbers included ("two tickets", "tres noches"): a first segment cut by word
# count never ends on one of them
_BINDS_FORWARD = frozenset(
    """
    a an the this that these those my your our his her their its some any no not every each all both
    to of in on at for with from by about into onto over under after before than as like
    and or but nor so if because when where while what which who whom whose how why
    i you we they he she it me us them
    is are was were be been being am do does did have has had will would can could shall should may might must
    i'm i'll i'd i've you're you'll you've we're we'll we've they're it's that's there's let's let
    don't doesn't didn't can't won't isn't aren't wasn't weren't couldn't wouldn't shouldn't
    very just really more most less quite too also
    el la los las lo un una unos unas al del de a ante bajo con contra desde en entre hacia hasta para por
    según sin sobre tras y e o u ni que pero sino si como cuando donde porque pues aunque mientras
    qué cuál cuáles quién quiénes cómo cuándo dónde cuánto cuánta cuántos cuántas
    mi mis tu tus su sus nuestro nuestra nuestros nuestras vuestro vuestra
    este esta estos estas ese esa esos esas aquel aquella aquellos aquellas
    me te se le les nos os yo usted ustedes
    es son era eran fue fueron ser soy somos está están estoy estamos estar estás ha han he has hemos hay haber
    va voy vamos van puedo puede podemos pueden podría quiero quiere quisiera debe tengo tiene tenemos
    muy más menos tan también
    one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand
    uno dos tres cuatro cinco seis siete ocho nueve diez once doce veinte treinta cuarenta cincuenta cien ciento
    mil
    """.split()
)


class SentenceSplitter:
    def __init__(
        self, *, first_clause_chars: int = 24, clause_chars: int = 60, max_chars: int = 240, first_words: int = 0
    ) -> None:
        self.first_clause_chars = first_clause_chars
        self.first_words = first_words  # 0: the first segment waits for punctuation like the others
        self.clause_chars = clause_chars
        self.max_chars = max_chars
        self._buf = ""
        self._emitted = 0

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            segment, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if segment:
                out.append(segment)
                self._emitted += 1
        return out

    def flush(self) -> list[str]:
        segment, self._buf = self._buf.strip(), ""
        if segment and any(ch.isalnum() for ch in segment):
            self._emitted += 1
            return [segment]
        return []

    def _find_cut(self) -> int | None:
        """Where the next segment ends: the earliest of the rules' cuts (None: not yet)."""
        sentence, undecided = self._sentence_cut()
        cuts = [c for c in (sentence, self._clause_cut(), self._word_cut()) if c is not None]
        if undecided is not None:  # "No. " at the end of the text: nothing after it may be cut before it is known
            cuts = [c for c in cuts if c <= undecided]
        cut = min(cuts, default=None)
        if (cut is None or cut > self.max_chars) and undecided is None and len(self._buf) >= self.max_chars:
            return self._run_on_cut()
        return cut

    def _sentence_cut(self) -> tuple[int | None, int | None]:
        """The first sentence end, and where a "No." waits for the next token to say whether it is one."""
        for m in _SENTENCE_END.finditer(self._buf):
            before = self._buf[: m.start() + 1]
            if _NUMBER_SIGN.search(before):
                following = self._buf[m.end() :].lstrip()
                if not following:
                    return None, m.start()  # the next token tells a number sign ("No. 5") from a "no"
                if following[0].isdigit():
                    continue
                return m.end(), None
            if _ABBREVIATION_END.search(before) or re.search(r"\b\d+\.$", before):
                continue  # "Dr. Smith", "Sr. García", "3.5" are not sentence ends
            return m.end(), None
        return None, None

    def _clause_cut(self) -> int | None:
        min_clause = self.first_clause_chars if self._emitted == 0 else self.clause_chars
        for m in _CLAUSE_END.finditer(self._buf):
            if m.start() >= min_clause:
                return m.end()
        return None

    def _word_cut(self) -> int | None:
        """The first segment, with no punctuation yet: after ``first_words`` whole words, at the first space
        after a word that may end a phrase (so the cut moves on past "the", "de", "¿", "Dr.", "10:30"...)."""
        if not self.first_words or self._emitted:
            return None
        words = 0
        for m in _WORD_GAP.finditer(self._buf):
            if m.start() == 0:
                continue  # leading space: no word before it
            words += 1
            before, after = self._buf[: m.start()], self._buf[m.end() :]
            if (
                words >= self.first_words
                and _may_end_before(self._buf, m.start())
                and not _binds_forward(before, after)
            ):
                return m.end()
        return None

    def _run_on_cut(self) -> int:
        """A run-on with no punctuation: cut at the last space before ``max_chars`` that may end a segment."""
        space = self._buf.rfind(" ", 0, self.max_chars)
        while space > 0 and not _may_end_before(self._buf, space):
            space = self._buf.rfind(" ", 0, space)
        return space + 1 if space > 0 else self.max_chars


def _binds_forward(before: str, after: str) -> bool:
    """Whether the last word of ``before`` leans on the first of ``after``: a function word, a number
    ("3 de mayo", "10:30 am"), a name going on ("Grand Hotel"); or ``after`` starts with a mark, not a word."""
    word = before.split()[-1].replace("’", "'").strip("\"'“”«»()[]")
    if word.lower() in _BINDS_FORWARD or any(ch.isdigit() for ch in word):
        return True
    if not (after[:1].isalnum() or after[:1] in _OPENERS):
        return True  # "you — with", "so ... well": the mark belongs to the word before it
    return word[:1].isupper() and after[:1].isupper()


def _may_end_before(text: str, space: int) -> bool:
    """Whether a segment may end at the space ``text[space]``: not right after "¿"/"¡" or an abbreviation."""
    before = text[:space].rstrip()
    return bool(before) and before[-1] not in _OPENERS and not _ABBREVIATION_END.search(before)


def has_words(text: str) -> bool:
    """Whether a transcript has anything to answer (the gateway and a chaining STT worker must agree)."""
    return any(ch.isalnum() for ch in text)
