"""The offline LLM's time to the first speakable words, with one llama.cpp context per model against a pool
(``LLM_CONTEXTS``), on the traffic a worker really sees between one call's turns.

    python -m bench.llm_contexts                        # English (SmolLM2), contexts 1 and 3 (the default)
    python -m bench.llm_contexts --language es          # Spanish (Qwen 0.5B)
    python -m bench.llm_contexts --contexts 1 2 3 --rounds 3

The provider is the shipped one (``providers.local_llama``, called as the worker calls it). Call A, on the
default agent, says its turns one after another, each asked once, whole (the reply started at the caller's
final pause; a turn with a pause inside it is asked earlier as well, which reads the history into some
context before the final ask, so it hides part of what this measures). Between A's turns the worker also serves
what else is live: a turn of call B (another caller of the same agent) and, once, the post-call extraction of
a call that just ended (the recorder's prompt, with its transcript). Per A turn: the milliseconds from the
request to the first five words (``FIRST_WORDS``: what TTS starts on) and the prompt tokens llama.cpp had to
evaluate. Printed: per turn, then p50 / p99 / mean per pool size, and the ratio to one context.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

from prometheus_client import REGISTRY

from services.call_recorder.extraction import extraction_prompt
from services.llm_worker.handler import FIRST_WORDS
from services.llm_worker.providers.local_llama import LocalLlamaLlm, Settings
from shared.events import ChatMessage
from shared.texts import CATALOGUE

CALLS = {
    "en": (
        [
            "Hi, I'd like to book a table for four people tomorrow evening.",
            "Around eight o'clock, if you have anything then.",
            "Can I bring my dog? He's very quiet.",
            "My phone number is five five five, one two three, four five six seven.",
            "Under the name Garcia, please.",
            "Do you have parking near the restaurant?",
            "Great, thank you very much. That's all.",
        ],
        [
            "Hello, what time do you open on Sundays?",
            "And do you take reservations for lunch?",
            "Is there a vegetarian menu?",
            "Can I pay by card?",
            "Is the terrace open in winter?",
            "How far are you from the station?",
            "Thanks, bye.",
        ],
    ),
    "es": (
        [
            "Hola, quería reservar una mesa para cuatro personas mañana por la noche.",
            "Sobre las ocho, si tienen sitio a esa hora.",
            "¿Puedo llevar a mi perro? Es muy tranquilo.",
            "Mi teléfono es seis uno dos, tres cuatro cinco, seis siete ocho.",
            "A nombre de García, por favor.",
            "¿Tienen aparcamiento cerca del restaurante?",
            "Perfecto, muchas gracias. Eso es todo.",
        ],
        [
            "Hola, ¿a qué hora abren los domingos?",
            "¿Y aceptan reservas para comer?",
            "¿Tienen menú vegetariano?",
            "¿Puedo pagar con tarjeta?",
            "¿La terraza está abierta en invierno?",
            "¿A qué distancia están de la estación?",
            "Gracias, adiós.",
        ],
    ),
}


@dataclass
class Turn:
    contexts: int
    turn: int
    first_words_ms: float
    evaluated: int


def evaluated_tokens(family_language: str) -> float:
    family = "en" if family_language == "en" else "multilingual"
    labels = {"family": family, "outcome": "evaluated"}
    return REGISTRY.get_sample_value("victoria_llm_prompt_tokens_total", labels) or 0.0


async def reply(llm: LocalLlamaLlm, messages: list[ChatMessage], language: str) -> tuple[str, float]:
    """The whole reply and the seconds to its first ``FIRST_WORDS`` words (or its end, if shorter)."""
    start, first, text = time.perf_counter(), None, ""
    async for delta in llm.stream(messages, language=language, max_tokens=60):
        text += delta.text
        if first is None and len(text.split()) > FIRST_WORDS:
            first = time.perf_counter() - start
    return text, first if first is not None else time.perf_counter() - start


class Conversation:
    def __init__(self, language: str) -> None:
        texts = CATALOGUE[language]
        self.language = language
        self.messages = [
            ChatMessage(role="system", content=texts["system_prompt"]),
            ChatMessage(role="assistant", content=texts["first_message"]),
        ]

    async def turn(self, llm: LocalLlamaLlm, said: str) -> float:
        """The caller's turn answered; the seconds to its reply's first words."""
        self.messages.append(ChatMessage(role="user", content=said))
        text, first = await reply(llm, self.messages, self.language)
        self.messages.append(ChatMessage(role="assistant", content=text.strip() or "Okay."))
        return first


async def run(language: str, contexts: int) -> list[Turn]:
    llm = LocalLlamaLlm(Settings(llm_contexts=contexts))
    await llm.warmup()
    a_turns, b_turns = CALLS[language]
    a, b = Conversation(language), Conversation(language)
    ended = Conversation(language)  # the call that has just ended: its transcript goes to extraction
    for said in b_turns[:3]:
        await ended.turn(llm, said)
    transcript = "\n".join(f"{m.role}: {m.content}" for m in ended.messages[1:])
    extraction = [
        ChatMessage(role="system", content=extraction_prompt({}, language)),
        ChatMessage(role="user", content=transcript),
    ]
    turns: list[Turn] = []
    for i, said in enumerate(a_turns):
        before = evaluated_tokens(language)
        first = await a.turn(llm, said)
        turns.append(Turn(contexts, i, first * 1000, int(evaluated_tokens(language) - before)))
        await b.turn(llm, b_turns[i])
        if i == 1:
            await reply(llm, extraction, language)
    return turns


def summary(turns: list[Turn]) -> tuple[float, float, float, float]:
    ms = sorted(t.first_words_ms for t in turns)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return statistics.median(ms), p99, statistics.fmean(ms), statistics.fmean(t.evaluated for t in turns)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--language", choices=sorted(CALLS), default="en")
    parser.add_argument("--contexts", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rounds", type=int, default=2, help="runs per pool size, interleaved")
    args = parser.parse_args()
    results: dict[int, list[Turn]] = {n: [] for n in args.contexts}
    for r in range(args.rounds):
        for n in args.contexts:
            turns = await run(args.language, n)
            results[n] += turns
            print(
                f"round {r + 1}, {n} context(s): "
                + "  ".join(f"{t.first_words_ms:.0f} ms/{t.evaluated}" for t in turns)
            )
    print(f"\nlanguage={args.language}; ms to the first {FIRST_WORDS} words of each A turn / prompt tokens evaluated")
    print("| contexts | first words p50 / p99 / mean ms | prompt tokens evaluated per turn (mean) | p50 vs 1 context |")
    print("|---|---|---|---|")
    base = summary(results[args.contexts[0]])[0]
    for n, turns in results.items():
        p50, p99, mean, evaluated = summary(turns)
        print(f"| {n} | {p50:.0f} / {p99:.0f} / {mean:.0f} | {evaluated:.0f} | {p50 / base:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
