"""Talk to a running Victoria through the simulator WebSocket, from WAV files instead of a microphone.

    python -m tools.talk speech.wav [more.wav ...] --out reply.wav
    python -m tools.talk --say "What time do you open tomorrow?" --out reply.wav

It waits for the greeting, then plays each utterance in real time (20 ms frames on an absolute clock,
like a phone would), keeps sending silence until the agent's reply has finished, and prints the
transcript and the latency of each turn: as seen by this client (last speech frame sent → first reply
audio received) and as measured by the gateway (VAD end → STT text → first LLM token → first TTS audio →
first audio byte sent). The reply audio is saved as a WAV.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

from shared.audio import read_wav, resample_pcm16, write_wav

RATE = 16000
FRAME = RATE // 50 * 2  # 20 ms of PCM16


@dataclass
class TurnResult:
    user_text: str = ""
    reply_text: str = ""
    reply_audio: bytes = b""
    client_latency_ms: float | None = None
    gateway: dict[str, float] = field(default_factory=dict)


@dataclass
class Conversation:
    call_id: str = ""
    greeting: str = ""
    greeting_audio_s: float = 0.0
    turns: list[TurnResult] = field(default_factory=list)
    errors: list[dict[str, object]] = field(default_factory=list)
    end_reason: str | None = None


async def talk(
    url: str,
    utterances: list[bytes],
    *,
    timeout_s: float = 60.0,
    verbose: bool = True,
    api_key: str | None = None,
) -> Conversation:
    """Hold one call: greeting, then one turn per utterance (PCM16 16 kHz). Returns what came back. With an
    ``api_key`` it first gets a call token from the keyed API, as the dashboard does."""
    conv = Conversation()
    say = print if verbose else (lambda *a, **k: None)
    start: dict[str, object] = {"type": "start", "sample_rate": RATE}
    if api_key:
        from tools.simcaller import call_token

        start["token"] = await call_token(url.replace("ws", "http", 1).split("/ws/")[0], api_key)
    async with websockets.connect(url, max_size=2**22) as ws:
        await ws.send(json.dumps(start))
        state: dict[str, object] = {"phase": "greeting", "audio": bytearray(), "first_audio": None}
        assistant_done = asyncio.Event()
        turn: TurnResult | None = None

        async def receive() -> None:
            nonlocal turn
            async for message in ws:
                if isinstance(message, bytes):
                    if state["first_audio"] is None:
                        state["first_audio"] = time.perf_counter()
                    state["audio"].extend(message)  # type: ignore[union-attr]
                    continue
                m = json.loads(message)
                kind = m.get("type")
                if kind == "started":
                    conv.call_id = m["call_id"]
                    say(f"call {conv.call_id} started")
                elif kind == "transcript" and m["role"] == "user":
                    if turn is not None:
                        turn.user_text = m["text"]
                    say(f"  you:   {m['text']}")
                elif kind == "transcript" and m["role"] == "assistant":
                    say(f"  agent: {m['text']}")
                    if state["phase"] == "greeting":
                        conv.greeting = m["text"]
                    elif turn is not None:
                        turn.reply_text = m["text"]
                    assistant_done.set()
                elif kind == "turn_metrics" and turn is not None:
                    turn.gateway = {k: v for k, v in m.items() if k.endswith("_ms")}
                elif kind == "error":
                    conv.errors.append(m)
                    say(f"  error: {m.get('code')}: {m.get('message')}", file=sys.stderr)
                elif kind == "ended":
                    conv.end_reason = m.get("reason")
                    assistant_done.set()
                    return

        receiver = asyncio.create_task(receive())
        try:
            await _send_silence_until(ws, assistant_done, timeout_s)
            conv.greeting_audio_s = len(state["audio"]) / 2 / RATE  # type: ignore[arg-type]
            for pcm in utterances:
                turn = TurnResult()
                conv.turns.append(turn)
                state.update(phase="turn", audio=bytearray(), first_audio=None)
                assistant_done.clear()
                last_speech = await _send_realtime(ws, pcm)
                await _send_silence_until(ws, assistant_done, timeout_s)
                turn.reply_audio = bytes(state["audio"])  # type: ignore[arg-type]
                first = state["first_audio"]
                if isinstance(first, float):
                    turn.client_latency_ms = round((first - last_speech) * 1000, 1)
                if conv.end_reason:
                    break
            if not conv.end_reason:
                await ws.send(json.dumps({"type": "stop"}))
                await asyncio.wait_for(receiver, 10)
        finally:
            receiver.cancel()
    return conv


async def _send_realtime(ws: websockets.ClientConnection, pcm: bytes) -> float:
    """Send ``pcm`` in 20 ms frames on an absolute clock; returns when the last frame left."""
    start = time.perf_counter()
    for i, offset in enumerate(range(0, len(pcm), FRAME)):
        delay = start + i * 0.02 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(pcm[offset : offset + FRAME])
    return time.perf_counter()


async def _send_silence_until(ws: websockets.ClientConnection, done: asyncio.Event, timeout_s: float) -> None:
    silence = bytes(FRAME)
    start = time.perf_counter()
    i = 0
    while not done.is_set():
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"no reply within {timeout_s:.0f}s")
        delay = start + i * 0.02 - time.perf_counter()
        if delay > 0:
            try:
                await asyncio.wait_for(done.wait(), delay)
                break
            except TimeoutError:
                pass
        try:
            await ws.send(silence)
        except websockets.ConnectionClosed:
            return
        i += 1


def load_utterance(path: Path) -> bytes:
    pcm, rate = read_wav(path.read_bytes())
    return resample_pcm16(pcm, rate, RATE)


async def synthesize(text: str) -> bytes:
    """Speak ``text`` with the offline piper voice (the same one the TTS worker uses)."""
    from services.tts_worker.providers import TtsWorkerSettings
    from services.tts_worker.providers.local_piper import LocalPiperTts
    from shared.events import VoiceSpec

    tts = LocalPiperTts(TtsWorkerSettings())
    chunks = [
        resample_pcm16(pcm, rate, RATE)
        async for pcm, rate in tts.synthesize(text, VoiceSpec(), language="en-US", sample_rate=RATE)
    ]
    return b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wav", nargs="*", type=Path, help="utterances to speak, one per turn (any rate, 16-bit)")
    parser.add_argument("--say", action="append", default=[], help="text to synthesise offline and speak")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/simulator")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("VICTORIA_API_KEY", ""),
        help="a key of the gateway's API_KEYS (default: $VICTORIA_API_KEY); needed when the gateway has keys",
    )
    parser.add_argument("--out", type=Path, help="save the agent's reply audio (all turns) to this WAV")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each reply")
    args = parser.parse_args(argv)
    if not args.wav and not args.say:
        parser.error("give at least one WAV file or --say TEXT")
    utterances = [load_utterance(p) for p in args.wav]
    utterances += [asyncio.run(synthesize(text)) for text in args.say]
    try:
        conv = asyncio.run(talk(args.url, utterances, timeout_s=args.timeout, api_key=args.api_key or None))
    except (OSError, websockets.InvalidURI, websockets.InvalidHandshake) as exc:
        print(f"cannot reach {args.url}: {exc}. Is Victoria running (make run)?", file=sys.stderr)
        return 2
    except TimeoutError as exc:
        print(f"gave up: {exc}", file=sys.stderr)
        return 3
    except httpx.HTTPStatusError as exc:
        print(f"no call token ({exc.response.status_code}): check --api-key / VICTORIA_API_KEY", file=sys.stderr)
        return 2
    print()
    for i, turn in enumerate(conv.turns, 1):
        g = turn.gateway
        print(f"turn {i}: client latency (last speech frame → first reply audio) {turn.client_latency_ms} ms")
        print(
            "  gateway, from VAD end: "
            f"STT text {g.get('stt_done_ms', '–')} ms → first LLM token {g.get('llm_first_token_ms', '–')} ms → "
            f"first TTS audio {g.get('tts_first_audio_ms', '–')} ms → first audio sent "
            f"{g.get('first_audio_sent_ms', '–')} ms; reply {len(turn.reply_audio) / 2 / RATE:.2f} s of audio"
        )
    if args.out:
        args.out.write_bytes(write_wav(b"".join(t.reply_audio for t in conv.turns), RATE))
        print(f"reply audio saved to {args.out}")
    return 1 if conv.errors else 0


if __name__ == "__main__":
    sys.exit(main())
