"""The Smart Turn v3 model's input: Whisper log-mel features of the last 8 s of the caller's turn, in numpy.

Matches what the model was trained on (``transformers.WhisperFeatureExtractor(chunk_length=8)``, as vendored by
pipecat in ``pipecat/audio/turn/smart_turn/_whisper_features.py``, BSD-2-Clause, itself derived from Hugging Face
Transformers, Apache-2.0): PCM16 / 32768, the last 128000 samples left-padded with zeros, the whole padded window
normalised to zero mean and unit variance (the zeros included), a centred (reflect-padded) 400-point periodic-Hann
STFT every 160 samples, power through 80 Slaney mel filters, log10 floored at 1e-10, the last frame dropped,
clamped to 8 decades below the maximum and mapped by (x + 4) / 4. Written here so that the gateway needs neither
pipecat nor transformers; ``tests/unit/test_end_of_turn.py`` checks it against a direct reading of that recipe.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RATE = 16000
WINDOW_S = 8
SAMPLES = RATE * WINDOW_S  # 128000: what the model sees
N_FFT = 400
HOP = 160
N_MELS = 80
FRAMES = SAMPLES // HOP  # 800
_MEL_FLOOR = 1e-10
_NORM_EPS = 1e-7


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    linear = 3.0 * freq / 200.0
    logarithmic = 15.0 + np.log(np.maximum(freq, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(freq >= 1000.0, logarithmic, linear)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    linear = 200.0 * mels / 3.0
    logarithmic = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0))
    return np.where(mels >= 15.0, logarithmic, linear)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = RATE) -> np.ndarray:
    """Triangular filters evenly spaced on the Slaney mel scale from 0 Hz to Nyquist, each scaled to unit area
    ("slaney" norm): shape (n_fft // 2 + 1, n_mels), float64."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(rate / 2), n_mels + 2))
    bins = np.linspace(0, rate // 2, n_fft // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    widths = np.diff(edges)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


_FILTERS_T = np.ascontiguousarray(mel_filterbank().T)  # (80, 201)
_HANN = np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def last_window(pcm: bytes) -> tuple[np.ndarray, int]:
    """The last 8 s of PCM16 mono 16 kHz audio as float32 in [-1, 1), left-padded with zeros to 128000 samples
    (a short turn sits at the end of the window, where the model expects the pause), and the padding's length."""
    usable = len(pcm) - len(pcm) % 2
    samples = np.frombuffer(pcm, dtype=np.int16, count=usable // 2)[-SAMPLES:]
    window = np.zeros(SAMPLES, dtype=np.float32)
    if samples.size:
        window[-samples.size :] = samples.astype(np.float32) / 32768.0
    return window, SAMPLES - samples.size


def log_mel(window: np.ndarray, padding: int = 0, frames: int = FRAMES) -> np.ndarray:
    """The last ``frames`` columns of the features of one 128000-sample float window whose first ``padding``
    samples are zeros: float32 (80, frames), roughly in [-1, 1.5].

    Every frame inside the padding holds the same constant (the zeros, normalised), so its spectrum is computed
    once and repeated: a 3 s turn costs 300 frames' FFTs, not 800, and the result is the same. With fewer
    ``frames`` (a model cut to a shorter window, :mod:`.smart_turn`) the normalisation still reads the whole 8 s
    (the model's input statistics stay the same); only the clamp at 8 decades below the maximum reads the
    frames kept."""
    x = np.asarray(window, dtype=np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    first = FRAMES - frames  # frames dropped at the start
    constant = max(0, (padding - N_FFT // 2) // HOP - first)  # kept frames lying wholly in the padding
    start = first + (constant - 1 if constant else 0)
    spectra = sliding_window_view(padded, N_FFT)[::HOP][start:]  # a view
    power = np.abs(np.fft.rfft(spectra * _HANN, axis=-1)) ** 2  # (computed frames, 201)
    # einsum, not ``@``: a matrix this small costs a multi-threaded BLAS several times the CPU of one loop
    mel = np.log10(np.maximum(_MEL_FLOOR, np.einsum("mf,tf->mt", _FILTERS_T, power)))  # (80, computed frames)
    if constant:
        mel = np.concatenate([np.repeat(mel[:, :1], constant - 1, axis=1), mel], axis=1)
    mel = mel[:, :-1]  # (80, frames): the last frame dropped, as the reference does
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


def features(pcm: bytes, frames: int = FRAMES) -> np.ndarray:
    """The model's input for one turn so far: float32 (80, frames), the last ``frames`` of the 8 s window."""
    return log_mel(*last_window(pcm), frames)


def batch(turns: list[bytes], frames: int = FRAMES) -> np.ndarray:
    """The model's input for several turns: float32 (len(turns), 80, frames)."""
    out = np.empty((len(turns), N_MELS, frames), dtype=np.float32)
    for i, pcm in enumerate(turns):
        out[i] = features(pcm, frames)
    return out
