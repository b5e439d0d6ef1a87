"""Offline Spanish: word error rate and speed of the local STT, TTS and LLM models, with Victoria's own providers.

Run from the repository root (offline; the split models are joined into ``$VICTORIA_MODEL_CACHE`` on first use)::

    python -m bench.spanish_models                    # STT, TTS and LLM figures
    python -m bench.spanish_models --only stt --set /tmp/other-testset   # another set (a manifest.tsv beside it)
    python -m bench.spanish_models --make-testset     # rewrite tests/data/es/ (Kokoro jf_* voices, 16 kHz)

- STT: each WAV of the test set (``manifest.tsv``: file, voice, reference text) transcribed with
  ``language="es"`` by tiny.en (the English model, what a Spanish caller got before) and by the multilingual
  base model; WER (lower case, no accents or punctuation, word-level Levenshtein), latency and RTF per utterance.
  The test set is spoken by Kokoro voices other than the agent's default ``jm_kumo``.
- TTS: Kokoro (``jm_kumo``) reading agent sentences: time to first audio and RTF per sentence, and the round
  trip WER (its audio transcribed by Whisper base).
- LLM: Qwen 0.5B (``language="es"``) answering the test set's questions: time to first token, tokens/s, and how
  many answers are Spanish by the stopword heuristic :func:`is_spanish`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
import unicodedata
import wave
from collections.abc import Sequence
from pathlib import Path

from shared.audio import StreamResampler

TESTSET = Path(__file__).resolve().parents[1] / "tests" / "data" / "es"
RATE = 16000
QUESTIONS = (
    "¿A qué hora abren mañana?",
    "Quiero cambiar mi cita del martes.",
    "Mi pedido no ha llegado todavía.",
    "¿Cuánto cuesta el envío a Barcelona?",
    "Necesito hablar con un agente, por favor.",
    "¿Puedo pagar con tarjeta de crédito?",
    "Me cobraron dos veces la misma factura.",
    "¿Tienen disponibilidad para el viernes por la tarde?",
    "Quisiera cancelar mi suscripción.",
    "¿Dónde está la oficina más cercana?",
)
TESTSET_VOICES = ("jf_gongitsune", "jf_tebukuro")  # not jm_kumo, the agent's default voice
AGENT_SENTENCES = (
    "Buenos días, gracias por llamar. ¿En qué puedo ayudarle?",
    "Abrimos de lunes a sábado, de nueve de la mañana a ocho de la tarde.",
    "Su pedido llegará el jueves por la tarde.",
    "El envío a Barcelona cuesta cuatro euros con noventa y cinco.",
    "Puede pagar con tarjeta de crédito, de débito o con Bizum.",
    "Le paso con un agente ahora mismo, no cuelgue, por favor.",
    "He cancelado su suscripción; recibirá un correo de confirmación.",
    "La oficina más cercana está en la calle Mayor, número doce.",
)
SYSTEM_ES = (
    "Eres un asistente telefónico de atención al cliente de una tienda. Responde en español en una o dos frases. "
    "Datos: abrimos de lunes a sábado de 9:00 a 20:00; el envío a toda España cuesta 4,95 euros."
)
ES_STOPWORDS = frozenset(
    "de la que el en y a los se del las un por con no una su para es al lo como más pero sus le ya o este sí "
    "porque esta entre cuando muy sin sobre también me hasta hay donde desde todo nos todos uno les ni otros ese "
    "eso esto antes yo otro otra tanto esa estos mucho nada poco algo mi mis tu te usted ustedes puede puedo "
    "podemos tiene tienen está están son hola gracias claro favor mañana hora cita pedido".split()
)
EN_STOPWORDS = frozenset(
    "the of and to a in is it you that he was for on are with as i his they be at one have this from or had by "
    "but what some we can out other were all there when up use your how said an each she which do their if will "
    "about then them would so these her see him has more could go come did my than been who its now people may "
    "our thank please sorry hello".split()
)


def words(text: str) -> list[str]:
    """Lower-case words without accents or punctuation ("¿Qué?" → "que"), for WER and the language heuristic."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^\w\s]", " ", text).split()


