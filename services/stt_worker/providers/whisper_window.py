"""Whisper on a window shorter than 30 s: one greedy (or beam) decode of a short turn, judged by faster-whisper's own
quality gates so the caller knows when to redo it on the full 30 s path.

faster-whisper always pads the log-Mel features to 3000 frames (30 s): its ``chunk_length`` does not shorten the
encoder's input. CTranslate2's encoder takes fewer frames, and its cost is about proportional to them, so a 2 s
turn in a 10 s window costs about a third. Whisper was trained on 30 s windows, though: with little silence after
the speech the decoder may repeat the last phrase until its token limit. Measured on 20 clips of 2-3 s
(docs/BENCHMARKS.md "Offline STT: a shorter Whisper window"): windows of 8 s or more (5+ s after the speech) never
looped, 6 s looped on 1 clip in 10, the turn + 0.5-2 s on 3-8 in 10. Hence :data:`MIN_PADDING_S`, and the gates
below for what still slips through.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

FULL_CONTEXT_S = 30.0  # Whisper's published window; at or above it the provider runs faster-whisper unchanged
MIN_PADDING_S = 7.0  # silence kept after the speech: shorter padding is what makes the decoder loop
SAMPLE_RATE = 16000  # what Whisper hears
FRAMES_PER_S = 100  # log-Mel frames per second (hop of 160 samples at 16 kHz)
MAX_LENGTH = 448  # Whisper's decoder positions
TOKENS_PER_S = 12  # twice the fastest measured (6.5 tokens/s of garbled Spanish): only a runaway decode gets there
TOKENS_SLACK = 20
# faster-whisper's defaults (WhisperModel.transcribe): the same gates as its generate_with_fallback
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6

Verdict = Literal["ok", "silence", "repetition", "low_confidence", "token_cap"]


@dataclass(frozen=True)
class ShortDecode:
    """One decode on a short window and what the gates made of it (anything but ok/silence: redo on 30 s)."""

    text: str
    language: str
    verdict: Verdict
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def window_seconds(audio_s: float, context_s: float, min_padding_s: float = MIN_PADDING_S) -> float:
    """The encoder's window for a turn of ``audio_s``: ``context_s``, or longer so that ``min_padding_s`` of silence
    follows the speech; whole seconds, at most :data:`FULL_CONTEXT_S` (which means: the unchanged 30 s path)."""
    return float(min(FULL_CONTEXT_S, math.ceil(max(context_s, audio_s + min_padding_s))))


def compression_ratio(text: str) -> float:
    """gzip ratio of the text, as faster-whisper computes it: above 2.4 the text repeats itself (a decoder loop)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def token_cap(audio_s: float) -> int:
    """The most tokens a turn of ``audio_s`` may decode to before it is judged a loop (so a loop costs ~40 tokens,
    not 224); CTranslate2 4.8 stops a Whisper decode at ``max_length // 2`` new tokens (measured), 224 at most."""
    return min(MAX_LENGTH // 2, math.ceil(TOKENS_PER_S * audio_s) + TOKENS_SLACK)


def judge(text: str, avg_logprob: float, no_speech_prob: float, hit_token_cap: bool) -> tuple[Verdict, float]:
    """faster-whisper's gates for its first (temperature 0) decode: silence wins over the others as in
    ``generate_with_fallback`` plus the segment's no-speech skip; a decode that ran out of tokens never ended its
    sentence, which is a loop whatever its ratio. Returns the verdict and the compression ratio."""
    ratio = compression_ratio(text)
    if no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
        return "silence", ratio
    if ratio > COMPRESSION_RATIO_THRESHOLD:
        return "repetition", ratio
    if hit_token_cap:
        return "token_cap", ratio
    if avg_logprob < LOG_PROB_THRESHOLD:
        return "low_confidence", ratio
    return "ok", ratio


def features_for(model: WhisperModel, samples: np.ndarray, frames: int) -> np.ndarray:
    """Log-Mel features of the audio zero-padded to ``frames``, exactly as faster-whisper prepares its first window
    (its extractor's extra last frame dropped, then ``pad_or_trim`` with zeros) but to fewer frames."""
    features = model.feature_extractor(samples)[:, :-1][:, :frames]
    padded = np.zeros((features.shape[0], frames), dtype=np.float32)
    padded[:, : features.shape[1]] = features
    return padded


def decode_short(
    model: WhisperModel, samples: np.ndarray, language: str, window_s: float, beam_size: int
) -> ShortDecode:
    """Encode ``window_s`` seconds and decode them once (no timestamps, no previous text), as faster-whisper's
    ``transcribe`` decodes its first window at temperature 0."""
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    encoded = model.encode(features_for(model, samples, int(window_s * FRAMES_PER_S)))
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    prompt = model.get_prompt(tokenizer, [], without_timestamps=True)
    cap = token_cap(samples.size / SAMPLE_RATE)
    result = model.model.generate(
        encoded,
        [prompt],
        beam_size=beam_size,
        max_length=min(MAX_LENGTH, 2 * cap),  # at most ``cap`` new tokens (see token_cap); reaching it = a loop
        suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),  # what transcribe passes for its [-1]
        return_scores=True,
        return_no_speech_prob=True,
    )[0]
    tokens = result.sequences_ids[0]
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # faster-whisper's, length_penalty 1
    text = tokenizer.decode(tokens).strip()
    verdict, ratio = judge(text, avg_logprob, result.no_speech_prob, len(tokens) >= cap)
    return ShortDecode(text, tokenizer.language_code, verdict, avg_logprob, result.no_speech_prob, ratio)
