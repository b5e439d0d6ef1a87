"""First-turn latency with the real offline models, stage by stage.

    python -m bench.first_turn              # starts its own stack (embedded NATS + PostgreSQL + services)
    python -m bench.first_turn --url ws://127.0.0.1:8000/ws/simulator --calls 10
    python -m bench.first_turn --language es   # the Spanish agent `es`, questions from tests/data/es

Each call: greeting, then one utterance (English: synthesised offline by the piper voice; Spanish: the
recorded questions of ``tests/data/es``, Kokoro voices other than the agent's; a different one per call),
silence until the reply has finished, hang-up. Calls run one after another (this is latency, not
load). Printed per stage, from the end of the caller's turn as the gateway's VAD saw it: STT text, first
LLM token, first TTS audio, first audio byte sent; and as the caller saw it: last speech frame sent →
first reply audio received (which also contains the VAD's end-of-turn silence window).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

import numpy as np

from bench.stack import running_stack
from tools.talk import load_utterance, synthesize, talk

SPANISH = sorted((Path(__file__).resolve().parents[1] / "tests" / "data" / "es").glob("q*.wav"))

SENTENCES = [
    "What time do you open tomorrow morning?",
    "I would like to book a table for two people.",
    "Can I change my reservation to Friday evening?",
    "Do you have any vegetarian dishes on the menu?",
    "How much does the lunch menu cost?",
    "Is there parking near the restaurant?",
    "I need to cancel my booking for tonight.",
    "Can you tell me your address, please?",
    "Do you take credit cards?",
    "Thank you very much, that is all for today.",
]
STAGES = ["stt_done_ms", "llm_first_token_ms", "tts_first_audio_ms", "first_audio_sent_ms"]


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    p99 = float(np.percentile(values, 99))
    return f"{statistics.median(values):7.1f} / {p99:7.1f}"


async def utterances(language: str, calls: int) -> list[bytes]:
    """One question per call: English synthesised by piper, Spanish from the recorded test set."""
    if language == "es":
        return [load_utterance(SPANISH[i % len(SPANISH)]) for i in range(calls)]
    return [await synthesize(SENTENCES[i % len(SENTENCES)]) for i in range(calls)]


async def run(url: str, calls: int, language: str = "en") -> None:
    agent = "es" if language == "es" else None
    rows: dict[str, list[float]] = {k: [] for k in [*STAGES, "client_ms"]}
    for i, pcm in enumerate(await utterances(language, calls)):
        conv = await talk(url, [pcm], verbose=False, timeout_s=60, agent_id=agent)
        turn = conv.turns[0]
        for k in STAGES:
            if k in turn.gateway:
                rows[k].append(turn.gateway[k])
        if turn.client_latency_ms is not None:
            rows["client_ms"].append(turn.client_latency_ms)
        print(
            f"call {i + 1:2d}: {turn.user_text!r} -> {turn.reply_text[:60]!r} "
            f"first audio sent {turn.gateway.get('first_audio_sent_ms')} ms"
        )
    print()
    print(f"{'stage (from VAD end of turn)':44s} median / p99 ms   (n={calls})")
    labels = {
        "stt_done_ms": "STT text",
        "llm_first_token_ms": "first LLM token",
        "tts_first_audio_ms": "first TTS audio",
        "first_audio_sent_ms": "first audio byte sent",
        "client_ms": "caller: last speech frame → first reply audio",
    }
    for k, label in labels.items():
        print(f"  {label:42s} {summary(rows[k])}")
    deltas = {
        "STT (VAD end → text)": rows["stt_done_ms"],
        "LLM (text → first token)": [
            b - a for a, b in zip(rows["stt_done_ms"], rows["llm_first_token_ms"], strict=True)
        ],
        "first segment + TTS (token → audio)": [
            b - a for a, b in zip(rows["llm_first_token_ms"], rows["tts_first_audio_ms"], strict=True)
        ],
        "gateway send (audio in → byte out)": [
            b - a for a, b in zip(rows["tts_first_audio_ms"], rows["first_audio_sent_ms"], strict=True)
        ],
    }
    print("\nper hop, median / p99 ms")
    for label, values in deltas.items():
        print(f"  {label:42s} {summary(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running gateway's simulator WebSocket; default: start a stack")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--language", choices=("en", "es"), default="en", help="es: the Spanish agent `es`")
    args = parser.parse_args()
    if args.url:
        asyncio.run(run(args.url, args.calls, args.language))
        return
    with running_stack(fake=False) as stack:
        asyncio.run(run(stack.url.replace("http", "ws", 1) + "/ws/simulator", args.calls, args.language))


if __name__ == "__main__":
    main()
