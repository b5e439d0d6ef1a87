"""The session's transport over a Twilio or Telnyx media stream: JSON text frames carrying base64 G.711 at
8 kHz, marks and clear.

The session sees a telephony call exactly like a browser call; only this transport differs: audio goes out
as μ-law (the TTS workers produce it directly, no resampling here; A-law calls get a one-table re-encode),
in the stream's own frames (``TELEPHONY_FRAME_MS``), and every utterance is followed by a mark that the
provider echoes once it has played, so the played position is known exactly.

Call control goes through the provider's REST API, as callables each provider's ``media.py`` injects (the
transport knows no credentials): hang-up, transfer and, where the provider has one, a DTMF command. Without
one (Twilio media streams carry no outbound DTMF) the keys are played as tones, in band, like any audio.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import WebSocket

from services.gateway.call.output import AudioOutput, PacedOutput, paced_output
from services.gateway.call.transport import SessionMessage
from shared.audio import dtmf_tones, ulaw_to_alaw
from shared.logging import get_logger

log = get_logger(__name__)

Codec = Literal["PCMU", "PCMA"]
Hangup = Callable[[], Awaitable[object]]
Transfer = Callable[[str], Awaitable[object]]  # the target (E.164 or SIP URI)
SendDtmf = Callable[[str], Awaitable[object]]  # the keys
PAUSE_S = 0.5  # "w" in a key sequence, as Twilio and Telnyx read it


class MediaStreamTransport:
    """The session's transport over a provider media stream. ``envelope`` is what every outbound message
    carries besides its event (Twilio: the ``streamSid``; Telnyx: nothing)."""

    sample_rate = 8000
    encoding: Literal["mulaw"] = "mulaw"

    def __init__(
        self,
        ws: WebSocket,
        client_type: Literal["twilio", "telnyx"],
        *,
        envelope: dict[str, str],
        codec: Codec = "PCMU",
        frame_ms: int = 20,
        lead_ms: int = 20,
        hangup: Hangup | None = None,
        transfer_to: Transfer | None = None,
        dtmf_command: SendDtmf | None = None,
    ) -> None:
        self.ws = ws
        self.client_type: Literal["twilio", "telnyx"] = client_type
        self.envelope = envelope
        self.codec = codec
        self.frame_ms = frame_ms
        self.lead_ms = lead_ms
        self.hangup = hangup
        self.transfer_to = transfer_to
        self.dtmf_command = dtmf_command
        self.transferred_to: str | None = None
        self._transfer_settled: asyncio.Event | None = None
        self.remote_ended = False  # the provider said the call is over: no hang-up request needed
        self.closed = False
        self._closing = False
        self._lock = asyncio.Lock()
        self.sent_media = 0
        self.output: PacedOutput | None = None

    def open_output(self, *, frame_ms: int, lead_ms: int) -> AudioOutput:
        """Paced μ-law media in this stream's own frames and lead (the telephony settings, not the browser's
        ``frame_ms``/``lead_ms``), a mark after each utterance, ``clear`` on barge-in."""
        self.output = paced_output(
            client_type=self.client_type,
            send_audio=self.send_audio,
            send_clear=self.send_clear,
            send_mark=self.send_mark,
            bytes_per_s=self.sample_rate,
            frame_ms=self.frame_ms,
            lead_ms=self.lead_ms,
        )
        return self.output

    def mark_played(self, name: str) -> None:
        """The provider echoed mark ``name``: the caller has heard the audio before it."""
        if self.output is not None:
            self.output.mark_echoed(name)

    async def _send(self, message: dict[str, object]) -> None:
        async with self._lock:
            if not self.closed:
                await self.ws.send_text(json.dumps(message, separators=(",", ":")))

    async def send_audio(self, data: bytes) -> None:
        if self.codec == "PCMA":
            data = ulaw_to_alaw(data)
        payload = base64.b64encode(data).decode()
        self.sent_media += 1
        await self._send({"event": "media", **self.envelope, "media": {"payload": payload}})

    async def send_mark(self, name: str) -> None:
        await self._send({"event": "mark", **self.envelope, "mark": {"name": name}})

    async def send_clear(self) -> None:
        await self._send({"event": "clear", **self.envelope})

    async def send_event(self, message: SessionMessage) -> None:
        """Transcripts, states and metrics are for browsers; a phone stream only carries audio."""

    async def transfer(self, target: str) -> None:
        """Hand the call to ``target`` through the provider; from then on it is not ours to hang up."""
        if self.transfer_to is None:
            raise RuntimeError(f"{self.client_type} transfer needs the provider's API credentials")
        settled = self._transfer_settled = asyncio.Event()
        try:
            await self.transfer_to(target)
            self.hangup = None  # closing our stream must not end the caller's call with the target
            self.transferred_to = target
        finally:
            settled.set()

    async def transfer_outcome(self) -> str | None:
        """Where the call went, once a transfer in flight has settled; None when none succeeded. (Twilio
        stops the stream of a call it dials elsewhere, maybe before its REST answer reaches us.)"""
        if self._transfer_settled is not None:
            await self._transfer_settled.wait()
        return self.transferred_to

    async def send_dtmf(self, digits: str) -> None:
        """Press ``digits``: the provider's command, or tones through the audio output (returns once played)."""
        if self.dtmf_command is not None:
            await self.dtmf_command(digits)
            return
        if self.output is None:
            raise RuntimeError("no audio output to play the keys on")
        tones = keypad_audio(digits)
        played = asyncio.Event()
        wait_s = self.output.pacer.unplayed_s() + len(tones) / self.sample_rate + self.output.pacer.echo_grace_s + 2
        self.output.push(tones)
        self.output.mark(played.set)
        try:
            await asyncio.wait_for(played.wait(), wait_s)
        except TimeoutError:  # a clear (barge-in) dropped them before they all played
            raise RuntimeError("the keys were cut off before they all played") from None

    async def close(self, code: int, reason: str) -> None:
        """End the call: hang it up at the provider (after the goodbye played) unless it already ended."""
        if self._closing:
            return
        self._closing = True
        if self.hangup is not None and not self.remote_ended and reason != "caller_hangup":
            try:
                await asyncio.wait_for(self.hangup(), 10)
            except Exception as exc:  # the stream close below still ends the media; log for the operator
                log.warning(
                    "provider_hangup_failed", client_type=self.client_type, error=str(exc) or type(exc).__name__
                )
        async with self._lock:
            if self.closed:
                return
            self.closed = True
        try:
            await self.ws.close(code=code, reason=reason[:120])
        except Exception:  # already closed by the provider
            pass


def keypad_audio(digits: str) -> bytes:
    """μ-law 8 kHz tones for ``digits``, a ``PAUSE_S`` silence for each ``w``."""
    pause = b"\xff" * int(8000 * PAUSE_S)  # μ-law silence
    return pause.join(dtmf_tones(run, 8000, "mulaw") if run else b"" for run in digits.split("w"))
