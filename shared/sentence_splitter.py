"""Cuts a stream of LLM tokens into speakable segments as they arrive, so TTS can start on the first
sentence while the LLM is still writing the rest.

A segment ends at a sentence end (``.!?…`` followed by a space or the end) or, once it is long enough to
sound natural on its own, at a clause break (``,;:``). The first segment may be cut shorter than the rest:
the sooner TTS gets it, the sooner the caller hears something.

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


class SentenceSplitter:
    def __init__(self, *, first_clause_chars: int = 24, clause_chars: int = 60, max_chars: int = 240) -> None:
        self.first_clause_chars = first_clause_chars
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
        for m in _SENTENCE_END.finditer(self._buf):
            before = self._buf[: m.start() + 1]
            if _NUMBER_SIGN.search(before):
                following = self._buf[m.end() :].lstrip()
                if not following:
                    return None  # "No. " and nothing yet: the next token tells a number sign from a "no"
                if following[0].isdigit():
                    continue
                return m.end()
            if _ABBREVIATION_END.search(before) or re.search(r"\b\d+\.$", before):
                continue  # "Dr. Smith", "Sr. García", "3.5" are not sentence ends
            return m.end()
        min_clause = self.first_clause_chars if self._emitted == 0 else self.clause_chars
        for m in _CLAUSE_END.finditer(self._buf):
            if m.start() >= min_clause:
                return m.end()
        if len(self._buf) >= self.max_chars:  # a run-on with no punctuation: cut at the last space that may end one
            space = self._buf.rfind(" ", 0, self.max_chars)
            while space > 0 and not _may_end_before(self._buf, space):
                space = self._buf.rfind(" ", 0, space)
            return space + 1 if space > 0 else self.max_chars
        return None


def _may_end_before(text: str, space: int) -> bool:
    """Whether a segment may end at the space ``text[space]``: not right after "¿"/"¡" or an abbreviation."""
    before = text[:space].rstrip()
    return bool(before) and before[-1] not in _OPENERS and not _ABBREVIATION_END.search(before)


def has_words(text: str) -> bool:
    """Whether a transcript has anything to answer (the gateway and a chaining STT worker must agree)."""
    return any(ch.isalnum() for ch in text)
