"""G.711 μ-law, resampling and WAV helpers."""

from __future__ import annotations

import numpy as np
import pytest

from shared import audio


def _lin2ulaw_reference(sample: int) -> int:
    """Straight transcription of the G.711 reference encoder (Sun's g711.c) for one sample."""
    seg_end = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]
    pcm = sample >> 2
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + (0x84 >> 2)
    seg = next((i for i, end in enumerate(seg_end) if pcm <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def test_ulaw_known_values() -> None:
    pcm = np.array([0, -1, 1, 32767, -32768, 1000, -1000], dtype=np.int16).tobytes()
    assert audio.pcm16_to_ulaw(pcm) == bytes([0xFF, 0x7E, 0xFF, 0x80, 0x00, 0xCE, 0x4E])


def test_ulaw_encoder_is_bit_exact_with_the_reference_for_every_sample() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    ours = np.frombuffer(audio.pcm16_to_ulaw(samples.astype(np.int16).tobytes()), dtype=np.uint8)
    ref = np.array([_lin2ulaw_reference(int(s)) for s in samples], dtype=np.uint8)
    assert np.array_equal(ours, ref)


def test_ulaw_matches_audioop_where_python_still_has_it() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm = np.arange(-32768, 32768, dtype=np.int16).tobytes()
    assert audio.pcm16_to_ulaw(pcm) == audioop.lin2ulaw(pcm, 2)
    codes = bytes(range(256))
    assert audio.ulaw_to_pcm16(codes) == audioop.ulaw2lin(codes, 2)


def test_ulaw_decode_of_all_codes_is_symmetric_and_bounded() -> None:
    table = audio.ULAW_DECODE.astype(np.int32)
    assert table.max() == 32124 and table.min() == -32124
    assert np.all(table[:128] == -table[128:])


def test_ulaw_round_trip_error_is_within_g711_quantisation() -> None:
    samples = (np.sin(np.arange(8000) / 5) * 30000).astype(np.int16)
    back = np.frombuffer(audio.ulaw_to_pcm16(audio.pcm16_to_ulaw(samples.tobytes())), dtype=np.int16)
    err = np.abs(back.astype(np.int32) - samples.astype(np.int32))
    assert np.all(err <= np.maximum(16, np.abs(samples.astype(np.int32)) // 16))


@pytest.mark.parametrize(("src", "dst"), [(22050, 16000), (16000, 8000), (8000, 16000), (48000, 16000)])
def test_stream_resampler_matches_length_and_keeps_a_tone(src: int, dst: int) -> None:
    t = np.arange(src) / src
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16).tobytes()
    rs = audio.StreamResampler(src, dst)
    out = b"".join(rs.process(tone[i : i + 882]) for i in range(0, len(tone), 882)) + rs.process(b"", last=True)
    samples = np.frombuffer(out, dtype=np.int16)
    assert abs(len(samples) - dst) <= 2
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * dst / len(samples)
    assert abs(peak_hz - 440) < 5


def test_wav_round_trip_and_stereo_downmix() -> None:
    pcm = (np.arange(1600, dtype=np.int16) * 3).tobytes()
    data, rate = audio.read_wav(audio.write_wav(pcm, 16000))
    assert (data, rate) == (pcm, 16000)
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.array([100, 300] * 10, dtype=np.int16).tobytes())
    mono, rate = audio.read_wav(buf.getvalue())
    assert rate == 8000 and np.all(np.frombuffer(mono, dtype=np.int16) == 200)


def test_read_wav_rejects_8_bit() -> None:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(10))
    with pytest.raises(ValueError, match="16-bit"):
        audio.read_wav(buf.getvalue())
