"""Splits a caller's 16 kHz PCM16 stream into turns with a VAD engine.

A turn opens after ``start_ms`` of continuous speech (so a cough or a click doesn't open one), includes
``preroll_ms`` of audio from before the onset (so the first syllable isn't lost), and closes after
``stop_ms`` of continuous silence, or when it reaches ``max_turn_s`` (then the next turn starts at once:
speech longer than the bound becomes consecutive turns, each within NATS' payload limit).
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
class TurnEnded:
    audio: bytes
    at_s: float
    reason: str  # "silence" | "max_length"


TurnEvent = SpeechStarted | TurnEnded


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
        self._pending = bytearray()
        self._preroll: deque[bytes] = deque(maxlen=max(1, round(preroll_ms / frame_ms)) + self.start_frames)
        self._turn: list[bytes] = []
        self._speaking = False
        self._voiced_run = 0
        self._silent_run = 0
        self._turn_voiced = 0
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
            self._preroll.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self.start_frames:
                if not self.engine.confirm_onset(b"".join(self._preroll)):
                    self._voiced_run = 0  # not speech (a click, a cough): look again after another window
                    return None
                self._speaking = True
                self.engine.on_turn(True)
                self._turn = list(self._preroll)
                self._preroll.clear()
                self._silent_run = 0
                self._turn_voiced = self._voiced_run
                return SpeechStarted(at_s=self.stream_s)
            return None
        self._turn.append(frame)
        self._silent_run = 0 if voiced else self._silent_run + 1
        self._turn_voiced += voiced
        if self._silent_run >= self.stop_frames:
            if self._turn_voiced < self.start_frames:
                # a turn continued after a max-length cut that holds no real speech: nothing to transcribe
                self._discard()
                return None
            return self._close("silence")
        if len(self._turn) >= self.max_frames:
            return self._close("max_length")
        return None

    def _discard(self) -> None:
        self.engine.on_turn(False)
        self._turn = []
        self._speaking = False
        self._voiced_run = self._silent_run = self._turn_voiced = 0

    def _close(self, reason: str) -> TurnEnded:
        audio = b"".join(self._turn)
        if reason == "silence":  # most of the trailing silence carries no words; don't make STT read it all
            keep = TRAILING_KEEP_FRAMES  # but keep a little: a soft word ending may sit under the volume floor
            audio = audio[: max(0, len(audio) - max(0, self._silent_run - keep) * self.frame_bytes)]
        self._turn = []
        self._speaking = reason == "max_length"  # speech goes on: the next turn is already open
        self.engine.on_turn(self._speaking)
        self._voiced_run = self._silent_run = self._turn_voiced = 0
        return TurnEnded(audio=audio, at_s=self.stream_s, reason=reason)

    def reset(self) -> None:
        self._pending.clear()
        self._preroll.clear()
        self._turn = []
        self._discard()
        self.engine.reset()
