"""Audio helpers: PCM16 <-> float, streaming resampling with soxr, G.711 μ-law, WAV files, DTMF tones.

μ-law and A-law use lookup tables built once with numpy (``audioop`` is gone in Python 3.13), bit-exact with the
G.711 reference code.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import soxr

_BIAS = 0x84


def _build_ulaw_decode() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for i in range(256):
        u = ~i & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        sample = ((mantissa << 3) + _BIAS) << exponent
        sample -= _BIAS
        table[i] = -sample if sign else sample
    return table


def _build_ulaw_encode() -> np.ndarray:
    """Table over all 65536 int16 values (indexed by their uint16 view) -> μ-law byte, computed exactly as
    the G.711 reference encoder (Sun's g711.c, which audioop also follows): 14-bit magnitude, clip, bias,
    segment search over 0x3F..0x1FFF."""
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    x = pcm >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + (_BIAS >> 2)
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag, side="left")
    ulaw = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0x0F)) ^ mask
    table = np.zeros(65536, dtype=np.uint8)
    table[pcm.astype(np.int16).view(np.uint16)] = ulaw.astype(np.uint8)
    return table


def _build_alaw_decode() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for i in range(256):
        a = i ^ 0x55
        t = (a & 0x0F) << 4
        seg = (a & 0x70) >> 4
        if seg == 0:
            t += 8
        elif seg == 1:
            t += 0x108
        else:
            t = (t + 0x108) << (seg - 1)
        table[i] = t if a & 0x80 else -t
    return table


def _build_alaw_encode() -> np.ndarray:
    """Table over all int16 values -> A-law byte, as the G.711 reference encoder (g711.c ``linear2alaw``):
    13-bit magnitude, segment search over 0xFF..0x7FFF, even bits inverted (XOR 0x55)."""
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    x = pcm >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    mag = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag, side="left")
    shift = np.where(seg < 2, 1, seg)
    aval = (seg << 4) | ((mag >> shift) & 0x0F)
    alaw = np.where(seg >= 8, 0x7F, aval) ^ mask
    table = np.zeros(65536, dtype=np.uint8)
    table[pcm.astype(np.int16).view(np.uint16)] = alaw.astype(np.uint8)
    return table


ULAW_DECODE = _build_ulaw_decode()
ULAW_ENCODE = _build_ulaw_encode()
ALAW_DECODE = _build_alaw_decode()
ALAW_ENCODE = _build_alaw_encode()


def pcm16_to_alaw(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, dtype=np.int16)
    return ALAW_ENCODE[samples.view(np.uint16)].tobytes()


def alaw_to_pcm16(data: bytes) -> bytes:
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()


def ulaw_to_alaw(data: bytes) -> bytes:
    """Telnyx PCMA calls: the TTS speaks μ-law; one table lookup per byte re-encodes it."""
    return ALAW_ENCODE[ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].view(np.uint16)].tobytes()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, dtype=np.int16)
    return ULAW_ENCODE[samples.view(np.uint16)].tobytes()


def ulaw_to_pcm16(data: bytes) -> bytes:
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


def resample_pcm16(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """One-shot resampling of a whole buffer (a finished turn)."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype=np.int16)
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.int16).tobytes()


class StreamResampler:
    """Stateful PCM16 resampler for one direction of one call: chunk boundaries leave no clicks."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._rs = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16", quality="HQ")
        )

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        if self._rs is None:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16)
        return self._rs.resample_chunk(samples, last=last).tobytes()


def pcm16_duration(pcm: bytes, sample_rate: int) -> float:
    return len(pcm) / 2 / sample_rate


def read_wav(data: bytes) -> tuple[bytes, int]:
    """Read a mono or stereo 16-bit WAV; returns mono PCM16 and its sample rate."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"WAV must be 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        rate, channels = w.getframerate(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    if channels > 1:
        frames = np.frombuffer(frames, dtype=np.int16).reshape(-1, channels).mean(axis=1).astype(np.int16).tobytes()
    return frames, rate


def write_wav(pcm: bytes, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


DTMF_FREQUENCIES: dict[str, tuple[int, int]] = {
    d: (row, col)
    for row, keys in zip((697, 770, 852, 941), ("123A", "456B", "789C", "*0#D"), strict=True)
    for d, col in zip(keys, (1209, 1336, 1477, 1633), strict=True)
}
"""ITU-T Q.23: each key is the sum of its row's and its column's frequency (Hz)."""


def dtmf_tones(
    digits: str,
    sample_rate: int,
    encoding: str = "pcm16",
    *,
    tone_ms: int = 100,
    gap_ms: int = 60,
    amplitude: float = 0.35,
) -> bytes:
    """In-band DTMF for ``digits`` (0-9, *, #, A-D): per digit a dual sine of ``tone_ms`` then ``gap_ms``
    of silence, at ``sample_rate`` in ``encoding`` (``pcm16`` or ``mulaw``) — for lines where the provider
    has no DTMF command (Twilio media streams, the browser). Each sine at ``amplitude`` of full scale, so
    the sum never clips. Raises ValueError for a character that is not a key."""
    bad = sorted({d for d in digits.upper() if d not in DTMF_FREQUENCIES})
    if bad:
        raise ValueError(f"not DTMF keys: {''.join(bad)!r}")
    t = np.arange(round(sample_rate * tone_ms / 1000)) / sample_rate
    gap = np.zeros(round(sample_rate * gap_ms / 1000), dtype=np.int16)
    parts: list[np.ndarray] = []
    for d in digits.upper():
        low, high = DTMF_FREQUENCIES[d]
        wave_ = amplitude * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
        parts += [np.round(wave_ * 32767).astype(np.int16), gap]
    pcm = np.concatenate(parts).tobytes() if parts else b""
    if encoding == "mulaw":
        return pcm16_to_ulaw(pcm)
    if encoding != "pcm16":
        raise ValueError(f"unsupported encoding {encoding!r}")
    return pcm
