"""Talk to a running Victoria through the simulator WebSocket, from WAV files instead of a microphone.

    python -m tools.talk speech.wav [more.wav ...] --out reply.wav
    python -m tools.talk --say "What time do you open tomorrow?" --out reply.wav
    python -m tools.talk --agent es --say "¿A qué hora abren mañana?"

It waits for the greeting, then plays each utterance in real time (20 ms frames on an absolute clock,
like a phone would), keeps sending silence until the agent's reply has finished, and prints the
transcript and the latency of each turn: as seen by this client (last speech frame sent → first reply
audio received) and as measured by the gateway (VAD end → STT text → first LLM token → first TTS audio →
first audio byte sent). The reply audio is saved as a WAV.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets
from pydantic import ValidationError

from services.gateway.transports.protocol import (
    SERVER_MESSAGE,
    Ended,
    ErrorMessage,
    ServerMessage,
    Started,
    StartMessage,
    StopMessage,
    Transcript,
    TurnMetrics,
)
from shared.audio import read_wav, resample_pcm16, write_wav
from tools.simcaller import FRAME, RATE, call_token


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


class _Listener:
    """Folds what the gateway sends into the :class:`Conversation` as it arrives; ``done`` is set when the agent has
    answered (or the call ended)."""

    def __init__(self, conv: Conversation, verbose: bool) -> None:
        self.conv = conv
        self.say: Callable[..., None] = print if verbose else (lambda *a, **k: None)
        self.turn: TurnResult | None = None  # None: still the greeting
        self.audio = bytearray()
        self.first_audio: float | None = None
        self.done = asyncio.Event()

    def next_turn(self) -> TurnResult:
        self.turn = TurnResult()
        self.conv.turns.append(self.turn)
        self.audio, self.first_audio = bytearray(), None
        self.done.clear()
        return self.turn

    async def run(self, ws: websockets.ClientConnection) -> None:
        async for frame in ws:
            if isinstance(frame, bytes):
                self.first_audio = self.first_audio or time.perf_counter()
                self.audio.extend(frame)
                continue
            try:
                message = SERVER_MESSAGE.validate_json(frame)
            except ValidationError as exc:
                self.say(f"  (ignored a message outside the protocol: {exc.errors()[0]['msg']})", file=sys.stderr)
                continue
            if self.on_message(message):
                return

    def on_message(self, m: ServerMessage) -> bool:
        """True when the call is over."""
        match m:
            case Started():
                self.conv.call_id = m.call_id
                self.say(f"call {m.call_id} started")
            case Transcript(role="user"):
                if self.turn is not None:
                    self.turn.user_text = m.text
                self.say(f"  you:   {m.text}")
            case Transcript():
                self.say(f"  agent: {m.text}")
                if self.turn is None:
                    self.conv.greeting = m.text
                else:
                    self.turn.reply_text = m.text
                self.done.set()
            case TurnMetrics() if self.turn is not None:
                self.turn.gateway = m.model_dump(exclude={"type", "turn_id"}, exclude_none=True)
            case ErrorMessage():
                self.conv.errors.append(m.model_dump())
                self.say(f"  error: {m.code}: {m.message}", file=sys.stderr)
            case Ended():
                self.conv.end_reason = m.reason
                self.done.set()
                return True
        return False


async def talk(
    url: str,
    utterances: list[bytes],
    *,
    timeout_s: float = 60.0,
    verbose: bool = True,
    api_key: str | None = None,
    agent_id: str | None = None,
) -> Conversation:
    """Hold one call with ``agent_id`` (None: the default agent): greeting, then one turn per utterance (PCM16
    16 kHz). Returns what came back. With an ``api_key`` it first gets a call token from the keyed API, as the
    dashboard does."""
    conv = Conversation()
    listener = _Listener(conv, verbose)
    http_base = url.replace("ws", "http", 1).split("/ws/")[0]
    token = await call_token(http_base, api_key, agent_id) if api_key else None
    async with websockets.connect(url, max_size=2**22) as ws:
        start = StartMessage(sample_rate=RATE, agent_id=agent_id, token=token)
        await ws.send(start.model_dump_json(exclude_none=True))
        receiver = asyncio.create_task(listener.run(ws))
        try:
            await _send_silence_until(ws, listener.done, timeout_s)
            conv.greeting_audio_s = len(listener.audio) / 2 / RATE
            for pcm in utterances:
                await _one_turn(ws, listener, pcm, timeout_s)
                if conv.end_reason:
                    break
            if not conv.end_reason:
                await ws.send(StopMessage().model_dump_json())
                await asyncio.wait_for(receiver, 10)
        finally:
            receiver.cancel()
    return conv


async def _one_turn(ws: websockets.ClientConnection, listener: _Listener, pcm: bytes, timeout_s: float) -> None:
    """Speak ``pcm`` in real time, then keep the line open (silence) until the agent has answered."""
    turn = listener.next_turn()
    last_speech = await _send_realtime(ws, pcm)
    await _send_silence_until(ws, listener.done, timeout_s)
    turn.reply_audio = bytes(listener.audio)
    if listener.first_audio is not None:
        turn.client_latency_ms = round((listener.first_audio - last_speech) * 1000, 1)


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


async def synthesize(text: str, language: str = "en") -> bytes:
    """Speak ``text`` offline: English with the piper voice the TTS worker uses, Spanish (``es``) with a Kokoro
    voice other than the Spanish agent's own (``jf_gongitsune``: the caller should not sound like the agent)."""
    from services.tts_worker.providers import TtsWorkerSettings
    from shared.events import VoiceSpec

    if language.split("-")[0] == "es":
        from services.tts_worker.providers.local_kokoro import LocalKokoroTts

        tts, voice, locale = LocalKokoroTts(TtsWorkerSettings()), VoiceSpec(name="jf_gongitsune"), "es-ES"
    else:
        from services.tts_worker.providers.local_piper import LocalPiperTts

        tts, voice, locale = LocalPiperTts(TtsWorkerSettings()), VoiceSpec(), "en-US"
    chunks = [
        resample_pcm16(pcm, rate, RATE)
        async for pcm, rate in tts.synthesize(text, voice, language=locale, sample_rate=RATE)
    ]
    return b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wav", nargs="*", type=Path, help="utterances to speak, one per turn (any rate, 16-bit)")
    parser.add_argument(
        "--say",
        action="append",
        default=[],
        help="text to synthesise offline and speak (English: piper; Spanish, with --agent es or --language es: Kokoro)",
    )
    parser.add_argument("--agent", help="the agent to call, e.g. es (the Spanish agent); default: the default agent")
    parser.add_argument(
        "--language", help="the language --say is spoken in (en, es); default: es for --agent es, else en"
    )
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
    language = args.language or ("es" if args.agent == "es" else "en")
    utterances += [asyncio.run(synthesize(text, language)) for text in args.say]
    try:
        conv = asyncio.run(
            talk(args.url, utterances, timeout_s=args.timeout, api_key=args.api_key or None, agent_id=args.agent)
        )
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