def is_spanish(text: str) -> bool:
    """Whether ``text`` reads as Spanish: more Spanish than English stopwords, and at least 15 % of its words."""
    found = re.findall(r"[a-záéíóúñü]+", text.lower())
    if not found:
        return False
    es = sum(w in ES_STOPWORDS for w in found) / len(found)
    en = sum(w in EN_STOPWORDS for w in found) / len(found)
    return es > en and es >= 0.15


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate over a set: word-level edit distance / reference words."""
    errors = total = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = words(ref), words(hyp)
        prev = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            cur = [i] + [0] * len(h)
            for j, hw in enumerate(h, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
            prev = cur
        errors += prev[-1]
        total += len(r)
    return errors / max(total, 1)


def load_testset(folder: Path) -> list[tuple[bytes, int, str]]:
    """(PCM16, rate, reference) per line of ``folder/manifest.tsv`` (file, voice, text)."""
    rows = []
    for line in (folder / "manifest.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            name, _voice, text = line.split("\t")
            with wave.open(str(folder / name)) as w:
                rows.append((w.readframes(w.getnframes()), w.getframerate(), text))
    return rows


async def synthesize(tts: object, text: str, voice: str | None, rate: int) -> tuple[bytes, float]:
    """``text`` spoken by a TTS provider, resampled to ``rate`` as the TTS worker does; and the time to first audio."""
    from shared.events import VoiceSpec

    started = time.perf_counter()
    first: float | None = None
    resampler: StreamResampler | None = None
    out = bytearray()
    async for pcm, native in tts.synthesize(text, VoiceSpec(name=voice), language="es-ES", sample_rate=rate):  # type: ignore[attr-defined]
        if resampler is None:
            first, resampler = time.perf_counter() - started, StreamResampler(native, rate)
        out += resampler.process(pcm)
    out += resampler.process(b"", last=True) if resampler else b""
    return bytes(out), first or 0.0


def kokoro() -> object:
    from services.tts_worker.providers import TtsWorkerSettings
    from services.tts_worker.providers.local_kokoro import LocalKokoroTts

    return LocalKokoroTts(TtsWorkerSettings())


async def make_testset(folder: Path) -> None:
    """Speak :data:`QUESTIONS` with the test set's Kokoro voices into ``folder`` (16 kHz WAVs and manifest.tsv)."""
    tts = kokoro()
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    lines = []
    for i, text in enumerate(QUESTIONS, 1):
        voice = TESTSET_VOICES[(i - 1) % len(TESTSET_VOICES)]
        pcm, _ = await synthesize(tts, text, voice, RATE)
        with wave.open(str(folder / f"q{i:02d}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm)
        lines.append(f"q{i:02d}.wav\tkokoro-{voice}\t{text}")
    (folder / "manifest.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} WAVs to {folder}")


async def bench_stt(folder: Path) -> None:
    from services.stt_worker.providers import SttWorkerSettings
    from services.stt_worker.providers.local_whisper import LocalWhisperStt, pcm16_to_whisper

    rows = load_testset(folder)
    refs = [ref for _, _, ref in rows]
    stt = LocalWhisperStt(SttWorkerSettings())
    # tiny.en is what a Spanish caller got before (an English-only model ignores the language it is given)
    for label, language in (("tiny.en", None), ("Whisper base", "es")):
        await asyncio.to_thread(stt._run, pcm16_to_whisper(rows[0][0], rows[0][1]), language)  # load: not timed
        hyps, latencies, rtfs = [], [], []
        for pcm, rate, _ref in rows:
            started = time.perf_counter()
            text, _ = await asyncio.to_thread(stt._run, pcm16_to_whisper(pcm, rate), language)
            took = time.perf_counter() - started
            hyps.append(text)
            latencies.append(took)
            rtfs.append(took / (len(pcm) / 2 / rate))
        figures = f"WER {wer(refs, hyps):.3f}, latency {_spread(latencies, 's')}, RTF {statistics.mean(rtfs):.2f}"
        print(f"STT {label}: {figures}")
        for ref, hyp in zip(refs, hyps, strict=True):
            print(f"    {ref!r} -> {hyp!r}")


async def bench_tts() -> None:
    from services.stt_worker.providers import SttWorkerSettings
    from services.stt_worker.providers.local_whisper import LocalWhisperStt

    tts, stt = kokoro(), LocalWhisperStt(SttWorkerSettings())
    await tts.warmup()  # type: ignore[attr-defined]
    firsts, rtfs, hyps = [], [], []
    for text in AGENT_SENTENCES:
        started = time.perf_counter()
        pcm, first = await synthesize(tts, text, None, RATE)
        took = time.perf_counter() - started
        firsts.append(first)
        rtfs.append(took / (len(pcm) / 2 / RATE))
        hyps.append((await stt.transcribe(pcm, RATE, language="es")).text)
    for ref, hyp in zip(AGENT_SENTENCES, hyps, strict=True):
        print(f"    {ref!r} -> {hyp!r}")
    print(
        f"TTS Kokoro jm_kumo: first audio {_spread(firsts, 's')}, RTF {statistics.mean(rtfs):.2f}, "
        f"round-trip WER {wer(AGENT_SENTENCES, hyps):.3f}"
    )


async def bench_llm() -> None:
    from services.llm_worker.providers import LlmWorkerSettings
    from services.llm_worker.providers.local_llama import LocalLlamaLlm
    from shared.events import ChatMessage

    llm = LocalLlamaLlm(LlmWorkerSettings())
    await llm.warmup()
    ttfts, speeds, spanish = [], [], 0
    for question in QUESTIONS:
        messages = [ChatMessage(role="system", content=SYSTEM_ES), ChatMessage(role="user", content=question)]
        started = time.perf_counter()
        first: float | None = None
        text, tokens = "", 0
        async for delta in llm.stream(messages, max_tokens=80, language="es-ES"):
            if delta.text:
                first = first or time.perf_counter() - started
                text, tokens = text + delta.text, tokens + 1
        gen_s = time.perf_counter() - started - (first or 0.0)
        ttfts.append(first or 0.0)
        speeds.append((tokens - 1) / gen_s if tokens > 1 and gen_s > 0 else 0.0)
        spanish += is_spanish(text)
        print(f"    {question!r} -> {text.strip()!r}")
    print(
        f"LLM Qwen 0.5B (es): first token {_spread(ttfts, 's')}, {statistics.mean(speeds):.0f} tokens/s, "
        f"Spanish answers {spanish}/{len(QUESTIONS)}"
    )


def _spread(values: Sequence[float], unit: str) -> str:
    return f"mean {statistics.mean(values):.2f} {unit} (max {max(values):.2f})"


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spanish_models", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("stt", "tts", "llm"), help="one stage only")
    parser.add_argument("--set", type=Path, default=TESTSET, help="STT test set folder (with manifest.tsv)")
    parser.add_argument("--make-testset", action="store_true", help=f"rewrite {TESTSET} and stop")
    args = parser.parse_args(argv)
    if args.make_testset:
        await make_testset(TESTSET)
        return
    if args.only in (None, "stt"):
        await bench_stt(args.set)
    if args.only in (None, "tts"):
        await bench_tts()
    if args.only in (None, "llm"):
        await bench_llm()


if __name__ == "__main__":
    asyncio.run(main())
