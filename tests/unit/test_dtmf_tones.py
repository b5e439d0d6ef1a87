"""DTMF tone generator: each digit is its two Q.23 frequencies for 100 ms, then 60 ms of silence."""

from __future__ import annotations

import numpy as np
import pytest

from shared.audio import DTMF_FREQUENCIES, dtmf_tones, ulaw_to_pcm16

ALL_FREQS = (697, 770, 852, 941, 1209, 1336, 1477, 1633)


def _power(samples: np.ndarray, rate: int, freq: float) -> float:
    """Goertzel: the energy of one frequency in a block."""
    coeff = 2 * np.cos(2 * np.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples.astype(np.float64):
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def _detect(block: np.ndarray, rate: int) -> tuple[int, int]:
    powers = {f: _power(block, rate, f) for f in ALL_FREQS}
    low = max((f for f in ALL_FREQS if f < 1000), key=powers.__getitem__)
    high = max((f for f in ALL_FREQS if f > 1000), key=powers.__getitem__)
    return low, high


@pytest.mark.parametrize(("rate", "encoding"), [(16000, "pcm16"), (8000, "mulaw"), (24000, "pcm16")])
def test_each_digit_is_its_pair_of_tones_then_silence(rate: int, encoding: str) -> None:
    digits = "159*0#D"
    data = dtmf_tones(digits, rate, encoding)
    pcm = np.frombuffer(ulaw_to_pcm16(data) if encoding == "mulaw" else data, dtype=np.int16)
    tone, gap = rate // 10, rate * 60 // 1000
    assert len(pcm) == len(digits) * (tone + gap)
    for i, digit in enumerate(digits):
        start = i * (tone + gap)
        assert _detect(pcm[start : start + tone], rate) == DTMF_FREQUENCIES[digit]
        assert np.abs(pcm[start + tone : start + tone + gap]).max() <= 8  # μ-law's zero is not exactly 0
        assert np.abs(pcm[start : start + tone]).max() > 10000


def test_lower_case_and_empty() -> None:
    assert dtmf_tones("a", 8000) == dtmf_tones("A", 8000)
    assert dtmf_tones("", 8000) == b""


@pytest.mark.parametrize("digits", ["12x", "1 2", "+"])
def test_non_keys_are_refused(digits: str) -> None:
    with pytest.raises(ValueError, match="not DTMF keys"):
        dtmf_tones(digits, 8000)


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="encoding"):
        dtmf_tones("1", 8000, "alaw")
