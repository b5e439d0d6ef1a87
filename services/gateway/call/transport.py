"""What a call session needs from a client connection (browser WebSocket, Twilio or Telnyx stream)."""

from __future__ import annotations

from typing import Literal, Protocol

from services.gateway.call.output import AudioOutput
from services.gateway.transports.protocol import (
    Clear,
    Ended,
    ErrorMessage,
    StateChanged,
    ToolActivity,
    Transcript,
    Transferred,
    TurnMetrics,
)

SessionMessage = Transcript | TurnMetrics | StateChanged | ErrorMessage | Ended | Clear | ToolActivity | Transferred


class Transport(Protocol):
    """Audio in and out is PCM16 at ``sample_rate`` for ``pcm16`` transports; μ-law transports receive
    μ-law out (TTS produces it directly) and hand the session PCM16 in. Messages are the browser protocol's
    models (:mod:`services.gateway.transports.protocol`); a transport with no place for them ignores them."""

    client_type: Literal["browser", "twilio", "telnyx"]
    sample_rate: int
    encoding: Literal["pcm16", "mulaw"]

    def open_output(self, *, frame_ms: int, lead_ms: int) -> AudioOutput:
        """The call's audio output (the browser's ``OUTBOUND_FRAME_MS``/``OUTBOUND_LEAD_MS`` are given; a
        transport with its own framing uses that)."""
        ...

    async def send_event(self, message: SessionMessage) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def transfer(self, target: str) -> None:
        """Hand the call to ``target`` (E.164 or SIP URI) through the provider (Twilio: the live call updated
        with ``<Dial>``; Telnyx: its ``transfer`` command; the browser: told, then closed). After it, the
        transport never hangs the call up (it is no longer ours). Raises when the provider refuses."""
        ...

    async def send_dtmf(self, digits: str) -> None:
        """Press ``digits`` on the line (Telnyx: its ``send_dtmf`` command; Twilio and the browser: the
        tones, in band, through the audio output)."""
        ...
