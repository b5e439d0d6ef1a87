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

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:—]\s")
_ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "st.", "sr.", "jr.", "e.g.", "i.e.", "etc.", "vs.", "no.")


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
            before = self._buf[: m.start() + 1].lower()
            if before.endswith(_ABBREVIATIONS) or re.search(r"\b\d+\.$", before):
                continue  # "Dr. Smith", "3.5" are not sentence ends
            return m.end()
        min_clause = self.first_clause_chars if self._emitted == 0 else self.clause_chars
        for m in _CLAUSE_END.finditer(self._buf):
            if m.start() >= min_clause:
                return m.end()
        if len(self._buf) >= self.max_chars:  # a run-on with no punctuation: cut at the last space
            space = self._buf.rfind(" ", 0, self.max_chars)
            return space + 1 if space > 0 else self.max_chars
        return None


def has_words(text: str) -> bool:
    """Whether a transcript has anything to answer (the gateway and a chaining STT worker must agree)."""
    return any(ch.isalnum() for ch in text)
