"""The turn-taking pause set: pauses of exactly the stated length where the manifest says, utterances that end
on speech, both languages covered, and a cache that round-trips and is rebuilt when the script changes."""

from __future__ import annotations

import numpy as np
import pytest

from bench import pause_set
from bench.pause_set import RATE, join, load, trim


def tone(seconds: float, lead_silence_s: float = 0.0, tail_silence_s: float = 0.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    speech = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2")
    quiet = np.zeros(int(lead_silence_s * RATE), dtype="<i2"), np.zeros(int(tail_silence_s * RATE), dtype="<i2")
    return np.concatenate([quiet[0], speech, quiet[1]]).tobytes()


async def fake_synth(text: str, language: str) -> bytes:
    """Speech-like audio whose length follows the text, with the synthesiser's silent margins."""
    return tone(0.04 * len(text), lead_silence_s=0.1, tail_silence_s=0.3)


def test_trim_cuts_the_margins_to_whole_frames() -> None:
    pcm = trim(tone(0.5, lead_silence_s=0.2, tail_silence_s=0.4))
    assert len(pcm) % 640 == 0
    assert abs(len(pcm) / 2 / RATE - 0.5) <= 0.02


def test_join_puts_exact_silence_of_the_pause_length_where_it_says() -> None:
    pcm, at = join(tone(1.0, 0.1, 0.3), tone(0.8, 0.2, 0.2), 700)
    samples = np.frombuffer(pcm, dtype="<i2")
    start = round(at * RATE)
    gap = samples[start : start + 7 * RATE // 10]
    assert len(gap) == 7 * RATE // 10 and not gap.any()
    assert samples[start - 320 : start].any() and samples[start + len(gap) : start + len(gap) + 320].any()
    assert abs(at - 1.0) <= 0.02


@pytest.mark.parametrize("language", pause_set.LANGUAGES)
async def test_the_set_covers_both_languages_with_pauses_controls_and_backchannels(language: str, tmp_path) -> None:
    utterances = await load(language, cache=tmp_path, synth=fake_synth)
    kinds = [u.kind for u in utterances]
    assert {"pause", "control", "backchannel", "cough"} <= set(kinds)
    pauses = [u for u in utterances if u.kind == "pause"]
    assert all(300 <= u.pause_ms <= 1000 for u in pauses)
    assert min(u.pause_ms for u in pauses) == 300 and max(u.pause_ms for u in pauses) == 1000
    for u in utterances:
        last = np.frombuffer(u.pcm[-640:], dtype="<i2")
        assert len(u.pcm) % 640 == 0 and last.any(), f"{u.id} does not end on speech"
    assert len({u.id for u in utterances}) == len(utterances)


async def test_the_cache_round_trips_and_follows_the_script(tmp_path, monkeypatch) -> None:
    calls: list[str] = []

    async def counting(text: str, language: str) -> bytes:
        calls.append(text)
        return await fake_synth(text, language)

    built = await load("en", cache=tmp_path, synth=counting)
    synthesised = len(calls)
    again = await load("en", cache=tmp_path, synth=counting)
    assert len(calls) == synthesised  # read from disk, nothing synthesised
    assert again == built
    monkeypatch.setitem(pause_set.CONTROLS, "en", ["Is there parking near the restaurant?"])
    changed = await load("en", cache=tmp_path, synth=counting)
    assert len(calls) > synthesised
    assert [u.text for u in changed if u.kind == "control"] == ["Is there parking near the restaurant?"]


def test_silences_inside_an_utterance_are_found_and_the_pause_told_apart() -> None:
    pcm, at = join(tone(0.5) + bytes(2 * RATE * 240 // 1000) + tone(0.5), tone(0.6), 800)
    assert [ms for _, ms in pause_set.silences(pcm)] == [240, 800]
    assert pause_set.other_silence_ms(pcm, at) == 240
    assert pause_set.other_silence_ms(tone(1.0)) == 0
