"""Splits a caller's 16 kHz PCM16 stream into turns with a VAD engine.

A turn opens after ``start_ms`` of continuous speech (so a cough or a click doesn't open one), includes
``preroll_ms`` of audio from before the onset (so the first syllable isn't lost), and closes after
``stop_ms`` of continuous silence, or when it reaches ``max_turn_s`` (then the next turn starts at once:
speech longer than the bound becomes consecutive turns, each within NATS' payload limit).

Inside a turn the detector also reports what the session needs to take the turn sooner and better: a pause
long enough to start the reply ahead (:class:`PreemptPoint`, ``preempt_ms``), a pause long enough for the
end-of-turn model to judge (:class:`PausePoint`, ``pause_ms``), speech coming back after either
(:class:`SpeechResumed`), and enough speech to count as an interruption (:class:`SpeechConfirmed`,
``interrupt_ms``: a backchannel or a cough stays shorter). With the model the session ends the turn at a pause
(:meth:`TurnDetector.end_after`); ``stop_ms`` is then the longest pause waited out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

TRAILING_KEEP_FRAMES = 10  # 200 ms of a 20 ms-frame engine's silence kept at the end of a turn


class VadEngine(Protocol):
    name: str
    sample_rate: int
    frame_samples: int

    def is_speech(self, frame: bytes) -> bool: ...

    def confirm_onset(self, audio: bytes) -> bool:
        """Second opinion on a turn about to open (``audio`` = preroll + the start window); engines that
        trust their own frames return True."""
        ...

    def on_turn(self, open_: bool) -> None:
        """Told when a turn opens and closes (an engine may decide differently inside a turn)."""
        ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class SpeechStarted:
    """Speech onset confirmed; ``at_s`` is stream time of the confirmation (end of the start window)."""

    at_s: float


@dataclass(frozen=True)
class SpeechConfirmed:
    """The turn has held ``interrupt_ms`` of speech: enough to interrupt the agent (a backchannel is shorter)."""

    at_s: float


@dataclass(frozen=True)
class PreemptPoint:
    """A pause of ``preempt_ms``: the reply may start on ``audio`` (the turn so far), held back until the turn
    ends; ``pause`` numbers the stream's pauses (the same pause's later events carry the same number)."""

    audio: bytes
    at_s: float
    pause: int


@dataclass(frozen=True)
class PausePoint:
    """A pause of ``pause_ms``: the end-of-turn model may judge ``audio`` (the turn so far)."""

    audio: bytes
    at_s: float
    pause: int


@dataclass(frozen=True)
class SpeechResumed:
    """Speech came back after a :class:`PreemptPoint` or :class:`PausePoint`: the caller goes on."""

    at_s: float


@dataclass(frozen=True)
class TurnEnded:
    audio: bytes
    at_s: float
    reason: str  # "silence" | "max_length" | "model" (ended at a pause by the end-of-turn model or its fallback)
    silence_s: float = 0.0  # the silence after the last speech that the turn waited


TurnEvent = SpeechStarted | SpeechConfirmed | PreemptPoint | PausePoint | SpeechResumed | TurnEnded


class TurnDetector:
    def __init__(
        self,
        engine: VadEngine,
        *,
        start_ms: int,
        stop_ms: int,
        preroll_ms: int,
        max_turn_s: float,
        min_volume_dbfs: float = -45.0,
        preempt_ms: int = 0,
        pause_ms: int = 0,
        interrupt_ms: int = 0,
    ) -> None:
        self.engine = engine
        # a frame quieter than this is silence whatever the engine says: VAD models keep reporting speech for
        # ~100 ms after it stops (hangover), which would delay every reply by that much on a quiet line
        self._min_square = (32768.0 * 10 ** (min_volume_dbfs / 20)) ** 2
        self.frame_bytes = engine.frame_samples * 2
        frame_ms = 1000 * engine.frame_samples / engine.sample_rate
        self.frame_s = frame_ms / 1000
        self.start_frames = max(1, round(start_ms / frame_ms))
        self.stop_frames = max(1, round(stop_ms / frame_ms))
        self.max_frames = int(max_turn_s / self.frame_s)
        # a pause's events come once each, when its silence reaches them (0 = not reported)
        self.preempt_frames = max(1, round(preempt_ms / frame_ms)) if preempt_ms else 0
        self.pause_frames = max(1, round(pause_ms / frame_ms)) if pause_ms else 0
        self.interrupt_frames = max(self.start_frames, round(interrupt_ms / frame_ms))
        self._pending = bytearray()
        self._preroll: deque[bytes] = deque(maxlen=max(1, round(preroll_ms / frame_ms)) + self.start_frames)
        self._turn: list[bytes] = []
        self._speaking = False
        self._voiced_run = 0
        self._silent_run = 0
        self._turn_voiced = 0
        self._confirmed = False  # the turn has reached interrupt_frames of speech
        self._reported = False  # this pause has been reported (speech coming back is then news)
        self._end_frames: int | None = None  # this pause ends the turn at this much silence (end_after)
        self.pause_count = 0  # pauses reported so far: an answer about a pause names its number
        self.stream_s = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        fb = self.frame_bytes
        if not self._pending and len(pcm) == fb:
            frames = [pcm]  # the usual case, one whole frame per message: nothing to copy
        else:
            self._pending.extend(pcm)
            frames = []
            while len(self._pending) >= fb:
                frames.append(bytes(self._pending[:fb]))
                del self._pending[:fb]
        events: list[TurnEvent] = []
        for frame in frames:
            self.stream_s += self.frame_s
            event = self._frame(frame, self.engine.is_speech(frame) and self._loud(frame))
            if event is not None:
                events.append(event)
        return events

    def _loud(self, frame: bytes) -> bool:
        samples = np.frombuffer(frame, dtype=np.int16).astype(np.float32)
        return float(samples @ samples) >= self._min_square * len(samples)

    def _frame(self, frame: bytes, voiced: bool) -> TurnEvent | None:
        if not self._speaking:
            return self._idle_frame(frame, voiced)
        self._turn.append(frame)
        if voiced:
            resumed, self._reported, self._end_frames = self._reported, False, None
            self._silent_run = 0
            self._turn_voiced += 1
            if not self._confirmed and self._turn_voiced >= self.interrupt_frames:
                self._confirmed = True
                return SpeechConfirmed(at_s=self.stream_s)
            if resumed:
                return SpeechResumed(at_s=self.stream_s)
        else:
            self._silent_run += 1
            event = self._pause_event()
            if event is not None:
                return event
        end = self._end_frames if self._end_frames is not None else self.stop_frames
        if self._silent_run >= end:
            if self._turn_voiced < self.start_frames:
                # a turn continued after a max-length cut that holds no real speech: nothing to transcribe
                self._discard()
                return None
            return self._close("model" if self._end_frames is not None else "silence")
        if len(self._turn) >= self.max_frames:
            return self._close("max_length")
        return None

    def _idle_frame(self, frame: bytes, voiced: bool) -> TurnEvent | None:
        self._preroll.append(frame)
        self._voiced_run = self._voiced_run + 1 if voiced else 0
        if self._voiced_run < self.start_frames:
            return None
        if not self.engine.confirm_onset(b"".join(self._preroll)):
            self._voiced_run = 0  # not speech (a click, a cough): look again after another window
            return None
        self._speaking = True
        self.engine.on_turn(True)
        self._turn = list(self._preroll)
        self._preroll.clear()
        self._silent_run = 0
        self._turn_voiced = self._voiced_run
        self._confirmed = False  # (told on the next voiced frame at the earliest: one event per frame)
        return SpeechStarted(at_s=self.stream_s)

    def _pause_event(self) -> TurnEvent | None:
        """The pause's preempt or pause point when its silence reaches one (only in a turn with speech)."""
        run = self._silent_run
        if self._turn_voiced < self.start_frames or run not in (self.preempt_frames, self.pause_frames):
            return None
        if not self._reported:
            self._reported = True
            self.pause_count += 1
        if run == self.preempt_frames:  # (when both are equal, the one event serves both)
            return PreemptPoint(audio=self._trimmed(), at_s=self.stream_s, pause=self.pause_count)
        return PausePoint(audio=self._trimmed(), at_s=self.stream_s, pause=self.pause_count)

    def end_after(self, silence_ms: int, pause: int | None = None) -> TurnEnded | None:
        """End the turn once the current pause reaches ``silence_ms`` (0: now): the end-of-turn model judged it
        complete, or its fallback decided. Returns the turn when it ends now; None when it ends later (then
        from :meth:`feed`, reason "model"), or when ``pause`` is not the current pause (the caller spoke again:
        the answer is stale)."""
        if not self._speaking or not self._reported or (pause is not None and pause != self.pause_count):
            return None
        self._end_frames = max(1, round(silence_ms / 1000 / self.frame_s))
        if self._silent_run >= self._end_frames:
            return self._close("model")
        return None

    def _discard(self) -> None:
        self.engine.on_turn(False)
        self._turn = []
        self._speaking = False
        self._voiced_run = self._silent_run = self._turn_voiced = 0
        self._reported = self._confirmed = False
        self._end_frames = None

    def _trimmed(self) -> bytes:
        """The turn so far without most of its trailing silence, which carries no words (so STT needn't read
        it); a little is kept: a soft word ending may sit under the volume floor."""
        audio = b"".join(self._turn)
        cut = max(0, self._silent_run - TRAILING_KEEP_FRAMES) * self.frame_bytes
        return audio[: max(0, len(audio) - cut)]

    def _close(self, reason: str) -> TurnEnded:
        silence_s = self._silent_run * self.frame_s
        audio = b"".join(self._turn) if reason == "max_length" else self._trimmed()
        self._turn = []
        self._speaking = reason == "max_length"  # speech goes on: the next turn is already open
        self.engine.on_turn(self._speaking)
        self._voiced_run = self._silent_run = self._turn_voiced = 0
        self._reported = self._confirmed = False
        self._end_frames = None
        return TurnEnded(audio=audio, at_s=self.stream_s, reason=reason, silence_s=silence_s)

    def reset(self) -> None:
        self._pending.clear()
        self._preroll.clear()
        self._turn = []
        self._discard()
        self.engine.reset()
