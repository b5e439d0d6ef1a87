"""The offline providers with their real models: piper speaks, whisper understands piper, llama answers.

Each model is loaded once for the module; the whole file runs in a few seconds on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers.local_llama import LocalLlamaLlm
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers.local_whisper import LocalWhisperStt
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers.local_piper import LocalPiperTts
from shared.events import ChatMessage, VoiceSpec

FOX = "The quick brown fox jumps over the lazy dog."


P = TypeVar("P", LocalPiperTts, LocalWhisperStt, LocalLlamaLlm)


async def warmed(package: str, make: Callable[[], P]) -> P:
    """The provider with its model loaded, or a skip when its library is not installed."""
    pytest.importorskip(package)
    provider = make()
    await provider.warmup()
    return provider


@pytest.fixture(scope="module")
async def piper() -> LocalPiperTts:
    return await warmed("piper", lambda: LocalPiperTts(TtsWorkerSettings(tts_voice_path="")))


@pytest.fixture(scope="module")
async def whisper() -> LocalWhisperStt:
    return await warmed("faster_whisper", lambda: LocalWhisperStt(SttWorkerSettings(stt_model_dir="")))


@pytest.fixture(scope="module")
async def llama() -> LocalLlamaLlm:
    return await warmed("llama_cpp", lambda: LocalLlamaLlm(LlmWorkerSettings(llm_model_path="")))


@pytest.fixture(scope="module")
async def fox_audio(piper: LocalPiperTts) -> tuple[bytes, int]:
    chunks: list[bytes] = []
    rates: set[int] = set()
    async for chunk, rate in piper.synthesize(FOX, VoiceSpec(), language="en-US", sample_rate=16000):
        chunks.append(chunk)
        rates.add(rate)
    assert len(rates) == 1
    return b"".join(chunks), rates.pop()


async def test_piper_speaks_a_sentence_at_a_plausible_length(fox_audio: tuple[bytes, int]) -> None:
    audio, rate = fox_audio
    assert rate == 22050
    assert len(audio) % 2 == 0
    assert 1.5 <= len(audio) / 2 / rate <= 5.0


async def test_piper_streams_sentence_by_sentence_and_honours_rate(piper: LocalPiperTts) -> None:
    text = "Hello there. " + FOX
    chunks = [c async for c, _ in piper.synthesize(text, VoiceSpec(), language="en-US", sample_rate=22050)]
    assert len(chunks) > 2  # split into ~tts_chunk_ms pieces, not one blob
    normal = sum(map(len, chunks))
    fast = 0
    async for chunk, _ in piper.synthesize(text, VoiceSpec(rate=2.0), language="en-US", sample_rate=22050):
        fast += len(chunk)
    assert fast < normal * 0.8


async def test_whisper_transcribes_piper(whisper: LocalWhisperStt, fox_audio: tuple[bytes, int]) -> None:
    audio, rate = fox_audio  # 22050 Hz: also exercises the resampling to 16 kHz
    result = await whisper.transcribe(audio, rate, language="en-US")
    text = result.text.lower()
    assert "quick" in text and "brown" in text and "fox" in text
    assert result.language == "en"


async def test_whisper_returns_nothing_for_too_short_audio(whisper: LocalWhisperStt) -> None:
    assert (await whisper.transcribe(b"", 16000)).text == ""
    assert (await whisper.transcribe(b"\x10\x00" * 800, 16000)).text == ""  # 50 ms


async def test_llama_streams_a_reply(llama: LocalLlamaLlm) -> None:
    messages = [
        ChatMessage(role="system", content="You are a friendly assistant. Answer in one short sentence."),
        ChatMessage(role="user", content="Say hello."),
    ]
    deltas = [d async for d in llama.stream(messages, temperature=0.0, max_tokens=40)]
    texts = [d.text for d in deltas if d.text]
    assert len(texts) > 1
    assert "".join(texts).strip()
    last = deltas[-1]
    assert last.finish_reason in {"stop", "length"}
    assert last.completion_tokens == len(texts)
    assert last.prompt_tokens and last.prompt_tokens > 0


async def test_llama_can_be_interrupted_and_used_again(llama: LocalLlamaLlm) -> None:
    messages = [ChatMessage(role="user", content="Tell me a long story about a dragon.")]
    stream = llama.stream(messages, temperature=0.0, max_tokens=200)
    assert (await anext(stream)).text
    await stream.aclose()  # barge-in: must release the context for the next turn
    again = [d async for d in llama.stream([ChatMessage(role="user", content="Say hi.")], max_tokens=10)]
    assert again[-1].finish_reason is not None


def _evaluated() -> float:
    """Prompt tokens the English model has evaluated so far (the worker's metric)."""
    from prometheus_client import REGISTRY

    labels = {"family": "en", "outcome": "evaluated"}
    return REGISTRY.get_sample_value("victoria_llm_prompt_tokens_total", labels) or 0.0


async def _turn(llama: LocalLlamaLlm, conversation: list[ChatMessage], said: str) -> tuple[float, int]:
    """One caller turn answered: the prompt tokens evaluated for it, and the prompt's length."""
    conversation.append(ChatMessage(role="user", content=said))
    before = _evaluated()
    deltas = [d async for d in llama.stream(conversation, temperature=0.0, max_tokens=24)]
    conversation.append(ChatMessage(role="assistant", content="".join(d.text for d in deltas) or "Okay."))
    return _evaluated() - before, deltas[-1].prompt_tokens or 0


@pytest.mark.parametrize("contexts", [1, 3])
async def test_a_call_keeps_its_prompt_cache_while_another_call_and_an_extraction_run(contexts: int) -> None:
    """Between call A's turns the worker answers call B and extracts a finished call: with a context each,
    A's next turn evaluates only its new words; with one shared context it re-reads its whole conversation."""
    llama = await warmed(
        "llama_cpp", lambda: LocalLlamaLlm(LlmWorkerSettings(llm_model_path="", llm_contexts=contexts))
    )
    start = [ChatMessage(role="system", content="You are Victoria, a phone assistant. Answer in one sentence.")]
    a, b = list(start), list(start)
    await _turn(llama, a, "Hi, I would like to book a table for four people tomorrow evening, please.")
    await _turn(llama, b, "Hello, what time do you open on Sundays, and do you take reservations?")
    extraction = [
        ChatMessage(role="system", content="Return a JSON summary of this call."),
        ChatMessage(role="user", content="user: I need a taxi to the airport at six."),
    ]
    _ = [d async for d in llama.stream(extraction, temperature=0.0, max_tokens=8)]
    evaluated, prompt = await _turn(llama, a, "Around eight o'clock.")
    assert prompt > 60
    if contexts == 1:
        assert evaluated > prompt / 2  # the conversation read again from (near) its start
    else:
        assert evaluated < 40  # the new words, the template's markers, and what the reply's re-tokenising changed
        c = list(start)  # a new call: its prompt was read by A's context, and is copied from there
        evaluated, prompt = await _turn(llama, c, "Can I bring my dog?")
        assert evaluated < prompt / 2  # (read whole: all of it)
