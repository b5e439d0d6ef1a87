"""The one audio-output contract every transport implements, and the paced output they all build on.

A session plays a reply through :class:`AudioOutput` only: ``push`` audio, ``mark`` a point (the callback
fires once everything before it has played), ``clear`` on barge-in (the client drops what it holds; returns
how many bytes the caller heard), ``played_bytes``, ``start``/``stop``. The transport owns its output: it
builds it (:func:`paced_output`) with its own sinks (audio frames, ``clear``, and, on telephony, marks the
provider echoes back through :meth:`PacedOutput.mark_echoed`), so no caller reaches into another's parts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from services.gateway.call.pacer import AudioPacer, MarkSink, Sink
from services.gateway.metrics import OUTBOUND_FRAME_LATENESS


class AudioOutput(Protocol):
    first_send_at: float | None  # wall clock of the first frame since the last latency probe reset

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def push(self, audio: bytes) -> None: ...

    def mark(self, on_played: Callable[[], None]) -> None: ...

    async def clear(self) -> int: ...

    def played_bytes(self) -> int: ...

    @property
    def queued_total(self) -> int: ...

    def reset_latency_probe(self) -> None: ...


class PacedOutput:
    """:class:`AudioPacer`'s real-time pacing and marks, plus the client's ``clear``."""

    def __init__(self, pacer: AudioPacer, send_clear: Callable[[], Awaitable[None]]) -> None:
        self.pacer = pacer
        self.send_clear = send_clear

    @property
    def first_send_at(self) -> float | None:
        return self.pacer.first_send_at

    @property
    def queued_total(self) -> int:
        return self.pacer.queued_total

    def start(self) -> None:
        self.pacer.start()

    async def stop(self) -> None:
        await self.pacer.stop()

    def push(self, audio: bytes) -> None:
        self.pacer.push(audio)

    def mark(self, on_played: Callable[[], None]) -> None:
        self.pacer.mark(on_played)

    def mark_echoed(self, name: str) -> bool:
        """The client played up to mark ``name`` (telephony: the provider's echo)."""
        return self.pacer.mark_echoed(name)

    async def clear(self) -> int:
        heard = self.pacer.clear()
        await self.send_clear()
        return heard

    def played_bytes(self) -> int:
        return self.pacer.played_bytes()

    def reset_latency_probe(self) -> None:
        self.pacer.reset_latency_probe()


def paced_output(
    *,
    client_type: str,
    send_audio: Sink,
    send_clear: Callable[[], Awaitable[None]],
    bytes_per_s: int,
    frame_ms: int,
    lead_ms: int,
    send_mark: MarkSink | None = None,
) -> PacedOutput:
    """A transport's output: frames of ``frame_ms`` leave at most ``lead_ms`` ahead of playback."""
    pacer = AudioPacer(
        send_audio,
        bytes_per_s=bytes_per_s,
        frame_ms=frame_ms,
        lead_ms=lead_ms,
        remote_mark=send_mark,
        lateness=OUTBOUND_FRAME_LATENESS.labels(client_type),
    )
    return PacedOutput(pacer, send_clear)
