"""What cutting the first segment after a few words (``SentenceSplitter(first_words=N)``) gains and costs with
the local voices: piper (English) and Kokoro (Spanish) reading typical first sentences of an agent reply.

Run from the repository root (offline)::

    python -m bench.first_segment                 # N = 4, 5, 6; median of 3 syntheses per time
    python -m bench.first_segment --words 5 --repeats 5

Per sentence and N: the cut's two pieces; the time to the first audio of the whole sentence and of piece 1
(synthesis time: both voices synthesise a sentence in one go, so the first audio comes when it is done); the
audible join: the silence at the end of piece 1 plus the silence at the start of piece 2 (played back to back,
as the gateway plays segments) against the pause the voice makes at that point when it reads the whole
sentence (the longest silence within ``WINDOW_S`` of where piece 1's speech ends; 0 when it reads on); and
whether piece 2 would be late: its synthesis taking longer than piece 1 plays (the worst case, one after the
other on one core; the TTS worker runs two at once).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

import numpy as np

from shared.events import VoiceSpec
from shared.sentence_splitter import SentenceSplitter

FRAME_S = 0.010
SILENCE_DBFS = -40.0  # a 10 ms frame quieter than this is silence
MIN_PAUSE_S = 0.020  # a shorter dip inside speech is not a pause
WINDOW_S = 0.25  # how far from piece 1's end a pause in the whole sentence is looked for
ENGLISH = (
    "I would be happy to help you with your reservation for tonight.",
    "Let me check the availability for the dates you mentioned.",
    "Your appointment with the dentist is confirmed for Tuesday morning at nine.",
    "I can see that your order was shipped yesterday and should arrive on Friday.",
    "Thank you for calling the customer service line of Acme Insurance.",
    "We are open every day from eight in the morning until ten at night.",
    "The total for the two tickets comes to forty five dollars including fees.",
    "I understand that you would like to change the delivery address for your package.",
    "Our technician can visit your home between two and four this afternoon.",
    "That room type includes breakfast and free parking for the whole stay.",
)
SPANISH = (
    "Claro que sí puedo ayudarle con su reserva para esta noche.",
    "Déjeme comprobar la disponibilidad para las fechas que me ha dicho.",
    "Su cita con el dentista queda confirmada para el martes a las nueve.",
    "Veo que su pedido salió ayer y debería llegar el viernes por la tarde.",
    "Gracias por llamar al servicio de atención al cliente de Seguros Acme.",
    "Abrimos todos los días desde las ocho de la mañana hasta las diez de la noche.",
    "El total de las dos entradas es de cuarenta y cinco euros con los gastos.",
    "Entiendo que quiere cambiar la dirección de entrega de su paquete.",
    "Nuestro técnico puede pasar por su casa entre las dos y las cuatro de la tarde.",
    "Esa habitación incluye el desayuno y el aparcamiento durante toda la estancia.",
)


@dataclass
class Synthesis:
    first_audio_s: float  # from the request to the first chunk
    total_s: float  # from the request to the last chunk
    audio: np.ndarray  # int16 mono
    rate: int


async def synthesize(provider: object, text: str, language: str, repeats: int) -> Synthesis:
    """The median time to the first chunk over ``repeats`` runs, and the last run's audio."""
    firsts: list[float] = []
    totals: list[float] = []
    chunks: list[bytes] = []
    rate = 0
    for _ in range(repeats):
        chunks = []
        started = time.perf_counter()
        first = None
        async for pcm, chunk_rate in provider.synthesize(text, VoiceSpec(), language=language, sample_rate=16000):  # type: ignore[attr-defined]
            first = first if first is not None else time.perf_counter() - started
            chunks.append(pcm)
            rate = chunk_rate
        firsts.append(first or 0.0)
        totals.append(time.perf_counter() - started)
    median = statistics.median
    return Synthesis(median(firsts), median(totals), np.frombuffer(b"".join(chunks), dtype="<i2"), rate)


