"""Whisper on a short window (STT_CONTEXT_S) with the real models: the same words as the 30 s window, a decode that
loops redone on the 30 s path, silence stays empty, and STT_CONTEXT_S=30 is faster-whisper exactly as before.

tiny.en, Whisper base and piper are loaded once for the module; the whole file takes ~20 s on two busy cores.
"""

from __future__ import annotations

import wave

import numpy as np
import pytest

from bench.spanish_models import TESTSET, words
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers.local_whisper import LocalWhisperStt, pcm16_to_whisper
from services.stt_worker.providers.whisper_window import COMPRESSION_RATIO_THRESHOLD, compression_ratio
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers.local_piper import LocalPiperTts
from shared.events import VoiceSpec
from shared.model_parts import WHISPER_BASE

# piper's voice; at 0.5 s of padding tiny.en repeats each of these ("Do you take credit cards? Do you take...") in
# about 5 renders of 6 (piper's voice is not bit-exact from run to run)
ENGLISH = (
    "Can I change my reservation to Friday evening?",
    "Do you take credit cards?",
    "Can you tell me your address, please?",
)
SPANISH = ("q02.wav", "q06.wav", "q10.wav")  # q02 loops at 0.5 s of padding on Whisper base


@pytest.fixture(scope="module")
async def whisper() -> LocalWhisperStt:
    for package in ("faster_whisper", "piper", *(p.package for p in WHISPER_BASE.parts)):
        pytest.importorskip(package)
    provider = LocalWhisperStt(SttWorkerSettings(stt_model_dir="", stt_multilingual_model_dir=""))
    await provider.warmup()
    return provider


@pytest.fixture(scope="module")
async def english() -> dict[str, bytes]:
    """The sentences in piper's voice at 16 kHz."""
    piper = LocalPiperTts(TtsWorkerSettings(tts_voice_path=""))
    clips = {}
    for text in ENGLISH:
        chunks = [c async for c, _ in piper.synthesize(text, VoiceSpec(), language="en-US", sample_rate=16000)]
        clips[text] = pcm16_at_16k(b"".join(chunks), 22050)
    return clips


def pcm16_at_16k(audio: bytes, rate: int) -> bytes:
    return (pcm16_to_whisper(audio, rate) * 32767).astype(np.int16).tobytes()


def spanish(name: str) -> bytes:
    with wave.open(str(TESTSET / name)) as w:
        assert w.getframerate() == 16000
        return w.readframes(w.getnframes())


async def both_windows(
    whisper: LocalWhisperStt, monkeypatch: pytest.MonkeyPatch, audio: bytes, language: str
) -> tuple[str, str]:
    """The transcript on the configured window, then on 30 s (the same loaded model)."""
    short = (await whisper.transcribe(audio, 16000, language=language)).text
    monkeypatch.setattr(whisper, "context_s", 30.0)
    full = (await whisper.transcribe(audio, 16000, language=language)).text
    monkeypatch.undo()
    return short, full


async def test_english_on_10_s_is_heard_as_on_30_s(
    whisper: LocalWhisperStt, english: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert whisper.context_s == 10.0  # the shipped default
    for text, audio in english.items():
        before = whisper.paths.copy()
        short, full = await both_windows(whisper, monkeypatch, audio, "en-US")
        assert (whisper.paths - before) == {"short": 1, "full": 1}
        assert words(short) == words(full) == words(text)


async def test_spanish_on_10_s_is_heard_as_on_30_s(whisper: LocalWhisperStt, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("q06.wav", "q10.wav"):
        before = whisper.paths.copy()
        short, full = await both_windows(whisper, monkeypatch, spanish(name), "es-ES")
        assert (whisper.paths - before) == {"short": 1, "full": 1}
        assert words(short) == words(full), name


async def test_a_short_decode_that_loops_is_redone_on_30_s(
    whisper: LocalWhisperStt, english: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 0.5 s of silence after the speech (what MIN_PADDING_S prevents) tiny.en and base repeat the sentence;
    the gates catch it and the turn gets the 30 s path's one sentence."""
    turns = [(audio, "en") for audio in english.values()] + [(spanish("q02.wav"), "es")]
    fell_back = []
    for audio, language in turns:
        monkeypatch.setattr(whisper, "context_s", 1.0)
        monkeypatch.setattr(whisper, "min_padding_s", 0.5)
        before = whisper.paths.copy()
        short, full = await both_windows(whisper, monkeypatch, audio, language)
        taken = whisper.paths - before
        assert taken in ({"fallback": 1, "full": 1}, {"short": 1, "full": 1})
        if taken["fallback"]:
            fell_back.append(language)
            assert short == full
        assert compression_ratio(short) < COMPRESSION_RATIO_THRESHOLD
        assert len(words(short)) <= 8
    assert "en" in fell_back and "es" in fell_back  # q02 loops on base every time; piper's clips nearly always


async def test_silence_is_heard_as_nothing(whisper: LocalWhisperStt) -> None:
    rng = np.random.default_rng(7)
    quiet = [np.zeros(32000, dtype=np.int16), rng.normal(0, 30, 32000).astype(np.int16)]  # silence, line hiss
    for audio in quiet:
        for language in ("en", "es"):
            assert (await whisper.transcribe(audio.tobytes(), 16000, language=language)).text == ""


async def test_30_s_is_faster_whisper_as_before(whisper: LocalWhisperStt, english: dict[str, bytes]) -> None:
    """STT_CONTEXT_S=30 calls faster-whisper's transcribe just as the provider did before the short window."""
    provider = LocalWhisperStt(SttWorkerSettings(stt_model_dir="", stt_context_s=30.0))
    provider._models = whisper._models  # the models already loaded
    audio = english[ENGLISH[0]]
    result = await provider.transcribe(audio, 16000, language="en")
    assert provider.paths == {"full": 1}
    model = whisper._models["en"]
    segments, info = model.transcribe(
        pcm16_to_whisper(audio, 16000),
        language="en",
        beam_size=1,
        vad_filter=False,
        condition_on_previous_text=False,
        without_timestamps=True,
    )
    assert result.text == "".join(s.text for s in segments).strip()
    assert result.language == info.language == "en"


async def test_a_long_turn_and_no_language_take_the_right_path(
    whisper: LocalWhisperStt, english: dict[str, bytes]
) -> None:
    audio = english[ENGLISH[1]]
    before = whisper.paths.copy()
    result = await whisper.transcribe(audio, 16000)  # no language: tiny.en, English, short window
    assert result.language == "en" and "credit" in words(result.text)
    long_turn = audio + bytes(2 * 16000 * 22)  # 23+ s: 7 s of padding no longer fit in 30 s
    assert "credit" in words((await whisper.transcribe(long_turn, 16000, language="en")).text)
    assert (whisper.paths - before) == {"short": 1, "full": 1}
