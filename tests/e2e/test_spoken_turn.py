"""End to end with the real offline models: every service as its own process on a real NATS and
PostgreSQL, real speech in (synthesised by the piper voice), Whisper, SmolLM2 and piper answering.

Asserts what a caller would notice: the words were understood, the agent answered, and the reply audio
that came back is that answer, in order (we transcribe it back and compare it to the reply text)."""

from __future__ import annotations

import asyncio
import re

import pytest

from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers.local_whisper import LocalWhisperStt
from tools.talk import RATE, synthesize, talk

pytestmark = pytest.mark.e2e

SENTENCE = "I would like to book a table for two people tomorrow evening."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


async def test_first_spoken_turn_end_to_end(system, db_pool) -> None:
    utterance = await synthesize(SENTENCE)
    conv = await talk(f"ws://127.0.0.1:{system.port}/ws/simulator", [utterance], verbose=False, timeout_s=60)

    assert not conv.errors, conv.errors
    assert conv.greeting and conv.greeting_audio_s > 1.5
    turn = conv.turns[0]
    heard = set(words(turn.user_text))
    assert {"book", "table", "tomorrow", "evening"} <= heard, turn.user_text
    assert "two" in heard or "2" in turn.user_text
    assert len(words(turn.reply_text)) >= 2, turn.reply_text

    # reply audio of plausible length for its text (piper speaks ~12-20 characters a second)
    seconds = len(turn.reply_audio) / 2 / RATE
    assert 0.04 * len(turn.reply_text) <= seconds <= 0.2 * len(turn.reply_text) + 1.5, (seconds, turn.reply_text)

    # ... and it is that text, in order: transcribe it back and find the reply's first words at its start
    stt = LocalWhisperStt(SttWorkerSettings())
    back = words((await stt.transcribe(turn.reply_audio, RATE)).text)
    said = words(turn.reply_text)
    assert said[0] in back[:3], (back, said)  # the audio starts with the reply's first words
    overlap = len(set(back) & set(said)) / max(1, len(set(said)))
    assert overlap >= 0.6, (back, said)

    g = turn.gateway
    assert 0 < g["stt_done_ms"] <= g["llm_first_token_ms"] <= g["tts_first_audio_ms"] <= g["first_audio_sent_ms"]

    for _ in range(50):  # the recorder writes the history from the lifecycle stream
        rows = await db_pool.fetch("SELECT role, text FROM transcripts WHERE call_id = $1 ORDER BY seq", conv.call_id)
        if len(rows) == 3:
            break
        await asyncio.sleep(0.2)
    assert [r["role"] for r in rows] == ["assistant", "user", "assistant"]
    assert rows[1]["text"] == turn.user_text and rows[2]["text"] == turn.reply_text
