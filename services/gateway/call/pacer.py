"""Paces outbound audio in real time from a steady clock, a little ahead of playback.

Frames leave when the playhead (where the caller's player will be when it reaches what we send next) is
less than ``lead_s`` ahead of now: the client never starves (no gaps) and never holds more than ``lead_s``
(so ``clear`` on barge-in silences it at once and the played position is known). Marks fire when the audio
queued before them would have finished playing; telephony transports replace that estimate with the
provider's echoed marks: with a ``remote_mark`` sink each mark is also sent to the client right after the
audio before it, and fires when the client echoes it (Twilio's ``mark``), so the played position is known
exactly, not estimated. If an echo never comes, the mark fires ``echo_grace_s`` after its estimated time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from shared.logging import get_logger

log = get_logger(__name__)

Sink = Callable[[bytes], Awaitable[None]]


class Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class _Discard:
    def observe(self, amount: float) -> None:
        pass


_NO_HISTOGRAM = _Discard()
MarkSink = Callable[[str], Awaitable[None]]


class _Mark:
    __slots__ = ("callback", "name", "offset", "sent")

    def __init__(self, offset: int, callback: Callable[[], None], name: str) -> None:
        self.offset = offset
        self.callback = callback
        self.name = name
        self.sent = False


class AudioPacer:
    def __init__(
        self,
        sink: Sink,
        *,
        bytes_per_s: int,
        frame_ms: int,
        lead_ms: int,
        remote_mark: MarkSink | None = None,
        echo_grace_s: float = 1.0,
        lateness: Histogram | None = None,
    ) -> None:
        self.sink = sink
        self.lateness = lateness if lateness is not None else _NO_HISTOGRAM
        self.remote_mark = remote_mark
        self.echo_grace_s = echo_grace_s
        self._mark_seq = 0
        self._confirmed = 0  # bytes the client confirmed played (echoed marks)
        self._echo_missing_logged = False
        self.bytes_per_s = bytes_per_s
        self.frame_bytes = max(2, bytes_per_s * frame_ms // 1000 // 2 * 2)
        self.lead_s = lead_ms / 1000
        self._buf = bytearray()
        self._marks: deque[_Mark] = deque()
        self._enqueued = 0  # bytes ever queued
        self._sent = 0  # bytes ever sent
        self._playhead: float | None = None  # monotonic time at which the last sent byte will have played
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.first_send_at: float | None = None  # wall clock of the first frame after a reset (latency)
        self.max_gap_s = 0.0  # longest time the player had nothing to play while audio was pending

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pacer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def push(self, audio: bytes) -> None:
        self._buf.extend(audio)
        self._enqueued += len(audio)
        self._wake.set()

    def mark(self, on_played: Callable[[], None]) -> None:
        """Call ``on_played`` once everything queued so far has played."""
        self._mark_seq += 1
        self._marks.append(_Mark(self._enqueued, on_played, f"m{self._mark_seq}"))
        self._wake.set()

    def mark_echoed(self, name: str) -> bool:
        """The client played up to mark ``name``: fire it and every mark before it. Unknown names (a mark
        dropped by ``clear``, or a client's invention) are ignored; returns whether it was known."""
        if not any(m.name == name for m in self._marks):
            return False
        while self._marks:
            mark = self._marks.popleft()
            self._confirmed = max(self._confirmed, mark.offset)
            mark.callback()
            if mark.name == name:
                break
        return True

    @property
    def queued_total(self) -> int:
        """Offset (in bytes ever queued) where the next pushed audio will start."""
        return self._enqueued

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def unplayed_s(self, now: float | None = None) -> float:
        """Audio sent or queued that the caller has not heard yet."""
        now = time.monotonic() if now is None else now
        ahead = max(0.0, (self._playhead or now) - now)
        return ahead + len(self._buf) / self.bytes_per_s

    @property
    def busy(self) -> bool:
        return bool(self._buf) or self.unplayed_s() > 0

    def played_bytes(self, now: float | None = None) -> int:
        """Bytes ever queued that the caller has heard by ``now``."""
        now = time.monotonic() if now is None else now
        ahead = max(0.0, (self._playhead or now) - now)
        return max(self._confirmed, self._sent - int(ahead * self.bytes_per_s))

    def clear(self) -> int:
        """Barge-in: drop what is queued; returns how many queued bytes had been heard by now."""
        heard = self.played_bytes()
        self._buf.clear()
        self._enqueued = self._sent = heard  # what was sent but not heard is discarded by the client's clear
        self._confirmed = min(self._confirmed, heard)
        self._playhead = None
        self._marks.clear()
        self.first_send_at = None
        return heard

    def reset_latency_probe(self) -> None:
        self.first_send_at = None

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            if self.remote_mark is not None:
                await self._send_marks()
            self._fire_marks(now)
            if not self._buf:
                if self._marks:
                    grace = self.echo_grace_s if self.remote_mark is not None else 0.0
                    await self._sleep_until_wake(max(0.001, (self._playhead or now) + grace - now))
                else:
                    await self._sleep_until_wake(None)
                continue
            if self._playhead is None or self._playhead < now:
                if self._playhead is not None and self._sent:
                    self.max_gap_s = max(self.max_gap_s, now - self._playhead)
                self._playhead = now
            while self._buf and self._playhead - now < self.lead_s:
                if self._sent and self._playhead - self.lead_s > 0:
                    # how late this frame leaves against its slot on the steady clock (0 = on time)
                    self.lateness.observe(max(0.0, time.monotonic() - (self._playhead - self.lead_s)))
                frame = bytes(self._buf[: self.frame_bytes])
                del self._buf[: self.frame_bytes]
                if self.first_send_at is None:
                    self.first_send_at = time.time()
                try:
                    await self.sink(frame)
                except Exception as exc:  # the client went away; the session notices on its receive side
                    log.info("pacer_sink_failed", error=str(exc) or type(exc).__name__)
                    self._buf.clear()
                    break
                self._sent += len(frame)
                self._playhead += len(frame) / self.bytes_per_s
                if self.remote_mark is not None and self._marks and not self._marks[-1].sent:
                    await self._send_marks()
            await asyncio.sleep(max(0.0, self._playhead - self.lead_s - time.monotonic()))

    async def _send_marks(self) -> None:
        """Send each mark once the audio before it has been sent (so the client echoes it after playing it)."""
        for mark in self._marks:
            if mark.offset > self._sent:
                break
            if not mark.sent:
                mark.sent = True
                try:
                    await self.remote_mark(mark.name)  # type: ignore[misc]
                except Exception as exc:  # the client is gone; the estimate fires the mark
                    log.info("pacer_mark_failed", error=str(exc) or type(exc).__name__)

    def _fire_marks(self, now: float) -> None:
        """Marks fire on the estimate; with remote marks only after a grace (the echo normally comes first)."""
        grace = int(self.echo_grace_s * self.bytes_per_s) if self.remote_mark is not None else 0
        heard = self.played_bytes(now)
        while self._marks and self._marks[0].offset + grace <= heard:
            mark = self._marks.popleft()
            if grace and not self._echo_missing_logged:
                self._echo_missing_logged = True
                log.info("mark_echo_missing", mark=mark.name, hint="the client does not echo marks; using the clock")
            mark.callback()

    async def _sleep_until_wake(self, timeout: float | None) -> None:
        self._wake.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass
