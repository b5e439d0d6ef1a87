"""Cutting streamed LLM text into speakable segments."""

from __future__ import annotations

from shared.sentence_splitter import SentenceSplitter


def _stream(text: str, splitter: SentenceSplitter, step: int = 3) -> list[str]:
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.feed(text[i : i + step])
    return out + splitter.flush()


def test_sentences_come_out_as_soon_as_they_end() -> None:
    s = SentenceSplitter()
    assert s.feed("Sure. I can") == ["Sure."]
    assert s.feed(" help you. What") == ["I can help you."]
    assert s.flush() == ["What"]


def test_token_by_token_gives_the_same_segments_as_whole_text() -> None:
    text = "Hello there! How are you today? I'm fine, thanks for asking. Bye."
    whole = SentenceSplitter().feed(text + " ") + SentenceSplitter().flush()
    assert _stream(text, SentenceSplitter(), step=1) == [seg for seg in whole if seg] or whole
    assert " ".join(_stream(text, SentenceSplitter())) == text


def test_first_segment_may_cut_at_a_clause_when_long_enough() -> None:
    s = SentenceSplitter(first_clause_chars=10, clause_chars=1000)
    assert s.feed("Well, ") == []  # too short to stand alone
    assert s.feed("let me check that for you, ") == ["Well, let me check that for you,"]
    assert s.feed("it takes a second, ") == []  # later clauses need clause_chars


def test_abbreviations_and_decimals_do_not_end_a_sentence() -> None:
    segments = _stream("Dr. Smith will see you at 3.5 hours past noon. Thanks.", SentenceSplitter())
    assert segments == ["Dr. Smith will see you at 3.5 hours past noon.", "Thanks."]


def test_run_on_text_is_cut_at_a_space_before_max_chars() -> None:
    s = SentenceSplitter(max_chars=40)
    out = s.feed("word " * 20)
    assert out and all(len(seg) <= 40 for seg in out)
    assert not any(seg.endswith("wor") for seg in out)


def test_flush_drops_punctuation_only_tails() -> None:
    s = SentenceSplitter()
    s.feed("Okay. ")
    s.feed("...")
    assert s.flush() == []