def loud_frames(s: Synthesis) -> np.ndarray:
    """Per 10 ms frame: whether it is louder than ``SILENCE_DBFS``."""
    n = int(FRAME_S * s.rate)
    frames = s.audio[: len(s.audio) // n * n].astype(np.float64).reshape(-1, n)
    rms = np.sqrt((frames**2).mean(axis=1)) / 32768
    return rms > 10 ** (SILENCE_DBFS / 20)


def edges(s: Synthesis) -> tuple[float, float]:
    """The silence at the start and at the end, in seconds."""
    loud = np.flatnonzero(loud_frames(s))
    if loud.size == 0:
        return 0.0, 0.0
    total = len(loud_frames(s))
    return loud[0] * FRAME_S, (total - 1 - loud[-1]) * FRAME_S


def pause_near(s: Synthesis, at_s: float) -> float:
    """The longest silence inside the speech overlapping ``at_s`` ± ``WINDOW_S`` (0: the voice reads on)."""
    loud = loud_frames(s)
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return 0.0
    best, start = 0.0, None
    for i in range(idx[0], idx[-1] + 1):
        if not loud[i] and start is None:
            start = i
        elif loud[i] and start is not None:
            a, b = start * FRAME_S, i * FRAME_S
            if b - a >= MIN_PAUSE_S and a <= at_s + WINDOW_S and b >= at_s - WINDOW_S:
                best = max(best, b - a)
            start = None
    return best


def cut(text: str, words: int) -> tuple[str, str] | None:
    splitter = SentenceSplitter(first_words=words)
    segments = splitter.feed(text) + splitter.flush()
    return (segments[0], " ".join(segments[1:])) if len(segments) > 1 else None


COLUMNS = (("whole ms", 8), ("p1 ms", 6), ("gain", 5), ("p1 end", 6), ("p2 start", 8), ("join", 5), ("natural", 7))
HEADER = " ".join(f"{name:>{width}}" for name, width in (*COLUMNS, ("p2 late", 7))) + "  cut"


@dataclass
class Row:
    whole_s: float  # time to the whole sentence's first audio
    first_s: float  # time to piece 1's first audio
    tail1_s: float  # silence at the end of piece 1
    lead2_s: float  # silence at the start of piece 2
    natural_s: float  # the whole sentence's pause at the cut
    late_s: float  # piece 2's synthesis beyond piece 1's playing time: a gap at the join if made one after the other

    @property
    def join_s(self) -> float:
        return self.tail1_s + self.lead2_s


async def measure(provider: object, language: str, text: str, pieces: tuple[str, str], repeats: int) -> Row:
    """The whole sentence and piece 1 synthesised in turns (so both see the same load on a shared machine)."""
    wholes, ones = [], []
    for _ in range(repeats):
        wholes.append(await synthesize(provider, text, language, 1))
        ones.append(await synthesize(provider, pieces[0], language, 1))
    whole, one = wholes[-1], ones[-1]
    two = await synthesize(provider, pieces[1], language, 1)
    lead1, tail1 = edges(one)
    lead2, _ = edges(two)
    spoken1 = len(one.audio) / one.rate - lead1 - tail1
    natural = pause_near(whole, edges(whole)[0] + spoken1)
    median = statistics.median
    whole_s, first_s = median(w.first_audio_s for w in wholes), median(o.first_audio_s for o in ones)
    late = max(0.0, two.total_s - len(one.audio) / one.rate)
    return Row(whole_s, first_s, tail1, lead2, natural, late)


def print_row(row: Row, pieces: tuple[str, str]) -> None:
    ms = [round(x * 1000) for x in (row.whole_s, row.first_s, row.whole_s - row.first_s, row.tail1_s)]
    ms += [round(x * 1000) for x in (row.lead2_s, row.join_s, row.natural_s, row.late_s)]
    widths = (8, 6, 5, 6, 8, 5, 7, 7)
    print(" ".join(f"{v:{w}d}" for v, w in zip(ms, widths, strict=True)) + f"  {pieces[0]} | {pieces[1]}")


def print_summary(rows: list[Row]) -> None:
    med = statistics.median
    whole, first = med(r.whole_s for r in rows) * 1000, med(r.first_s for r in rows) * 1000
    gain = med(r.whole_s - r.first_s for r in rows) * 1000
    ratio = med(r.first_s / r.whole_s for r in rows)
    join, natural = med(r.join_s for r in rows) * 1000, med(r.natural_s for r in rows) * 1000
    extra = med(r.join_s - r.natural_s for r in rows) * 1000
    late = sum(r.late_s > 0 for r in rows)
    print(
        f"median of {len(rows)}: first audio whole {whole:.0f} ms, piece 1 {first:.0f} ms (gain {gain:.0f} ms,"
        f" piece 1 takes {ratio:.0%} of the whole's time);"
        f" join {join:.0f} ms vs natural pause {natural:.0f} ms (extra silence {extra:.0f} ms);"
        f" piece 2 late in {late} of {len(rows)}"
    )


async def bench_language(
    provider: object, language: str, sentences: tuple[str, ...], ns: list[int], repeats: int
) -> None:
    await provider.warmup()  # type: ignore[attr-defined]
    for n in ns:
        print(f"\n{language}, first_words={n}\n{HEADER}", flush=True)
        rows: list[Row] = []
        for text in sentences:
            pieces = cut(text, n)
            if pieces is None:
                print(f"{'':8}  (not cut)  {text}")
                continue
            rows.append(await measure(provider, language, text, pieces, repeats))
            print_row(rows[-1], pieces)
        if rows:
            print_summary(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, nargs="+", default=[4, 5, 6])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("en", "es"))
    args = parser.parse_args()
    if args.only != "es":
        from services.tts_worker.providers import local_piper

        piper = local_piper.LocalPiperTts(local_piper.Settings())
        await bench_language(piper, "en-US", ENGLISH, args.words, args.repeats)
    if args.only != "en":
        from services.tts_worker.providers import local_kokoro

        kokoro = local_kokoro.LocalKokoroTts(local_kokoro.Settings())
        await bench_language(kokoro, "es-ES", SPANISH, args.words, args.repeats)


if __name__ == "__main__":
    asyncio.run(main())
